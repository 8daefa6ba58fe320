// benno-smtp's SMTP service on smtp-server: every message becomes one spool
// file in the inbox, the SMTP envelope written back as X-REAL-* lines. The
// 250 after DATA is sent only once the file is durable (same writer, same
// rule as the milter); any doubt is a 451.

import { Socket } from 'node:net';
import { AllowList, plainAddress } from '../ops/allowlist';
import * as fs from 'node:fs';
import { SMTPServer, SMTPServerAuthentication, SMTPServerAuthenticationResponse, SMTPServerDataStream, SMTPServerSession } from 'smtp-server';
import type { ReceiverConfig } from '../config/benno-smtp-conf';
import { Logger, printable } from '../ops/log';
import { envelopeBlock } from '../spool/format';
import { SpoolFile, SpoolWriter } from '../spool/writer';
import { AuthUsers } from './auth';
import { patchSmtpServer } from './smtp-server-patches';

/** What a transaction's envelope was, in the client's order, duplicates kept (smtp-server merges them). */
interface Transaction {
  from: string;
  to: string[];
  /** The spool file while DATA is coming in. */
  file?: SpoolFile;
}

type Session = SMTPServerSession & { benno?: Transaction };

function smtpError(code: number, message: string): Error & { responseCode: number } {
  return Object.assign(new Error(message), { responseCode: code });
}

export class Receiver {
  private readonly server: SMTPServer;
  private readonly allowed: AllowList;
  private readonly auth?: AuthUsers;
  readonly writer: SpoolWriter;

  constructor(
    private readonly config: ReceiverConfig,
    private readonly log: Logger,
  ) {
    patchSmtpServer();
    this.allowed = new AllowList(config.allowedClients);
    this.writer = new SpoolWriter(config.inbox, { suffix: config.suffix });
    if (config.authUsers) this.auth = AuthUsers.read(config.authUsers);
    const tls = config.tlsKey && config.tlsCert ? { key: fs.readFileSync(config.tlsKey), cert: fs.readFileSync(config.tlsCert) } : {};
    this.server = new SMTPServer({
      name: config.hostname,
      banner: 'Benno MailArchiv receiver',
      secure: false,
      ...tls,
      disabledCommands: [...(tls.key ? [] : ['STARTTLS']), ...(this.auth ? [] : ['AUTH'])],
      authOptional: !this.auth,
      allowInsecureAuth: !tls.key,
      size: config.maxSize || undefined,
      maxClients: config.maxClients,
      socketTimeout: config.timeout * 1000,
      closeTimeout: 30_000,
      logger: false,
      hideENHANCEDSTATUSCODES: false,
      // No reverse DNS lookup per connection: the archive logs addresses, and a
      // slow resolver would hold every session (about 100 ms each here).
      disableReverseLookup: true,
      onConnect: (session, cb) => this.onConnect(session, cb),
      onAuth: (auth, session, cb) => this.onAuth(auth, session, cb),
      onMailFrom: (address, session: Session, cb) => {
        session.benno = { from: address.address || '', to: [] };
        cb();
      },
      onRcptTo: (address, session: Session, cb) => {
        session.benno?.to.push(address.address);
        cb();
      },
      onData: (stream, session, cb) => this.onData(stream, session as Session, cb),
      // A client gone in the middle of DATA: its data stream never ends, so drop the file here.
      onClose: (session: Session) => {
        const file = session.benno?.file;
        if (!file) return;
        session.benno!.file = undefined;
        void file.discard();
        this.log.warn(`client ${plainAddress(session.remoteAddress).address}: disconnected during DATA; nothing stored, the client keeps the message`);
      },
    });
    this.server.on('error', (err: Error) => this.log.warn(`smtp: ${err.message}`));
    // Replies to pipelined commands are separate writes; with Nagle the second
    // waits for the client's delayed ACK (40 ms a message on loopback).
    this.server.server.on('connection', (socket: Socket) => socket.setNoDelay(true));
  }

  listen(): Promise<void> {
    const { host, port } = this.config.listen;
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      this.server.server.once('error', onError);
      this.server.listen(port, host, () => {
        this.server.server.off('error', onError);
        resolve();
      });
    });
  }

  /** The port actually bound (for tests that listen on port 0). */
  get port(): number {
    const a = this.server.server.address();
    return a && typeof a === 'object' ? a.port : this.config.listen.port;
  }

  /** Stops accepting, lets transactions finish up to graceMs, then closes the rest. */
  close(graceMs: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.log.warn(`shutdown: clients still connected after ${graceMs / 1000}s, closing them; they keep their messages and retry`);
        // smtp-server closes remaining connections when its closeTimeout passes; do it now.
        for (const c of (this.server as unknown as { connections: Set<{ close(): void }> }).connections ?? []) c.close();
      }, graceMs);
      this.server.close(() => {
        clearTimeout(timer);
        this.writer.close();
        resolve();
      });
    });
  }

  private onConnect(session: SMTPServerSession, cb: (err?: Error) => void): void {
    const client = plainAddress(session.remoteAddress);
    if (this.allowed.allows(session.remoteAddress)) return cb();
    this.log.warn(`refused client ${client.address}: not in allowed_clients; add its network there if it should deliver to the archive`);
    cb(smtpError(554, 'Client not allowed to deliver to this archive'));
  }

  private onAuth(auth: SMTPServerAuthentication, session: SMTPServerSession, cb: (err: Error | null | undefined, response?: SMTPServerAuthenticationResponse) => void): void {
    const ok = auth.username !== undefined && auth.password !== undefined && this.auth?.verify(auth.username, auth.password);
    if (ok) return cb(null, { user: auth.username });
    this.log.warn(`client ${plainAddress(session.remoteAddress).address}: authentication as ${printable(String(auth.username))} failed`);
    cb(smtpError(535, 'Authentication credentials invalid'));
  }

  private onData(stream: SMTPServerDataStream, session: Session, cb: (err?: Error | null, message?: string) => void): void {
    const started = process.hrtime.bigint();
    const tx = (session.benno ??= { from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '', to: session.envelope.rcptTo.map((r) => r.address) });
    const file = this.writer.begin();
    tx.file = file;
    if (this.config.envelopeHeader) {
      file.write(envelopeBlock(this.config.names, Buffer.from(tx.from, 'utf8'), tx.to.map((t) => Buffer.from(t, 'utf8'))));
    }
    let failed: Error | null = null;
    stream.on('data', (chunk: Buffer) => {
      const wait = file.write(chunk);
      if (wait) {
        stream.pause();
        wait.then(() => stream.resume());
      }
    });
    stream.on('error', (err: Error) => (failed = err));
    stream.on('end', () => {
      tx.file = undefined;
      const client = plainAddress(session.remoteAddress).address;
      if (stream.sizeExceeded || failed) {
        void file.discard();
        if (stream.sizeExceeded) {
          this.log.warn(`client ${client}: message from=<${printable(tx.from)}> over max_size ${this.config.maxSize} bytes refused`);
          return cb(smtpError(552, `Message exceeds the archive's size limit of ${this.config.maxSize} bytes`));
        }
        return cb(smtpError(451, 'Message transfer failed, try again later'));
      }
      file.commit().then(
        (done) => {
          const ms = Number(process.hrtime.bigint() - started) / 1e6;
          this.log.info(`${done.name}: stored from=<${printable(tx.from)}> rcpts=${tx.to.length} size=${done.size} client=${client} ms=${ms.toFixed(1)}`);
          cb(null, `Ok: stored as ${done.name}`);
        },
        (err: NodeJS.ErrnoException) => {
          this.log.error(
            `client ${client}: storing a message from=<${printable(tx.from)}> failed: ${err.code ? `${err.code}: ` : ''}${err.message}; ` +
              `answered 451, the client keeps the message; check free space and write access to ${this.writer.dir}`,
          );
          cb(smtpError(451, 'Message archiving failed, try again later'));
        },
      );
    });
  }
}
