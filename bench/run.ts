// Benchmarks (not tests): npm run bench [-- --only a|b] [--messages N] [--rounds R]
//
// (a) benno-milter alone, driven by our MTA-side client: messages/s and peak
//     RSS for 1, 10 and 50 parallel connections × 10 KB messages, fsync on;
//     the libmilter reference peer under the same client for comparison.
// (b) Through real Postfix with smtp-source (20 sessions, N × 10 KB, discard
//     transport), interleaved in one run: no milter, benno-milter, and the
//     libmilter reference peer. Ratios matter, not absolute figures: this
//     machine is shared and noisy.

import { ChildProcess, execFile, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { MilterClient, TestMessage } from '../src/milter/client';
import * as C from '../src/milter/constants';
import { Program, ROOT, startMilter } from '../test/helpers/daemon';
import { removeTree, tempDir } from '../test/helpers/fs';
import { Postfix } from '../test/helpers/postfix';

const execFileP = promisify(execFile);
const PEER = process.env.BENNO_PEER ?? path.join(ROOT, '..', 'shared', 'peers', 'libmilter-dump.py');

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
}
const ONLY = (() => {
  const i = process.argv.indexOf('--only');
  return i > 0 ? process.argv[i + 1] : 'ab';
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
async function driveMilter(target: { path: string } | { host: string; port: number }, parallel: number, total: number): Promise<Rate> {
  let next = 0;
  const started = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      const c = await MilterClient.open(target);
      while (next < total) {
        const i = next++;
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

function countFiles(dir: string): number {
  return fs.readdirSync(dir).filter((n) => n.endsWith('.eml')).length;
}

function emptyDir(dir: string): void {
  for (const n of fs.readdirSync(dir)) fs.unlinkSync(path.join(dir, n));
}

function hwm(pid: number): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/^VmHWM:\s+(\d+) kB/m.exec(status)![1]) * 1024;
}

async function startPeer(port: number, spool: string): Promise<ChildProcess> {
  if (!fs.existsSync(PEER)) throw new Error(`libmilter reference peer not found at ${PEER} (set BENNO_PEER)`);
  const p = spawn('/usr/bin/python3', [PEER, `inet:${port}@127.0.0.1`, spool], { stdio: ['ignore', 'ignore', 'inherit'] });
  // The peer prints nothing when ready: wait until its port answers.
  const net = await import('node:net');
  const deadline = Date.now() + 10_000;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return p;
    if (Date.now() > deadline) throw new Error('libmilter peer did not start listening');
    await new Promise((r) => setTimeout(r, 50));
  }
}

const mb = (n: number) => (n / 1048576).toFixed(1);

async function benchA(): Promise<string[]> {
  const total = arg('messages', 2000);
  const out = ['### (a) milter alone, own client, 10 KB messages, fsync on', '', `${total} messages per row.`, '', '| milter | connections | messages/s | peak RSS (MiB) |', '| --- | ---: | ---: | ---: |'];
  const work = tempDir('benno-bench-a-');
  try {
    for (const parallel of [1, 10, 50]) {
      const spool = path.join(work, `spool-${parallel}`);
      fs.mkdirSync(spool);
      const socketPath = path.join(work, `m-${parallel}.sock`);
      const milter: Program = await startMilter(['-p', `unix:${socketPath}`, '-o', spool]);
      await driveMilter({ path: socketPath }, parallel, 200); // warm-up
      emptyDir(spool);
      const r = await driveMilter({ path: socketPath }, parallel, total);
      const peak = milter.memory().hwm;
      await milter.stop();
      if (countFiles(spool) !== total) throw new Error(`benno-milter wrote ${countFiles(spool)} files for ${total} messages`);
      out.push(`| benno-milter | ${parallel} | ${r.rate.toFixed(0)} | ${mb(peak)} |`);
      console.error(`(a) benno-milter x${parallel}: ${r.rate.toFixed(0)} msg/s, peak RSS ${mb(peak)} MiB`);

      emptyDir(spool);
      const port = 22700 + parallel;
      const peer = await startPeer(port, spool);
      try {
        await driveMilter({ host: '127.0.0.1', port }, parallel, 200);
        emptyDir(spool);
        const p = await driveMilter({ host: '127.0.0.1', port }, parallel, total);
        const peerPeak = hwm(peer.pid!);
        out.push(`| libmilter peer | ${parallel} | ${p.rate.toFixed(0)} | ${mb(peerPeak)} |`);
        console.error(`(a) libmilter peer x${parallel}: ${p.rate.toFixed(0)} msg/s (benno-milter/peer ${(r.rate / p.rate).toFixed(2)})`);
      } finally {
        peer.kill();
      }
      removeTree(spool);
    }
  } finally {
    removeTree(work);
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
  while (countFiles(dir) < want && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  if (countFiles(dir) !== want) throw new Error(`${who} archived ${countFiles(dir)} of ${want} messages`);
}

async function benchB(): Promise<string[]> {
  const messages = arg('messages', 2000);
  const rounds = arg('rounds', 3);
  const work = tempDir('benno-bench-b-');
  fs.chmodSync(work, 0o755);
  const bennoSpool = path.join(work, 'benno');
  const peerSpool = path.join(work, 'peer');
  fs.mkdirSync(bennoSpool);
  fs.mkdirSync(peerSpool);
  const milter = await startMilter(['-p', 'inet:22711@127.0.0.1', '-o', bennoSpool]);
  const peer = await startPeer(22712, peerSpool);
  const instances = {
    none: await Postfix.start({ port: 22721 }),
    'benno-milter': await Postfix.start({ port: 22722, milter: 'inet:127.0.0.1:22711' }),
    'libmilter peer': await Postfix.start({ port: 22723, milter: 'inet:127.0.0.1:22712' }),
  };
  const ports = { none: 22721, 'benno-milter': 22722, 'libmilter peer': 22723 };
  const rates: Record<string, number[]> = { none: [], 'benno-milter': [], 'libmilter peer': [] };
  let milterPeak = 0;
  try {
    // One small warm-up per instance (process start-up, first queue files).
    for (const name of Object.keys(instances) as (keyof typeof instances)[]) await smtpSource(ports[name], 100);
    emptyDir(bennoSpool);
    emptyDir(peerSpool);
    for (let round = 0; round < rounds; round++) {
      for (const name of Object.keys(instances) as (keyof typeof instances)[]) {
        const r = await smtpSource(ports[name], messages);
        if (name === 'benno-milter') await expectFiles(bennoSpool, messages, name);
        if (name === 'libmilter peer') await expectFiles(peerSpool, messages, name);
        emptyDir(bennoSpool);
        emptyDir(peerSpool);
        rates[name].push(r.rate);
        console.error(`(b) round ${round + 1} ${name}: ${r.rate.toFixed(0)} msg/s`);
      }
    }
    milterPeak = milter.memory().hwm;
  } finally {
    for (const pf of Object.values(instances)) await pf.stop();
    await milter.stop();
    peer.kill();
    removeTree(work);
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const base = median(rates.none);
  const out = [
    '### (b) through real Postfix: smtp-source, 20 sessions, 10 KB messages, discard transport',
    '',
    `${rounds} rounds of ${messages} messages, the three set-ups interleaved; median rate.`,
    '',
    '| set-up | messages/s (median) | each round | vs no milter |',
    '| --- | ---: | --- | ---: |',
  ];
  for (const name of Object.keys(rates)) {
    const m = median(rates[name]);
    out.push(`| ${name} | ${m.toFixed(0)} | ${rates[name].map((r) => r.toFixed(0)).join(', ')} | ${(m / base).toFixed(2)} |`);
  }
  out.push('', `benno-milter vs libmilter peer: ${(median(rates['benno-milter']) / median(rates['libmilter peer'])).toFixed(2)}; benno-milter peak RSS ${mb(milterPeak)} MiB.`);
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
  if (ONLY.includes('a')) sections.push(await benchA());
  if (ONLY.includes('b')) sections.push(await benchB());
  console.log([...header, ...sections.flatMap((s) => [...s, ''])].join('\n'));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
