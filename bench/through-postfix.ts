// (b) Through real Postfix with smtp-source (20 sessions, N × 10 KB, discard
//     transport), interleaved in one run: no milter, benno-milter, and the
//     libmilter reference peer, with the milters on unix sockets, over a veth
//     pair and on loopback. Ratios matter, not absolute figures: this
//     machine is shared and noisy.

import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { startMilter } from '../test/helpers/daemon';
import { freePort } from '../test/helpers/net';
import { Postfix } from '../test/helpers/postfix';
import { spoolFiles } from '../test/helpers/spool';
import { Part, cpuPerMessage, cpuSeconds, expectFiles, median, mib, milterTarget, paired, postfixSpec, ratioText, smtpSource, spoolBase, startPeer } from './measure';

interface SetUp {
  name: string;
  /** Its own Postfix, given the milter (or none). */
  postfix: Postfix;
  /** The milter process whose CPU is counted, and its spool (null: no files expected). */
  pid?: number;
  spool?: string;
  rates: number[];
  cpu: number[];
}

type Transport = 'unix' | 'loopback' | 'loopback-pingpong' | 'veth';

const TRANSPORT_TITLE: Record<Transport, string> = {
  unix: 'unix sockets',
  loopback: 'TCP on loopback',
  'loopback-pingpong': 'TCP on loopback, host set to net.ipv4.tcp_pingpong_thresh=3 (the host setting the issue measured before the DATA answer)',
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

const PINGPONG = '/proc/sys/net/ipv4/tcp_pingpong_thresh';

/** Sets the host's pingpong threshold (Linux 6.7 and later), returning the value it had. */
function setPingpong(value: string): string {
  const was = fs.readFileSync(PINGPONG, 'utf8').trim();
  fs.writeFileSync(PINGPONG, value);
  return was;
}

async function oneTransport(transport: Transport, options: { messages?: number; rounds?: number }): Promise<string[]> {
  const messages = options.messages ?? 2000;
  const rounds = options.rounds ?? 5;
  const base = spoolBase();
  const spools = { benno: path.join(base, 'benno'), bare: path.join(base, 'bare'), peer: path.join(base, 'peer') };
  for (const d of Object.values(spools)) fs.mkdirSync(d);
  const netns = transport === 'veth' ? makeNetns() : null;
  const prefix = netns?.prefix ?? [];
  const host = netns?.address ?? '127.0.0.1';
  let pingpong: string | null = null;
  const spec = async (name: string) => (transport === 'unix' ? `unix:${path.join(base, `${name}.sock`)}` : `inet:${await freePort()}@${host}`);
  const specs = { benno: await spec('benno'), peer: await spec('peer'), bare: await spec('bare') };
  const allow = netns ? ['--allow', netns.mta] : [];
  const milter = await startMilter(['-p', specs.benno, '-o', spools.benno, ...allow], {}, prefix);
  // The same daemon told to skip every message: the protocol cost alone, no file.
  const bare = await startMilter(['-p', specs.bare, '-o', spools.bare, '--skip-daemon', 'postfix.test.invalid', ...allow], {}, prefix);
  // Postfix reaches a unix socket through group postfix, as in production.
  if (transport === 'unix') for (const s of [specs.benno, specs.bare]) execFileSync('chgrp', ['postfix', (milterTarget(s) as { path: string }).path]);
  const peer = await startPeer(specs.peer, spools.peer, prefix);
  const plan = [
    { name: 'no milter' },
    { name: 'benno-milter', milter: postfixSpec(specs.benno), pid: milter.pid, spool: spools.benno },
    { name: 'libmilter peer', milter: postfixSpec(specs.peer), pid: peer.pid, spool: spools.peer },
    { name: 'benno-milter, protocol only (no file)', milter: postfixSpec(specs.bare), pid: bare.pid },
  ];
  const setups: SetUp[] = [];
  let milterPeak = 0;
  try {
    if (transport === 'loopback-pingpong') pingpong = setPingpong('3');
    for (const { milter, ...s } of plan) setups.push({ ...s, postfix: await Postfix.start({ milter }), rates: [], cpu: [] });
    for (const s of setups) await smtpSource(s.postfix.port, 100); // warm-up: processes, first queue files
    const done: Record<string, number> = {};
    for (const s of setups) done[s.name] = s.spool ? spoolFiles(s.spool).length : 0;
    for (let round = 0; round < rounds; round++) {
      for (const s of setups) {
        const c0 = s.pid ? cpuSeconds(s.pid) : null;
        const r = await smtpSource(s.postfix.port, messages);
        if (s.spool) {
          done[s.name] += messages;
          await expectFiles(s.spool, done[s.name], s.name);
        }
        if (c0 && s.pid) s.cpu.push(cpuPerMessage(c0, cpuSeconds(s.pid), messages));
        s.rates.push(r.rate);
        console.error(`(b) round ${round + 1} ${s.name}: ${r.rate.toFixed(0)} msg/s`);
      }
    }
    milterPeak = milter.memory().hwm;
  } finally {
    for (const s of setups) await s.postfix.stop();
    await milter.stop();
    await bare.stop();
    peer.kill();
    await new Promise((r) => (peer.exitCode === null ? peer.once('exit', r) : r(null)));
    netns?.remove();
    if (pingpong !== null) setPingpong(pingpong);
  }
  const out = [
    `### (b) through real Postfix, milters on ${TRANSPORT_TITLE[transport]}: smtp-source, 20 sessions, 10 KB messages, discard transport`,
    '',
    `${rounds} rounds of ${messages} messages, the set-ups interleaved in each round. "vs no milter" is the median over the rounds of the rate divided by the no-milter rate of the same round (range in brackets). One SMTP session (and so one milter connection) per message, as smtp-source sends them.`,
    '',
    '| set-up | messages/s (median) | each round | vs no milter | milter CPU per message |',
    '| --- | ---: | --- | ---: | ---: |',
  ];
  // Each set-up against the no-milter run of the same round: the rounds are
  // minutes apart and the machine's load drifts, so paired ratios are steadier
  // than a ratio of medians.
  for (const s of setups) {
    const ratio = s === setups[0] ? '1.00' : ratioText(paired(s.rates, setups[0].rates));
    const cpu = s.cpu.length ? `${median(s.cpu).toFixed(0)} µs` : '–';
    out.push(`| ${s.name} | ${median(s.rates).toFixed(0)} | ${s.rates.map((r) => r.toFixed(0)).join(', ')} | ${ratio} | ${cpu} |`);
  }
  const vsPeer = paired(setups[1].rates, setups[2].rates);
  // The ceiling: Postfix with a milter that only answers (issue 13). What is left between it and benno-milter is ours.
  const vsCeiling = paired(setups[1].rates, setups[3].rates);
  out.push(
    '',
    `benno-milter vs libmilter peer, same rounds: ${median(vsPeer).toFixed(2)}; vs the protocol-only ceiling: ${ratioText(vsCeiling)} (target ≥ 0.9); benno-milter peak RSS ${mib(milterPeak)} MiB.`,
  );
  return out;
}

export const throughPostfix: Part = {
  key: 'b',
  run: async (options) => {
    const transports: Transport[] = ['unix', 'veth', 'loopback'];
    if (fs.existsSync(PINGPONG)) transports.push('loopback-pingpong');
    const out: string[][] = [];
    for (const t of transports) out.push(await oneTransport(t, options));
    return out;
  },
};
