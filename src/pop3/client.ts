// A POP3 client for benno-pop3: RFC 1939 with STLS (RFC 2595), CAPA and
// response codes (RFC 2449, RFC 3206), written for a network that may be
// hostile:
//
// - Status and listing lines are bounded (lineBytes); a listing (UIDL,
//   LIST) as a whole too (listingBytes). A message is not: it is streamed,
//   and its caller bounds it by what LIST announced.
// - A message stays bytes from the socket to the sink: the dot-stuffing of
//   multi-line answers is undone on Buffers, chunk by chunk (DotDecoder),
//   and the end, "." on a line of its own, is found wherever the TCP stream
//   splits it.
// - At most bufferBytes are read ahead of the caller; beyond that the
//   socket is paused, so a slow disk slows the server instead of filling
//   memory.
// - Every wait for the server (connect, TLS, each answer) ends after
//   timeoutMs of silence.
// - After STLS nothing the server sent in clear text before the handshake is
//   kept: such bytes would otherwise be read as if they came encrypted.
// - Server text in errors is made printable and cut short; the password is
//   written to the socket only.

import * as net from 'node:net';
import * as tls from 'node:tls';
import { printable } from '../ops/text';

export type Pop3Tls = 'starttls' | 'pop3s' | 'none';

export interface Pop3ServerOptions {
  host: string;
  port: number;
  /** starttls: STLS is required, a server without it is refused. */
  tls: Pop3Tls;
  /** CA certificates (PEM) to trust instead of the system's. */
  ca?: Buffer;
  /** Longest silence of the server, in any wait. */
  timeoutMs: number;
}

export interface Pop3Limits {
  /** Longest status or listing line, line end included (RFC 1939 allows 512). */
  lineBytes: number;
  /** Most bytes of one UIDL or LIST answer. */
  listingBytes: number;
  /** Bytes read ahead of the caller before the socket is paused. */
  bufferBytes: number;
}

export const DEFAULT_LIMITS: Pop3Limits = { lineBytes: 8192, listingBytes: 64 * 1024 * 1024, bufferBytes: 1024 * 1024 };

export type Pop3ErrorKind =
  /** The connection could not be made, or it broke. */
  | 'connect'
  /** TLS failed: certificate refused, STLS refused. */
  | 'tls'
  /** The server answered -ERR; responseCode holds its RFC 2449 code, if any. */
  | 'refused'
  /** The server broke the protocol or a limit. */
  | 'protocol'
  /** The server stayed silent for timeoutMs. */
  | 'timeout';

export class Pop3Error extends Error {
  constructor(
    readonly kind: Pop3ErrorKind,
    message: string,
    /** The response code of a -ERR answer, upper case: AUTH, IN-USE, SYS/TEMP, SYS/PERM, LOGIN-DELAY. */
    readonly responseCode?: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'Pop3Error';
  }
}

const CR = 0x0d;
const LF = 0x0a;
const DOT = 0x2e;
const CR_BYTE = Buffer.from([CR]);
const CRLF = Buffer.from('\r\n');

/**
 * Undoes the byte-stuffing of a POP3 multi-line answer (RFC 1939 3): a line
 * that starts with "." has one more "." in front; the answer ends with a
 * line that is just ".". State carries over between chunks, so the end and a
 * stuffed dot are found however the stream is split. The pieces it returns
 * are views of the chunk, never copies.
 */
export class DotDecoder {
  private atLineStart = true;
  /** At a line start: 1 after ".", 2 after ".\r" (bytes held back until the next one decides). */
  private held: 0 | 1 | 2 = 0;
  private finished = false;

  get done(): boolean {
    return this.finished;
  }

  /**
   * The message bytes in chunk, and, once the closing line has been seen,
   * the bytes after it (rest; null while the answer goes on).
   */
  push(chunk: Buffer): { out: Buffer[]; rest: Buffer | null } {
    if (this.finished) return { out: [], rest: chunk };
    const out: Buffer[] = [];
    let p = 0;
    while (p < chunk.length) {
      if (this.held === 1) {
        const c = chunk[p];
        if (c === CR) {
          this.held = 2;
          p++;
          continue;
        }
        if (c === LF) return this.end(out, chunk, p + 1); // ".\n": a server with bare line ends
        // A stuffed dot: dropped; the line goes on from here.
        this.held = 0;
        this.atLineStart = false;
      } else if (this.held === 2) {
        if (chunk[p] === LF) return this.end(out, chunk, p + 1);
        // ".\r" and more: the dot was stuffing, the CR is the line's.
        out.push(CR_BYTE);
        this.held = 0;
        this.atLineStart = false;
      } else if (this.atLineStart) {
        if (chunk[p] === DOT) {
          this.held = 1;
          p++;
          continue;
        }
        this.atLineStart = false;
      }
      const lf = chunk.indexOf(LF, p);
      if (lf < 0) {
        out.push(chunk.subarray(p));
        break;
      }
      out.push(chunk.subarray(p, lf + 1));
      p = lf + 1;
      this.atLineStart = true;
    }
    return { out, rest: null };
  }

  private end(out: Buffer[], chunk: Buffer, at: number): { out: Buffer[]; rest: Buffer } {
    this.finished = true;
    this.held = 0;
    return { out, rest: chunk.subarray(at) };
  }
}

/** Server text as it may appear in a message of ours: printable, at most 200 characters. */
export function serverText(b: Buffer | string): string {
  const s = printable(typeof b === 'string' ? b : b.toString('latin1'));
  return s.length > 200 ? `${s.slice(0, 200)}...` : s;
}

const TLS_CODES = /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ALTNAME|ERR_SSL|ERR_TLS|EPROTO/;

function socketError(err: Error & { code?: string }, during: string): Pop3Error {
  if (err instanceof Pop3Error) return err;
  const tlsFailed = TLS_CODES.test(err.code ?? '') || /certificate|TLS|SSL/i.test(err.message);
  return new Pop3Error(tlsFailed ? 'tls' : 'connect', `${during}: ${tlsFailed ? 'TLS failed: ' : ''}${err.code ? `${err.code} ` : ''}${err.message}`, undefined, { cause: err });
}

/**
 * What the socket delivered and the caller has not taken yet. The socket is
 * paused while more than limit bytes wait, and resumed when the caller
 * needs more.
 */
class SocketReader {
  private readonly queue: Buffer[] = [];
  private queued = 0;
  private wake: (() => void) | null = null;
  private failure: Error | null = null;
  private ended = false;

  private readonly onData = (d: Buffer) => {
    this.queue.push(d);
    this.queued += d.length;
    if (this.queued > this.limit) this.socket.pause();
    this.signal();
  };
  private readonly onEnd = () => {
    this.ended = true;
    this.signal();
  };
  private readonly onError = (err: Error) => {
    this.failure ??= socketError(err, `${this.where}: the connection failed`);
    this.signal();
  };

  constructor(
    private readonly socket: net.Socket,
    private readonly limit: number,
    private readonly timeoutMs: number,
    private readonly where: string,
  ) {
    socket.on('data', this.onData);
    socket.on('end', this.onEnd);
    socket.on('close', this.onEnd);
    socket.on('error', this.onError);
  }

  /** Bytes received and not yet taken. */
  get buffered(): number {
    return this.queued;
  }

  /** Stops listening (the socket is handed to TLS); what was not taken is dropped. */
  detach(): void {
    this.socket.off('data', this.onData);
    this.socket.off('end', this.onEnd);
    this.socket.off('close', this.onEnd);
    this.socket.off('error', this.onError);
    this.queue.length = 0;
    this.queued = 0;
  }

  private signal(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  /** Waits until at least one chunk is queued; throws when the connection failed, ended or fell silent. */
  private async fill(): Promise<void> {
    while (this.queue.length === 0) {
      if (this.failure) throw this.failure;
      if (this.ended) throw new Pop3Error('connect', `${this.where}: the server closed the connection`);
      if (this.socket.isPaused()) this.socket.resume();
      let timer: NodeJS.Timeout | undefined;
      const silent = await new Promise<boolean>((resolve) => {
        this.wake = () => resolve(false);
        timer = setTimeout(() => resolve(true), this.timeoutMs);
      });
      clearTimeout(timer);
      if (silent && this.queue.length === 0) {
        this.wake = null;
        throw new Pop3Error('timeout', `${this.where}: the server sent nothing for ${Math.round(this.timeoutMs / 1000)} s`);
      }
    }
  }

  /** The next bytes that arrived, as they arrived. */
  async chunk(): Promise<Buffer> {
    await this.fill();
    const b = this.queue.shift()!;
    this.queued -= b.length;
    // Read on before the queue runs dry, so the stream does not stall for a round trip.
    if (this.queued < this.limit / 2 && this.socket.isPaused()) this.socket.resume();
    return b;
  }

  /** Puts bytes back in front (what followed the end of an answer). */
  unshift(b: Buffer): void {
    if (b.length === 0) return;
    this.queue.unshift(b);
    this.queued += b.length;
  }

  /** One line without its line end (CRLF, or a bare LF); a line longer than max bytes is an error. */
  async line(max: number): Promise<Buffer> {
    const parts: Buffer[] = [];
    let length = 0;
    for (;;) {
      const b = await this.chunk();
      const lf = b.indexOf(LF);
      const end = lf < 0 ? b.length : lf + 1;
      length += end;
      if (length > max) throw new Pop3Error('protocol', `${this.where}: a line of the server longer than ${max} bytes`);
      parts.push(b.subarray(0, end));
      if (lf >= 0) {
        this.unshift(b.subarray(end));
        const line = parts.length === 1 ? parts[0] : Buffer.concat(parts);
        return line.subarray(0, line.length - (line.length >= 2 && line[line.length - 2] === CR ? 2 : 1));
      }
    }
  }
}

function tlsOptions(o: Pop3ServerOptions): tls.ConnectionOptions {
  return {
    // SNI carries a name, never an address.
    servername: net.isIP(o.host) ? undefined : o.host,
    rejectUnauthorized: true,
    ...(o.ca ? { ca: o.ca } : {}),
  };
}

/** Resolves once the socket is connected (and, with TLS, the handshake done and the certificate accepted). */
function connected<T extends net.Socket>(socket: T, event: 'connect' | 'secureConnect', timeoutMs: number, during: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Pop3Error('timeout', `${during}: no answer within ${Math.round(timeoutMs / 1000)} s`));
    }, timeoutMs);
    const onError = (err: Error) => {
      clearTimeout(timer);
      socket.destroy();
      reject(socketError(err, during));
    };
    socket.once('error', onError);
    socket.once(event, () => {
      clearTimeout(timer);
      socket.off('error', onError);
      resolve(socket);
    });
  });
}

/** "1 abc" lines of UIDL and LIST: message number → the rest of the line. */
export type Listing = Map<number, string>;

export class Pop3Session {
  /** What CAPA said (upper case, first word of each line); empty when the server has no CAPA. */
  capabilities = new Set<string>();
  private reader: SocketReader;
  private readonly where: string;

  private constructor(
    private socket: net.Socket,
    private readonly options: Pop3ServerOptions,
    private readonly limits: Pop3Limits,
  ) {
    this.where = `${options.host}:${options.port}`;
    this.reader = new SocketReader(socket, limits.bufferBytes, options.timeoutMs, this.where);
  }

  /** Bytes received and not yet taken (at most about bufferBytes: the socket is paused beyond). */
  get buffered(): number {
    return this.reader.buffered;
  }

  /** Connects, reads the greeting, does STLS when asked to, and asks for CAPA. */
  static async open(options: Pop3ServerOptions, limits: Pop3Limits = DEFAULT_LIMITS): Promise<Pop3Session> {
    const where = `${options.host}:${options.port}`;
    const raw =
      options.tls === 'pop3s'
        ? await connected(tls.connect({ host: options.host, port: options.port, ...tlsOptions(options) }), 'secureConnect', options.timeoutMs, `${where}: connecting with TLS`)
        : await connected(net.connect({ host: options.host, port: options.port }), 'connect', options.timeoutMs, `${where}: connecting`);
    const session = new Pop3Session(raw, options, limits);
    try {
      await session.answer('the greeting');
      if (options.tls === 'starttls') await session.startTls();
      session.capabilities = await session.capa();
    } catch (err) {
      session.close();
      throw err;
    }
    return session;
  }

  private async startTls(): Promise<void> {
    this.request('STLS');
    try {
      await this.answer('STLS');
    } catch (err) {
      if (err instanceof Pop3Error && err.kind === 'refused') throw new Pop3Error('tls', `${this.where}: the server refused STLS (${err.message}); it offers no encryption on this port`);
      throw err;
    }
    if (this.reader.buffered > 0) {
      throw new Pop3Error('protocol', `${this.where}: the server sent more after its answer to STLS; refused, as it would pass for encrypted data`);
    }
    this.reader.detach();
    const raw = this.socket;
    // Errors of the plain socket reach us through the TLS socket.
    raw.on('error', () => undefined);
    this.socket = await connected(tls.connect({ socket: raw, ...tlsOptions(this.options) }), 'secureConnect', this.options.timeoutMs, `${this.where}: TLS after STLS`);
    this.reader = new SocketReader(this.socket, this.limits.bufferBytes, this.options.timeoutMs, this.where);
  }

  /** CAPA's capabilities; an empty set when the server does not know CAPA. */
  private async capa(): Promise<Set<string>> {
    this.request('CAPA');
    try {
      await this.answer('CAPA');
    } catch (err) {
      if (err instanceof Pop3Error && err.kind === 'refused') return new Set();
      throw err;
    }
    const caps = new Set<string>();
    await this.lines(this.limits.lineBytes * 64, (line) => {
      caps.add(line.toString('latin1').split(' ')[0].toUpperCase());
    });
    return caps;
  }

  /** USER and PASS. The password is written to the socket and nowhere else. */
  async login(user: string, password: Buffer): Promise<void> {
    if (/[\r\n\0]/.test(user) || password.includes(CR) || password.includes(LF) || password.includes(0)) {
      throw new RangeError('a user name or password with a line break or NUL cannot be sent');
    }
    this.request(`USER ${user}`);
    await this.answer('USER');
    this.socket.write(Buffer.concat([Buffer.from('PASS '), password, CRLF]));
    await this.answer('PASS');
  }

  /** UIDL or LIST: every message number with the rest of its line. */
  async listing(command: 'UIDL' | 'LIST'): Promise<Listing> {
    this.request(command);
    await this.answer(command);
    const out: Listing = new Map();
    await this.lines(this.limits.listingBytes, (line) => {
      const m = /^(\d{1,9}) +(\S+)/.exec(line.toString('latin1'));
      if (!m) throw new Pop3Error('protocol', `${this.where}: ${command}: not a listing line: ${serverText(line)}`);
      const n = Number(m[1]);
      if (out.has(n)) throw new Pop3Error('protocol', `${this.where}: ${command}: message ${n} listed twice`);
      out.set(n, m[2]);
    });
    return out;
  }

  /** Writes a command without waiting for its answer (several may be on their way with PIPELINING). */
  request(command: string): void {
    if (/[\r\n]/.test(command)) throw new RangeError('a POP3 command is one line');
    this.socket.write(`${command}\r\n`);
  }

  /** Reads the answer to the oldest command not answered yet: its text after +OK; -ERR is a Pop3Error of kind 'refused'. */
  async answer(what: string): Promise<string> {
    const line = await this.reader.line(this.limits.lineBytes);
    const text = line.toString('latin1');
    if (/^\+OK\b/.test(text)) return text.slice(3).trim();
    if (/^-ERR\b/.test(text)) {
      const rest = text.slice(4).trim();
      const code = /^\[([^\]]{1,64})\]/.exec(rest)?.[1].toUpperCase();
      throw new Pop3Error('refused', `${what}: ${serverText(rest) || '-ERR'}`, code);
    }
    throw new Pop3Error('protocol', `${this.where}: ${what}: not a POP3 answer: ${serverText(line.subarray(0, 100))}`);
  }

  /**
   * The message after a +OK to RETR: its bytes, dot-stuffing undone, handed
   * to sink piece by piece (sink's promise is waited for before more is
   * read). More than maxBytes is an error. Resolves with the byte count.
   */
  async message(sink: (piece: Buffer) => Promise<void> | void, maxBytes: number, what: string): Promise<number> {
    const decoder = new DotDecoder();
    let bytes = 0;
    while (!decoder.done) {
      const { out, rest } = decoder.push(await this.reader.chunk());
      for (const piece of out) {
        bytes += piece.length;
        if (bytes > maxBytes) throw new Pop3Error('protocol', `${this.where}: ${what} goes on past ${maxBytes} bytes, far more than LIST announced`);
        const wait = sink(piece);
        if (wait) await wait;
      }
      if (rest) this.reader.unshift(rest);
    }
    return bytes;
  }

  /** The lines of a multi-line answer (not a message), each bounded by lineBytes, all by maxBytes. */
  private async lines(maxBytes: number, each: (line: Buffer) => void): Promise<void> {
    let total = 0;
    for (;;) {
      const line = await this.reader.line(this.limits.lineBytes);
      total += line.length + 2;
      if (total > maxBytes) throw new Pop3Error('protocol', `${this.where}: a listing longer than ${maxBytes} bytes`);
      if (line.length === 1 && line[0] === DOT) return;
      each(line[0] === DOT ? line.subarray(1) : line);
    }
  }

  /** QUIT: the server commits the DELEs of the session (RFC 1939 6) and closes. */
  async quit(): Promise<void> {
    this.request('QUIT');
    try {
      await this.answer('QUIT');
    } finally {
      this.close();
    }
  }

  /** Drops the connection without QUIT: the server forgets the session's DELEs. */
  close(): void {
    this.reader.detach();
    // An error still on its way must not go unheard (that would end the process).
    this.socket.on('error', () => undefined);
    this.socket.destroy();
  }
}
