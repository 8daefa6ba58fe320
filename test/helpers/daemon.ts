// Runs the real benno-milter program as a child process, as an operator
// would, and waits on what it says (log lines, exit) rather than on time.

import { ChildProcess, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';

export const ROOT = path.resolve(__dirname, '..', '..', '..');
export const MILTER_BIN = path.join(ROOT, 'dist', 'src', 'cli', 'benno-milter.js');

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export class Program {
  readonly stderr: string[] = [];
  readonly stdout: string[] = [];
  readonly exited: Promise<Exit>;
  /** Exited and all its output read. */
  readonly closed: Promise<Exit>;
  private partial = '';
  private waiters: { re: RegExp; resolve: (line: string) => void }[] = [];

  constructor(readonly proc: ChildProcess) {
    proc.stderr!.on('data', (d: Buffer) => this.onStderr(d.toString('utf8')));
    proc.stdout!.on('data', (d: Buffer) => this.stdout.push(d.toString('utf8')));
    this.exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
    this.closed = new Promise((resolve) => proc.on('close', (code, signal) => resolve({ code, signal })));
  }

  get pid(): number {
    return this.proc.pid!;
  }

  private onStderr(text: string): void {
    if (process.env.BENNO_TEST_VERBOSE) process.stderr.write(text);
    const lines = (this.partial + text).split('\n');
    this.partial = lines.pop()!;
    for (const line of lines) {
      this.stderr.push(line);
      this.waiters = this.waiters.filter((w) => {
        if (!w.re.test(line)) return true;
        w.resolve(line);
        return false;
      });
    }
  }

  /** The first log line matching re, past or future; rejects if the program exits first. */
  waitForLine(re: RegExp, timeoutMs = 20_000): Promise<string> {
    const seen = this.stderr.find((l) => re.test(l));
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no log line ${re} within ${timeoutMs} ms; log:\n${this.log()}`)), timeoutMs);
      this.waiters.push({
        re,
        resolve: (line) => {
          clearTimeout(timer);
          resolve(line);
        },
      });
      this.exited.then((e) => {
        clearTimeout(timer);
        reject(new Error(`program exited (${e.code ?? e.signal}) before log line ${re}; log:\n${this.log()}`));
      });
    });
  }

  /** Log lines that came after the first n. */
  linesSince(n: number): string[] {
    return this.stderr.slice(n);
  }

  log(): string {
    return this.stderr.join('\n') + this.partial;
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<Exit> {
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill(signal);
    return this.exited;
  }

  /** Resident and peak resident set size in bytes, from /proc. */
  memory(): { rss: number; hwm: number } {
    return memoryOf(this.pid);
  }
}

/** Resident and peak resident set size in bytes of any process, from /proc. */
export function memoryOf(pid: number): { rss: number; hwm: number } {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)![1]) * 1024;
  return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
}

/**
 * Runs a program of ours with this node. A prefix such as
 * ['ip', 'netns', 'exec', 'ns'] runs it elsewhere (it execs, so the pid is kept).
 */
export function run(bin: string, args: string[], env: NodeJS.ProcessEnv = {}, prefix: string[] = []): Program {
  const argv = [...prefix, process.execPath, bin, ...args];
  return new Program(spawn(argv[0], argv.slice(1), { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] }));
}

/** Runs a program to completion; returns exit code and output. */
export async function runToEnd(bin: string, args: string[], env: NodeJS.ProcessEnv = {}) {
  const p = run(bin, args, env);
  const exit = await p.closed;
  return { ...exit, stderr: p.log(), stdout: p.stdout.join('') };
}

/** Starts benno-milter and waits until it accepts connections. */
export async function startMilter(args: string[], env: NodeJS.ProcessEnv = {}, prefix: string[] = []): Promise<Program> {
  const p = run(MILTER_BIN, args, env, prefix);
  try {
    await p.waitForLine(/ started: /);
  } catch (err) {
    p.proc.kill('SIGKILL');
    throw err;
  }
  return p;
}

export function sha256(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

/** Polls a condition until it holds; for state that has no event of its own (files on disk). */
export async function eventually(cond: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * Starts one of our programs against a server that accepts and says
 * nothing (so the program waits for a greeting), waits for its first line on
 * stderr, and returns that line with what /proc/PID/cmdline showed then: for
 * the check that a password given on the command line is gone from it.
 */
export async function argvAfterFirstLine(bin: string, args: (port: number) => string[]): Promise<{ line: string; cmdline: string }> {
  const silent = net.createServer(() => undefined);
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  try {
    const p = spawn(process.execPath, [bin, ...args((silent.address() as net.AddressInfo).port)], { stdio: ['ignore', 'ignore', 'pipe'] });
    const exited = new Promise((resolve) => p.on('close', resolve));
    const line = await new Promise<string>((resolve, reject) => {
      p.stderr!.once('data', (d: Buffer) => resolve(d.toString()));
      p.once('close', (code) => reject(new Error(`${bin} exited (${code}) without a line on stderr`)));
    });
    const cmdline = fs.readFileSync(`/proc/${p.pid}/cmdline`, 'latin1');
    p.kill();
    await exited;
    return { line, cmdline };
  } finally {
    silent.close();
  }
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * How long a test lets one of our programs run before it is taken for hung
 * and killed: far beyond what any test's run needs, and a failure in CI
 * instead of a blocked test process (spawnSync stops every timer).
 */
export const CLI_TIMEOUT_MS = 180_000;

const hung = (args: string[]) => `\n[test] killed after ${CLI_TIMEOUT_MS / 1000} s without exiting: ${args.join(' ')}\n`;

/** One of our programs run to its end with input on stdin, as a cron job or an administrator runs it. */
export function runCli(bin: string, args: string[], input = ''): CliResult {
  const r = spawnSync(process.execPath, [bin, ...args], { input, encoding: 'utf8', timeout: CLI_TIMEOUT_MS, killSignal: 'SIGKILL' });
  const killed = r.signal === 'SIGKILL' && (r.error as NodeJS.ErrnoException | undefined)?.code === 'ETIMEDOUT';
  return { code: r.status, stdout: r.stdout, stderr: killed ? r.stderr + hung([bin, ...args]) : r.stderr };
}

/** runCli without blocking this process (the test serves something the program talks to meanwhile); with the program's pid. */
export function runCliAsync(bin: string, args: string[]): Promise<CliResult & { pid: number }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [bin, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let killed = false;
    const timer = setTimeout(() => {
      killed = true;
      p.kill('SIGKILL');
    }, CLI_TIMEOUT_MS);
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr: killed ? stderr + hung([bin, ...args]) : stderr, pid: p.pid! });
    });
  });
}
