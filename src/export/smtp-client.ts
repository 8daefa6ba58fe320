// One SMTP connection to the archive host, spoken byte for byte: connect,
// EHLO, STARTTLS as configured, AUTH if asked (only over TLS unless told
// otherwise), then any number of messages. The envelope addresses go on the
// wire exactly as they stand in the spool file, which a client library that
// handles addresses as strings and parses them itself cannot promise: a
// quoted local part may hold "<", ">", spaces and "@" (RFC 5321 4.1.2), and
// SMTPUTF8 addresses are UTF-8 bytes (RFC 6531).
//
// Every outcome is sorted into what the exporter must do with the file: sent
// (remove it), deferred or refused by the server (keep it), or the
// connection is gone (keep it, reconnect or stop). A file goes with its whole
// envelope or not at all: DATA is sent only after MAIL and every RCPT got 2xx.

import * as net from 'node:net';
import * as os from 'node:os';
import type { Readable } from 'node:stream';
import * as tls from 'node:tls';
import { DataEncoder, ProtocolError, Reply, ReplyParser, replyText } from './smtp-codec';

export type StartTls = 'require' | 'opportunistic' | 'off';

export interface SenderOptions {
  host: string;
  port: number;
  starttls: StartTls;
  /** PEM CA certificates to trust for the receiver's certificate (else the system's). */
  ca?: Buffer;
  /** Name for EHLO; the host name by default. */
  ehloName?: string;
  timeoutMs: number;
  auth?: { user: string; pass: string };
  /** Send the AUTH password over a connection without TLS (a trusted network only). */
  allowPlainAuth?: boolean;
}

export interface Envelope {
  /** Sender address without brackets, as bytes; empty for the null sender. */
  from: Buffer;
  to: Buffer[];
  /** Size of the message for the SIZE parameter. */
  size: number;
}

export type SendOutcome =
  | { kind: 'sent'; response: string }
  /** A 4xx answer: try again later. */
  | { kind: 'deferred'; response: string }
  /** A 5xx answer to MAIL, a RCPT, DATA or the message: the server will not take it as it is. */
  | { kind: 'rejected'; response: string }
  /** An address this server cannot be given as it is (UTF-8 without SMTPUTF8): nothing was sent. */
  | { kind: 'cannot-carry'; response: string }
  /** No answer: the connection failed, and cannot be used any more. */
  | { kind: 'lost'; response: string }
  /** The server refuses us, not the message (530 authentication required). */
  | { kind: 'refused'; response: string };

/** Connecting failed: nothing could be sent. */
export class ConnectError extends Error {
  override name = 'ConnectError';
  constructor(
    message: string,
    /** true when retrying cannot help until someone acts (5xx greeting, AUTH refused, TLS required but missing). */
    readonly permanent: boolean,
  ) {
    super(message);
  }
}

/** The connection broke under us: closed, silent too long, or not speaking SMTP. */
class LostError extends Error {
  override name = 'LostError';
}

const noop = () => undefined;

/**
 * The socket and the replies coming in on it. One thing is awaited at a time
 * (a reply, room to write, the TLS handshake), each within the timeout; any
 * failure ends the connection and is what every later wait gets.
 */
class Wire {
  private socket!: net.Socket;
  private readonly parser = new ReplyParser();
  private readonly replies: Reply[] = [];
  private waiting: { kind: 'reply' | 'drain' | 'event'; resolve: (r?: Reply) => void; reject: (e: Error) => void } | null = null;
  private timer: NodeJS.Timeout | null = null;
  failure: Error | null = null;

  private readonly onData = (chunk: Buffer) => {
    try {
      this.replies.push(...this.parser.push(chunk));
    } catch (err) {
      this.fail(err as Error);
      return;
    }
    if (this.waiting?.kind === 'reply' && this.replies.length > 0) this.settle('reply', this.replies.shift());
  };
  private readonly onError = (err: Error) => this.fail(err);
  private readonly onClose = () => this.fail(new LostError('the server closed the connection'));
  private readonly onDrain = () => this.settle('drain');

  constructor(
    socket: net.Socket,
    private readonly timeoutMs: number,
  ) {
    this.attach(socket);
  }

  static async connect(host: string, port: number, timeoutMs: number): Promise<Wire> {
    const socket = net.connect({ host, port });
    const wire = new Wire(socket, timeoutMs);
    await wire.until((done) => socket.once('connect', done));
    // Nagle and the server's delayed ACK would hold the last small write of
    // each message (the final ".") for 40 ms on loopback.
    socket.setNoDelay(true);
    return wire;
  }

  private attach(socket: net.Socket): void {
    this.socket = socket;
    socket.on('data', this.onData);
    socket.on('error', this.onError);
    socket.on('close', this.onClose);
    socket.on('drain', this.onDrain);
  }

  /** True when the server has sent something nobody asked for yet. */
  get unasked(): boolean {
    return this.replies.length > 0 || this.parser.pending;
  }

  write(data: Buffer | string): boolean {
    if (this.failure) return true;
    return this.socket.write(data);
  }

  reply(): Promise<Reply> {
    if (this.replies.length > 0) return Promise.resolve(this.replies.shift()!);
    return this.wait('reply') as Promise<Reply>;
  }

  /** Resolves when the socket takes writes again. */
  drain(): Promise<void> {
    return this.wait('drain') as Promise<void>;
  }

  /** Waits for an event that start() hooks up, within the timeout. */
  until(start: (done: () => void) => void): Promise<void> {
    const p = this.wait('event') as Promise<void>;
    if (!this.failure) start(() => this.settle('event'));
    return p;
  }

  /**
   * Puts TLS over the connection (after the server's 220 to STARTTLS). Bytes
   * the server sent after that 220 in clear text would be taken as coming
   * through TLS by a careless client (CVE-2011-0411): here they end the
   * connection.
   */
  async startTls(options: tls.ConnectionOptions): Promise<void> {
    if (this.unasked) throw new ProtocolError('the server sent more after its 220 to STARTTLS');
    const plain = this.socket;
    plain.off('data', this.onData).off('error', this.onError).off('close', this.onClose).off('drain', this.onDrain);
    plain.on('error', noop);
    const secure = tls.connect({ ...options, socket: plain });
    this.attach(secure);
    await this.until((done) => secure.once('secureConnect', done));
  }

  private wait(kind: 'reply' | 'drain' | 'event'): Promise<Reply | undefined> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.waiting = { kind, resolve, reject };
      this.timer = setTimeout(() => this.fail(new LostError(`no answer within ${this.timeoutMs / 1000} s`)), this.timeoutMs);
    });
  }

  private settle(kind: 'reply' | 'drain' | 'event', reply?: Reply): void {
    if (this.waiting?.kind !== kind) return;
    const w = this.waiting;
    this.waiting = null;
    clearTimeout(this.timer!);
    w.resolve(reply);
  }

  fail(err: Error): void {
    if (this.failure) return;
    this.failure = err;
    if (this.timer) clearTimeout(this.timer);
    this.socket.destroy();
    const w = this.waiting;
    this.waiting = null;
    w?.reject(err);
  }

  /** Ends the connection politely: the server closes after its 221, or we do after a few seconds. */
  quit(): void {
    if (this.failure) return;
    this.failure = new LostError('closed');
    this.socket.off('close', this.onClose);
    this.socket.off('data', this.onData);
    const timer = setTimeout(() => this.socket.destroy(), Math.min(this.timeoutMs, 5000));
    this.socket.once('close', () => clearTimeout(timer));
    this.socket.end('QUIT\r\n');
  }
}

/** What the server said it supports in its EHLO reply. */
interface Extensions {
  pipelining: boolean;
  size: boolean;
  eightBitMime: boolean;
  smtpUtf8: boolean;
  startTls: boolean;
  auth: string[];
}

const NO_EXTENSIONS: Extensions = { pipelining: false, size: false, eightBitMime: false, smtpUtf8: false, startTls: false, auth: [] };

function extensions(ehlo: Reply): Extensions {
  const ext: Extensions = { ...NO_EXTENSIONS, auth: [] };
  for (const line of ehlo.lines.slice(1)) {
    const [keyword = '', ...args] = line.trim().toUpperCase().split(/[\s=]+/);
    if (keyword === 'PIPELINING') ext.pipelining = true;
    else if (keyword === 'SIZE') ext.size = true;
    else if (keyword === '8BITMIME') ext.eightBitMime = true;
    else if (keyword === 'SMTPUTF8') ext.smtpUtf8 = true;
    else if (keyword === 'STARTTLS') ext.startTls = true;
    else if (keyword === 'AUTH') ext.auth.push(...args.filter((a) => a && !ext.auth.includes(a)));
  }
  return ext;
}

const permanentCode = (r: Reply) => r.code >= 500 && r.code < 600;
const positive = (r: Reply) => r.code >= 200 && r.code < 300;

/** EHLO, or HELO (no extensions) for a server that refuses EHLO with 5xx. */
async function hello(wire: Wire, name: string): Promise<Extensions> {
  wire.write(`EHLO ${name}\r\n`);
  const ehlo = await wire.reply();
  if (positive(ehlo)) return extensions(ehlo);
  if (!permanentCode(ehlo)) throw new ConnectError(`EHLO: ${replyText(ehlo)}`, false);
  wire.write(`HELO ${name}\r\n`);
  const helo = await wire.reply();
  if (positive(helo)) return NO_EXTENSIONS;
  throw new ConnectError(`HELO: ${replyText(helo)}`, permanentCode(helo));
}

async function authenticate(wire: Wire, options: SenderOptions, ext: Extensions, encrypted: boolean): Promise<void> {
  const { user, pass } = options.auth!;
  if (!encrypted && !options.allowPlainAuth) {
    const why = options.starttls === 'off' ? 'STARTTLS is off' : 'the server offers no STARTTLS';
    throw new ConnectError(
      `${why}: not sending the password of ${user} in clear; set tls_key and tls_cert on benno-smtp, ` +
        'or pass --allow-plain-auth (BENNOALLOWPLAINAUTH=yes) on a trusted network',
      true,
    );
  }
  const b64 = (s: string) => `${Buffer.from(s, 'utf8').toString('base64')}\r\n`;
  let r: Reply;
  if (ext.auth.includes('PLAIN')) {
    wire.write(`AUTH PLAIN ${b64(`\0${user}\0${pass}`)}`);
    r = await wire.reply();
  } else if (ext.auth.includes('LOGIN')) {
    wire.write('AUTH LOGIN\r\n');
    r = await wire.reply();
    if (r.code === 334) {
      wire.write(b64(user));
      r = await wire.reply();
      if (r.code === 334) {
        wire.write(b64(pass));
        r = await wire.reply();
      }
    }
  } else {
    const offered = ext.auth.length > 0 ? `only AUTH ${ext.auth.join(' ')}` : 'no AUTH';
    throw new ConnectError(`authentication as ${user} failed: the server offers ${offered} (PLAIN or LOGIN needed)`, true);
  }
  if (r.code === 235) return;
  // A 4xx (454 temporary authentication failure) is the server's trouble, to be retried.
  throw new ConnectError(`authentication as ${user} failed: ${replyText(r)}`, !(r.code >= 400 && r.code < 500));
}

const CR = 0x0d;
const LF = 0x0a;
const NUL = 0x00;

const nonAscii = (a: Buffer) => a.some((c) => c >= 0x80);
const shown = (a: Buffer) => `<${a.toString('utf8')}>`;

/** Why the envelope cannot go to this server unchanged; null when it can. */
function carryProblem(env: Envelope, smtpUtf8: boolean): string | null {
  const all = [env.from, ...env.to];
  const broken = all.find((a) => a.includes(CR) || a.includes(LF) || a.includes(NUL));
  if (broken) return `the address ${shown(broken)} contains CR, LF or NUL, which no SMTP command can carry`;
  const utf8 = smtpUtf8 ? undefined : all.find(nonAscii);
  if (utf8) return `the address ${shown(utf8)} is not ASCII and the server does not offer SMTPUTF8`;
  return null;
}

const MAIL_FROM = Buffer.from('MAIL FROM:<');
const RCPT_TO = Buffer.from('RCPT TO:<');

/** The outcome a refusal means; a code that is no refusal at this point is a protocol error. */
function refusal(r: Reply, context: string): SendOutcome {
  const response = context ? `${replyText(r)} (${context})` : replyText(r);
  if (r.code === 530) return { kind: 'refused', response };
  if (r.code >= 500 && r.code < 600) return { kind: 'rejected', response };
  if (r.code >= 400 && r.code < 500) return { kind: 'deferred', response };
  throw new ProtocolError(`unexpected reply ${replyText(r)}${context ? ` to ${context}` : ''}`);
}

export class SmtpConnection {
  private broken = false;

  private constructor(
    private readonly wire: Wire,
    private readonly ext: Extensions,
  ) {}

  /** True while the connection can carry another message. */
  get usable(): boolean {
    return !this.broken && !this.wire.failure;
  }

  static async open(options: SenderOptions): Promise<SmtpConnection> {
    let wire: Wire | undefined;
    try {
      wire = await Wire.connect(options.host, options.port, options.timeoutMs);
      const greeting = await wire.reply();
      if (!positive(greeting)) {
        if (permanentCode(greeting)) throw new ConnectError(`${replyText(greeting)}; the server refuses this client: check its allowed_clients`, true);
        throw new ConnectError(`greeting ${replyText(greeting)}`, false);
      }
      const name = options.ehloName || os.hostname();
      let ext = await hello(wire, name);
      let encrypted = false;
      if (options.starttls !== 'off' && ext.startTls) {
        wire.write('STARTTLS\r\n');
        const r = await wire.reply();
        // Never go on in clear after a failed STARTTLS: that is what an attacker in the path would arrange.
        if (r.code !== 220) throw new ConnectError(`STARTTLS: ${replyText(r)}`, permanentCode(r));
        const tlsOptions: tls.ConnectionOptions = {
          host: options.host,
          // SNI takes host names only (RFC 6066); an address is still checked against the certificate.
          servername: net.isIP(options.host) ? undefined : options.host,
          ca: options.ca,
          minVersion: 'TLSv1.2',
          rejectUnauthorized: true,
        };
        await wire.startTls(tlsOptions).catch((err: Error) => {
          throw new ConnectError(`TLS with ${options.host} failed: ${err.message}`, false);
        });
        encrypted = true;
        ext = await hello(wire, name);
      } else if (options.starttls === 'require') {
        throw new ConnectError('the server offers no STARTTLS, and STARTTLS is required (--starttls require, BENNOSTARTTLS=require)', true);
      }
      if (options.auth) await authenticate(wire, options, ext, encrypted);
      return new SmtpConnection(wire, ext);
    } catch (err) {
      wire?.fail(err as Error);
      if (err instanceof ConnectError) throw err;
      throw new ConnectError((err as Error).message, false);
    }
  }

  /** Sends one message with its whole envelope, or nothing; never throws. The stream is destroyed afterwards. */
  async send(envelope: Envelope, message: Readable): Promise<SendOutcome> {
    try {
      if (!this.usable) return { kind: 'lost', response: this.wire.failure?.message ?? 'connection closed' };
      return await this.transaction(envelope, message);
    } catch (err) {
      this.broken = true;
      this.wire.fail(err as Error);
      return { kind: 'lost', response: (err as Error).message };
    } finally {
      message.destroy();
    }
  }

  private async transaction(env: Envelope, message: Readable): Promise<SendOutcome> {
    const problem = carryProblem(env, this.ext.smtpUtf8);
    if (problem) return { kind: 'cannot-carry', response: problem };
    if (this.wire.unasked) throw new ProtocolError('the server sent a reply nobody asked for');

    let params = '';
    if (this.ext.size) params += ` SIZE=${env.size}`;
    if (this.ext.eightBitMime) params += ' BODY=8BITMIME';
    if ([env.from, ...env.to].some(nonAscii)) params += ' SMTPUTF8';
    const commands = [
      Buffer.concat([MAIL_FROM, env.from, Buffer.from(`>${params}\r\n`)]),
      ...env.to.map((to) => Buffer.concat([RCPT_TO, to, Buffer.from('>\r\n')])),
    ];
    const what = (i: number) => (i === 0 ? `MAIL FROM:${shown(env.from)}` : `RCPT TO:${shown(env.to[i - 1])}`);

    // MAIL and every RCPT must be accepted; with PIPELINING they go in one write (RFC 2920).
    let verdict: SendOutcome | null = null;
    if (this.ext.pipelining) {
      this.wire.write(Buffer.concat(commands));
      const replies: Reply[] = [];
      for (let i = 0; i < commands.length; i++) replies.push(await this.wire.reply());
      // A refused MAIL decides alone: the RCPTs after it fail because of it.
      verdict = positive(replies[0]) ? this.envelopeVerdict(replies.slice(1), 1, what) : this.envelopeVerdict([replies[0]], 0, what);
    } else {
      for (let i = 0; i < commands.length && !verdict; i++) {
        this.wire.write(commands[i]);
        verdict = this.envelopeVerdict([await this.wire.reply()], i, what);
      }
    }
    if (verdict) return this.reset(verdict);

    this.wire.write('DATA\r\n');
    const go = await this.wire.reply();
    if (go.code !== 354) return this.reset(refusal(go, 'DATA'));
    await this.transmit(message);
    const done = await this.wire.reply();
    if (positive(done)) return { kind: 'sent', response: replyText(done) };
    if (done.code === 421) this.broken = true;
    // The transaction is over either way: no RSET needed.
    return refusal(done, '');
  }

  /**
   * The outcome of replies to commands first, first + 1, ..., or null when
   * all were accepted. Of several refusals the one that matters most counts:
   * a 530 (the server refuses us), then a 5xx (the file needs someone to
   * act), then a 4xx (a later try may do).
   */
  private envelopeVerdict(replies: Reply[], first: number, what: (i: number) => string): SendOutcome | null {
    const weight = (r: Reply) => (r.code === 530 ? 0 : permanentCode(r) ? 1 : 2);
    let worst = -1;
    replies.forEach((r, i) => {
      if (!positive(r) && (worst < 0 || weight(r) < weight(replies[worst]))) worst = i;
    });
    if (worst < 0) return null;
    if (replies[worst].code === 421) this.broken = true;
    return refusal(replies[worst], what(first + worst));
  }

  /** After a refused transaction: RSET, so that the connection can go on. The outcome stands either way. */
  private async reset(outcome: SendOutcome): Promise<SendOutcome> {
    if (this.broken) return outcome;
    try {
      this.wire.write('RSET\r\n');
      if (!positive(await this.wire.reply())) this.broken = true;
    } catch {
      this.broken = true;
    }
    return outcome;
  }

  /** The message in DATA form, at the pace the socket takes it. */
  private async transmit(message: Readable): Promise<void> {
    const encoder = new DataEncoder();
    try {
      for await (const chunk of message) {
        if (!this.wire.write(encoder.push(chunk as Buffer))) await this.wire.drain();
        if (this.wire.failure) throw this.wire.failure;
      }
    } catch (err) {
      if (this.wire.failure) throw this.wire.failure;
      // The file could not be read: end the connection so that the server drops what it has, never a cut message.
      throw new LostError(`reading the file failed: ${(err as Error).message}`);
    }
    // A reply before the end of the data is no answer to it.
    if (this.wire.unasked) throw new ProtocolError('the server replied in the middle of DATA');
    this.wire.write(encoder.end());
  }

  close(): void {
    if (this.usable) this.wire.quit();
    else this.wire.fail(new LostError('closed'));
  }
}
