// One milter connection: negotiation, macros, the per-message state machine,
// replies and flow control. What to do with a message is the application's
// business (MessageHandler); this module only speaks the protocol.

import type { Socket } from 'node:net';
import { isLoopback } from '../ops/allowlist';
import * as C from './constants';
import {
  CONTINUE,
  MilterCommand,
  MilterProtocolError,
  MilterReply,
  PacketDecoder,
  decodeCommand,
  encodeOptneg,
  macroName,
  encodeReply,
} from './codec';

type Awaitable<T> = T | Promise<T>;
/** What a callback returns: nothing (continue), a reply, or a promise of either. */
export type HandlerResult = Awaitable<MilterReply | void>;

/**
 * The application's view of a connection, one instance per connection. Every
 * callback may return a promise: the session reads nothing more from the MTA
 * until it settles, which is how a slow disk slows the MTA down instead of
 * filling memory. A reply is sent only where the MTA waits for one; in stages
 * negotiated as no-reply (SMFIP_NR_*) the result is ignored.
 */
export interface MessageHandler {
  connect?(hostname: Buffer, family: number, port: number, address: Buffer): HandlerResult;
  helo?(name: Buffer): HandlerResult;
  mail(sender: Buffer, esmtpArgs: Buffer[]): HandlerResult;
  rcpt(recipient: Buffer, esmtpArgs: Buffer[]): HandlerResult;
  data?(): HandlerResult;
  /** value: the bytes after the colon, leading white space included. */
  header(name: Buffer, value: Buffer): HandlerResult;
  eoh(): HandlerResult;
  body(chunk: Buffer): HandlerResult;
  eom(): Awaitable<MilterReply>;
  /**
   * The message ended without end-of-message: SMFIC_ABORT, QUIT, or a lost
   * connection. A returned promise (clean-up in progress) is awaited before
   * the session counts as closed.
   */
  abort(): void | Promise<void>;
}

export interface MilterOptions {
  /** SMFIP_* flags wanted: events to skip, stages without reply, HDR_LEADSPC. */
  protocol: number;
  /** SMFIF_* actions wanted at end of message. */
  actions: number;
  /** Macros to request per SMFIM_* stage, e.g. SMFIM_EOM → "i". */
  macroLists?: Map<number, string>;
  /** Read inactivity limit in milliseconds (0: none); enforced by the server's sweep. */
  timeoutMs: number;
  /**
   * Limit until the MTA has negotiated (0: timeoutMs). An MTA negotiates
   * the moment it connects; a peer that does not only takes a place.
   */
  negotiationTimeoutMs?: number;
  /** Most bytes of macro names and values a connection may keep (all stages together). */
  maxMacroBytes?: number;
  maxPacket?: number;
  /** Negotiation replies already built, shared by all sessions of a server. */
  replyCache?: Map<string, Buffer>;
  /**
   * On loopback TCP, answer DATA even where protocol skips it or declares
   * it no-reply. An MTA that expects no answer to its envelope (MAIL, RCPT,
   * DATA) writes it and goes on; the milter's kernel delays the ACK of data
   * it answers nothing to (about 40 ms on Linux), and Nagle's algorithm on
   * the MTA's socket holds its next write, the headers, until that ACK
   * comes: on loopback, with its 64 KB segments, every message is "small"
   * and waits. The answer to DATA carries the ACK at once, for one round
   * trip. Across a real network the headers of all but the smallest
   * messages fill whole segments, which are sent and ACKed at once, and the
   * extra round trip would cost more than it saves; unix sockets have no
   * Nagle. Both keep protocol.
   */
  answerDataOnLoopback?: boolean;
}

/** The negotiated flags DATA needs to be sent and answered. */
const DATA_SILENT = C.SMFIP_NODATA | C.SMFIP_NR_DATA;

export interface SessionLogger {
  info(message: string): void;
  warn(message: string): void;
  debug(message: string): void;
}

/** Macro bytes a connection may keep: Postfix sends well under 2 KB. */
export const DEFAULT_MAX_MACRO_BYTES = 64 * 1024;

/** Stages whose macros belong to one message, forgotten when it ends. */
const MESSAGE_STAGES = [C.SMFIC_MAIL, C.SMFIC_RCPT, C.SMFIC_DATA, C.SMFIC_HEADER, C.SMFIC_EOH, C.SMFIC_BODY, C.SMFIC_BODYEOB];
/** Lookup order: the latest stage first. These are all the stages macros can belong to. */
const LOOKUP_ORDER = [C.SMFIC_BODYEOB, C.SMFIC_BODY, C.SMFIC_EOH, C.SMFIC_HEADER, C.SMFIC_DATA, C.SMFIC_RCPT, C.SMFIC_MAIL, C.SMFIC_UNKNOWN, C.SMFIC_HELO, C.SMFIC_CONNECT];
const MACRO_STAGES = new Set(LOOKUP_ORDER);

function macroBytes(macros: Map<string, string>): number {
  let n = 0;
  for (const [k, v] of macros) n += k.length + v.length;
  return n;
}

/** For each event: the flag that says the MTA waits for no reply. */
const NO_REPLY: Partial<Record<MilterCommand['type'], number>> = {
  connect: C.SMFIP_NR_CONN,
  helo: C.SMFIP_NR_HELO,
  mail: C.SMFIP_NR_MAIL,
  rcpt: C.SMFIP_NR_RCPT,
  data: C.SMFIP_NR_DATA,
  unknown: C.SMFIP_NR_UNKN,
  header: C.SMFIP_NR_HDR,
  eoh: C.SMFIP_NR_EOH,
  body: C.SMFIP_NR_BODY,
};

const SPACE = Buffer.from(' ');

/** Commands that belong to a message begun by MAIL. */
const MESSAGE_EVENTS = new Set<MilterCommand['type']>(['rcpt', 'data', 'header', 'eoh', 'body', 'eom']);

let nextSessionId = 1;

export class MilterSession {
  readonly id = nextSessionId++;
  readonly peer: string;
  private readonly decoder: PacketDecoder;
  private readonly handler: MessageHandler;
  private readonly macros = new Map<number, Map<string, string>>();
  /** Bytes held in macros, for the bound. */
  private macroBytes = 0;
  /** Flags in force after negotiation. */
  private protocol = 0;
  private negotiated = false;
  private inMessage = false;
  private busy = false;
  private closing = false;
  private closed = false;
  private readonly closeWaiters: (() => void)[] = [];
  /** Clean-up of aborted messages still running. */
  private settled: Promise<void> = Promise.resolve();
  private lastActivity = Date.now();

  constructor(
    private readonly socket: Socket,
    private readonly options: MilterOptions,
    newHandler: (session: MilterSession) => MessageHandler,
    private readonly log: SessionLogger,
  ) {
    this.peer = socket.remoteAddress ? `${socket.remoteAddress}:${socket.remotePort}` : 'unix socket';
    this.decoder = new PacketDecoder(options.maxPacket);
    this.handler = newHandler(this);
    if (typeof socket.setNoDelay === 'function') socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => {
      this.lastActivity = Date.now();
      this.decoder.push(chunk);
      this.pump();
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      const lost = this.inMessage ? '; the unfinished message was discarded and the MTA keeps it' : '';
      (this.inMessage ? this.log.warn : this.log.debug).call(this.log, `${this.who()}: ${err.code ?? err.message}${lost}`);
    });
    socket.on('close', () => this.onClose());
  }

  /** Names the connection in log lines, led by the queue id once the MTA has told it. */
  private who(): string {
    const queueId = this.macro('i');
    return `${queueId ? `${queueId}: ` : ''}milter connection ${this.id} (${this.peer})`;
  }

  /** A macro value from the latest stage that defined it ("i" and "{i}" are the same name). */
  macro(name: string): string | undefined {
    const key = macroName(name);
    for (const stage of LOOKUP_ORDER) {
      const v = this.macros.get(stage)?.get(key);
      if (v !== undefined) return v;
    }
    return undefined;
  }

  /** True between MAIL and the end of that message. */
  get messageInProgress(): boolean {
    return this.inMessage;
  }

  /**
   * Graceful close: now if no message is in progress, else right after the
   * reply to its end-of-message. Resolves when the connection is closed and
   * what it left behind is cleaned up.
   */
  shutdown(): Promise<void> {
    if (this.closed) return this.settled;
    this.closing = true;
    const done = new Promise<void>((resolve) => this.closeWaiters.push(resolve));
    if (!this.inMessage && !this.busy) this.socket.end();
    return done;
  }

  destroy(): void {
    this.socket.destroy();
  }

  /**
   * Closes the connection if the MTA has sent nothing for longer than the
   * timeout. Not while we are the slow side (waiting for the disk).
   * Called by the server's periodic sweep: one timer for all connections is
   * cheaper than a timer per connection refreshed on every read.
   */
  checkIdle(now: number): void {
    const limit = this.negotiated ? this.options.timeoutMs : this.options.negotiationTimeoutMs || this.options.timeoutMs;
    if (limit <= 0 || this.busy || this.closed || now - this.lastActivity <= limit) return;
    this.log.warn(
      this.negotiated
        ? `${this.who()}: no data for ${limit / 1000}s, closing it`
        : `${this.who()}: no option negotiation within ${limit / 1000}s, closing it (an MTA negotiates at once; see --negotiation-timeout)`,
    );
    this.destroy();
  }

  private pump(): void {
    while (!this.busy && !this.closed) {
      let command: MilterCommand;
      try {
        const packet = this.decoder.next();
        if (!packet) return;
        command = decodeCommand(packet);
      } catch (err) {
        this.protocolError(err);
        return;
      }
      let pending: Promise<void> | undefined;
      try {
        pending = this.dispatch(command);
      } catch (err) {
        this.protocolError(err);
        return;
      }
      if (pending) {
        this.busy = true;
        this.socket.pause();
        pending.then(
          () => {
            this.busy = false;
            if (this.closed) return;
            if (this.closing && !this.inMessage) {
              this.socket.end();
              return;
            }
            this.socket.resume();
            this.pump();
          },
          (err) => this.protocolError(err),
        );
        return;
      }
    }
  }

  private protocolError(err: unknown): void {
    const reason = err instanceof Error ? err.message : String(err);
    const kind = err instanceof MilterProtocolError ? 'protocol error' : 'internal error';
    this.log.warn(`${this.who()}: ${kind}: ${reason}; connection closed`);
    this.destroy();
  }

  /** Handles one command; returns a promise when the handler is not done yet. */
  private dispatch(c: MilterCommand): Promise<void> | undefined {
    if (!this.negotiated && c.type !== 'optneg') {
      throw new MilterProtocolError(`${c.type} before option negotiation`);
    }
    const h = this.handler;
    if (MESSAGE_EVENTS.has(c.type) && !this.inMessage) {
      // Events of a message need its MAIL first, unless MAIL was negotiated away.
      if (!(this.protocol & C.SMFIP_NOMAIL)) throw new MilterProtocolError(`${c.type} outside a message (no MAIL before it)`);
      this.inMessage = true;
    }
    switch (c.type) {
      case 'optneg':
        this.negotiate(c.version, c.actions, c.protocol);
        return undefined;
      case 'macro': {
        if (!MACRO_STAGES.has(c.stage)) throw new MilterProtocolError(`macros for an unknown stage ${c.stage}`);
        const limit = this.options.maxMacroBytes ?? DEFAULT_MAX_MACRO_BYTES;
        const bytes = this.macroBytes - macroBytes(this.macros.get(c.stage) ?? new Map()) + macroBytes(c.macros);
        if (bytes > limit) throw new MilterProtocolError(`more than ${limit} bytes of macros`);
        this.macroBytes = bytes;
        this.macros.set(c.stage, c.macros);
        return undefined;
      }
      case 'connect':
        return this.answer(c.type, h.connect?.(c.hostname, c.family, c.port, c.address));
      case 'helo':
        return this.answer(c.type, h.helo?.(c.name));
      case 'mail': {
        if (this.inMessage) this.endMessage(true);
        this.inMessage = true;
        const [sender, ...args] = c.args;
        return this.answer(c.type, h.mail(sender, args));
      }
      case 'rcpt': {
        const [recipient, ...args] = c.args;
        return this.answer(c.type, h.rcpt(recipient, args));
      }
      case 'data':
        return this.answer(c.type, h.data?.());
      case 'unknown':
        return this.answer(c.type, undefined);
      case 'header': {
        const value = this.protocol & C.SMFIP_HDR_LEADSPC ? c.value : Buffer.concat([SPACE, c.value]);
        return this.answer(c.type, h.header(c.name, value));
      }
      case 'eoh':
        return this.answer(c.type, h.eoh());
      case 'body':
        return this.answer(c.type, h.body(c.chunk));
      case 'eom': {
        const last = c.chunk.length > 0 ? h.body(c.chunk) : undefined;
        if (last instanceof Promise) return last.then(() => this.finishMessage());
        return this.finishMessage();
      }
      case 'abort':
        if (this.inMessage) this.endMessage(true);
        this.clearMessageMacros();
        return undefined;
      case 'quit':
        if (this.inMessage) this.endMessage(true);
        this.closing = true;
        this.socket.end();
        return undefined;
      case 'quit_nc':
        if (this.inMessage) this.endMessage(true);
        this.macros.clear();
        this.macroBytes = 0;
        return undefined;
    }
  }

  private negotiate(version: number, actions: number, protocol: number): void {
    if (version < C.SMFI_PROT_VERSION_MIN) {
      throw new MilterProtocolError(`MTA speaks milter protocol version ${version}, need at least ${C.SMFI_PROT_VERSION_MIN}`);
    }
    const v = Math.min(version, C.SMFI_PROT_VERSION);
    const loopback = this.socket.remoteAddress !== undefined && isLoopback(this.socket.remoteAddress.replace(/^::ffff:/, ''));
    const wanted = this.options.answerDataOnLoopback && loopback ? this.options.protocol & ~DATA_SILENT : this.options.protocol;
    this.protocol = wanted & protocol;
    this.negotiated = true;
    // Every Postfix connection offers the same: build that reply once (per transport).
    const key = `${v}/${actions}/${protocol}/${wanted}`;
    let reply = this.options.replyCache?.get(key);
    if (!reply) {
      reply = encodeOptneg(v, this.options.actions & actions, this.protocol, v >= 6 ? this.options.macroLists : undefined);
      this.options.replyCache?.set(key, reply);
    }
    this.write(reply);
  }

  private finishMessage(): Promise<void> | undefined {
    let result: Awaitable<MilterReply>;
    try {
      result = this.handler.eom();
    } catch (err) {
      this.endMessage(false);
      throw err;
    }
    if (result instanceof Promise) {
      return result.then(
        (reply) => this.endOfMessageReply(reply),
        (err) => {
          this.endMessage(false);
          throw err;
        },
      );
    }
    this.endOfMessageReply(result);
    return undefined;
  }

  private endOfMessageReply(reply: MilterReply): void {
    this.endMessage(false);
    this.write(encodeReply(reply));
    if (this.closing && !this.busy) this.socket.end();
  }

  private endMessage(aborted: boolean): void {
    this.inMessage = false;
    if (aborted) {
      const cleanup = this.handler.abort();
      if (cleanup) this.settled = Promise.all([this.settled, cleanup.catch(() => undefined)]).then(() => undefined);
    }
    this.clearMessageMacros();
  }

  private clearMessageMacros(): void {
    for (const stage of MESSAGE_STAGES) {
      const m = this.macros.get(stage);
      if (!m) continue;
      this.macroBytes -= macroBytes(m);
      this.macros.delete(stage);
    }
  }

  /** Sends the handler's answer where the MTA waits for one. */
  private answer(event: MilterCommand['type'], result: HandlerResult): Promise<void> | undefined {
    const noReply = (this.protocol & (NO_REPLY[event] ?? 0)) !== 0;
    if (result instanceof Promise) {
      return result.then((reply) => {
        if (!noReply) this.write(encodeReply(reply ?? CONTINUE));
      });
    }
    if (!noReply) this.write(encodeReply(result ?? CONTINUE));
    return undefined;
  }

  private write(packet: Buffer): void {
    if (!this.closed && !this.socket.destroyed) this.socket.write(packet);
  }

  private onClose(): void {
    this.closed = true;
    if (this.inMessage) this.endMessage(true);
    const waiters = this.closeWaiters.splice(0);
    void this.settled.then(() => waiters.forEach((resolve) => resolve()));
    this.onClosed?.(this);
  }

  /** Set by the server to track live sessions. */
  onClosed?: (session: MilterSession) => void;
}
