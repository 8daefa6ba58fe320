// A bare SMTP client for tests that must send exact bytes (bare CR, bytes
// that are not UTF-8, pipelined floods) and see every reply as it comes.

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
   * Sends a message after DATA's 354 (dot-stuffing is the caller's), returns
   * the final reply. A message that ends in CRLF is stored as it is.
   */
  async data(message: Buffer): Promise<Reply> {
    const go = await this.command('DATA');
    if (go.code !== 354) return go;
    const crlf = message.length >= 2 && message[message.length - 2] === 0x0d && message[message.length - 1] === 0x0a;
    this.write(Buffer.concat([message, Buffer.from(crlf ? '.\r\n' : '\r\n.\r\n')]));
    return this.reply();
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

export interface Submission {
  /** Every reply, the greeting first. */
  replies: Reply[];
  /** The queue id from "250 ... queued as X", if the server said so. */
  queueId?: string;
}

/**
 * One message with exactly these bytes (a quoted local part with "<", a raw
 * 8-bit byte) where a client library would refuse or rewrite them: EHLO,
 * MAIL FROM:<sender>, one RCPT TO:<r> each, DATA (already dot-stuffed), QUIT.
 */
export async function submitRaw(port: number, sender: Buffer, recipients: Buffer[], data: Buffer, mailParams = ''): Promise<Submission> {
  const { client, greeting } = await RawSmtp.open(port);
  const angle = (verb: string, addr: Buffer, params = '') => Buffer.concat([Buffer.from(`${verb}:<`), addr, Buffer.from(`>${params}`)]);
  const replies = [greeting, await client.command('EHLO test.invalid'), await client.command(angle('MAIL FROM', sender, mailParams))];
  for (const r of recipients) replies.push(await client.command(angle('RCPT TO', r)));
  replies.push(await client.data(data), await client.command('QUIT'));
  client.end();
  const queued = replies.map((r) => /queued as ([0-9A-Za-z]+)/.exec(r.text)).find(Boolean);
  return { replies, queueId: queued?.[1] };
}
