// SMTP pieces for the export tests: benno-smtp as a process, and
// an in-process SMTP server double that records what it gets and answers
// what a test tells it to.

import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { SMTPServer, SMTPServerDataStream, SMTPServerSession } from 'smtp-server';
import { Program, ROOT, run } from './daemon';

export const SMTP_BIN = path.join(ROOT, 'dist', 'src', 'cli', 'benno-smtp.js');
export const EXPORT_BIN = path.join(ROOT, 'dist', 'src', 'cli', 'benno-milter2smtp.js');
export const EXPORT2ARCHIVE_BIN = path.join(ROOT, 'dist', 'src', 'cli', 'benno-export2archive.js');

/** Starts benno-smtp with the given configuration lines; resolves once it listens. */
export async function startReceiver(dir: string, lines: string[], env: NodeJS.ProcessEnv = {}): Promise<{ program: Program; config: string }> {
  const config = path.join(dir, `benno-smtp-${Date.now()}-${Math.random().toString(36).slice(2)}.conf`);
  fs.writeFileSync(config, lines.join('\n') + '\n');
  const program = run(SMTP_BIN, ['-c', config], env);
  try {
    // \b: outside the journal the line is "...: info: started: ", under it "<6>started: ".
    await program.waitForLine(/\bstarted: /);
  } catch (err) {
    program.proc.kill('SIGKILL');
    throw err;
  }
  return { program, config };
}

export interface Received {
  from: string;
  to: string[];
  data: Buffer;
  sha: string;
}

/**
 * An SMTP server double. `answer` decides per message: undefined (250), or a
 * code and text; `delayMs` holds each 250 back, for kill tests.
 */
export class SmtpDouble {
  readonly received: Received[] = [];
  answer: (data: Buffer) => { code: number; text: string } | undefined = () => undefined;
  delayMs = 0;
  private server: SMTPServer;
  private waiters: { n: number; resolve: () => void }[] = [];
  port = 0;

  constructor() {
    this.server = new SMTPServer({
      authOptional: true,
      disabledCommands: ['AUTH', 'STARTTLS'],
      logger: false,
      hideENHANCEDSTATUSCODES: false,
      onData: (stream: SMTPServerDataStream, session: SMTPServerSession, cb: (err?: Error | null) => void) => {
        const chunks: Buffer[] = [];
        stream.on('data', (c: Buffer) => chunks.push(c));
        stream.on('end', () => {
          const data = Buffer.concat(chunks);
          const verdict = this.answer(data);
          const reply = () => {
            if (verdict) return cb(Object.assign(new Error(verdict.text), { responseCode: verdict.code }));
            this.received.push({
              from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
              to: session.envelope.rcptTo.map((r) => r.address),
              data,
              sha: createHash('sha256').update(data).digest('hex'),
            });
            this.waiters = this.waiters.filter((w) => (this.received.length >= w.n ? (w.resolve(), false) : true));
            cb();
          };
          if (this.delayMs > 0) setTimeout(reply, this.delayMs);
          else reply();
        });
      },
    });
  }

  listen(): Promise<number> {
    // Clients killed mid-session (the kill tests) reset their connections; that is expected here.
    this.server.on('error', () => undefined);
    // Replies to pipelined MAIL and RCPT are separate writes: without this the second waits 40 ms for a delayed ACK.
    this.server.server.on('connection', (socket: net.Socket) => socket.setNoDelay(true));
    return new Promise((resolve) => {
      this.server.listen(0, '127.0.0.1', () => {
        this.port = (this.server.server.address() as net.AddressInfo).port;
        resolve(this.port);
      });
    });
  }

  /** Resolves once n messages have been accepted. */
  until(n: number): Promise<void> {
    if (this.received.length >= n) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ n, resolve }));
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
