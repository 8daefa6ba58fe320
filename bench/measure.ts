// What every benchmark part measures with: rates, CPU and memory of a
// process, the 10 KB message and spool file fixtures, the libmilter
// reference peer, smtp-source, and the scratch directories. A part is one
// file (milter-alone.ts, through-postfix.ts, export.ts) registered in run.ts.

import { ChildProcess, execFile, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { TestMessage } from '../src/milter/client';
import * as C from '../src/milter/constants';
import { parseSocketSpec } from '../src/milter/socket-spec';
import { DEFAULT_ENVELOPE_NAMES, envelopeBlock } from '../src/spool/format';
import { ROOT, sha256 } from '../test/helpers/daemon';
import { mountExt4, removeTree } from '../test/helpers/fs';
import { spoolFiles } from '../test/helpers/spool';

const execFileP = promisify(execFile);

/** The command line's numbers, absent when not given; each part has its own defaults. */
export interface Options {
  messages?: number;
  rounds?: number;
  files?: number;
}

/** One benchmark part: `key` is its letter for --only; run returns its sections, each a list of Markdown lines. */
export interface Part {
  key: string;
  run(options: Options): Promise<string[][]>;
}

/** The number after --name on the command line, if it is there. */
export function numberArg(name: string): number | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : undefined;
}

export interface Rate {
  messages: number;
  seconds: number;
  rate: number;
}

/** Wall time of work that handles `messages` messages, as messages per second. */
export async function timeRate(messages: number, work: () => Promise<unknown>): Promise<Rate> {
  const started = process.hrtime.bigint();
  await work();
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  return { messages, seconds, rate: messages / seconds };
}

export interface Cpu {
  user: number;
  sys: number;
}

/** User and system CPU seconds a process has used, from /proc. */
export function cpuSeconds(pid: number): Cpu {
  const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  const tick = 100; // USER_HZ on Linux
  return { user: Number(f[11]) / tick, sys: Number(f[12]) / tick };
}

/** CPU microseconds (user + system) per message between two readings. */
export function cpuPerMessage(a: Cpu, b: Cpu, messages: number): number {
  return ((b.user - a.user + b.sys - a.sys) / messages) * 1e6;
}

export const mib = (n: number) => (n / 1048576).toFixed(1);

export const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** Rates of the same rounds divided: steadier than a ratio of medians while the machine's load drifts. */
export const paired = (xs: number[], ys: number[]) => xs.map((x, i) => x / ys[i]);

/** A paired ratio as the tables show it: the median in bold, the range in brackets. */
export const ratioText = (ratios: number[]) =>
  `**${median(ratios).toFixed(2)}** (${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)})`;

/** The benchmark message: 10 KB, with the headers Postfix would pass on. */
export function tenKbMessage(i: number): TestMessage {
  const line = 'Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor.\r\n';
  return {
    sender: `<bench-sender@example.com>`,
    recipients: ['<bench-rcpt@example.org>'],
    headers: [
      ['Received', ' from client.example (client.example [192.0.2.1])\n\tby mx.example.org (Postfix) with ESMTP id 4ABC123;\n\tMon, 23 Nov 2026 10:00:00 +0100 (CET)'],
      ['From', ' Bench Sender <bench-sender@example.com>'],
      ['To', ' <bench-rcpt@example.org>'],
      ['Subject', ` benchmark message ${i}`],
      ['Date', ' Mon, 23 Nov 2026 10:00:00 +0100'],
      ['Message-ID', ` <${i}.${process.pid}@bench.example.com>`],
      ['MIME-Version', ' 1.0'],
      ['Content-Type', ' text/plain; charset=us-ascii'],
    ],
    body: Buffer.from(line.repeat(Math.ceil(10240 / line.length)).slice(0, 10240 - 2) + '\r\n', 'latin1'),
    macros: { [C.SMFIC_BODYEOB]: { i: `B${i}` } },
  };
}

/** n spool files of about 10 KB each, as the milter writes them (content-hash names). */
export function writeSpoolFiles(dir: string, n: number, seed: string): void {
  for (let i = 0; i < n; i++) {
    const msg = tenKbMessage(i);
    const head = msg.headers.map(([k, v]) => `${k}:${String(v).replace(/\n/g, '\r\n')}\r\n`).join('') + `X-Seed: ${seed}\r\n\r\n`;
    const content = Buffer.concat([
      envelopeBlock(DEFAULT_ENVELOPE_NAMES, Buffer.from(String(msg.sender)), msg.recipients.map((r) => Buffer.from(String(r)))),
      Buffer.from(head, 'latin1'),
      msg.body as Buffer,
    ]);
    fs.writeFileSync(path.join(dir, `${sha256(content)}.eml`), content);
  }
}

/**
 * Every file the benchmark writes (Postfix queues, spools) goes to a fresh
 * ext4 with a journal, loop-mounted for the run: the file system of a
 * typical mail server, and the same for every set-up. This machine's root
 * is ext4 without a journal, where creating a file costs time in proportion
 * to the files deleted near it in the last minutes; results there depended
 * on what the previous run had deleted. --host-fs measures on the root
 * file system instead.
 */
export function mountBenchFs(): { dir: string; remove: () => void } {
  const fsys = mountExt4(8192);
  fs.chmodSync(fsys.dir, 0o1777);
  return { dir: fsys.dir, remove: fsys.unmount };
}

/** Removed when the whole run is over, so no set-up pays for another's deletions. */
const spoolDirs: string[] = [];

/** Where a part's spool directories live; each part gets its own. */
export function spoolBase(): string {
  const base = path.join(os.tmpdir(), 'benno-bench-spools');
  fs.mkdirSync(base, { recursive: true });
  const dir = fs.mkdtempSync(path.join(base, 'run-'));
  fs.chmodSync(dir, 0o755);
  spoolDirs.push(dir);
  return dir;
}

export function removeSpoolBases(): void {
  spoolDirs.forEach(removeTree);
}

/** Waits until `want` files are in dir (the last replies may still be in flight when smtp-source exits). */
export async function expectFiles(dir: string, want: number, who: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (spoolFiles(dir).length < want && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  if (spoolFiles(dir).length !== want) throw new Error(`${who} archived ${spoolFiles(dir).length} of ${want} messages`);
}

/** Postfix's smtp-source: `messages` × 10 KB to 127.0.0.1:port over `sessions` parallel sessions. */
export function smtpSource(port: number, messages: number, options: { sessions?: number; from?: string } = {}): Promise<Rate> {
  const argv = ['-s', String(options.sessions ?? 20), '-m', String(messages), '-l', '10240', '-f', options.from ?? 'bench@example.com', '-t', 'sink@example.org', `127.0.0.1:${port}`];
  return timeRate(messages, () => execFileP('smtp-source', argv));
}

/** Runs one of our programs to its end; returns wall seconds and the exit code. */
export function timed(bin: string, args: string[]): Promise<{ seconds: number; code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const started = process.hrtime.bigint();
    const p = spawn(process.execPath, [bin, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    p.on('close', (code) => resolve({ seconds: Number(process.hrtime.bigint() - started) / 1e9, code, stderr }));
  });
}

const PEER = process.env.BENNO_PEER ?? path.join(ROOT, '..', 'shared', 'peers', 'libmilter-dump.py');

/**
 * Starts the libmilter reference peer on a libmilter socket spec and waits
 * until it accepts connections (it prints nothing when ready). A unix
 * socket is opened to Postfix's group, as benno-milter's is.
 */
export async function startPeer(spec: string, spool: string, prefix: string[] = []): Promise<ChildProcess> {
  if (!fs.existsSync(PEER)) throw new Error(`libmilter reference peer not found at ${PEER} (set BENNO_PEER)`);
  const argv = [...prefix, '/usr/bin/python3', PEER, spec, spool];
  const p = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'ignore', 'inherit'] });
  const target = milterTarget(spec);
  const deadline = Date.now() + 10_000;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(target as net.NetConnectOpts);
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) break;
    if (Date.now() > deadline) throw new Error('libmilter peer did not start listening');
    await new Promise((r) => setTimeout(r, 50));
  }
  if ('path' in target) fs.chmodSync(target.path, 0o666);
  return p;
}

/** Where a client connects for a libmilter socket spec. */
export function milterTarget(spec: string): { path: string } | { host: string; port: number } {
  const s = parseSocketSpec(spec);
  return s.kind === 'unix' ? { path: s.path } : { host: s.host, port: s.port };
}

/** The same endpoint in Postfix's syntax. */
export function postfixSpec(spec: string): string {
  const s = parseSocketSpec(spec);
  return s.kind === 'unix' ? `unix:${s.path}` : `inet:${s.host}:${s.port}`;
}
