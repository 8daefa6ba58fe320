// A bare SMTP client for tests and benchmarks: exact bytes (bare CR, bytes
// that are not UTF-8, pipelined floods), every reply as it comes, and submit(),
// the one way a test hands a message to an SMTP server.

import * as net from 'node:net';
import * as tls from 'node:tls';

export interface Reply {
  code: number;
  /** The text of each line after "250-" / "250 ". */
  lines: string[];
  /** All lines as sent, joined with newlines. */
  text: string;
  /** When the reply's last line arrived (Date.now()). */
  at: number;
}

export class RawSmtp {
  private socket: net.Socket | tls.TLSSocket;
  private buffer = '';
  private pending: string[] = [];
  private readonly replies: Reply[] = [];
  private waiters: { resolve: (r: Reply) => void; reject: (e: Error) => void }[] = [];
  private ended = false;
  /** Resolves when the server closes the connection (or it fails). */
  readonly closed: Promise<void>;
  /** Replies received so far, including those already taken by reply(). */
  received = 0;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    this.attach(socket);
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
  }

  /** Connects; the greeting is the first reply(). */
  static connect(port: number, options: { localAddress?: string; host?: string } = {}): Promise<RawSmtp> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ port, host: options.host ?? '127.0.0.1', localAddress: options.localAddress });
      socket.once('error', reject);
      socket.once('connect', () => {
        socket.off('error', reject);
        resolve(new RawSmtp(socket));
      });
    });
  }

  /** Connects and reads the greeting. */
  static async open(port: number, options: { localAddress?: string } = {}): Promise<{ client: RawSmtp; greeting: Reply }> {
    const client = await RawSmtp.connect(port, options);
    return { client, greeting: await client.reply() };
  }

  private attach(socket: net.Socket | tls.TLSSocket): void {
    socket.on('data', (d: Buffer) => this.onData(d));
    socket.on('error', () => undefined); // a reset shows as the end of the replies
    socket.on('close', () => {
      this.ended = true;
      for (const w of this.waiters) w.reject(new Error('connection closed'));
      this.waiters = [];
    });
  }

  private onData(d: Buffer): void {
    this.buffer += d.toString('latin1');
    let nl: number;
    while ((nl = this.buffer.indexOf('\r\n')) >= 0) {
      const line = this.buffer.slice(0, nl);
      this.buffer = this.buffer.slice(nl + 2);
      this.pending.push(line);
      if (!/^\d{3}-/.test(line)) {
        const lines = this.pending;
        this.pending = [];
        const reply: Reply = { code: Number(line.slice(0, 3)), lines: lines.map((l) => l.slice(4)), text: lines.join('\n'), at: Date.now() };
        this.received++;
        const w = this.waiters.shift();
        if (w) w.resolve(reply);
        else this.replies.push(reply);
      }
    }
  }

  /** The next reply; rejects when the connection closes first or nothing comes in timeoutMs. */
  reply(timeoutMs = 30_000): Promise<Reply> {
    const queued = this.replies.shift();
    if (queued) return Promise.resolve(queued);
    if (this.ended) return Promise.reject(new Error('connection closed'));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w.resolve !== done);
        reject(new Error(`no reply within ${timeoutMs} ms`));
      }, timeoutMs);
      const done = (r: Reply) => {
        clearTimeout(timer);
        resolve(r);
      };
      this.waiters.push({
        resolve: done,
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
    });
  }

  /** Whether the connection has closed. */
  get isClosed(): boolean {
    return this.ended;
  }

  /** Writes and waits until the socket takes more (or closes): for floods. */
  async writeAll(data: Buffer): Promise<void> {
    if (this.ended || this.socket.write(data)) return;
    const socket = this.socket;
    await new Promise<void>((resolve) => {
      const done = () => {
        socket.off('drain', done);
        socket.off('close', done);
        resolve();
      };
      socket.on('drain', done);
      socket.on('close', done);
    });
  }

  write(data: string | Buffer): void {
    this.socket.write(typeof data === 'string' ? Buffer.from(data, 'latin1') : data);
  }

  /** Sends one command line (CRLF added) and returns its reply. */
  command(line: string | Buffer, timeoutMs?: number): Promise<Reply> {
    this.write(Buffer.concat([typeof line === 'string' ? Buffer.from(line, 'latin1') : line, Buffer.from('\r\n')]));
    return this.reply(timeoutMs);
  }

  /** STARTTLS and the handshake (the test certificate is not verified). */
  async startTls(): Promise<void> {
    const r = await this.command('STARTTLS');
    if (r.code !== 220) throw new Error(`STARTTLS: ${r.text}`);
    const raw = this.socket as net.Socket;
    raw.removeAllListeners('data');
    const secure = tls.connect({ socket: raw, rejectUnauthorized: false });
    await new Promise<void>((resolve, reject) => {
      secure.once('secureConnect', () => resolve());
      secure.once('error', reject);
    });
    this.socket = secure;
    this.attach(secure);
  }

  /**
   * Sends a message after DATA's 354, in one piece or as it comes from an
   * iterable (backpressure respected), and returns the final reply. Sent as
   * it is unless `stuff`: dot-stuffing is then done here (RFC 5321 4.5.2).
   * A message that ends in CRLF is stored as it is; otherwise CRLF is added.
   */
  async data(message: Buffer | Iterable<Buffer> | AsyncIterable<Buffer>, options: { stuff?: boolean; timeoutMs?: number } = {}): Promise<Reply> {
    const go = await this.command('DATA', options.timeoutMs);
    if (go.code !== 354) return go;
    const stuffer = new DotStuffer();
    let tail = Buffer.alloc(0);
    for await (const chunk of Buffer.isBuffer(message) ? [message] : message) {
      if (chunk.length === 0) continue;
      tail = Buffer.concat([tail, chunk.subarray(-2)]).subarray(-2);
      await this.writeAll(options.stuff ? stuffer.push(chunk) : chunk);
    }
    const crlf = tail.length === 2 && tail[0] === 0x0d && tail[1] === 0x0a;
    this.write(crlf ? '.\r\n' : '\r\n.\r\n');
    return this.reply(options.timeoutMs);
  }

  end(): void {
    this.socket.end();
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/** "AUTH PLAIN" token for a user and password (authzid empty). */
export function plainToken(user: string, password: string): string {
  return Buffer.from(`\0${user}\0${password}`, 'utf8').toString('base64');
}

/** Doubles a dot that starts a line, across the pieces of one message. */
class DotStuffer {
  private lineStart = true;

  push(chunk: Buffer): Buffer {
    const parts: Buffer[] = [];
    let from = 0;
    for (let i = 0; i < chunk.length; i++) {
      if (chunk[i] === 0x2e && (i === 0 ? this.lineStart : chunk[i - 1] === 0x0a)) {
        parts.push(chunk.subarray(from, i), DOT);
        from = i;
      }
    }
    this.lineStart = chunk[chunk.length - 1] === 0x0a;
    if (parts.length === 0) return chunk;
    parts.push(chunk.subarray(from));
    return Buffer.concat(parts);
  }
}

const DOT = Buffer.from('.');

export interface Submission {
  /** Every reply, the greeting first. */
  replies: Reply[];
  /** The queue id from "250 ... queued as X", if the server said so. */
  queueId?: string;
  /** The reply to the message: 250 when it was accepted. */
  final: Reply;
  /** The first reply that refused something (4xx, 5xx), if any. */
  refusal?: Reply;
}

export interface SubmitOptions {
  /** What follows MAIL FROM:<sender>, e.g. " SMTPUTF8" for an address that is not ASCII. */
  mailParams?: string;
  /** Send the message exactly as given, already dot-stuffed; by default it is dot-stuffed here. */
  asIs?: boolean;
  /** How long to wait for each reply (default 30 s). */
  timeoutMs?: number;
  /** Connect from this local address. */
  localAddress?: string;
}

/**
 * The one SMTP submission of the tests and benchmarks: EHLO, MAIL
 * FROM:<sender>, one RCPT TO:<r> each, DATA, QUIT, with exactly these
 * address bytes (a string is UTF-8), so also where a client library would
 * refuse or rewrite them (a quoted local part with "<", a raw 8-bit byte).
 * Every command is sent whatever the replies before it; a refusal shows in
 * the result, not as an error. Rejects only when the connection fails or a
 * reply does not come in time; the connection is closed either way.
 */
export async function submit(
  port: number,
  sender: string | Buffer,
  recipients: (string | Buffer)[],
  message: Buffer | Iterable<Buffer> | AsyncIterable<Buffer>,
  options: SubmitOptions = {},
): Promise<Submission> {
  const { timeoutMs } = options;
  const client = await RawSmtp.connect(port, { localAddress: options.localAddress });
  try {
    const angle = (verb: string, addr: string | Buffer, params = '') =>
      Buffer.concat([Buffer.from(`${verb}:<`), typeof addr === 'string' ? Buffer.from(addr, 'utf8') : addr, Buffer.from(`>${params}`)]);
    const replies = [await client.reply(timeoutMs), await client.command('EHLO test.invalid', timeoutMs)];
    replies.push(await client.command(angle('MAIL FROM', sender, options.mailParams), timeoutMs));
    for (const r of recipients) replies.push(await client.command(angle('RCPT TO', r), timeoutMs));
    const final = await client.data(message, { stuff: !options.asIs, timeoutMs });
    replies.push(final, await client.command('QUIT', timeoutMs));
    client.end();
    const queued = /queued as ([0-9A-Za-z]+)/.exec(final.text);
    return { replies, queueId: final.code === 250 ? queued?.[1] : undefined, final, refusal: replies.find((r) => r.code >= 400) };
  } catch (err) {
    client.destroy();
    throw err;
  }
}
