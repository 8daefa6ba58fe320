// Real IMAP servers for the IMAP import tests (issue 11): a throwaway Dovecot
// or Cyrus with its own configuration, users, mail store, certificate and log
// under a temp directory, listening on free loopback ports (plain IMAP with
// STARTTLS, and IMAPS), stopped and removed afterwards with nothing left
// running. Needs root (both drop privileges themselves) and the packages
// scripts/test-deps installs; a missing server is an error, never a skip.
//
// What a session did is read from a protocol trace the server writes per
// user (sessions(user): the client's command lines), so a test can assert
// that a client never sent a FETCH. Both traces start after login, so LOGIN
// and its password are never in them.
// - Dovecot: rawlog_dir, one .in/.out file pair per session (the stream as
//   it travels: with COMPRESS it is deflated, hence compress is off by
//   default); and its log's logout line, imap_logout_format with
//   fetch_hdr_count/fetch_body_count (logouts(), waitForLogouts()).
// - Cyrus: telemetry, which imapd writes (decompressed) for every session of
//   a user whose directory configdirectory/log/USER exists. Cyrus logs only
//   to syslog, which a test cannot read, so logLines() has no logout lines.
//   An imapd serves several connections in turn into one file; sessions()
//   splits it at the line each connection starts with.

import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import * as tls from 'node:tls';
import { ImapFlow } from 'imapflow';
import { Program, ROOT } from './daemon';
import { removeTree, tempDir } from './fs';
import { freePort } from './net';

export interface ImapUser {
  user: string;
  password: string;
}

export interface TestCa {
  /** The CA a client trusts. */
  caFile: string;
  certFile: string;
  keyFile: string;
  /** A self-signed certificate for the same names, not from the CA: a client with caFile must refuse it. */
  wrongCertFile: string;
  wrongKeyFile: string;
}

let ca: TestCa | undefined;

/**
 * The test CA and certificates, made once per test process and removed at its
 * exit. Valid for 127.0.0.1 and localhost. World-readable: the servers read
 * the key after dropping privileges, and these keys protect nothing.
 */
export function testCa(): TestCa {
  if (ca) return ca;
  const dir = tempDir('benno-imap-ca-');
  fs.chmodSync(dir, 0o755);
  process.on('exit', () => removeTree(dir));
  const file = (name: string) => path.join(dir, name);
  const openssl = (args: string[]) => execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  const san = file('san.ext');
  fs.writeFileSync(san, 'subjectAltName = IP:127.0.0.1, DNS:localhost\nbasicConstraints = CA:FALSE\n');
  // EC keys: generated in milliseconds, where RSA takes noticeable time on a busy machine.
  const ecKey = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2'];
  openssl(['req', '-x509', ...ecKey, '-keyout', file('ca.key'), '-out', file('ca.pem'), '-subj', '/CN=Benno test CA']);
  openssl(['req', ...ecKey, '-keyout', file('server.key'), '-out', file('server.csr'), '-subj', '/CN=localhost']);
  openssl(['x509', '-req', '-in', file('server.csr'), '-CA', file('ca.pem'), '-CAkey', file('ca.key'), '-CAcreateserial',
    '-days', '2', '-extfile', san, '-out', file('server.pem')]);
  openssl(['req', '-x509', ...ecKey, '-keyout', file('wrong.key'), '-out', file('wrong.pem'), '-subj', '/CN=localhost',
    '-addext', 'subjectAltName = IP:127.0.0.1, DNS:localhost']);
  for (const name of fs.readdirSync(dir)) fs.chmodSync(file(name), 0o644);
  ca = { caFile: file('ca.pem'), certFile: file('server.pem'), keyFile: file('server.key'), wrongCertFile: file('wrong.pem'), wrongKeyFile: file('wrong.key') };
  return ca;
}

export interface ImapServerOptions {
  users: ImapUser[];
  /** Serve the certificate from testCa() (default) or the one not signed by it. */
  certificate?: 'ca' | 'wrong';
  /**
   * An administrator who may log in on any user's behalf with SASL PLAIN and
   * an authorization identity: a Dovecot master user, a Cyrus admin.
   */
  admin?: ImapUser;
  /** The SASL mechanisms offered (default plain and login): without plain, no admin login. */
  mechanisms?: ('plain' | 'login')[];
}

/** One session of a user, from the server's protocol trace. */
export interface TraceSession {
  /** The trace file, for failure messages. */
  file: string;
  /** Every line the client sent, tag included, literals excluded. */
  commands: string[];
}

/** Commands in a session that are a FETCH of any kind (FETCH, UID FETCH). */
export function fetchCommands(session: TraceSession): string[] {
  return session.commands.filter((c) => /^\S+ (UID )?FETCH /i.test(c));
}

interface Ports {
  imap: number;
  imaps: number;
  /** Dovecot with pop3: POP3 with STLS, and POP3S. */
  pop3?: number;
  pop3s?: number;
}

/** A port the server listens on, and how it greets once ready. */
interface Listener {
  port: number;
  tls: boolean;
  greeting: RegExp;
}

/** A command that changes a mailbox or sets \Seen; the sync and --verify must never send one. */
export function writingCommand(line: string): boolean {
  if (/^\S+ (UID )?(STORE|EXPUNGE|COPY|MOVE|APPEND|SELECT|CLOSE|CREATE|DELETE|RENAME|SETMETADATA)\b/i.test(line)) return true;
  const withoutPeek = line.replace(/BODY\.PEEK\[/gi, '').replace(/BINARY\.PEEK\[/gi, '');
  return /\bBODY\[|\bBINARY\[|\bRFC822(\.TEXT)?(?![.\w])/i.test(withoutPeek);
}

export abstract class ImapServer {
  abstract readonly kind: 'dovecot' | 'cyrus';
  /** The IMAP hierarchy separator this server uses. */
  abstract readonly separator: '/' | '.';
  readonly host = '127.0.0.1';
  readonly dir: string;
  readonly caFile: string;
  protected program?: Program;

  readonly users: ImapUser[];
  readonly admin?: ImapUser;
  protected readonly mechanisms: ('plain' | 'login')[];
  readonly imapPort: number;
  readonly imapsPort: number;
  protected readonly certificate: 'ca' | 'wrong';

  protected constructor(options: ImapServerOptions, ports: Ports) {
    this.users = options.users;
    this.admin = options.admin;
    this.mechanisms = options.mechanisms ?? ['plain', 'login'];
    this.certificate = options.certificate ?? 'ca';
    this.imapPort = ports.imap;
    this.imapsPort = ports.imaps;
    this.dir = tempDir(`benno-imapsrv-`);
    // Both servers run their processes as unprivileged users that must reach their files in here.
    fs.chmodSync(this.dir, 0o755);
    this.caFile = testCa().caFile;
  }

  protected get certFiles(): { cert: string; key: string } {
    const c = testCa();
    return this.certificate === 'wrong' ? { cert: c.wrongCertFile, key: c.wrongKeyFile } : { cert: c.certFile, key: c.keyFile };
  }

  /** The master process, leader of the server's process group. */
  get pid(): number {
    if (!this.program) throw new Error(`${this.kind} is not running`);
    return this.program.pid;
  }

  protected abstract writeConfig(): void;
  protected abstract spawn(): ChildProcess;
  /** The protocol trace of every session of user so far, oldest first. */
  abstract sessions(user: string): TraceSession[];

  /** Lines the server wrote to its stderr (Dovecot's whole log; Cyrus's master only reports fatal errors there). */
  logLines(): string[] {
    return this.program ? [...this.program.stderr] : [];
  }

  waitForLine(re: RegExp, timeoutMs = 20_000): Promise<string> {
    if (!this.program) throw new Error(`${this.kind} is not running`);
    return this.program.waitForLine(re, timeoutMs);
  }

  /** Every port the server listens on: IMAP and IMAPS, and what a subclass adds. */
  protected listeners(): Listener[] {
    return [
      { port: this.imapPort, tls: false, greeting: /^\* OK/ },
      { port: this.imapsPort, tls: true, greeting: /^\* OK/ },
    ];
  }

  /** Makes the server on free ports, starts it and waits until it greets on every one of them. */
  protected static async launch<T extends ImapServer>(make: (ports: Ports) => T, pop3 = false): Promise<T> {
    const server = make({ imap: await freePort(), imaps: await freePort(), ...(pop3 ? { pop3: await freePort(), pop3s: await freePort() } : {}) });
    try {
      server.writeConfig();
      server.program = new Program(server.spawn());
      running.add(server);
      await Promise.all(server.listeners().map((l) => server.waitForGreeting(l)));
    } catch (err) {
      await server.stop();
      throw err;
    }
    return server;
  }

  /** Ready means answering with a greeting on the port, not merely started. */
  private async waitForGreeting({ port, tls, greeting: ready }: Listener, timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let last: unknown;
    while (Date.now() < deadline) {
      const p = this.program!.proc;
      if (p.exitCode !== null || p.signalCode !== null) {
        throw new Error(`${this.kind} exited (${p.exitCode ?? p.signalCode}) while starting:\n${this.program!.log()}`);
      }
      try {
        if (ready.test(await greeting(this.host, port, tls))) return;
      } catch (err) {
        last = err;
      }
      // Between attempts at connecting to a port that is not open yet; bounded by the deadline.
      await new Promise((r) => setTimeout(r, 25));
    }
    throw new Error(`${this.kind} did not greet on port ${port} within ${timeoutMs} ms (${String(last)}):\n${this.program!.log()}`);
  }

  /** Stops the server and every process of its group, waits until they are gone, and removes its directory. */
  async stop(): Promise<void> {
    if (this.program) {
      const group = this.program.pid;
      const exited = await Promise.race([this.program.stop('SIGTERM'), new Promise<null>((r) => setTimeout(() => r(null), 10_000).unref())]);
      if (exited === null) await this.program.stop('SIGKILL');
      // Children may outlive the master for a moment (an imapd finishing a session).
      const deadline = Date.now() + 10_000;
      while (groupAlive(group)) {
        if (Date.now() > deadline) process.kill(-group, 'SIGKILL');
        await new Promise((r) => setTimeout(r, 25));
      }
      running.delete(this);
    }
    removeTree(this.dir);
  }

  protected mkdir(dir: string, owner?: string): string {
    fs.mkdirSync(dir, { recursive: true });
    if (owner) execFileSync('chown', [owner, dir]);
    return dir;
  }
}

async function greeting(host: string, port: number, secure: boolean): Promise<string> {
  return new Promise((resolve, reject) => {
    // The greeting proves the server is up; the certificate is checked by the tests that are about it.
    const socket = secure ? tls.connect({ host, port, rejectUnauthorized: false }) : net.connect(port, host);
    socket.setTimeout(5_000, () => socket.destroy(new Error('no greeting')));
    socket.once('error', reject);
    socket.once('data', (d: Buffer) => {
      socket.destroy();
      resolve(d.toString('latin1'));
    });
    // A server that accepts and closes without a word (a login process not up yet, or dying) must
    // not leave this waiting for ever: a plain socket ends without an error. After data or an
    // error this is a no-op.
    socket.once('close', () => reject(new Error('closed without a greeting')));
  });
}

function groupAlive(group: number): boolean {
  try {
    process.kill(-group, 0);
    return true;
  } catch {
    return false;
  }
}

/** Servers not stopped yet: killed when the test process exits anyway (a crash, a test that forgot stop()). */
const running = new Set<ImapServer>();
process.on('exit', () => {
  for (const server of running) {
    try {
      process.kill(-server.pid, 'SIGKILL');
    } catch {
      // already gone
    }
    removeTree(server.dir);
  }
});

/**
 * The sessions in the trace files of one user, files in the order the
 * sessions last wrote to them (their names carry pids, which wrap). A file
 * that split() cuts into sessions (a server process that serves one
 * connection after the other) names each as "FILE (session N)".
 */
function traceSessions(
  dir: string,
  isTrace: (name: string) => boolean,
  commands: (raw: Buffer) => string[],
  split?: (raw: Buffer) => Buffer[],
): TraceSession[] {
  return fs
    .readdirSync(dir)
    .filter(isTrace)
    .map((f) => ({ file: path.join(dir, f), mtime: fs.statSync(path.join(dir, f)).mtimeMs }))
    .sort((a, b) => a.mtime - b.mtime)
    .flatMap(({ file }) =>
      split
        ? split(fs.readFileSync(file)).map((raw, i) => ({ file: `${file} (session ${i + 1})`, commands: commands(raw) }))
        : [{ file, commands: commands(fs.readFileSync(file)) }],
    );
}

/**
 * A process group of its own: Cyrus's master signals its whole group when it
 * stops, which would take down every other server this test process started.
 */
const DAEMON_STDIO = { stdio: ['ignore', 'pipe', 'pipe'] as ['ignore', 'pipe', 'pipe'], detached: true };

function requireFile(file: string, fix: string): void {
  if (!fs.existsSync(file)) throw new Error(`${file} is missing: ${fix} (scripts/test-deps does it)`);
}

function requireRoot(what: string): void {
  if (process.getuid?.() !== 0) throw new Error(`real-${what} tests need root: ${what} starts as root and drops privileges`);
}

// ---------------------------------------------------------------------------

/** dovecot-imapd, unpacked by scripts/test-deps because it conflicts with cyrus-imapd. */
export const DOVECOT_IMAPD = path.join(ROOT, '.cache', 'dovecot-imapd');
/** dovecot-pop3d, unpacked beside it (installed, it would start a system POP3 server). */
export const DOVECOT_POP3D = path.join(ROOT, '.cache', 'dovecot-pop3d');

export interface DovecotLogout {
  user: string;
  /** Messages whose header, and whose body, the session fetched. */
  fetchHeaders: number;
  fetchBodies: number;
  line: string;
}

export interface DovecotOptions extends ImapServerOptions {
  /**
   * Offer COMPRESS=DEFLATE (imap_zlib). Off by default: rawlog records the
   * stream as it travels, so with COMPRESS sessions() sees only deflated
   * bytes; logouts() still counts fetches.
   */
  compress?: boolean;
  /** SPECIAL-USE folders by name, e.g. { Spam: '\\Junk' }: Dovecot takes them from its configuration (see createSpecialUseFolder). */
  specialUse?: Record<string, string>;
  /**
   * Serve POP3 as well, on two more ports: pop3Port (STLS) and pop3sPort
   * (POP3S), over the same mailboxes. A POP3 session's client lines are in
   * pop3Sessions(user), from rawlog, which starts after login (no PASS).
   */
  pop3?: boolean;
}

export class Dovecot extends ImapServer {
  readonly kind = 'dovecot';
  readonly separator = '/';

  private readonly compress: boolean;
  readonly specialUse: Readonly<Record<string, string>>;
  private readonly pop3Ports: { pop3: number; pop3s: number } | null;

  private constructor(options: DovecotOptions, ports: Ports) {
    super(options, ports);
    this.compress = options.compress ?? false;
    this.specialUse = options.specialUse ?? {};
    this.pop3Ports = ports.pop3 !== undefined && ports.pop3s !== undefined ? { pop3: ports.pop3, pop3s: ports.pop3s } : null;
  }

  static async start(options: DovecotOptions): Promise<Dovecot> {
    requireRoot('Dovecot');
    requireFile('/usr/sbin/dovecot', 'apt-get install dovecot-core');
    requireFile(path.join(DOVECOT_IMAPD, 'usr/lib/dovecot/imap'), 'apt-get download dovecot-imapd and dpkg-deb -x it into .cache/dovecot-imapd');
    if (options.pop3) requireFile(path.join(DOVECOT_POP3D, 'usr/lib/dovecot/pop3'), 'apt-get download dovecot-pop3d and dpkg-deb -x it into .cache/dovecot-pop3d');
    return ImapServer.launch((ports) => new Dovecot(options, ports), options.pop3);
  }

  /** POP3 with STLS; only with DovecotOptions.pop3. */
  get pop3Port(): number {
    if (!this.pop3Ports) throw new Error('this Dovecot was started without pop3');
    return this.pop3Ports.pop3;
  }

  /** POP3S (TLS from the first byte); only with DovecotOptions.pop3. */
  get pop3sPort(): number {
    if (!this.pop3Ports) throw new Error('this Dovecot was started without pop3');
    return this.pop3Ports.pop3s;
  }

  protected override listeners() {
    const pop3 = this.pop3Ports
      ? [
          { port: this.pop3Ports.pop3, tls: false, greeting: /^\+OK/ },
          { port: this.pop3Ports.pop3s, tls: true, greeting: /^\+OK/ },
        ]
      : [];
    return [...super.listeners(), ...pop3];
  }

  private rawlogDir(user: string, protocol: 'imap' | 'pop3' = 'imap'): string {
    return path.join(this.dir, protocol === 'imap' ? 'rawlog' : 'rawlog-pop3', user);
  }

  protected writeConfig(): void {
    const d = this.dir;
    const bin = path.join(DOVECOT_IMAPD, 'usr/lib/dovecot');
    // mail_plugin_dir is one directory: the core plugins and the unpacked imap ones side by side.
    const modules = this.mkdir(path.join(d, 'modules'));
    for (const from of ['/usr/lib/dovecot/modules', path.join(bin, 'modules')]) {
      for (const m of fs.readdirSync(from)) fs.symlinkSync(path.join(from, m), path.join(modules, m));
    }
    this.mkdir(path.join(d, 'mail'), 'nobody:nogroup');
    for (const u of this.users) this.mkdir(this.rawlogDir(u.user), 'nobody:nogroup');
    if (this.pop3Ports) for (const u of this.users) this.mkdir(this.rawlogDir(u.user, 'pop3'), 'nobody:nogroup');
    const pop3bin = path.join(DOVECOT_POP3D, 'usr/lib/dovecot');
    fs.writeFileSync(path.join(d, 'passwd'), this.users.map((u) => `${u.user}:{PLAIN}${u.password}\n`).join(''));
    // A master user: SASL PLAIN with the user as authorization identity, or LOGIN as USER*ADMIN.
    if (this.admin) fs.writeFileSync(path.join(d, 'master-passwd'), `${this.admin.user}:{PLAIN}${this.admin.password}\n`);
    const masterPassdb = this.admin ? ['auth_master_user_separator = *', 'passdb {', '  driver = passwd-file', `  args = ${d}/master-passwd`, '  master = yes', '}'] : [];
    const { cert, key } = this.certFiles;
    // Blocks over several lines: Dovecot rejects `name { key = value }` on one line.
    const service = (name: string, body = '', from = bin) => `service ${name} {\n  executable = ${path.join(from, name)}\n${body}}\n`;
    const listener = (name: string, port: number, ssl: boolean) =>
      `  inet_listener ${name} {\n    address = 127.0.0.1\n    port = ${port}\n    ssl = ${ssl ? 'yes' : 'no'}\n  }\n`;
    fs.writeFileSync(
      path.join(d, 'dovecot.conf'),
      [
        `protocols = imap${this.pop3Ports ? ' pop3' : ''}`,
        `base_dir = ${d}/run`,
        `state_dir = ${d}/state`,
        'log_path = /dev/stderr',
        'listen = 127.0.0.1',
        'ssl = yes',
        `ssl_cert = <${cert}`,
        `ssl_key = <${key}`,
        'disable_plaintext_auth = no',
        `auth_mechanisms = ${this.mechanisms.join(' ')}`,
        'default_internal_user = dovecot',
        'default_login_user = dovenull',
        'mail_location = maildir:~/Maildir',
        `mail_plugin_dir = ${modules}`,
        ...(this.compress ? ['mail_plugins = $mail_plugins zlib'] : []),
        ...masterPassdb,
        'passdb {',
        '  driver = passwd-file',
        `  args = ${d}/passwd`,
        '}',
        'userdb {',
        '  driver = static',
        `  args = uid=nobody gid=nogroup home=${d}/mail/%u`,
        '}',
        'namespace inbox {',
        '  inbox = yes',
        '  separator = /',
        ...Object.entries(this.specialUse).flatMap(([name, use]) => [`  mailbox "${name}" {`, `    special_use = ${use}`, '  }']),
        '}',
        'protocol imap {',
        ...(this.compress ? ['  mail_plugins = $mail_plugins imap_zlib'] : []),
        '  imap_logout_format = in=%i out=%o hdr_count=%{fetch_hdr_count} body_count=%{fetch_body_count}',
        `  rawlog_dir = ${d}/rawlog/%u`,
        '}',
        service('imap-login', listener('imap', this.imapPort, false) + listener('imaps', this.imapsPort, true)),
        service('imap'),
        service('imap-urlauth'),
        service('imap-urlauth-login'),
        service('imap-urlauth-worker'),
        service('imap-hibernate'),
        ...(this.pop3Ports
          ? [
              'protocol pop3 {',
              `  rawlog_dir = ${d}/rawlog-pop3/%u`,
              '  pop3_logout_format = retr=%r del=%d',
              '}',
              service('pop3-login', listener('pop3', this.pop3Ports.pop3, false) + listener('pop3s', this.pop3Ports.pop3s, true), pop3bin),
              service('pop3', '', pop3bin),
            ]
          : []),
      ].join('\n'),
    );
  }

  protected spawn(): ChildProcess {
    return spawn('/usr/sbin/dovecot', ['-F', '-c', path.join(this.dir, 'dovecot.conf')], DAEMON_STDIO);
  }

  sessions(user: string): TraceSession[] {
    return traceSessions(this.rawlogDir(user), (f) => f.endsWith('.in'), (raw) => commandLines(withoutTimestamps(raw)));
  }

  /** The client lines of every POP3 session of user so far, oldest first (after login: no USER or PASS). */
  pop3Sessions(user: string): TraceSession[] {
    const lines = (raw: Buffer) => withoutTimestamps(raw).toString('latin1').split(/\r?\n/).filter((l) => l !== '');
    return traceSessions(this.rawlogDir(user, 'pop3'), (f) => f.endsWith('.in'), lines);
  }

  /** The logout lines so far, with the fetch counts imap_logout_format puts in them. */
  logouts(): DovecotLogout[] {
    const out: DovecotLogout[] = [];
    for (const line of this.logLines()) {
      const m = /imap\(([^)]+)\).*hdr_count=(\d+) body_count=(\d+)/.exec(line);
      if (m) out.push({ user: m[1], fetchHeaders: Number(m[2]), fetchBodies: Number(m[3]), line });
    }
    return out;
  }

  /** Waits until user has logged out `count` times in all; Dovecot logs it just after the client saw BYE. */
  async waitForLogouts(user: string, count: number, timeoutMs = 10_000): Promise<DovecotLogout[]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const mine = this.logouts().filter((l) => l.user === user);
      if (mine.length >= count) return mine;
      if (Date.now() > deadline) throw new Error(`${user} logged out ${mine.length} times, not ${count}:\n${this.logLines().join('\n')}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}

/** rawlog starts every line with "seconds.microseconds "; literals included. */
function withoutTimestamps(raw: Buffer): Buffer {
  const parts: Buffer[] = [];
  let pos = 0;
  while (pos < raw.length) {
    const eol = raw.indexOf('\n', pos);
    const end = eol < 0 ? raw.length : eol + 1;
    const line = raw.subarray(pos, end);
    const stamp = /^\d+\.\d+ /.exec(line.subarray(0, 32).toString('latin1'));
    parts.push(stamp ? line.subarray(stamp[0].length) : line);
    pos = end;
  }
  return Buffer.concat(parts);
}

/**
 * Client lines of a raw IMAP stream: CRLF-separated, with literals
 * ({n} or {n+} at a line end) skipped so that APPENDed messages do not
 * show up as commands.
 */
function commandLines(raw: Buffer): string[] {
  const out: string[] = [];
  let pos = 0;
  let skip = 0;
  let current = '';
  while (pos < raw.length) {
    if (skip > 0) {
      const n = Math.min(skip, raw.length - pos);
      pos += n;
      skip -= n;
      continue;
    }
    const eol = raw.indexOf('\n', pos);
    const end = eol < 0 ? raw.length : eol + 1;
    const line = raw.subarray(pos, end).toString('latin1').replace(/\r?\n$/, '');
    pos = end;
    const literal = /\{(\d+)\+?\}$/.exec(line);
    if (literal) {
      current += line;
      skip = Number(literal[1]);
    } else {
      out.push(current + line);
      current = '';
    }
  }
  return out.filter((l) => l !== '');
}

// ---------------------------------------------------------------------------

export interface CyrusOptions extends ImapServerOptions {
  /** '/' with unixhierarchysep: yes; Cyrus's default is '.' (netnews style). */
  separator?: '/' | '.';
}

const CYRUS_BIN = '/usr/lib/cyrus/bin';

export class Cyrus extends ImapServer {
  readonly kind = 'cyrus';
  /** Must match saslpasswd2 -u, or every login fails with "authentication failure". */
  readonly servername = 'imap.test.invalid';

  readonly separator: '/' | '.';

  private constructor(options: CyrusOptions, ports: Ports) {
    super(options, ports);
    this.separator = options.separator ?? '.';
  }

  static async start(options: CyrusOptions): Promise<Cyrus> {
    requireRoot('Cyrus');
    requireFile(path.join(CYRUS_BIN, 'master'), 'apt-get install cyrus-imapd');
    requireFile('/usr/sbin/saslpasswd2', 'apt-get install sasl2-bin');
    return ImapServer.launch((ports) => new Cyrus(options, ports));
  }

  private get configDirectory(): string {
    return path.join(this.dir, 'config');
  }

  private telemetryDir(user: string): string {
    return path.join(this.configDirectory, 'log', user);
  }

  protected writeConfig(): void {
    const d = this.dir;
    // Debian has no mkimap and `cyrus makedirs` reads /etc/imapd.conf only: the directories are made here.
    const owner = 'cyrus:mail';
    for (const sub of ['', 'proc', 'socket', 'lock', 'log', 'db']) this.mkdir(path.join(this.configDirectory, sub), owner);
    for (const u of this.users) this.mkdir(this.telemetryDir(u.user), owner);
    const partition = this.mkdir(path.join(d, 'spool'), owner);
    const sasldb = path.join(d, 'sasldb2');
    for (const u of [...this.users, ...(this.admin ? [this.admin] : [])]) {
      execFileSync('/usr/sbin/saslpasswd2', ['-f', sasldb, '-p', '-c', '-u', this.servername, u.user], { input: u.password });
    }
    execFileSync('chown', [owner, sasldb]);
    const { cert, key } = this.certFiles;
    const conf: Record<string, string> = {
      configdirectory: this.configDirectory,
      'partition-default': partition,
      // Without it, Cyrus picks a partition for each new mailbox and so reseeds rand() with the
      // time in seconds, from which it makes the mailbox's unique id (Debian builds it without
      // libuuid): two sessions that create a mailbox in the same second (each user's INBOX on
      // first login) gave both the same id, hence the same files: users saw each other's mail.
      defaultpartition: 'default',
      servername: this.servername,
      sasl_pwcheck_method: 'auxprop',
      sasl_auxprop_plugin: 'sasldb',
      sasl_sasldb_path: sasldb,
      sasl_mech_list: this.mechanisms.join(' ').toUpperCase(),
      // An admin may authorize as any user (SASL PLAIN authzid): Cyrus's proxy policy lets admins
      // do it without proxyservers; once authorized, the session has the user's rights, not an admin's.
      ...(this.admin ? { admins: this.admin.user } : {}),
      allowplaintext: 'yes',
      // The default rewrites 8-bit header bytes to 'X': no byte fidelity without this.
      munge8bit: 'no',
      unixhierarchysep: this.separator === '/' ? 'yes' : 'no',
      // INBOX on first login, as a provisioned account would have it.
      autocreate_quota: '0',
      // A deleted folder is gone, not kept under DELETED.*, which an admin's LIST would show.
      delete_mode: 'immediate',
      tls_server_cert: cert,
      tls_server_key: key,
      syslog_prefix: `benno-test-cyrus-${this.imapPort}`,
    };
    const config = path.join(d, 'imapd.conf');
    fs.writeFileSync(config, Object.entries(conf).map(([k, v]) => `${k}: ${v}\n`).join(''));
    // master does not pass its -C on: without their own, the services would read /etc/imapd.conf.
    // -U 1: one session per imapd process, so that each session has a telemetry file of its
    // own (a reused process appends its next session to the same file).
    fs.writeFileSync(
      path.join(d, 'cyrus.conf'),
      [
        'START {',
        `  recover cmd="ctl_cyrusdb -C ${config} -r"`,
        '}',
        'SERVICES {',
        `  imap cmd="imapd -U 1 -C ${config}" listen="127.0.0.1:${this.imapPort}" prefork=0`,
        `  imaps cmd="imapd -s -U 1 -C ${config}" listen="127.0.0.1:${this.imapsPort}" prefork=0`,
        '}',
        'EVENTS {',
        '}',
        'DAEMON {',
        '}',
        '',
      ].join('\n'),
    );
  }

  protected spawn(): ChildProcess {
    const d = this.dir;
    return spawn(
      path.join(CYRUS_BIN, 'master'),
      ['-C', path.join(d, 'imapd.conf'), '-M', path.join(d, 'cyrus.conf'), '-p', path.join(d, 'master.pid'), '-D'],
      DAEMON_STDIO,
    );
  }

  sessions(user: string): TraceSession[] {
    return traceSessions(this.telemetryDir(user), () => true, telemetryCommands, telemetrySessions);
  }
}

/**
 * An imapd process serves many connections one after the other and appends
 * each to the same telemetry file, after a "---------- USER DATE" line.
 */
function telemetrySessions(raw: Buffer): Buffer[] {
  const starts = [0];
  for (let at = raw.indexOf('\n----------', 1); at >= 0; at = raw.indexOf('\n----------', at + 1)) starts.push(at + 1);
  return starts.map((start, i) => raw.subarray(start, starts[i + 1] ?? raw.length));
}

/**
 * Client lines of a Cyrus telemetry file. After a header line, each read
 * from the client starts with "<seconds<" and each write to it with
 * ">seconds>"; a chunk runs to the next marker. Message data could contain
 * such a marker; epoch seconds (10 digits) make that unlikely enough for tests.
 */
function telemetryCommands(raw: Buffer): string[] {
  const client: Buffer[] = [];
  const marker = /([<>])(\d{10,})\1/g;
  const text = raw.toString('latin1');
  let m: RegExpExecArray | null;
  let last: { dir: string; start: number } | undefined;
  while ((m = marker.exec(text))) {
    if (last?.dir === '<') client.push(raw.subarray(last.start, m.index));
    last = { dir: m[1], start: m.index + m[0].length };
  }
  if (last?.dir === '<') client.push(raw.subarray(last.start));
  return commandLines(Buffer.concat(client));
}

// ---------------------------------------------------------------------------
// A user's view: imapflow as the mail client that fills and reads mailboxes.

export interface ConnectOptions {
  /** STARTTLS on the plain port (default), or IMAPS. */
  tls?: 'starttls' | 'imaps';
  /** Trusted CA (default: the server's test CA). */
  caFile?: string;
}

export async function connect(server: ImapServer, user: ImapUser, options: ConnectOptions = {}): Promise<ImapFlow> {
  const imaps = options.tls === 'imaps';
  const client = new ImapFlow({
    host: server.host,
    port: imaps ? server.imapsPort : server.imapPort,
    secure: imaps,
    doSTARTTLS: imaps ? undefined : true,
    tls: { ca: fs.readFileSync(options.caFile ?? server.caFile), rejectUnauthorized: true },
    auth: { user: user.user, pass: user.password },
    logger: false,
  });
  // An unhandled 'error' event would end the test process instead of failing one test.
  client.on('error', () => undefined);
  await client.connect();
  return client;
}

/** Runs fn with a logged-in client, then logs out. */
export async function withClient<T>(server: ImapServer, user: ImapUser, fn: (c: ImapFlow) => Promise<T>, options?: ConnectOptions): Promise<T> {
  const client = await connect(server, user, options);
  try {
    return await fn(client);
  } finally {
    await client.logout().catch(() => client.close());
  }
}

/** The server's name of a folder given as its parts, e.g. ['Archiv', '2024', 'Q1'], in the personal namespace. */
export function folderName(client: ImapFlow, parts: string[]): string {
  // Set by imapflow after login (NAMESPACE), though its type declarations do not say so.
  const ns = (client as unknown as { namespace?: { prefix?: string; delimiter?: string } }).namespace;
  const delimiter = ns?.delimiter ?? '/';
  return (ns?.prefix ?? '') + parts.join(delimiter);
}

/** Creates a folder and every parent it needs (as a client does when a user makes a folder tree). */
export async function createFolder(client: ImapFlow, parts: string[]): Promise<string> {
  for (let i = 1; i <= parts.length; i++) {
    const name = folderName(client, parts.slice(0, i));
    const exists = (await client.list()).some((f) => f.path === name);
    if (!exists) await client.mailboxCreate(name);
  }
  return folderName(client, parts);
}

/**
 * Creates a top-level folder with a SPECIAL-USE attribute such as \\Junk.
 * Cyrus sets it by METADATA (/private/specialuse); Dovecot only from its
 * configuration, so its server must have been started with the folder in
 * DovecotOptions.specialUse.
 */
export async function createSpecialUseFolder(server: ImapServer, client: ImapFlow, name: string, use: string): Promise<string> {
  if (server instanceof Dovecot && server.specialUse[name] !== use) {
    throw new Error(`Dovecot marks ${name} ${use} only when started with it in DovecotOptions.specialUse`);
  }
  const folder = await createFolder(client, [name]);
  if (server.kind === 'cyrus') {
    // imapflow has no SETMETADATA; exec() sends it as it is (an internal, undeclared method).
    const raw = client as unknown as { exec(command: string, attributes: unknown[]): Promise<{ next(): void }> };
    const res = await raw.exec('SETMETADATA', [{ type: 'STRING', value: folder }, [{ type: 'STRING', value: '/private/specialuse' }, { type: 'STRING', value: use }]]);
    res.next();
  }
  return folder;
}

/** APPENDs exactly these bytes with these flags; returns the new message's UID and the folder's UIDVALIDITY. */
export async function append(client: ImapFlow, folder: string, message: Buffer, flags: string[] = []): Promise<{ uid: number; uidValidity: bigint }> {
  const res = await client.append(folder, message, flags).catch((err: Error & { response?: string }) => {
    // imapflow says only "Command failed"; the reason is in the server's response.
    throw new Error(`APPEND to ${folder} refused: ${err.response ?? err.message}`);
  });
  if (!res || typeof res === 'boolean' || res.uid === undefined || res.uidValidity === undefined) {
    throw new Error(`APPEND to ${folder} gave no APPENDUID: ${JSON.stringify(res)}`);
  }
  return { uid: res.uid, uidValidity: res.uidValidity };
}

/** Deletes and recreates a folder: the cheap way to a new UIDVALIDITY, on both servers. */
export async function recreateFolder(client: ImapFlow, folder: string): Promise<void> {
  await client.mailboxDelete(folder);
  await client.mailboxCreate(folder);
}

/** Expunges one message by UID. */
export async function expunge(client: ImapFlow, folder: string, uid: number): Promise<void> {
  const lock = await client.getMailboxLock(folder);
  try {
    await client.messageDelete(String(uid), { uid: true });
  } finally {
    lock.release();
  }
}

export interface StoredMessage {
  uid: number;
  flags: string[];
  /** BODY.PEEK[]: the bytes exactly as the server returns them. */
  source: Buffer;
}

/** Every message of a folder, read-only (EXAMINE, BODY.PEEK[]), in UID order. */
export async function readFolder(client: ImapFlow, folder: string): Promise<StoredMessage[]> {
  const out: StoredMessage[] = [];
  await client.mailboxOpen(folder, { readOnly: true });
  try {
    for await (const m of client.fetch('1:*', { uid: true, flags: true, source: true }, { uid: true })) {
      // \Recent belongs to the session that first saw a message (Dovecot), not to the message.
      const flags = [...(m.flags ?? [])].filter((f) => f !== '\\Recent').sort();
      out.push({ uid: m.uid, flags, source: m.source ?? Buffer.alloc(0) });
    }
  } finally {
    await client.mailboxClose();
  }
  return out.sort((a, b) => a.uid - b.uid);
}

/** UIDVALIDITY, UIDNEXT and message count of a folder, by STATUS (opens nothing). */
export async function folderStatus(client: ImapFlow, folder: string): Promise<{ uidValidity: bigint; uidNext: number; messages: number }> {
  const s = await client.status(folder, { uidValidity: true, uidNext: true, messages: true });
  return { uidValidity: BigInt(s.uidValidity ?? 0), uidNext: s.uidNext ?? 0, messages: s.messages ?? 0 };
}

/**
 * A message that breaks careless code: 8-bit header bytes, an 8-bit
 * "binary" part, a line of a single dot, a 1,000-character line, no final
 * newline and, with bareLf, a bare LF. Neither server hands a bare LF back:
 * Cyrus refuses the APPEND ("Message contains bare newlines"), Dovecot
 * returns CRLF in its place (asCrlf). No NUL byte: IMAP forbids it in a
 * plain literal.
 */
export function nastyMessage(options: { bareLf?: boolean } = {}): Buffer {
  const binary = Buffer.alloc(256);
  for (let i = 0; i < binary.length; i++) binary[i] = 0x80 + (i % 128);
  return Buffer.concat([
    Buffer.from('From: J\xfcrgen M\xfcller <juergen@example.test>\r\n', 'latin1'),
    Buffer.from('To: user@example.test\r\nSubject: Gr\xc3\xbc\xc3\x9fe \xe4\xf6\xfc\r\n', 'latin1'),
    Buffer.from('Message-ID: <nasty@example.test>\r\nMIME-Version: 1.0\r\n', 'latin1'),
    Buffer.from('Content-Type: multipart/mixed; boundary="b"\r\n\r\n', 'latin1'),
    Buffer.from(`--b\r\nContent-Type: text/plain; charset=iso-8859-1\r\n\r\n${options.bareLf ? 'bare LF follows\n' : ''}then a dot line:\r\n.\r\n`, 'latin1'),
    Buffer.from('x'.repeat(1000) + '\r\n', 'latin1'),
    Buffer.from('--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n', 'latin1'),
    binary,
    Buffer.from('\r\n--b--\r\nno final newline', 'latin1'),
  ]);
}

/** The message with every bare LF made CRLF, as Dovecot returns it. */
export function asCrlf(message: Buffer): Buffer {
  return Buffer.from(message.toString('latin1').replace(/(?<!\r)\n/g, '\r\n'), 'latin1');
}
