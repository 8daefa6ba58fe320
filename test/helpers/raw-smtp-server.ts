// A raw-TCP SMTP server for the exporter's tests. It records every command
// line as the bytes that arrived, answers what the test scripts, and takes
// DATA as RFC 5321 defines it (a line "." ends it, one leading dot of a line
// is removed). No SMTP library sits in between: what a test sees is the wire.

import * as net from 'node:net';

export interface RawMessage {
  /** The MAIL command line, without CRLF. */
  mail: Buffer;
  /** The RCPT command lines the server accepted, without CRLF. */
  rcpts: Buffer[];
  /** The message, dot-unstuffed, each line with its CRLF. */
  data: Buffer;
  /** The DATA bytes as they came, the final ".\r\n" included. */
  wire: Buffer;
}

const CRLF = Buffer.from('\r\n');

export class RawSmtpServer {
  greeting = '220 raw.example ESMTP recorder';
  /** What EHLO announces, one extension a line. */
  extensions: string[] = ['PIPELINING', 'SIZE 10485760', '8BITMIME', 'SMTPUTF8', 'ENHANCEDSTATUSCODES'];
  /** A reply (possibly several lines joined with CRLF) instead of the default one; undefined for the default. */
  reply: (command: Buffer) => string | undefined = () => undefined;
  /** The reply to a whole message; undefined for 250. */
  dataReply: (message: RawMessage) => string | undefined = () => undefined;
  /** Every command line of every session, without CRLF, in order. */
  readonly commands: Buffer[] = [];
  /** Every byte received, in order, for looking for what must never arrive. */
  readonly bytes: Buffer[] = [];
  /** Messages answered 250. */
  readonly messages: RawMessage[] = [];
  /** User names of successful AUTH exchanges. */
  readonly authenticated: string[] = [];
  sessions = 0;
  port = 0;
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();
  private idleWaiters: (() => void)[] = [];

  constructor() {
    this.server = net.createServer((socket) => this.session(socket));
  }

  listen(): Promise<number> {
    return new Promise((resolve) => {
      this.server.listen(0, '127.0.0.1', () => {
        this.port = (this.server.address() as net.AddressInfo).port;
        resolve(this.port);
      });
    });
  }

  close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  /** Forgets what was recorded, and the scripted replies. */
  clear(): void {
    this.commands.length = 0;
    this.bytes.length = 0;
    this.messages.length = 0;
    this.authenticated.length = 0;
    this.sessions = 0;
    this.reply = () => undefined;
    this.dataReply = () => undefined;
    this.extensions = ['PIPELINING', 'SIZE 10485760', '8BITMIME', 'SMTPUTF8', 'ENHANCEDSTATUSCODES'];
  }

  /** Resolves once no session is open (each one's bytes all handled). */
  idle(): Promise<void> {
    if (this.sockets.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Everything received, as one buffer. */
  received(): Buffer {
    return Buffer.concat(this.bytes);
  }

  /** The command lines as latin1 strings, for readable assertions. */
  commandText(): string[] {
    return this.commands.map((c) => c.toString('latin1'));
  }

  private session(socket: net.Socket): void {
    this.sessions++;
    this.sockets.add(socket);
    socket.setNoDelay(true);
    socket.on('close', () => {
      this.sockets.delete(socket);
      if (this.sockets.size > 0) return;
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      waiters.forEach((w) => w());
    });
    socket.on('error', () => undefined);
    let pending: Buffer = Buffer.alloc(0);
    let mail: Buffer | null = null;
    let rcpts: Buffer[] = [];
    let data: Buffer[] | null = null;
    let wire: Buffer[] = [];
    let auth: { step: 'user' | 'pass'; user?: string } | null = null;
    const send = (text: string) => socket.write(`${text}\r\n`);

    const command = (line: Buffer) => {
      this.commands.push(line);
      const text = line.toString('latin1');
      const verb = text.split(' ')[0].toUpperCase();
      if (auth) {
        const value = Buffer.from(text, 'base64').toString('utf8');
        if (auth.step === 'user') {
          auth = { step: 'pass', user: value };
          send('334 UGFzc3dvcmQ6');
        } else {
          this.authenticated.push(auth.user!);
          auth = null;
          send('235 2.7.0 Authentication successful');
        }
        return;
      }
      const scripted = this.reply(line);
      const ok = (fallback: string) => {
        const answer = scripted ?? fallback;
        send(answer);
        return answer.startsWith('2');
      };
      if (verb === 'EHLO') {
        const lines = ['raw.example', ...this.extensions];
        ok(lines.map((l, i) => `250${i === lines.length - 1 ? ' ' : '-'}${l}`).join('\r\n'));
      } else if (verb === 'HELO') ok('250 raw.example');
      else if (verb === 'MAIL') {
        if (ok('250 2.1.0 Ok')) {
          mail = line;
          rcpts = [];
        }
      } else if (verb === 'RCPT') {
        if (!mail) send('503 5.5.1 Error: need MAIL command');
        else if (ok('250 2.1.5 Ok')) rcpts.push(line);
      } else if (verb === 'DATA') {
        if (scripted) send(scripted);
        else if (!mail || rcpts.length === 0) send('554 5.5.1 Error: no valid recipients');
        else {
          send('354 End data with <CR><LF>.<CR><LF>');
          data = [];
          wire = [];
        }
      } else if (verb === 'RSET') {
        mail = null;
        rcpts = [];
        ok('250 2.0.0 Ok');
      } else if (verb === 'AUTH') {
        const [, mechanism, initial] = text.split(' ');
        if (scripted) send(scripted);
        else if (mechanism.toUpperCase() === 'PLAIN' && initial) {
          this.authenticated.push(Buffer.from(initial, 'base64').toString('utf8').split('\0')[1]);
          send('235 2.7.0 Authentication successful');
        } else if (mechanism.toUpperCase() === 'LOGIN') {
          auth = { step: 'user' };
          send('334 VXNlcm5hbWU6');
        } else send('504 5.5.4 Unrecognized authentication type');
      } else if (verb === 'QUIT') {
        send('221 2.0.0 Bye');
        socket.end();
      } else if (verb === 'NOOP') ok('250 2.0.0 Ok');
      else ok('502 5.5.2 Error: command not recognized');
    };

    const dataLine = (line: Buffer) => {
      wire.push(line, CRLF);
      if (line.length === 1 && line[0] === 0x2e) {
        const message: RawMessage = { mail: mail!, rcpts, data: Buffer.concat(data!), wire: Buffer.concat(wire) };
        data = null;
        mail = null;
        rcpts = [];
        const answer = this.dataReply(message);
        if (answer === undefined) this.messages.push(message);
        send(answer ?? '250 2.0.0 Ok: queued');
        return;
      }
      data!.push(line[0] === 0x2e ? line.subarray(1) : line, CRLF);
    };

    send(this.greeting);
    socket.on('data', (chunk: Buffer) => {
      this.bytes.push(chunk);
      pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
      let eol: number;
      while ((eol = pending.indexOf(CRLF)) >= 0) {
        const line = Buffer.from(pending.subarray(0, eol));
        pending = pending.subarray(eol + 2);
        if (data) dataLine(line);
        else command(line);
      }
    });
  }
}
