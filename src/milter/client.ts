// The MTA side of the protocol, as Postfix speaks it: negotiate, then send
// each message's events, skipping those the filter switched off and waiting
// for a reply only where the filter gives one. Used by the tests and the
// benchmark to drive a milter without an MTA.

import * as net from 'node:net';
import * as C from './constants';
import {
  PacketDecoder,

  decodeReply,
  encodeConnect,
  encodeHeader,
  encodeMacros,
  encodeOptneg,
  encodePacket,
  encodeStrings,
} from './codec';

export type ClientTarget = { path: string } | { host: string; port: number; /** Address to connect from (an MTA on another host). */ localAddress?: string };

/** Everything Postfix 3.x offers: protocol 6, all actions, all protocol flags. */
export const POSTFIX_OFFER = {
  version: 6,
  actions: 0x1ff,
  protocol: 0x1fffff,
};

export interface TestMessage {
  sender: string | Buffer;
  recipients: (string | Buffer)[];
  /** Name and the value as it follows the colon (leading space included). */
  headers: [string | Buffer, string | Buffer][];
  body: Buffer | Iterable<Buffer> | AsyncIterable<Buffer>;
  /** Macros per stage, e.g. { [SMFIC_MAIL]: { '{daemon_name}': 'smtpd' } }. */
  macros?: Partial<Record<number, Record<string, string>>>;
  mailArgs?: string[];
}

type Reply = ReturnType<typeof decodeReply>;

export class MilterClient {
  private readonly decoder = new PacketDecoder();
  private readonly waiters: { resolve: (r: Reply) => void; reject: (e: Error) => void }[] = [];
  private readonly replies: Reply[] = [];
  private closedError: Error | null = null;
  /** Flags and version in force after negotiation. */
  protocol = 0;
  version = 0;
  macroLists = new Map<number, string>();

  private constructor(readonly socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.decoder.push(chunk);
      for (let p = this.decoder.next(); p; p = this.decoder.next()) {
        const reply = decodeReply(p);
        if (reply.type === 'progress') continue;
        const w = this.waiters.shift();
        if (w) w.resolve(reply);
        else this.replies.push(reply);
      }
    });
    const onGone = (err?: Error) => {
      this.closedError ??= err ?? new Error('milter closed the connection');
      for (const w of this.waiters.splice(0)) w.reject(this.closedError);
    };
    socket.on('error', onGone);
    socket.on('close', () => onGone());
  }

  static connect(target: ClientTarget): Promise<MilterClient> {
    return new Promise((resolve, reject) => {
      const socket = net.connect(target as net.NetConnectOpts);
      socket.once('error', reject);
      socket.once('connect', () => {
        socket.off('error', reject);
        socket.setNoDelay(true);
        resolve(new MilterClient(socket));
      });
    });
  }

  /** Connects and negotiates; returns the client ready for messages. */
  static async open(target: ClientTarget, offer = POSTFIX_OFFER): Promise<MilterClient> {
    const client = await MilterClient.connect(target);
    await client.negotiate(offer);
    return client;
  }

  async negotiate(offer = POSTFIX_OFFER): Promise<void> {
    this.send(encodeOptneg(offer.version, offer.actions, offer.protocol));
    const r = await this.reply();
    if (r.type !== 'optneg') throw new Error(`expected SMFIR_OPTNEG, got ${r.type}`);
    this.version = r.version;
    this.protocol = r.protocol & offer.protocol;
    this.macroLists = r.macroLists;
  }

  /** The next reply from the filter. */
  reply(): Promise<Reply> {
    const r = this.replies.shift();
    if (r) return Promise.resolve(r);
    if (this.closedError) return Promise.reject(this.closedError);
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  /** Writes raw bytes (for malformed-input tests). Resolves when the socket can take more. */
  send(data: Buffer): Promise<void> | void {
    if (!this.socket.write(data)) return new Promise((resolve) => this.socket.once('drain', resolve));
  }

  private has(flag: number): boolean {
    return (this.protocol & flag) !== 0;
  }

  /** Sends one event; returns the reply if the filter gives one, else null. */
  private async event(packet: Buffer, skipFlag: number, noReplyFlag: number, macros?: Buffer): Promise<Reply | null> {
    if (skipFlag && this.has(skipFlag)) return null;
    if (macros) await this.send(macros);
    await this.send(packet);
    if (noReplyFlag && this.has(noReplyFlag)) return null;
    return this.reply();
  }

  private macroPacket(msg: TestMessage, stage: number): Buffer | undefined {
    const m = msg.macros?.[stage];
    return m ? encodeMacros(stage, m) : undefined;
  }

  async connectEvent(hostname = 'localhost', address = '127.0.0.1', port = 25): Promise<Reply | null> {
    return this.event(encodeConnect(hostname, C.SMFIA_INET, port, address), C.SMFIP_NOCONNECT, C.SMFIP_NR_CONN);
  }

  /**
   * Sends MAIL, RCPTs, DATA, headers, EOH and body (each unless skipped); stops early when the filter
   * answers anything but continue. Returns that answer, or null when the
   * message is ready for end-of-message.
   */
  async sendContent(msg: TestMessage): Promise<Reply | null> {
    const early = (r: Reply | null) => (r && r.type !== 'continue' ? r : null);
    let r = await this.event(
      encodeStrings(C.SMFIC_MAIL, [msg.sender, ...(msg.mailArgs ?? [])]),
      C.SMFIP_NOMAIL,
      C.SMFIP_NR_MAIL,
      this.macroPacket(msg, C.SMFIC_MAIL),
    );
    if (early(r)) return r;
    for (const rcpt of msg.recipients) {
      r = await this.event(encodeStrings(C.SMFIC_RCPT, [rcpt]), C.SMFIP_NORCPT, C.SMFIP_NR_RCPT, this.macroPacket(msg, C.SMFIC_RCPT));
      if (early(r)) return r;
    }
    r = await this.event(encodePacket(C.SMFIC_DATA), C.SMFIP_NODATA, C.SMFIP_NR_DATA, this.macroPacket(msg, C.SMFIC_DATA));
    if (early(r)) return r;
    for (const [name, value] of msg.headers) {
      const v = this.has(C.SMFIP_HDR_LEADSPC) ? value : stripLeadingSpace(value);
      r = await this.event(encodeHeader(name, v), C.SMFIP_NOHDRS, C.SMFIP_NR_HDR);
      if (early(r)) return r;
    }
    r = await this.event(encodePacket(C.SMFIC_EOH), C.SMFIP_NOEOH, C.SMFIP_NR_EOH, this.macroPacket(msg, C.SMFIC_EOH));
    if (early(r)) return r;
    if (!this.has(C.SMFIP_NOBODY)) {
      for await (const piece of chunks(msg.body)) {
        r = await this.event(encodePacket(C.SMFIC_BODY, piece), 0, C.SMFIP_NR_BODY);
        if (early(r)) return r;
      }
    }
    return null;
  }

  async endOfMessage(msg?: TestMessage): Promise<Reply> {
    const macros = msg && this.macroPacket(msg, C.SMFIC_BODYEOB);
    if (macros) await this.send(macros);
    await this.send(encodePacket(C.SMFIC_BODYEOB));
    return this.reply();
  }

  /** A whole message; returns the filter's final answer. */
  async sendMessage(msg: TestMessage): Promise<Reply> {
    return (await this.sendContent(msg)) ?? this.endOfMessage(msg);
  }

  async abort(): Promise<void> {
    await this.send(encodePacket(C.SMFIC_ABORT));
  }

  /** SMFIC_QUIT, then wait for the filter to close. */
  quit(): Promise<void> {
    return new Promise((resolve) => {
      if (this.socket.destroyed) return resolve();
      this.socket.once('close', () => resolve());
      this.socket.end(encodePacket(C.SMFIC_QUIT));
    });
  }

  destroy(): void {
    this.socket.destroy();
  }
}

function stripLeadingSpace(v: string | Buffer): Buffer {
  const b = typeof v === 'string' ? Buffer.from(v, 'latin1') : v;
  let i = 0;
  while (i < b.length && (b[i] === 0x20 || b[i] === 0x09)) i++;
  return b.subarray(i);
}

/** Body pieces of at most MILTER_CHUNK_SIZE bytes, as Postfix sends them. */
async function* chunks(body: TestMessage['body']): AsyncIterable<Buffer> {
  const parts: Iterable<Buffer> | AsyncIterable<Buffer> = Buffer.isBuffer(body) ? [body] : body;
  for await (const part of parts) {
    for (let off = 0; off < part.length; off += C.MILTER_CHUNK_SIZE) {
      yield part.subarray(off, Math.min(part.length, off + C.MILTER_CHUNK_SIZE));
    }
  }
}

