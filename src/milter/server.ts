// Listens on a milter socket, runs one MilterSession per connection, and
// shuts down gracefully: stop accepting, let messages in progress finish,
// then close what is left.

import * as fs from 'node:fs';
import * as net from 'node:net';
import { AllowList, Subnet, plainAddress } from '../ops/allowlist';
import { LogThrottle, heldBackNote } from '../ops/throttle';
import { MessageHandler, MilterOptions, MilterSession, SessionLogger } from './session';
import { SocketSpec, formatSocketSpec } from './socket-spec';

/** What an MTA does when the milter refuses it, named for the operator of either MTA. */
const FAILED_MILTER_ACTION = "its failed-milter action: Postfix's milter_default_action, Sendmail's F= flag";

export interface ServerOptions {
  /** Most connections at once; beyond it new ones are closed (the MTA applies its failed-milter action). */
  maxConnections: number;
  /** Mode of a unix socket; 0660 lets the MTA's group connect. */
  socketMode: number;
  /** TCP clients allowed to connect (empty: everyone). */
  allow?: Subnet[];
  /** Most connections at once from one TCP client address (0: no limit). */
  maxPerClient?: number;
}

/** One warning per this many milliseconds for each kind of refusal and client, so a flood cannot flood the log. */
const WARN_EVERY_MS = 10_000;

export class MilterServer {
  private readonly server: net.Server;
  private readonly sessions = new Set<MilterSession>();
  /** Open connections per TCP client address. */
  private readonly perClient = new Map<string, number>();
  private spec?: SocketSpec;
  private readonly throttle = new LogThrottle(WARN_EVERY_MS);
  private sweeper?: NodeJS.Timeout;
  private allowed?: AllowList;

  private readonly milter: MilterOptions;

  constructor(
    milter: MilterOptions,
    private readonly newHandler: (session: MilterSession) => MessageHandler,
    private readonly log: SessionLogger,
    private readonly options: ServerOptions,
  ) {
    this.milter = { ...milter, replyCache: new Map() };
    if (options.allow && options.allow.length > 0) this.allowed = new AllowList(options.allow);
    this.server = net.createServer((socket) => this.accept(socket));
    const shortest = Math.min(...[milter.timeoutMs, milter.negotiationTimeoutMs ?? 0].filter((t) => t > 0));
    if (Number.isFinite(shortest)) {
      const every = Math.min(1000, Math.max(50, shortest / 4));
      this.sweeper = setInterval(() => {
        const now = Date.now();
        for (const s of this.sessions) s.checkIdle(now);
      }, every);
      this.sweeper.unref();
    }
  }

  get connectionCount(): number {
    return this.sessions.size;
  }

  get address(): string {
    return this.spec ? formatSocketSpec(this.spec) : '(not listening)';
  }

  /** Port actually bound (useful with port 0 in tests). */
  get port(): number | undefined {
    const a = this.server.address();
    return a && typeof a === 'object' ? a.port : undefined;
  }

  async listen(spec: SocketSpec): Promise<void> {
    if (spec.kind === 'unix') {
      await removeStaleSocket(spec.path);
      // Bind with the final mode already in place: no moment in which the
      // socket is open to everyone, or closed to the MTA.
      const old = process.umask(~this.options.socketMode & 0o777);
      try {
        await this.bind({ path: spec.path });
      } finally {
        process.umask(old);
      }
      fs.chmodSync(spec.path, this.options.socketMode);
    } else {
      await this.bind({ host: spec.host, port: spec.port, ipv6Only: spec.family === 6 && spec.host !== '::' });
    }
    this.spec = spec;
  }

  private bind(options: net.ListenOptions): Promise<void> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      this.server.once('error', onError);
      this.server.listen({ ...options, backlog: 511 }, () => {
        this.server.off('error', onError);
        resolve();
      });
    });
  }

  private accept(socket: net.Socket): void {
    const client = socket.remoteAddress ? plainAddress(socket.remoteAddress).address : null;
    if (this.allowed && client !== null && !this.allowed.allows(socket.remoteAddress!)) {
      this.warn(`allow ${client}`, `refused milter connection from ${client}: not in --allow`);
      socket.destroy();
      return;
    }
    const perClient = this.options.maxPerClient ?? 0;
    if (client !== null && perClient > 0 && (this.perClient.get(client) ?? 0) >= perClient) {
      this.warn(
        `per-client ${client}`,
        `client ${client} has ${perClient} milter connections open: refusing more from it (the MTA applies ${FAILED_MILTER_ACTION}); ` +
          'raise --max-connections-per-client if this MTA runs more smtpd and cleanup processes (Postfix) or SMTP sessions (Sendmail) at once',
      );
      socket.destroy();
      return;
    }
    if (this.sessions.size >= this.options.maxConnections) {
      this.warn(
        'max-connections',
        `connection limit of ${this.options.maxConnections} reached: refusing milter connections ` +
          `(the MTA applies ${FAILED_MILTER_ACTION}); raise --max-connections if this is normal load`,
      );
      socket.destroy();
      return;
    }
    const session = new MilterSession(socket, this.milter, this.newHandler, this.log);
    this.sessions.add(session);
    if (client !== null) this.perClient.set(client, (this.perClient.get(client) ?? 0) + 1);
    session.onClosed = (s) => {
      this.sessions.delete(s);
      if (client === null) return;
      const left = this.perClient.get(client)! - 1;
      if (left > 0) this.perClient.set(client, left);
      else this.perClient.delete(client);
    };
  }

  /** A warning a peer can cause: at most one per WARN_EVERY_MS for each key. */
  private warn(key: string, message: string): void {
    const held = this.throttle.admit(key);
    if (held !== null) this.log.warn(message + heldBackNote(held));
  }

  /**
   * Stops accepting, lets messages in progress end (up to graceMs), then
   * closes every connection. A unix socket file is removed.
   */
  async close(graceMs: number): Promise<void> {
    clearInterval(this.sweeper);
    const stopped = new Promise<void>((resolve) => this.server.close(() => resolve()));
    const graceful = Promise.all([...this.sessions].map((s) => s.shutdown()));
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), graceMs);
    });
    if ((await Promise.race([graceful, timeout])) === 'timeout') {
      const busy = [...this.sessions].filter((s) => s.messageInProgress).length;
      this.log.warn(
        `shutdown: ${this.sessions.size} connection(s) still open after ${graceMs / 1000}s ` +
          `(${busy} with a message in progress), closing them; the MTA keeps those messages and retries`,
      );
      for (const s of this.sessions) s.destroy();
      await graceful;
    }
    clearTimeout(timer);
    await stopped;
  }
}

/**
 * A socket file left by a crashed instance is removed; one that still
 * answers belongs to a running instance, and we refuse to steal it.
 */
async function removeStaleSocket(path: string): Promise<void> {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  if (!st.isSocket()) throw new Error(`${path} exists and is not a socket; not replacing it`);
  const alive = await new Promise<boolean>((resolve) => {
    const probe = net.connect({ path });
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
  if (alive) throw new Error(`another process is listening on ${path}`);
  fs.unlinkSync(path);
}
