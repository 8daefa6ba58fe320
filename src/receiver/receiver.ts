// benno-smtp's SMTP service on smtp-server: every message becomes one spool
// file in the inbox, the SMTP envelope written back as X-REAL-* lines. The
// 250 after DATA is sent only once the file is durable (same writer, same
// rule as the milter); any doubt is a 451.
//
// The envelope lines are a trust boundary (see spool/format.ts): an address
// is kept as the bytes sent, refused when it holds a character that could
// split, hide or reorder text, and bounded in length and number; a field in
// the message that carries one of our names is renamed. The rest is about
// clients that take more than their share: idle connections, many
// connections from one address, recipient floods, password guessing. Every
// log line a client can cause is rate-limited per client address.

import * as fs from 'node:fs';
import { Socket } from 'node:net';
import {
  SMTPServer,
  SMTPServerAddress,
  SMTPServerAuthentication,
  SMTPServerAuthenticationResponse,
  SMTPServerDataStream,
  SMTPServerOptions,
  SMTPServerSession,
} from 'smtp-server';
import type { ReceiverConfig } from './config';
import { AllowList, plainAddress } from '../ops/allowlist';
import { Logger } from '../ops/log';
import { LogThrottle, heldBackNote } from '../ops/throttle';
import { EnvelopeBuilder, EnvelopeProblem, GatewayGate, HeaderGuard, MAX_ADDRESS_OCTETS, ReservedNames, reservedNames, unsafeCharacter, writtenAddress } from '../spool/format';
import { SpoolFile, SpoolWriter } from '../spool/writer';
import { AuthUsers } from './auth';
import { AuthFailures, MAX_AUTH_FAILURES_PER_CONNECTION } from './auth-failures';
import { PatchOptions, smtpServerPatched } from './smtp-server-patches';

/**
 * MAIL and RCPT commands one session may have refused before it is closed
 * (421), as Postfix's smtpd_recipient_overshoot_limit. Each refusal costs
 * little, but a client that goes on after a thousand is not delivering mail.
 */
export const MAX_REFUSED_ADDRESSES_PER_SESSION = 1000;

/** One transaction, from MAIL on. */
interface Transaction {
  /** The envelope as it will be written: the client's order, duplicates kept (smtp-server merges them). */
  envelope: EnvelopeBuilder;
  /** The sender as written, for log lines. */
  from: string;
  /** The spool file while DATA is coming in. */
  file?: SpoolFile;
}

/** What benno-smtp keeps per connection; smtp-server keeps the session object for the connection's life. */
interface SessionState {
  tx?: Transaction;
  refusedAddresses: number;
  authFailures: number;
  /** Counted in perClient and connections, so that closing takes it out again. */
  counted: boolean;
  /** Aborted when the connection closes: its password checks still waiting are dropped. */
  closed: AbortController;
}

type Session = SMTPServerSession & { benno?: SessionState };

function state(session: Session): SessionState {
  return (session.benno ??= { refusedAddresses: 0, authFailures: 0, counted: false, closed: new AbortController() });
}

function smtpError(code: number, message: string): Error & { responseCode: number } {
  return Object.assign(new Error(message), { responseCode: code });
}

function clientOf(session: SMTPServerSession): string {
  return plainAddress(session.remoteAddress).address;
}

/** An address as written, for a log line; one that is too long to store is cut (it was refused). */
function loggedAddress(raw: Buffer): string {
  const written = writtenAddress(raw);
  if (written.length <= MAX_ADDRESS_OCTETS) return written.toString('utf8');
  let cut = 100;
  while (cut > 0 && (written[cut] & 0xc0) === 0x80) cut--; // not inside a UTF-8 sequence
  return `${written.subarray(0, cut).toString('utf8')}... (${written.length} bytes)`;
}

export interface ReceiverOptions {
  /**
   * How long close() lets transactions under way finish; then smtp-server
   * answers the clients still connected 421 and closes them (its closeTimeout).
   */
  shutdownGraceMs: number;
}

export class Receiver {
  private readonly server: SMTPServer;
  private readonly allowed: AllowList;
  private readonly auth?: AuthUsers;
  private readonly reserved: ReservedNames;
  /** Connections onConnect admitted and onClose has not yet seen end: per client address, and in all (for max_clients). */
  private readonly perClient = new Map<string, number>();
  private connections = 0;
  private readonly authFailures = new AuthFailures();
  private readonly throttle = new LogThrottle();

  /** The writer is the caller's, as the milter's is: it checks it before listen() and closes it after close(). */
  constructor(
    private readonly config: ReceiverConfig,
    private readonly writer: SpoolWriter,
    private readonly log: Logger,
    private readonly options: ReceiverOptions,
  ) {
    // Unpatched, smtp-server would rewrite addresses and offer AUTH before STARTTLS (see smtp-server-patches.ts).
    if (!smtpServerPatched()) {
      throw new Error('smtp-server is not patched: call patchSmtpServer() (src/receiver/smtp-server-patches.ts) before creating a Receiver');
    }
    this.allowed = new AllowList(config.allowedClients);
    this.reserved = reservedNames(config.names);
    if (config.authUsers) this.auth = AuthUsers.read(config.authUsers);
    const tls = config.tlsKey && config.tlsCert ? { key: fs.readFileSync(config.tlsKey), cert: fs.readFileSync(config.tlsCert) } : {};
    const serverOptions: SMTPServerOptions & PatchOptions = {
      name: config.hostname,
      banner: 'Benno MailArchiv receiver',
      secure: false,
      ...tls,
      disabledCommands: [...(tls.key ? [] : ['STARTTLS']), ...(this.auth ? [] : ['AUTH'])],
      authOptional: !this.auth,
      allowInsecureAuth: !tls.key,
      size: config.maxSize || undefined,
      // smtp-server 3.20 raised its default to 16 KB, for XOAUTH2 tokens; AUTH
      // here is PLAIN or LOGIN, and a command line is memory held per connection.
      maxCommandLength: 4096,
      // max_clients is checked in onConnect, with the per-client limit, where it can be logged.
      socketTimeout: config.timeout * 1000,
      firstCommandTimeout: Math.min(config.firstCommandTimeout, config.timeout) * 1000,
      onFirstCommandTimeout: (session) => {
        const client = clientOf(session);
        this.throttled('info', `idle ${client}`, `client ${client}: no command within ${Math.min(config.firstCommandTimeout, config.timeout)} s of the greeting; closed (first_command_timeout)`);
      },
      // smtp-server reads 0 as "the default" (30 s).
      closeTimeout: Math.max(1, options.shutdownGraceMs),
      logger: false,
      hideENHANCEDSTATUSCODES: false,
      // No reverse DNS lookup per connection: the archive logs addresses, and a
      // slow resolver would hold every session (about 100 ms each here).
      disableReverseLookup: true,
      onConnect: (session, cb) => this.onConnect(session, cb),
      onAuth: (auth, session, cb) => this.onAuth(auth, session, cb),
      onMailFrom: (address, session, cb) => this.onMailFrom(address, session, cb),
      onRcptTo: (address, session, cb) => this.onRcptTo(address, session, cb),
      onData: (stream, session, cb) => this.onData(stream, session as Session, cb),
      onClose: (session) => this.onClose(session),
    };
    this.server = new SMTPServer(serverOptions);
    // A failure to listen is listen()'s to report (one line, with the exit code); later errors are logged here.
    this.server.on('error', (err: Error) => {
      if (this.listening) this.log.warn(`smtp: ${err.message}`);
    });
    // Replies to pipelined commands are separate writes; with Nagle the second
    // waits for the client's delayed ACK (40 ms a message on loopback).
    // smtp-server does the same since 3.19.19, in a constructor the patch
    // checks do not cover: this keeps it whatever a later release does.
    this.server.server.on('connection', (socket: Socket) => socket.setNoDelay(true));
  }

  private listening = false;

  listen(): Promise<void> {
    const { host, port } = this.config.listen;
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      this.server.server.once('error', onError);
      this.server.listen(port, host, () => {
        this.server.server.off('error', onError);
        this.listening = true;
        resolve();
      });
    });
  }

  /** The port actually bound (for tests that listen on port 0). */
  get port(): number {
    const a = this.server.server.address();
    return a && typeof a === 'object' ? a.port : this.config.listen.port;
  }

  /**
   * Stops accepting and lets transactions finish for shutdownGraceMs; then
   * the clients still connected get 421 and are closed. Resolves once every
   * connection is gone (a client that does not hang up after the 421 is cut
   * off by smtp-server within 5 s).
   */
  close(): Promise<void> {
    const listener = this.server.server;
    let drained = false;
    // Registered before smtp-server's own listener, so it has run when smtp-server calls back after the last connection.
    const gone = new Promise<void>((resolve) =>
      listener.once('close', () => {
        drained = true;
        resolve();
      }),
    );
    return new Promise((resolve) => {
      // smtp-server calls back when the last connection is gone, or when closeTimeout has run out.
      this.server.close(() => {
        if (!drained) {
          this.log.warn(`shutdown: clients still connected after ${this.options.shutdownGraceMs / 1000}s, closing them; they keep their messages and retry`);
        }
        void gone.then(resolve);
      });
    });
  }

  /** A line a client can cause: at most one a minute per key (what and which client). */
  private throttled(level: 'warn' | 'info', key: string, line: string): void {
    const held = this.throttle.admit(key);
    if (held !== null) this.log[level](line + heldBackNote(held));
  }

  private onConnect(session: Session, cb: (err?: Error) => void): void {
    const client = clientOf(session);
    if (!this.allowed.allows(session.remoteAddress)) {
      this.throttled('warn', `refused ${client}`, `refused client ${client}: not in allowed_clients; add its network there if it should deliver to the archive`);
      return cb(smtpError(554, 'Client not allowed to deliver to this archive'));
    }
    const { maxClients, maxConnectionsPerClient } = this.config;
    if (this.connections >= maxClients) {
      this.throttled('warn', 'max_clients', `max_clients (${maxClients}) reached: refused client ${client} with 421; raise max_clients if this is normal load`);
      return cb(smtpError(421, `4.7.0 ${this.config.hostname} Too many connected clients, try again later`));
    }
    const open = this.perClient.get(client) ?? 0;
    if (open >= maxConnectionsPerClient) {
      this.throttled(
        'warn',
        `per-client ${client}`,
        `client ${client}: more than ${maxConnectionsPerClient} connections at once; refused with 421; raise max_connections_per_client if this client needs more`,
      );
      return cb(smtpError(421, `4.7.0 ${this.config.hostname} Too many connections from ${client}, try again later`));
    }
    this.perClient.set(client, open + 1);
    this.connections++;
    state(session).counted = true;
    cb();
  }

  private onClose(session: Session): void {
    const st = session.benno;
    if (!st) return;
    st.closed.abort();
    if (st.counted) {
      st.counted = false;
      this.connections--;
      const client = clientOf(session);
      const open = (this.perClient.get(client) ?? 1) - 1;
      if (open > 0) this.perClient.set(client, open);
      else this.perClient.delete(client);
    }
    // A client gone in the middle of DATA: its data stream never ends, so drop the file here.
    const file = st.tx?.file;
    if (!file) return;
    st.tx!.file = undefined;
    void file.discard();
    this.log.warn(`client ${clientOf(session)}: disconnected during DATA; nothing stored, the client keeps the message`);
  }

  private onAuth(auth: SMTPServerAuthentication, session: Session, cb: (err: Error | null | undefined, response?: SMTPServerAuthenticationResponse) => void): void {
    const users = this.auth!;
    const st = state(session);
    const client = clientOf(session);
    const user = auth.username ?? '';
    const urgent = this.authFailures.recent(client) === 0;
    users.verify(user, auth.password ?? '', { urgent, signal: st.closed.signal }).then(
      (ok) => {
        if (ok && auth.username !== undefined) return cb(null, { user: auth.username });
        st.authFailures++;
        const { count, delayMs } = this.authFailures.record(client);
        this.throttled(
          'warn',
          `auth ${client}`,
          `client ${client}: authentication as ${user} failed; ${count} failure${count === 1 ? '' : 's'} from this address in the last 15 minutes, answered after ${delayMs / 1000} s`,
        );
        const last = st.authFailures >= MAX_AUTH_FAILURES_PER_CONNECTION;
        const answer = last ? smtpError(421, '4.7.0 Too many failed authentication attempts') : smtpError(535, '5.7.8 Authentication credentials invalid');
        setTimeout(() => cb(answer), delayMs).unref();
      },
      (err: Error) => {
        if (err.name === 'AbortError') return; // the client went away while its check waited
        this.log.error(`client ${client}: checking a password failed: ${err.message}`);
        cb(smtpError(454, '4.7.0 Temporary authentication failure'));
      },
    );
  }

  private onMailFrom(address: SMTPServerAddress, session: Session, cb: (err?: Error) => void): void {
    const st = state(session);
    st.tx = undefined;
    // The patched parser read the command as latin1: these are the bytes the client sent.
    const raw = Buffer.from(address.address, 'latin1');
    const bad = unsafeCharacter(raw);
    if (bad) return this.refuse(session, 'sender', raw, `${bad} not allowed`, cb, smtpError(501, `5.1.7 Bad sender address syntax: ${bad} not allowed`));
    const envelope = new EnvelopeBuilder(this.config.names, this.config.maxRecipients);
    const problem = envelope.setSender(raw);
    if (problem) return this.refuse(session, 'sender', raw, problem.text, cb, smtpError(501, `5.1.7 Bad sender address syntax: ${problem.text}`));
    st.tx = { envelope, from: envelope.writtenSender.toString('utf8') };
    cb();
  }

  private onRcptTo(address: SMTPServerAddress, session: Session, cb: (err?: Error) => void): void {
    const tx = state(session).tx;
    // smtp-server answers RCPT before an accepted MAIL itself; this is for safety only.
    if (!tx) return cb(smtpError(503, '5.5.1 Error: need MAIL command'));
    const raw = Buffer.from(address.address, 'latin1');
    const bad = unsafeCharacter(raw);
    if (bad) return this.refuse(session, 'recipient', raw, `${bad} not allowed`, cb, smtpError(501, `5.1.3 Bad recipient address syntax: ${bad} not allowed`));
    const problem = tx.envelope.addRecipient(raw);
    if (problem) return this.refuse(session, 'recipient', raw, reasonFor(problem), cb, refusalFor(problem));
    // After this callback smtp-server's handler_RCPT adds the address to
    // session.envelope.rcptTo, or replaces an entry that differs only in
    // case: a second copy of every recipient, duplicates merged (3.19.7 also
    // searched the list one entry at a time, in quadratic time; 3.21 keeps an
    // index). The envelope is ours (above, in the client's order, duplicates
    // kept); smtp-server only needs the list not to be empty, for DATA.
    // Emptying it here leaves it one entry long, and 10,000 recipients cost
    // linear time whichever way smtp-server looks.
    session.envelope.rcptTo.length = 0;
    cb();
  }

  /** Answers a refused MAIL or RCPT, logs it (rate-limited), and closes a session that has had too many. */
  private refuse(session: Session, what: 'sender' | 'recipient', raw: Buffer, reason: string, cb: (err?: Error) => void, err: Error): void {
    const st = state(session);
    const client = clientOf(session);
    if (++st.refusedAddresses > MAX_REFUSED_ADDRESSES_PER_SESSION) {
      this.throttled('warn', `overshoot ${client}`, `client ${client}: more than ${MAX_REFUSED_ADDRESSES_PER_SESSION} addresses refused in one session; closed with 421`);
      return cb(smtpError(421, '4.7.0 Too many refused addresses, closing connection'));
    }
    this.throttled('warn', `address ${client}`, `client ${client}: refused ${what} <${loggedAddress(raw)}>: ${reason}`);
    cb(err);
  }

  private onData(stream: SMTPServerDataStream, session: Session, cb: (err?: Error | null, message?: string) => void): void {
    const started = process.hrtime.bigint();
    const tx = state(session).tx;
    if (!tx) {
      // smtp-server starts DATA only after an accepted RCPT; this is for safety only.
      stream.resume();
      return cb(smtpError(503, '5.5.1 Error: need MAIL command'));
    }
    const file = this.writer.begin();
    tx.file = file;
    if (this.config.envelopeHeader) file.write(tx.envelope.block());
    const guard = new HeaderGuard(this.reserved, true);
    // Every client that gets this far is trusted (allowed_clients, and AUTH where required): its leading gateway line stays.
    const gate = new GatewayGate(guard, this.config.gateway ?? null);
    const write = (bytes: Buffer) => {
      const wait = file.write(bytes);
      if (wait) {
        stream.pause();
        wait.then(() => stream.resume());
      }
    };
    let failed: Error | null = null;
    stream.on('data', (chunk: Buffer) => write(gate.push(chunk)));
    stream.on('error', (err: Error) => (failed = err));
    stream.on('end', () => {
      tx.file = undefined;
      state(session).tx = undefined;
      const client = clientOf(session);
      if (stream.sizeExceeded || failed) {
        void file.discard();
        if (stream.sizeExceeded) {
          this.log.warn(`client ${client}: message from=<${tx.from}> over max_size ${this.config.maxSize} bytes refused`);
          return cb(smtpError(552, `Message exceeds the archive's size limit of ${this.config.maxSize} bytes`));
        }
        return cb(smtpError(451, 'Message transfer failed, try again later'));
      }
      // A message without an empty line is all header section: what the guard still holds is its end.
      file.write(gate.end());
      file.commit().then(
        (done) => {
          const ms = Number(process.hrtime.bigint() - started) / 1e6;
          // One line per message, as the milter's: renamed=N says fields carrying our names became X-Untrusted-....
          const renamed = guard.renamed > 0 ? ` renamed=${guard.renamed} (fields carrying our envelope names)` : '';
          const gateway = gate.gateway ? ` gateway=${gate.gateway.toString('utf8')}` : '';
          this.log.info(
            `${done.name}: stored from=<${tx.from}> rcpts=${tx.envelope.recipientCount} size=${done.size} client=${client} ms=${ms.toFixed(1)}${gateway}${renamed}`,
          );
          cb(null, `Ok: stored as ${done.name}`);
        },
        (err: NodeJS.ErrnoException) => {
          this.log.error(
            `client ${client}: storing a message from=<${tx.from}> failed: ${err.code ? `${err.code}: ` : ''}${err.message}; ` +
              `answered 451, the client keeps the message; check free space and write access to ${this.writer.dir}`,
          );
          cb(smtpError(451, 'Message archiving failed, try again later'));
        },
      );
    });
  }
}

function reasonFor(problem: EnvelopeProblem): string {
  return problem.kind === 'too-many-recipients' ? `${problem.text} (max_recipients)` : problem.text;
}

/** RFC 5321 4.5.3.1.10: too many recipients is 452, and the client sends the rest in another transaction. */
function refusalFor(problem: EnvelopeProblem): Error {
  if (problem.kind === 'address-too-long') return smtpError(501, `5.1.3 Bad recipient address syntax: ${problem.text}`);
  return smtpError(452, '4.5.3 Too many recipients');
}
