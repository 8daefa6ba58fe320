// Benchmarks (not tests): npm run bench [-- --only a|b] [--messages N] [--rounds R]
//
// (a) benno-milter alone, driven by our MTA-side client: messages/s and peak
//     RSS for 1, 10 and 50 parallel connections × 10 KB messages, fsync on;
//     the libmilter reference peer under the same client for comparison.
// (b) Through real Postfix with smtp-source (20 sessions, N × 10 KB, discard
//     transport), interleaved in one run: no milter, benno-milter, and the
//     libmilter reference peer. Ratios matter, not absolute figures: this
//     machine is shared and noisy.

import { ChildProcess, execFile, execFileSync, spawn } from 'node:child_process';
import * as net from 'node:net';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { MilterClient, TestMessage } from '../src/milter/client';
import * as C from '../src/milter/constants';
import { parseSocketSpec } from '../src/milter/socket-spec';
import { Program, ROOT, startMilter } from '../test/helpers/daemon';
import { removeTree } from '../test/helpers/fs';
import { spoolFiles } from '../test/helpers/spool';
import { Postfix } from '../test/helpers/postfix';
import { freePort } from '../test/helpers/net';
import { EXPORT2ARCHIVE_BIN, EXPORT_BIN, startReceiver } from '../test/helpers/smtp';
import { envelopeBlock, DEFAULT_ENVELOPE_NAMES } from '../src/spool/format';
import { createHash } from 'node:crypto';

const execFileP = promisify(execFile);
const PEER = process.env.BENNO_PEER ?? path.join(ROOT, '..', 'shared', 'peers', 'libmilter-dump.py');

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
}
const ONLY = (() => {
  const i = process.argv.indexOf('--only');
  return i > 0 ? process.argv[i + 1] : 'abc';
})();

function tenKbMessage(i: number): TestMessage {
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

interface Rate {
  messages: number;
  seconds: number;
  rate: number;
}

/** (a) drive a milter at addr with `parallel` connections until `total` messages are accepted. */
let messageSeq = 0; // unique content per message: equal content would share one file name

async function driveMilter(target: { path: string } | { host: string; port: number }, parallel: number, total: number): Promise<Rate> {
  let sent = 0;
  const started = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      const c = await MilterClient.open(target);
      while (sent < total) {
        sent++;
        const i = messageSeq++;
        const r = await c.sendMessage(tenKbMessage(i));
        if (r.type !== 'accept' && r.type !== 'continue') throw new Error(`message ${i}: ${JSON.stringify(r)}`);
        await c.abort();
      }
      await c.quit();
    }),
  );
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  return { messages: total, seconds, rate: total / seconds };
}

/** User and system CPU seconds a process has used, from /proc. */
function cpuSeconds(pid: number): { user: number; sys: number } {
  const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  const tick = 100; // USER_HZ on Linux
  return { user: Number(f[11]) / tick, sys: Number(f[12]) / tick };
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
function mountBenchFs(): { dir: string; remove: () => void } {
  const image = path.join(os.tmpdir(), `benno-bench-${process.pid}.img`);
  const dir = `${image}.d`;
  execFileSync('truncate', ['-s', '8G', image]);
  execFileSync('mkfs.ext4', ['-q', '-F', image]);
  fs.mkdirSync(dir);
  execFileSync('mount', ['-o', 'loop', image, dir]);
  fs.chmodSync(dir, 0o1777);
  return {
    dir,
    remove: () => {
      execFileSync('umount', [dir]);
      fs.rmdirSync(dir);
      fs.unlinkSync(image);
    },
  };
}

/** Where this run's spool directories live; each benchmark gets its own. */
function spoolBase(): string {
  const base = path.join(os.tmpdir(), 'benno-bench-spools');
  fs.mkdirSync(base, { recursive: true });
  const dir = fs.mkdtempSync(path.join(base, 'run-'));
  fs.chmodSync(dir, 0o755);
  spoolDirs.push(dir);
  return dir;
}

/** Removed when the whole run is over, so no set-up pays for another's deletions. */
const spoolDirs: string[] = [];

function hwm(pid: number): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/^VmHWM:\s+(\d+) kB/m.exec(status)![1]) * 1024;
}

/**
 * Starts the libmilter reference peer on a libmilter socket spec and waits
 * until it accepts connections (it prints nothing when ready). A unix
 * socket is opened to Postfix's group, as benno-milter's is.
 */
async function startPeer(spec: string, spool: string, prefix: string[] = []): Promise<ChildProcess> {
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
function milterTarget(spec: string): { path: string } | { host: string; port: number } {
  const s = parseSocketSpec(spec);
  return s.kind === 'unix' ? { path: s.path } : { host: s.host, port: s.port };
}

/** The same endpoint in Postfix's syntax. */
function postfixSpec(spec: string): string {
  const s = parseSocketSpec(spec);
  return s.kind === 'unix' ? `unix:${s.path}` : `inet:${s.host}:${s.port}`;
}

const mb = (n: number) => (n / 1048576).toFixed(1);

function cpuText(a: { user: number; sys: number }, b: { user: number; sys: number }, messages: number): string {
  const us = (x: number) => ((x / messages) * 1e6).toFixed(0);
  return `${us(b.user - a.user + b.sys - a.sys)} µs (${us(b.user - a.user)}+${us(b.sys - a.sys)})`;
}

async function benchA(): Promise<string[]> {
  const total = arg('messages', 2000);
  const out = [
    '### (a) milter alone, own client, 10 KB messages, fsync on',
    '',
    `${total} messages per row over unix sockets; the client (offering what Postfix offers) runs in the benchmark process on the same 2 cores.`,
    '',
    '| milter | connections | messages/s | milter CPU per message (user+sys) | peak RSS (MiB) |',
    '| --- | ---: | ---: | ---: | ---: |',
  ];
  const work = spoolBase();
  for (const parallel of [1, 10, 50]) {
    const spool = path.join(work, `spool-${parallel}`);
    fs.mkdirSync(spool);
    const socketPath = path.join(work, `m-${parallel}.sock`);
    const milter: Program = await startMilter(['-p', `unix:${socketPath}`, '-o', spool]);
    await driveMilter({ path: socketPath }, parallel, 200); // warm-up
    const c0 = cpuSeconds(milter.pid);
    const r = await driveMilter({ path: socketPath }, parallel, total);
    const c1 = cpuSeconds(milter.pid);
    const peak = milter.memory().hwm;
    await milter.stop();
    if (spoolFiles(spool).length !== total + 200) throw new Error(`benno-milter wrote ${spoolFiles(spool).length} files for ${total + 200} messages`);
    out.push(`| benno-milter | ${parallel} | ${r.rate.toFixed(0)} | ${cpuText(c0, c1, total)} | ${mb(peak)} |`);
    console.error(`(a) benno-milter x${parallel}: ${r.rate.toFixed(0)} msg/s, peak RSS ${mb(peak)} MiB`);

    const peerSpool = path.join(work, `peer-${parallel}`);
    fs.mkdirSync(peerSpool);
    const peerSpec = `unix:${path.join(work, `peer-${parallel}.sock`)}`;
    const peer = await startPeer(peerSpec, peerSpool);
    try {
      await driveMilter(milterTarget(peerSpec), parallel, 200);
      const p0 = cpuSeconds(peer.pid!);
      const p = await driveMilter(milterTarget(peerSpec), parallel, total);
      const p1 = cpuSeconds(peer.pid!);
      const peerPeak = hwm(peer.pid!);
      out.push(`| libmilter peer | ${parallel} | ${p.rate.toFixed(0)} | ${cpuText(p0, p1, total)} | ${mb(peerPeak)} |`);
      console.error(`(a) libmilter peer x${parallel}: ${p.rate.toFixed(0)} msg/s (benno-milter/peer ${(r.rate / p.rate).toFixed(2)})`);
    } finally {
      peer.kill();
    }
  }
  return out;
}

async function smtpSource(port: number, messages: number): Promise<Rate> {
  const started = process.hrtime.bigint();
  await execFileP('smtp-source', ['-s', '20', '-m', String(messages), '-l', '10240', '-f', 'bench@example.com', '-t', 'sink@example.org', `127.0.0.1:${port}`]);
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  return { messages, seconds, rate: messages / seconds };
}

/** Waits until `want` files are in dir (the last replies may still be in flight when smtp-source exits). */
async function expectFiles(dir: string, want: number, who: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (spoolFiles(dir).length < want && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  if (spoolFiles(dir).length !== want) throw new Error(`${who} archived ${spoolFiles(dir).length} of ${want} messages`);
}

interface SetUp {
  name: string;
  /** The milter Postfix is given, in its syntax (none: no milter). */
  milter?: string;
  /** Where its Postfix listens, once started. */
  port?: number;
  /** The milter process whose CPU is counted, and its spool (null: no files expected). */
  pid?: number;
  spool?: string;
  rates: number[];
  cpu: number[];
}

type Transport = 'unix' | 'loopback' | 'veth';

const TRANSPORT_TITLE: Record<Transport, string> = {
  unix: 'unix sockets',
  loopback: 'TCP on loopback',
  veth: 'TCP over a veth pair (MTU 1500, milters in their own network namespace, as on another host or in a container)',
};

/**
 * A network namespace joined to this one by a veth pair, so that a milter
 * is reached over TCP with a real network's MTU instead of loopback's.
 */
function makeNetns(): { prefix: string[]; address: string; mta: string; remove: () => void } {
  const ns = `benno-bench-${process.pid}`;
  const host = `bb${process.pid % 100000}h`;
  const sh = (...argv: string[]) => execFileSync(argv[0], argv.slice(1));
  sh('ip', 'netns', 'add', ns);
  try {
    sh('ip', 'link', 'add', host, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns);
    sh('ip', 'addr', 'add', '10.231.0.1/24', 'dev', host);
    sh('ip', 'link', 'set', host, 'up');
    sh('ip', 'netns', 'exec', ns, 'ip', 'addr', 'add', '10.231.0.2/24', 'dev', 'eth0');
    sh('ip', 'netns', 'exec', ns, 'ip', 'link', 'set', 'eth0', 'up');
    sh('ip', 'netns', 'exec', ns, 'ip', 'link', 'set', 'lo', 'up');
  } catch (err) {
    sh('ip', 'netns', 'del', ns);
    throw err;
  }
  return {
    prefix: ['ip', 'netns', 'exec', ns],
    address: '10.231.0.2',
    /** Where Postfix connects from: the one MTA the milter allows, as in production. */
    mta: '10.231.0.1',
    remove: () => {
      execFileSync('ip', ['link', 'del', host]);
      execFileSync('ip', ['netns', 'del', ns]);
    },
  };
}

async function benchB(transport: Transport): Promise<string[]> {
  const messages = arg('messages', 2000);
  const rounds = arg('rounds', 5);
  const base = spoolBase();
  const spools = { benno: path.join(base, 'benno'), bare: path.join(base, 'bare'), peer: path.join(base, 'peer') };
  for (const d of Object.values(spools)) fs.mkdirSync(d);
  const netns = transport === 'veth' ? makeNetns() : null;
  const prefix = netns?.prefix ?? [];
  const host = netns?.address ?? '127.0.0.1';
  const spec = (name: string, port: number) => (transport === 'unix' ? `unix:${path.join(base, `${name}.sock`)}` : `inet:${port}@${host}`);
  const specs = { benno: spec('benno', await freePort()), peer: spec('peer', await freePort()), bare: spec('bare', await freePort()) };
  const allow = netns ? ['--allow', netns.mta] : [];
  const milter = await startMilter(['-p', specs.benno, '-o', spools.benno, ...allow], {}, prefix);
  // The same daemon told to skip every message: the protocol cost alone, no file.
  const bare = await startMilter(['-p', specs.bare, '-o', spools.bare, '--skip-daemon', 'postfix.test.invalid', ...allow], {}, prefix);
  // Postfix reaches a unix socket through group postfix, as in production.
  if (transport === 'unix') for (const s of [specs.benno, specs.bare]) execFileSync('chgrp', ['postfix', (milterTarget(s) as { path: string }).path]);
  const peer = await startPeer(specs.peer, spools.peer, prefix);
  const instances: Postfix[] = [];
  const setups: SetUp[] = [
    { name: 'no milter', rates: [], cpu: [] },
    { name: 'benno-milter', milter: postfixSpec(specs.benno), pid: milter.pid, spool: spools.benno, rates: [], cpu: [] },
    { name: 'libmilter peer', milter: postfixSpec(specs.peer), pid: peer.pid, spool: spools.peer, rates: [], cpu: [] },
    { name: 'benno-milter, protocol only (no file)', milter: postfixSpec(specs.bare), pid: bare.pid, rates: [], cpu: [] },
  ];
  let milterPeak = 0;
  try {
    for (const s of setups) {
      const pf = await Postfix.start({ milter: s.milter });
      instances.push(pf);
      s.port = pf.port;
    }
    for (const s of setups) await smtpSource(s.port!, 100); // warm-up: processes, first queue files
    const done: Record<string, number> = {};
    for (const s of setups) done[s.name] = s.spool ? spoolFiles(s.spool).length : 0;
    for (let round = 0; round < rounds; round++) {
      for (const s of setups) {
        const c0 = s.pid ? cpuSeconds(s.pid) : null;
        const r = await smtpSource(s.port!, messages);
        if (s.spool) {
          done[s.name] += messages;
          await expectFiles(s.spool, done[s.name], s.name);
        }
        if (c0 && s.pid) {
          const c1 = cpuSeconds(s.pid);
          s.cpu.push(((c1.user - c0.user + c1.sys - c0.sys) / messages) * 1e6);
        }
        s.rates.push(r.rate);
        console.error(`(b) round ${round + 1} ${s.name}: ${r.rate.toFixed(0)} msg/s`);
      }
    }
    milterPeak = milter.memory().hwm;
  } finally {
    for (const pf of instances) await pf.stop();
    await milter.stop();
    await bare.stop();
    peer.kill();
    await new Promise((r) => (peer.exitCode === null ? peer.once('exit', r) : r(null)));
    netns?.remove();
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  // Each set-up against the no-milter run of the same round: the rounds are
  // minutes apart and the machine's load drifts, so paired ratios are steadier
  // than a ratio of medians.
  const paired = (s: SetUp) => s.rates.map((r, i) => r / setups[0].rates[i]);
  const out = [
    `### (b) through real Postfix, milters on ${TRANSPORT_TITLE[transport]}: smtp-source, 20 sessions, 10 KB messages, discard transport`,
    '',
    `${rounds} rounds of ${messages} messages, the set-ups interleaved in each round. "vs no milter" is the median over the rounds of the rate divided by the no-milter rate of the same round (range in brackets). One SMTP session (and so one milter connection) per message, as smtp-source sends them.`,
    '',
    '| set-up | messages/s (median) | each round | vs no milter | milter CPU per message |',
    '| --- | ---: | --- | ---: | ---: |',
  ];
  for (const s of setups) {
    const ratios = paired(s);
    const ratio = s === setups[0] ? '1.00' : `**${median(ratios).toFixed(2)}** (${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)})`;
    const cpu = s.cpu.length ? `${median(s.cpu).toFixed(0)} µs` : '–';
    out.push(`| ${s.name} | ${median(s.rates).toFixed(0)} | ${s.rates.map((r) => r.toFixed(0)).join(', ')} | ${ratio} | ${cpu} |`);
  }
  const vsPeer = setups[1].rates.map((r, i) => r / setups[2].rates[i]);
  out.push('', `benno-milter vs libmilter peer, same rounds: ${median(vsPeer).toFixed(2)}; benno-milter peak RSS ${mb(milterPeak)} MiB.`);
  return out;
}

/** Runs a program to its end; returns wall seconds and the exit code. */
function timed(bin: string, args: string[]): Promise<{ seconds: number; code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const started = process.hrtime.bigint();
    const p = spawn(process.execPath, [bin, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    p.on('close', (code) => resolve({ seconds: Number(process.hrtime.bigint() - started) / 1e9, code, stderr }));
  });
}

/** n spool files of about 10 KB each, as the milter writes them (content-hash names). */
function writeSpoolFiles(dir: string, n: number, seed: string): void {
  for (let i = 0; i < n; i++) {
    const msg = tenKbMessage(i);
    const head = msg.headers.map(([k, v]) => `${k}:${String(v).replace(/\n/g, '\r\n')}\r\n`).join('') + `X-Seed: ${seed}\r\n\r\n`;
    const content = Buffer.concat([
      envelopeBlock(DEFAULT_ENVELOPE_NAMES, Buffer.from(String(msg.sender)), msg.recipients.map((r) => Buffer.from(String(r)))),
      Buffer.from(head, 'latin1'),
      msg.body as Buffer,
    ]);
    fs.writeFileSync(path.join(dir, `${createHash('sha256').update(content).digest('hex')}.eml`), content);
  }
}

async function benchC(): Promise<string[]> {
  const files = arg('files', 5000);
  const rounds = arg('rounds', 3);
  const messages = arg('messages', 2000);
  const base = spoolBase();
  const out: string[] = [];

  // Export: a spool of 10 KB files to a local benno-smtp, fsync at both ends.
  out.push('### (c) export: benno-milter2smtp → benno-smtp on loopback, 10 KB messages, fsync at both ends', '');
  out.push('| connections | files | seconds | messages/s |', '| ---: | ---: | ---: | ---: |');
  for (const connections of [1, 2, 4]) {
    const spool = path.join(base, `spool-${connections}`);
    const inbox = path.join(base, `inbox-${connections}`);
    fs.mkdirSync(spool);
    fs.mkdirSync(inbox);
    writeSpoolFiles(spool, files, `c${connections}`);
    const port = await freePort();
    const rx = await startReceiver(base, [`listen = 127.0.0.1:${port}`, `inbox = ${inbox}`]);
    try {
      const r = await timed(EXPORT_BIN, ['--host', '127.0.0.1', '--port', String(port), '--connections', String(connections), spool]);
      if (r.code !== 0 || spoolFiles(inbox).length !== files) throw new Error(`export failed (${r.code}, ${spoolFiles(inbox).length} of ${files} in the inbox): ${r.stderr}`);
      out.push(`| ${connections} | ${files} | ${r.seconds.toFixed(2)} | ${(files / r.seconds).toFixed(0)} |`);
      console.error(`(c) export x${connections}: ${(files / r.seconds).toFixed(0)} msg/s`);
    } finally {
      await rx.program.stop();
    }
  }

  // benno-smtp against Postfix's smtpd under the same smtp-source load.
  const inbox = path.join(base, 'inbox-source');
  fs.mkdirSync(inbox);
  const rxPort = await freePort();
  const rx = await startReceiver(base, [`listen = 127.0.0.1:${rxPort}`, `inbox = ${inbox}`]);
  const postfix = await Postfix.start();
  const rates: Record<'postfix' | 'benno', number[]> = { postfix: [], benno: [] };
  const rxCpu: number[] = [];
  try {
    await smtpSource(postfix.port, 100);
    await smtpSource(rxPort, 100);
    for (let round = 0; round < rounds; round++) {
      rates.postfix.push((await smtpSource(postfix.port, messages)).rate);
      const c0 = cpuSeconds(rx.program.pid);
      rates.benno.push((await smtpSource(rxPort, messages)).rate);
      const c1 = cpuSeconds(rx.program.pid);
      rxCpu.push(((c1.user - c0.user + c1.sys - c0.sys) / messages) * 1e6);
      console.error(`(c) round ${round + 1}: postfix smtpd ${rates.postfix[round].toFixed(0)}, benno-smtp ${rates.benno[round].toFixed(0)} msg/s`);
    }
  } finally {
    await postfix.stop();
    await rx.program.stop();
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const paired = rates.benno.map((r, i) => r / rates.postfix[i]);
  out.push(
    '',
    `### (c) benno-smtp vs Postfix's smtpd into its queue: smtp-source, 20 sessions, ${messages} × 10 KB, ${rounds} rounds interleaved`,
    '',
    '| receiver | messages/s (median) | each round | CPU per message |',
    '| --- | ---: | --- | ---: |',
    `| Postfix smtpd (queue, discard transport) | ${median(rates.postfix).toFixed(0)} | ${rates.postfix.map((r) => r.toFixed(0)).join(', ')} | – |`,
    `| benno-smtp (inbox) | ${median(rates.benno).toFixed(0)} | ${rates.benno.map((r) => r.toFixed(0)).join(', ')} | ${median(rxCpu).toFixed(0)} µs |`,
    '',
    `benno-smtp / Postfix, same rounds: **${median(paired).toFixed(2)}** (${Math.min(...paired).toFixed(2)}–${Math.max(...paired).toFixed(2)}).`,
  );

  // What cron pays every 15 minutes when there is nothing to do.
  const empty = path.join(base, 'empty');
  fs.mkdirSync(empty);
  const noHost = path.join(base, 'default-nohost');
  fs.writeFileSync(noHost, `SPOOLDIR=${empty}\n`);
  const withHost = path.join(base, 'default-host');
  fs.writeFileSync(withHost, `SPOOLDIR=${empty}\nBENNOHOST=127.0.0.1\n`);
  const startups: Record<string, number[]> = { 'benno-milter2smtp, empty spool': [], 'benno-export2archive, BENNOHOST set, empty spool': [], 'benno-export2archive, no BENNOHOST': [] };
  for (let i = 0; i < 11; i++) {
    startups['benno-milter2smtp, empty spool'].push((await timed(EXPORT_BIN, ['--host', '127.0.0.1', empty])).seconds);
    startups['benno-export2archive, BENNOHOST set, empty spool'].push((await timed(EXPORT2ARCHIVE_BIN, ['--config', withHost])).seconds);
    startups['benno-export2archive, no BENNOHOST'].push((await timed(EXPORT2ARCHIVE_BIN, ['--config', noHost])).seconds);
  }
  out.push('', '### (c) start-up on an empty spool (target < 300 ms)', '', '| run | median ms | max ms |', '| --- | ---: | ---: |');
  for (const [name, xs] of Object.entries(startups)) {
    out.push(`| ${name} | ${(median(xs) * 1000).toFixed(0)} | ${(Math.max(...xs) * 1000).toFixed(0)} |`);
  }
  return out;
}

async function main(): Promise<void> {
  const header = [
    `## ${new Date().toISOString().slice(0, 10)}: \`npm run bench ${process.argv.slice(2).join(' ')}\``.replace(/ `$/, '`'),
    '',
    `nproc ${os.cpus().length}, ${os.cpus()[0]?.model ?? 'unknown CPU'}, Node ${process.version}, ${os.type()} ${os.release()}`,
    '',
  ];
  const sections: string[][] = [];
  const hostFs = process.argv.includes('--host-fs');
  const benchFs = hostFs ? null : mountBenchFs();
  // Postfix's queues (test/helpers/postfix.ts) and the spools follow TMPDIR.
  if (benchFs) process.env.TMPDIR = benchFs.dir;
  header.push(hostFs ? 'Files on the root file system (--host-fs).' : 'Postfix queues and spools on a fresh loop-mounted ext4 with journal (defaults of mkfs.ext4).', '');
  process.on('exit', () => (benchFs ? benchFs.remove() : spoolDirs.forEach(removeTree)));
  if (ONLY.includes('a')) sections.push(await benchA());
  if (ONLY.includes('c')) sections.push(await benchC());
  if (ONLY.includes('b')) {
    for (const t of ['unix', 'veth', 'loopback'] as const) sections.push(await benchB(t));
  }
  console.log([...header, ...sections.flatMap((s) => [...s, ''])].join('\n'));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
