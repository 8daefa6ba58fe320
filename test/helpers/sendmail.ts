// A real Sendmail for tests: Debian 12's sendmail-bin, which conflicts with
// Postfix as a package, runs in a Debian root of its own (made once by
// scripts/sendmail-root under .cache/sendmail-root/) with chroot, sharing the
// host's loopback, so that it reaches benno-milter running on the host. Each
// instance gets a throwaway sendmail.mc/.cf, queue and delivery directory in
// that root, listens on a free loopback port and works without DNS. Needs
// root; a missing root is made (debootstrap), never a reason to skip.

import { ChildProcess, execFile, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { ROOT } from './daemon';
import { freePort } from './net';

const execFileP = promisify(execFile);

/** The host name Sendmail gets (its own UTS namespace), resolved from the root's /etc/hosts. */
export const SENDMAIL_HOSTNAME = 'sendmail.test.invalid';

/** The INPUT_MAIL_FILTER timeouts README.md recommends, so that the test runs with them. */
export const RECOMMENDED_TIMEOUTS = 'C:10s;S:1m;R:1m;E:5m';

let rootMade: Promise<string> | undefined;

/** The Debian root with Sendmail, made on first use (about half a minute to a few minutes, depending on the mirror). */
export function sendmailRoot(): Promise<string> {
  rootMade ??= (async () => {
    if (process.getuid?.() !== 0) throw new Error('the Sendmail tests need root: they chroot into a Debian root with Sendmail');
    try {
      const { stdout } = await execFileP(path.join(ROOT, 'scripts', 'sendmail-root'), [], { cwd: ROOT, timeout: 20 * 60_000 });
      return stdout.trim().split('\n').pop()!;
    } catch (err) {
      const e = err as Error & { stderr?: string };
      throw new Error(`scripts/sendmail-root could not make the Sendmail root: ${e.stderr || e.message}`);
    }
  })();
  return rootMade;
}

export interface SendmailOptions {
  /** benno-milter's TCP port on 127.0.0.1 (nothing need listen there). */
  milterPort?: number;
  /** Or its socket as Sendmail's S= names it, e.g. unix:/run/x/benno-milter.sock (a path inside the root). */
  socket?: string;
  /** F= of INPUT_MAIL_FILTER (default T: temporary failure when the milter fails). */
  flags?: string;
  /** T= of INPUT_MAIL_FILTER. */
  timeouts?: string;
  /** Keep the daemon's syslog lines in maillog(), as rsyslog writes them to mail.log (its /dev/log bound to a receiver of this instance). */
  syslog?: boolean;
}

/**
 * A syslog receiver in the manner of rsyslog: each datagram
 * "<PRI>Mmm dd hh:mm:ss tag[pid]: msg" becomes the line
 * "Mmm dd hh:mm:ss HOST tag[pid]: msg" (control characters written as
 * #ooo, as rsyslog does). Prints "ready" once bound.
 */
const SYSLOG_RECEIVER = `
import os, re, socket, sys
sock, out, host = sys.argv[1], sys.argv[2], sys.argv[3].encode()
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sock)
os.chmod(sock, 0o666)
f = open(out, 'ab', buffering=0)
print('ready', flush=True)
while True:
    d = s.recv(65536)
    m = re.match(rb'<\\d+>(\\w{3} [ \\d]\\d \\d\\d:\\d\\d:\\d\\d) (.*)', d, re.S)
    if m:
        msg = re.sub(rb'[\\x00-\\x1f]', lambda c: b'#%03o' % c.group()[0], m.group(2).rstrip(b'\\n'))
        f.write(m.group(1) + b' ' + host + b' ' + msg + b'\\n')
`;

export class Sendmail {
  /** Where its SMTP daemon listens on 127.0.0.1. */
  readonly port: number;
  /** The instance's directory as Sendmail sees it (inside the root). */
  readonly dir: string;
  private proc: ChildProcess | null = null;
  private receiver: ChildProcess | null = null;
  private stderr = '';
  private exited: Promise<void> = Promise.resolve();

  private constructor(
    /** The Debian root. */
    readonly root: string,
    port: number,
    dir: string,
    readonly options: SendmailOptions,
  ) {
    this.port = port;
    this.dir = dir;
  }

  static async start(options: SendmailOptions): Promise<Sendmail> {
    const root = await sendmailRoot();
    const dir = '/' + path.relative(root, fs.mkdtempSync(path.join(root, 'tmp', 'benno-sendmail-')));
    const sm = new Sendmail(root, await freePort(), dir, options);
    try {
      await sm.configure();
      await sm.run();
    } catch (err) {
      await sm.stop();
      throw err;
    }
    return sm;
  }

  /** A path inside the instance's directory, as the host sees it. */
  hostPath(...parts: string[]): string {
    return path.join(this.root, this.dir, ...parts);
  }

  /**
   * The .mc: loopback only, no DNS (host names from the root's /etc/hosts,
   * no canonification, no interface probing, no ident), every recipient to
   * the `archive` mailer, which writes the message as Sendmail delivers it
   * to delivered/QUEUEID, and benno-milter as the one input mail filter.
   */
  mc(): string {
    const o = this.options;
    const d = this.dir;
    return [
      'divert(-1)',
      'divert(0)dnl',
      "include(`/usr/share/sendmail/cf/m4/cf.m4')dnl",
      "VERSIONID(`benno-milter test')dnl",
      "OSTYPE(`debian')dnl",
      `define(\`confDOMAIN_NAME', \`${SENDMAIL_HOSTNAME}')dnl`,
      `define(\`QUEUE_DIR', \`${d}/mqueue')dnl`,
      `define(\`confPID_FILE', \`${d}/sendmail.pid')dnl`,
      `define(\`STATUS_FILE', \`${d}/statistics')dnl`,
      `define(\`confDEAD_LETTER_DROP', \`${d}/dead.letter')dnl`,
      "undefine(`confHOST_STATUS_DIRECTORY')dnl",
      "define(`ALIAS_FILE', `')dnl",
      "define(`confSERVICE_SWITCH_FILE', `/etc/mail/service.switch-nodns')dnl",
      "define(`confDONT_PROBE_INTERFACES', `true')dnl",
      "define(`confBIND_OPTS', `-DNSRCH -DEFNAMES')dnl",
      "define(`confTO_IDENT', `0')dnl",
      "FEATURE(`nocanonify')dnl",
      "FEATURE(`accept_unresolvable_domains')dnl",
      // Only loopback can connect, and every recipient goes to the archive mailer.
      "FEATURE(`promiscuous_relay')dnl",
      "FEATURE(`no_default_msa')dnl",
      `DAEMON_OPTIONS(\`Family=inet, Name=MTA, Port=${this.port}, Addr=127.0.0.1')dnl`,
      `INPUT_MAIL_FILTER(\`benno', \`S=${o.socket ?? `inet:${o.milterPort}@127.0.0.1`}, F=${o.flags ?? 'T'}, T=${o.timeouts ?? RECOMMENDED_TIMEOUTS}')dnl`,
      'LOCAL_RULE_0',
      'R$* < @ $* > $*\t\t$#archive $@ test $: $1 < @ $2 > $3',
      'MAILER_DEFINITIONS',
      // m: all recipients at once; n: no From_ line; S: runs as root; 8: 8-bit as it is;
      // no D, F, M, P, X, E, L, 7: nothing added, escaped or wrapped. The SMTP
      // mailer's rewriting rules, which leave the headers of these messages alone.
      `Marchive, P=${d}/deliver, F=mnS8, S=EnvFromSMTP/HdrFromSMTP, R=EnvToSMTP, E=\\r\\n, A=deliver $i $u`,
      '',
    ].join('\n');
  }

  private async configure(): Promise<void> {
    fs.mkdirSync(this.hostPath('mqueue'), { mode: 0o700 });
    fs.mkdirSync(this.hostPath('delivered'));
    fs.writeFileSync(
      this.hostPath('deliver'),
      '#!/bin/sh\n# deliver QUEUEID RECIPIENT...: the message on stdin, as Sendmail delivers it\n' +
        `cat > "${this.dir}/delivered/.$1.$$" && mv "${this.dir}/delivered/.$1.$$" "${this.dir}/delivered/$1"\n`,
      { mode: 0o755 },
    );
    fs.writeFileSync(this.hostPath('sendmail.mc'), this.mc());
    try {
      const { stdout } = await execFileP('chroot', [this.root, 'm4', `${this.dir}/sendmail.mc`], { maxBuffer: 16 * 1024 * 1024 });
      fs.writeFileSync(this.hostPath('sendmail.cf'), stdout);
    } catch (err) {
      throw new Error(`m4 could not build sendmail.cf: ${(err as Error & { stderr?: string }).stderr ?? (err as Error).message}`);
    }
  }

  /**
   * sendmail -bD (a daemon in the foreground) with its own host name, under
   * a shell that ends it when our pipe to the shell closes: at stop(), or
   * when this test process dies, so that no Sendmail outlives its test.
   * (The parent-death signal would not do: the sendmail binary is setgid,
   * which clears it.) The shell ends when Sendmail does.
   */
  private async run(): Promise<void> {
    const logSocket = this.options.syslog ? await this.startSyslog() : '';
    const script = [
      'hostname "$0" || exit 1',
      // The daemon's /dev/log is this instance's receiver, in a mount namespace of its own.
      '[ -z "$3" ] || mount --bind "$3" "$1/dev/log" || exit 1',
      'exec 3<&0', // the pipe, for the watcher: a background job gets /dev/null on 0
      'chroot "$1" /usr/libexec/sendmail/sendmail -bD -C"$2" &',
      'sm=$!',
      '{ read -r _ <&3; kill $sm; } &',
      'wait $sm',
    ].join('\n');
    const p = spawn('unshare', ['--uts', '--mount', 'sh', '-c', script, SENDMAIL_HOSTNAME, this.root, `${this.dir}/sendmail.cf`, logSocket], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    this.proc = p;
    p.stdout!.on('data', (d: Buffer) => (this.stderr += d.toString('latin1')));
    p.stderr!.on('data', (d: Buffer) => (this.stderr += d.toString('latin1')));
    this.exited = new Promise((resolve) => p.on('exit', () => resolve()));
    let gone = false;
    void this.exited.then(() => (gone = true));
    // The daemon writes its pid file once it listens.
    const deadline = Date.now() + 20_000;
    for (;;) {
      const pid = this.readPid();
      if (pid > 0 && fs.existsSync(`/proc/${pid}`)) return;
      if (gone) throw new Error(`sendmail -bD exited: ${this.stderr}`);
      if (Date.now() > deadline) throw new Error(`sendmail -bD did not start listening within 20 s: ${this.stderr}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** Starts the syslog receiver; returns its socket (a host path). */
  private async startSyslog(): Promise<string> {
    const socket = this.hostPath('log.sock');
    // The bind mount needs something at the root's /dev/log to cover.
    if (!fs.existsSync(path.join(this.root, 'dev', 'log'))) fs.writeFileSync(path.join(this.root, 'dev', 'log'), '');
    const r = spawn('/usr/bin/python3', ['-c', SYSLOG_RECEIVER, socket, this.hostPath('maillog'), 'mx'], { stdio: ['ignore', 'pipe', 'inherit'] });
    this.receiver = r;
    await new Promise<void>((resolve, reject) => {
      r.stdout!.once('data', () => resolve());
      r.once('exit', (code) => reject(new Error(`the syslog receiver exited (${code})`)));
    });
    return socket;
  }

  /** The daemon's log as rsyslog would write it (with options.syslog). */
  maillogPath(): string {
    return this.hostPath('maillog');
  }

  /** Waits until the log has a line matching re. */
  async waitForLog(re: RegExp, timeoutMs = 20_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const line = (fs.existsSync(this.maillogPath()) ? fs.readFileSync(this.maillogPath(), 'utf8') : '').split('\n').find((l) => re.test(l));
      if (line) return line;
      if (Date.now() > deadline) throw new Error(`no Sendmail log line ${re} within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  private readPid(): number {
    try {
      return Number(fs.readFileSync(this.hostPath('sendmail.pid'), 'latin1').split('\n')[0]);
    } catch {
      return 0;
    }
  }

  /**
   * Runs the sendmail command as a local program would (the MSP, as Debian's
   * /usr/sbin/sendmail is: submit.cf, running as smmsp, delivering at once
   * over SMTP to this instance's daemon) with `args` and `input` on stdin.
   */
  async submitLocal(args: string[], input: Buffer): Promise<void> {
    if (!fs.existsSync(this.hostPath('submit.cf'))) await this.configureMsp();
    const { code, output } = await new Promise<{ code: number | null; output: string }>((resolve, reject) => {
      const p = spawn(
        'unshare',
        [
          '--uts',
          'sh',
          '-c',
          'hostname "$0" && root=$1 && cf=$2 && shift 2 && exec chroot "$root" /usr/libexec/sendmail/sendmail -C"$cf" "$@"',
          SENDMAIL_HOSTNAME,
          this.root,
          `${this.dir}/submit.cf`,
          ...args,
        ],
        { stdio: ['pipe', 'pipe', 'pipe'] },
      );
      let output = '';
      p.stdout!.on('data', (d: Buffer) => (output += d.toString('latin1')));
      p.stderr!.on('data', (d: Buffer) => (output += d.toString('latin1')));
      p.on('error', reject);
      p.on('close', (c) => resolve({ code: c, output }));
      p.stdin!.end(input);
    });
    if (code !== 0) throw new Error(`sendmail (MSP) ${args.join(' ')} exited ${code}: ${output}`);
  }

  /** submit.cf for the MSP: its queue group-writable for smmsp, its relay this instance's port. */
  private async configureMsp(): Promise<void> {
    const d = this.dir;
    fs.chmodSync(this.hostPath(), 0o755); // the MSP runs as smmsp
    fs.mkdirSync(this.hostPath('clientmqueue'));
    await execFileP('chroot', [this.root, 'chown', 'smmsp:smmsp', `${d}/clientmqueue`]);
    fs.chmodSync(this.hostPath('clientmqueue'), 0o2770);
    const mc = [
      'divert(-1)',
      'divert(0)dnl',
      "include(`/usr/share/sendmail/cf/m4/cf.m4')dnl",
      "VERSIONID(`benno-milter test MSP')dnl",
      "OSTYPE(`debian')dnl",
      `define(\`confDOMAIN_NAME', \`${SENDMAIL_HOSTNAME}')dnl`,
      `define(\`MSP_QUEUE_DIR', \`${d}/clientmqueue')dnl`,
      `define(\`confPID_FILE', \`${d}/sm-client.pid')dnl`,
      `define(\`STATUS_FILE', \`${d}/sm-client.st')dnl`,
      "define(`confHOST_STATUS_DIRECTORY', `')dnl",
      "define(`confSERVICE_SWITCH_FILE', `/etc/mail/service.switch-nodns')dnl",
      "define(`confTO_IDENT', `0')dnl",
      `define(\`RELAY_MAILER_ARGS', \`TCP $h ${this.port}')dnl`,
      "FEATURE(`msp', `[127.0.0.1]')dnl",
      '',
    ].join('\n');
    fs.writeFileSync(this.hostPath('submit.mc'), mc);
    const { stdout } = await execFileP('chroot', [this.root, 'm4', `${d}/submit.mc`], { maxBuffer: 16 * 1024 * 1024 });
    fs.writeFileSync(this.hostPath('submit.cf'), stdout);
  }

  /** The queue id from Sendmail's "250 2.0.0 QUEUEID Message accepted for delivery". */
  static queueId(reply: string): string {
    const m = /^250 2\.0\.0 (\w+) Message accepted for delivery/.exec(reply);
    if (!m) throw new Error(`Sendmail did not accept the message: ${reply}`);
    return m[1];
  }

  /** Queue ids of the messages delivered so far. */
  deliveredIds(): string[] {
    return fs.readdirSync(this.hostPath('delivered')).filter((n) => !n.startsWith('.'));
  }

  /** Files in the queue (a message Sendmail accepted and has not delivered yet). */
  queueFiles(): string[] {
    return fs.readdirSync(this.hostPath('mqueue'));
  }

  /** The message as Sendmail delivered it (its Received: header first), once delivered. */
  async delivered(queueId: string, timeoutMs = 20_000): Promise<Buffer> {
    const file = this.hostPath('delivered', queueId);
    const deadline = Date.now() + timeoutMs;
    while (!fs.existsSync(file)) {
      if (Date.now() > deadline) throw new Error(`Sendmail did not deliver ${queueId} within ${timeoutMs} ms; queue: ${this.queueFiles().join(' ') || 'empty'}; ${this.stderr}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    return fs.readFileSync(file);
  }

  async stop(): Promise<void> {
    const p = this.proc;
    if (p && p.exitCode === null && p.signalCode === null) {
      p.stdin!.end(); // the shell's watcher stops Sendmail, then the shell ends
      const pid = this.readPid();
      const killed = setTimeout(() => {
        try {
          if (pid > 0) process.kill(pid, 'SIGKILL');
        } catch {
          // gone meanwhile
        }
      }, 10_000);
      await this.exited;
      clearTimeout(killed);
    }
    const receiver = this.receiver;
    if (receiver && receiver.exitCode === null && receiver.signalCode === null) {
      const gone = new Promise((r) => receiver.once('exit', r));
      receiver.kill();
      await gone;
    }
    fs.rmSync(path.join(this.root, this.dir), { recursive: true, force: true });
  }
}

/**
 * The message without the Received: header Sendmail puts first when it
 * delivers: Sendmail, like Postfix, never shows a milter that header.
 */
export function withoutSendmailReceived(delivered: Buffer, queueId: string): Buffer {
  const text = delivered.toString('latin1');
  const m = /^Received: [^\r\n]*\r\n(?:[ \t][^\r\n]*\r\n)*/.exec(text);
  if (!m) throw new Error(`Sendmail delivered no Received: header first:\n${text.slice(0, 500)}`);
  if (!m[0].includes(`by ${SENDMAIL_HOSTNAME} (8.`) || !new RegExp(` id ${queueId}[;\\s]`).test(m[0])) {
    throw new Error(`not Sendmail's Received: header for ${queueId}: ${m[0]}`);
  }
  return delivered.subarray(m[0].length);
}
