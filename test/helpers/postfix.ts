// A real Postfix for tests and benchmarks: its own throwaway configuration,
// queue and log under a temp directory, listening on a free loopback port,
// stopped and removed afterwards. Needs root (Postfix's master starts as root)
// and the Debian postfix package; a missing Postfix is an error, never a skip.

import { execFile, execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { Program, startMilter } from './daemon';
import { tempDir } from './fs';
import { freePort } from './net';

const execFileP = promisify(execFile);

export interface PostfixOptions {
  /** Loopback port of the smtpd service; a free one by default (Postfix.port says which). */
  port?: number;
  /** Milter endpoint in Postfix syntax (inet:127.0.0.1:N, unix:/path), or none. */
  milter?: string;
  /** Put every message on hold, so the test can read what Postfix queued. */
  hold?: boolean;
  /** More main.cf settings. */
  main?: Record<string, string>;
  /** smtpd process limit (master.cf maxproc). */
  smtpdProcesses?: number;
  /** More master.cf lines (a second smtpd, the smtp client a content_filter needs). */
  services?: string[];
}

export function requirePostfix(): void {
  if (process.getuid?.() !== 0) throw new Error('real-Postfix tests need root: Postfix master starts as root');
  for (const bin of ['/usr/sbin/postfix', '/usr/sbin/postcat', '/usr/sbin/sendmail']) {
    if (!fs.existsSync(bin)) throw new Error(`${bin} is missing: apt-get install postfix (scripts/test-deps does it)`);
  }
}

export class Postfix {
  readonly dir: string;
  readonly configDir: string;
  readonly queueDir: string;
  readonly maillog: string;
  private constructor(readonly options: PostfixOptions & { port: number }) {
    this.dir = tempDir('benno-postfix-');
    this.configDir = path.join(this.dir, 'etc');
    this.queueDir = path.join(this.dir, 'queue');
    this.maillog = path.join(this.dir, 'maillog');
  }

  static async start(options: PostfixOptions = {}): Promise<Postfix> {
    requirePostfix();
    const pf = new Postfix({ ...options, port: options.port ?? (await freePort()) });
    try {
      pf.writeConfig();
      await pf.postfix('start');
    } catch (err) {
      await pf.stop();
      throw err;
    }
    return pf;
  }

  /** Where its smtpd listens on 127.0.0.1. */
  get port(): number {
    return this.options.port;
  }

  private writeConfig(): void {
    const o = this.options;
    fs.chmodSync(this.dir, 0o755); // Postfix's daemons run as user postfix
    fs.mkdirSync(this.configDir);
    fs.mkdirSync(this.queueDir);
    const data = path.join(this.dir, 'data');
    fs.mkdirSync(data);
    execFileSync('chown', ['postfix', data]);
    const main: Record<string, string> = {
      compatibility_level: '3.6',
      queue_directory: this.queueDir,
      data_directory: data,
      mail_owner: 'postfix',
      setgid_group: 'postdrop',
      inet_interfaces: '127.0.0.1',
      inet_protocols: 'ipv4',
      myhostname: 'postfix.test.invalid',
      mydestination: '',
      mynetworks: '127.0.0.0/8',
      relay_domains: '',
      smtpd_recipient_restrictions: 'permit_mynetworks, reject',
      default_transport: 'discard',
      local_transport: 'discard',
      maillog_file_prefixes: this.dir,
      maillog_file: this.maillog,
      smtputf8_enable: 'yes',
      message_size_limit: String(200 * 1024 * 1024),
      // The tests send a burst from one address; Postfix must not slow it down.
      smtpd_client_connection_rate_limit: '0',
      smtpd_error_sleep_time: '0',
      ...(o.milter ? { smtpd_milters: o.milter, non_smtpd_milters: o.milter, milter_default_action: 'tempfail' } : {}),
      ...(o.hold ? { header_checks: `regexp:${path.join(this.configDir, 'hold')}` } : {}),
      ...o.main,
    };
    fs.writeFileSync(path.join(this.configDir, 'main.cf'), Object.entries(main).map(([k, v]) => `${k} = ${v}\n`).join(''));
    if (o.hold) fs.writeFileSync(path.join(this.configDir, 'hold'), '/^/ HOLD\n');
    const services = [
      `127.0.0.1:${o.port} inet n - n - ${o.smtpdProcesses ?? 100} smtpd`,
      'pickup unix n - n 60 1 pickup',
      'cleanup unix n - n - 0 cleanup',
      'qmgr unix n - n 300 1 qmgr',
      'rewrite unix - - n - - trivial-rewrite',
      'bounce unix - - n - 0 bounce',
      'defer unix - - n - 0 bounce',
      'trace unix - - n - 0 bounce',
      'verify unix - - n - 1 verify',
      'flush unix n - n 1000? 0 flush',
      'proxymap unix - - n - - proxymap',
      'showq unix n - n - - showq',
      'error unix - - n - - error',
      'retry unix - - n - - error',
      'discard unix - - n - - discard',
      'anvil unix - - n - 1 anvil',
      'scache unix - - n - 1 scache',
      'postlog unix-dgram n - n - 1 postlogd',
      ...(o.services ?? []),
    ];
    fs.writeFileSync(path.join(this.configDir, 'master.cf'), services.join('\n') + '\n');
  }

  /** Runs the postfix command for this instance; its errors name the log. */
  async postfix(command: string): Promise<void> {
    try {
      await execFileP('/usr/sbin/postfix', ['-c', this.configDir, command]);
    } catch (err) {
      throw new Error(`postfix ${command} failed: ${(err as Error).message}\n${this.log()}`);
    }
  }

  log(): string {
    try {
      return fs.readFileSync(this.maillog, 'utf8');
    } catch {
      return '(no maillog yet)';
    }
  }

  /** Waits until the maillog has a line matching re (Postfix logs through postlogd, a little later). */
  async waitForLog(re: RegExp, timeoutMs = 20_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const line = this.log().split('\n').find((l) => re.test(l));
      if (line) return line;
      if (Date.now() > deadline) throw new Error(`no maillog line ${re} within ${timeoutMs} ms:\n${this.log()}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Header and body of a queued (held) message, as postcat shows it: LF line ends. */
  async queued(queueId: string): Promise<Buffer> {
    const { stdout } = await execFileP('/usr/sbin/postcat', ['-c', this.configDir, '-bh', '-q', queueId], {
      encoding: 'buffer',
      maxBuffer: 512 * 1024 * 1024,
    });
    return stdout;
  }

  /** Submits through Postfix's sendmail(1): pickup → cleanup → non_smtpd_milters. */
  async sendmail(args: string[], input: Buffer): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      const p = spawn('/usr/sbin/sendmail', ['-C', this.configDir, ...args], { stdio: ['pipe', 'inherit', 'pipe'] });
      let err = '';
      p.stderr.on('data', (d: Buffer) => (err += d.toString()));
      p.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`sendmail exited ${code}: ${err}`))));
      p.stdin.end(input);
    });
  }

  /**
   * Wakes the pickup daemon (it otherwise scans the maildrop once a minute).
   * Best effort: postdrop wakes it too, and postkick fails while pickup is
   * being restarted (it exits after each batch).
   */
  async kickPickup(): Promise<void> {
    await execFileP('/usr/sbin/postkick', ['-c', this.configDir, 'public', 'pickup', 'W']).catch(() => undefined);
  }

  /** Files in a queue directory (maildrop, incoming, hold, deferred, ...). */
  queueFiles(queue: string): string[] {
    const out: string[] = [];
    const walk = (d: string) => {
      for (const e of fs.readdirSync(d, { withFileTypes: true })) {
        if (e.isDirectory()) walk(path.join(d, e.name));
        else out.push(e.name);
      }
    };
    walk(path.join(this.queueDir, queue));
    return out;
  }

  async stop(): Promise<void> {
    const pidFile = path.join(this.queueDir, 'pid', 'master.pid');
    let pid = 0;
    try {
      pid = Number(fs.readFileSync(pidFile, 'ascii').trim());
    } catch {
      // never started
    }
    await execFileP('/usr/sbin/postfix', ['-c', this.configDir, 'stop']).catch(() => undefined);
    const deadline = Date.now() + 15_000;
    while (pid > 0 && alive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    if (pid > 0 && alive(pid)) await execFileP('/usr/sbin/postfix', ['-c', this.configDir, 'abort']).catch(() => undefined);
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** benno-milter on a free loopback port, spooling to `spool`, and a Postfix that passes every message to it. */
export async function milterBehindPostfix(
  spool: string,
  options: Omit<PostfixOptions, 'milter'> = {},
): Promise<{ milter: Program; postfix: Postfix; milterPort: number }> {
  const milterPort = await freePort();
  const milter = await startMilter(['-p', `inet:${milterPort}@127.0.0.1`, '-o', spool]);
  try {
    return { milter, postfix: await Postfix.start({ ...options, milter: `inet:127.0.0.1:${milterPort}` }), milterPort };
  } catch (err) {
    await milter.stop();
    throw err;
  }
}

/** Runs swaks; returns its transcript and exit code (non-zero when the server refused). */
export async function swaks(args: string[]): Promise<{ code: number; output: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn('swaks', ['--suppress-data', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    p.stdout.on('data', (d: Buffer) => (output += d.toString('latin1')));
    p.stderr.on('data', (d: Buffer) => (output += d.toString('latin1')));
    p.on('error', reject);
    // 'close', not 'exit': only then has all of the output been read
    p.on('close', (code) => resolve({ code: code ?? -1, output }));
  });
}

/** The queue id from "250 2.0.0 Ok: queued as XXXX". */
export function queuedAs(transcript: string): string {
  const m = /queued as ([0-9A-Za-z]+)/.exec(transcript);
  if (!m) throw new Error(`message not accepted:\n${transcript}`);
  return m[1];
}
