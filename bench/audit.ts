// (l) benno-milter-admin audit over one day of a busy server: a recorded
//     Postfix + benno-milter log (test/fixtures/audit/plain.*, real lines)
//     replayed with fresh queue ids and times into one mail.log of
//     1,000,000 lines, the milter's lines in it as rsyslog writes them
//     under systemd. Queue ids come from a pool, so Postfix's reuse of an id
//     happens all day; every 10,000th message went through unarchived (the
//     milter down), which the audit must find, no more, no less. Target:
//     under 30 s and under 200 MB peak RSS.

import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ROOT, memoryOf } from '../test/helpers/daemon';
import { Options, Part, mib, spoolBase } from './measure';

const ADMIN_BIN = path.join(ROOT, 'dist', 'src', 'cli', 'benno-milter-admin.js');
const FIXTURES = path.join(ROOT, 'test', 'fixtures', 'audit');

/** The recorded lines of one message (qid, sender and the milter's line replaced at replay). */
function template(): string[] {
  const maillog = fs.readFileSync(path.join(FIXTURES, 'plain.maillog'), 'utf8').split('\n');
  const milter = fs.readFileSync(path.join(FIXTURES, 'plain.milter'), 'utf8').split('\n');
  const id = '89ADF20C49C';
  const own = maillog.filter((l) => l.includes(id) || /smtpd\[29381\]: (connect|disconnect) from/.test(l)).slice(0, 7);
  // The milter's line where the journal puts it: after client= and message-id, before qmgr's from=.
  const archived = /benno-milter\[\d+\]: info: (.*)$/.exec(milter.find((l) => l.includes(`${id}: archived`))!)![1];
  const at = own.findIndex((l) => l.includes('qmgr'));
  return [...own.slice(0, at), `Nov 24 13:12:05 postfix benno-milter[29061]: ${archived}`, ...own.slice(at)].map((l) => l.slice('Nov 24 13:12:05 '.length));
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

function syslogTime(t: number): string {
  const d = new Date(t);
  const p = (n: number) => String(n).padStart(2, '0');
  return `${MONTHS[d.getMonth()]} ${String(d.getDate()).padStart(2, ' ')} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/** Writes the day's log; returns how many messages went through unarchived. */
async function writeDay(file: string, lines: number, day: number): Promise<{ messages: number; missing: number }> {
  const tpl = template();
  const messages = Math.floor(lines / tpl.length);
  const pool = 40_000; // fewer ids than messages: each is used again after its message was removed
  const out = fs.createWriteStream(file);
  let missing = 0;
  let chunk: string[] = [];
  for (let i = 0; i < messages; i++) {
    const id = (0x10000000000 + (i % pool) * 7919).toString(16).toUpperCase().slice(-11);
    const time = syslogTime(day + Math.floor((i / messages) * 86_400_000));
    const down = i % 10_000 === 9_999;
    if (down) missing++;
    for (const l of tpl) {
      if (down && l.includes('benno-milter[')) continue;
      chunk.push(`${time} ${l.replace(/89ADF20C49C/g, id).replace(/c0@example\.com/g, `user${i % 977}@example.com`)}\n`);
    }
    if (chunk.length >= 4096) {
      if (!out.write(chunk.join(''))) await new Promise((r) => out.once('drain', r));
      chunk = [];
    }
  }
  out.end(chunk.join(''));
  await new Promise((r) => out.on('finish', r));
  return { messages, missing };
}

/** Runs the audit; its wall time and peak RSS (VmHWM, read until it exits). */
function auditRun(args: string[]): Promise<{ seconds: number; peak: number; code: number | null; stdout: string }> {
  return new Promise((resolve) => {
    const started = process.hrtime.bigint();
    const p = spawn(process.execPath, [ADMIN_BIN, 'audit', ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
    let peak = 0;
    let stdout = '';
    const sample = () => {
      try {
        peak = Math.max(peak, memoryOf(p.pid!).hwm);
      } catch {
        // exited meanwhile
      }
    };
    const timer = setInterval(sample, 20);
    p.stdout.on('data', (d: Buffer) => {
      sample(); // the report is written at the end, at the peak
      stdout += d.toString();
    });
    p.on('close', (code) => {
      clearInterval(timer);
      resolve({ seconds: Number(process.hrtime.bigint() - started) / 1e9, peak, code, stdout });
    });
  });
}

async function run(options: Options): Promise<string[][]> {
  const lines = options.messages ?? 1_000_000;
  const base = spoolBase();
  const file = path.join(base, 'mail.log');
  const day = new Date(2026, 10, 23).getTime();
  console.error(`(l) writing ${lines} log lines`);
  const { messages, missing } = await writeDay(file, lines, day);
  const size = fs.statSync(file).size;
  fs.utimesSync(file, (day + 86_400_000) / 1000, (day + 86_400_000) / 1000);
  const out = [
    `### (l) audit of one day: ${lines.toLocaleString('en')} log lines (${mib(size)} MiB, ${messages.toLocaleString('en')} messages replayed from a recorded Postfix + benno-milter log, queue ids reused), ${missing} messages unarchived`,
    '',
    '| run | seconds | lines/s | peak RSS MiB | found unarchived |',
    '| --- | ---: | ---: | ---: | ---: |',
  ];
  for (const [name, args] of [
    ['table', ['--log', file]],
    ['--check', ['--log', file, '--check']],
  ] as const) {
    const r = await auditRun([...args]);
    const found = Number(/missing=(\d+)/.exec(r.stdout)?.[1] ?? /accepted, NOT archived +(\d+)/.exec(r.stdout)?.[1]);
    if (found !== missing) throw new Error(`the audit found ${found} unarchived messages, not ${missing} (exit ${r.code}): ${r.stdout.slice(0, 2000)}`);
    out.push(`| ${name} | ${r.seconds.toFixed(1)} | ${Math.round(lines / r.seconds).toLocaleString('en')} | ${mib(r.peak)} | ${found} |`);
    console.error(`(l) ${name}: ${r.seconds.toFixed(1)} s, peak RSS ${mib(r.peak)} MiB`);
  }
  fs.rmSync(file);
  return [out];
}

export const auditBench: Part = { key: 'l', run };
