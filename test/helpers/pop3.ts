// A POP3 client of the tests' own, deliberately naive and independent of
// src/pop3/: it reads whole answers into memory and undoes dot-stuffing on
// complete lines, so that what benno-pop3 archived can be compared with
// what the server hands out. POP3S with the test CA.

import * as fs from 'node:fs';
import * as tls from 'node:tls';
import type { Dovecot, ImapUser } from './imap-servers';

export interface Pop3Message {
  n: number;
  uidl: string;
  /** RETR's answer, dot-stuffing undone, the closing line not included. */
  message: Buffer;
}

class Conversation {
  private data = Buffer.alloc(0);
  private waiter: (() => void) | null = null;
  private closed = false;

  constructor(private readonly socket: tls.TLSSocket) {
    socket.on('data', (d: Buffer) => {
      this.data = Buffer.concat([this.data, d]);
      this.waiter?.();
    });
    socket.on('close', () => {
      this.closed = true;
      this.waiter?.();
    });
    socket.on('error', () => undefined);
    // A server gone silent fails the test instead of holding it for ever.
    socket.setTimeout(30_000, () => socket.destroy());
  }

  /** Waits until find() gives a position in the data received. */
  private async until(find: () => number): Promise<number> {
    for (;;) {
      const at = find();
      if (at >= 0) return at;
      if (this.closed) throw new Error(`the server closed the connection; had: ${this.data.toString('latin1').slice(0, 200)}`);
      await new Promise<void>((resolve) => (this.waiter = resolve));
    }
  }

  /** The status line of the next answer; -ERR throws. */
  async status(): Promise<string> {
    const at = await this.until(() => this.data.indexOf('\r\n'));
    const line = this.data.subarray(0, at).toString('latin1');
    this.data = this.data.subarray(at + 2);
    if (!line.startsWith('+OK')) throw new Error(`POP3: ${line}`);
    return line;
  }

  async command(line: string): Promise<string> {
    this.socket.write(`${line}\r\n`);
    return this.status();
  }

  /** The body of a multi-line answer, unstuffed: the lines before the one that is just ".". */
  async multiline(): Promise<Buffer> {
    const end = await this.until(() => {
      if (this.data.subarray(0, 3).equals(Buffer.from('.\r\n'))) return 0;
      const at = this.data.indexOf('\r\n.\r\n');
      return at < 0 ? -1 : at + 2;
    });
    const raw = this.data.subarray(0, end);
    this.data = this.data.subarray(end + 3);
    const lines: Buffer[] = [];
    for (let pos = 0; pos < raw.length; ) {
      const lf = raw.indexOf('\n', pos);
      const line = raw.subarray(pos, lf + 1);
      lines.push(line[0] === 0x2e ? line.subarray(1) : line);
      pos = lf + 1;
    }
    return Buffer.concat(lines);
  }
}

/** Logs in over POP3S, runs fn, and QUITs (committing any DELE fn sent). */
export async function withPop3<T>(server: Dovecot, user: ImapUser, fn: (c: { command(line: string): Promise<string>; multiline(): Promise<Buffer> }) => Promise<T>): Promise<T> {
  const socket = tls.connect({ host: server.host, port: server.pop3sPort, ca: fs.readFileSync(server.caFile) });
  const c = new Conversation(socket);
  try {
    await c.status();
    await c.command(`USER ${user.user}`);
    await c.command(`PASS ${user.password}`);
    const result = await fn(c);
    await c.command('QUIT');
    return result;
  } finally {
    socket.destroy();
  }
}

/** Every message on the server with its UIDL and RETR's bytes, in message-number order. */
export function pop3Messages(server: Dovecot, user: ImapUser): Promise<Pop3Message[]> {
  return withPop3(server, user, async (c) => {
    await c.command('UIDL');
    const uidls = (await c.multiline()).toString('latin1').split('\r\n').filter(Boolean).map((l) => l.split(' '));
    const out: Pop3Message[] = [];
    for (const [n, uidl] of uidls) {
      await c.command(`RETR ${n}`);
      out.push({ n: Number(n), uidl, message: await c.multiline() });
    }
    return out;
  });
}
