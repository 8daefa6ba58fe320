// Soak: npm run soak -- --minutes N
//
// Steady load through a real Postfix into benno-milter for N minutes (spool
// and queue on a fresh loop-mounted ext4), a janitor taking files out of the
// spool as Benno's importer does. Prints throughput and the milter's RSS
// every 30 seconds; at the end, every message Postfix queued must have been
// archived (queue ids in Postfix's log against the milter's).

import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { startMilter } from '../test/helpers/daemon';
import { mountExt4 } from '../test/helpers/fs';
import { Postfix } from '../test/helpers/postfix';
import { allFiles, spoolFiles } from '../test/helpers/spool';
import { mib, numberArg, smtpSource } from './measure';

async function main(): Promise<void> {
  const minutes = numberArg('minutes') ?? 10;
  if (!(minutes > 0)) {
    console.error('soak: --minutes needs a positive number');
    process.exit(64);
  }
  const fsys = mountExt4(8192);
  fs.chmodSync(fsys.dir, 0o755);
  process.env.TMPDIR = fsys.dir;
  const spool = path.join(fsys.dir, 'spool');
  fs.mkdirSync(spool);
  const socketPath = path.join(fsys.dir, 'milter.sock');
  const milter = await startMilter(['-p', `unix:${socketPath}`, '-o', spool]);
  execFileSync('chgrp', ['postfix', socketPath]);
  const postfix = await Postfix.start({ milter: `unix:${socketPath}` });
  const end = Date.now() + minutes * 60_000;
  const started = Date.now();
  const samples: { t: number; archived: number; rss: number }[] = [];
  const archivedCount = () => milter.stderr.filter((l) => l.includes(': archived ')).length;
  let imported = 0;
  const janitor = setInterval(() => {
    for (const name of spoolFiles(spool)) {
      fs.unlinkSync(path.join(spool, name));
      imported++;
    }
  }, 5000);
  const sample = () => {
    const s = { t: (Date.now() - started) / 1000, archived: archivedCount(), rss: milter.memory().rss };
    const prev = samples.at(-1);
    samples.push(s);
    const rate = prev ? (s.archived - prev.archived) / (s.t - prev.t) : 0;
    console.log(`${s.t.toFixed(0).padStart(5)} s  archived ${String(s.archived).padStart(8)}  ${rate.toFixed(0).padStart(5)} msg/s  RSS ${mib(s.rss)} MiB`);
  };
  const sampler = setInterval(sample, 30_000);
  sample();
  try {
    while (Date.now() < end) {
      await smtpSource(postfix.port, 1000, { sessions: 10, from: 'soak@example.com' });
    }
  } finally {
    clearInterval(sampler);
    sample();
  }
  // Done when Postfix's queue is empty and its log has caught up (postlogd
  // writes asynchronously): every message qmgr took in, it has also removed.
  const count = (re: RegExp) => (postfix.log().match(re) ?? []).length;
  for (let settled = false; !settled; ) {
    await new Promise((r) => setTimeout(r, 200));
    const empty = ['incoming', 'active', 'deferred'].every((q) => postfix.queueFiles(q).length === 0);
    settled = empty && count(/qmgr\[\d+\]: [0-9A-F]+: from=/g) === count(/qmgr\[\d+\]: [0-9A-F]+: removed/g);
  }
  clearInterval(janitor);
  // Postfix reuses short queue ids once a message has left the queue, so
  // compare counts per id, not sets.
  const tally = (lines: string[], re: RegExp) => {
    const counts = new Map<string, number>();
    for (const line of lines) {
      const m = re.exec(line);
      if (m) counts.set(m[1], (counts.get(m[1]) ?? 0) + 1);
    }
    return counts;
  };
  // qmgr sees only what cleanup committed, i.e. what got 250 after the milter.
  const queued = tally(postfix.log().split('\n'), /qmgr\[\d+\]: ([0-9A-F]+): from=/);
  const archived = tally(milter.stderr, /: ([0-9A-F]+): archived /);
  const sum = (m: Map<string, number>) => [...m.values()].reduce((a, b) => a + b, 0);
  let missing = 0;
  let extra = 0;
  for (const [id, n] of queued) missing += Math.max(0, n - (archived.get(id) ?? 0));
  for (const [id, n] of archived) extra += Math.max(0, n - (queued.get(id) ?? 0));
  const files = imported + spoolFiles(spool).length;
  const stray = allFiles(spool).filter((n) => !n.endsWith('.eml')).length;
  const rss = samples.map((s) => s.rss);
  const loaded = rss.length > 2 ? rss[1] : rss[0];
  console.log('');
  console.log(`soak ${minutes} min: ${sum(queued)} messages queued by Postfix, ${sum(archived)} archived, ${files} spool files, ` +
    `${missing} missing, ${extra} archived but not queued, ${stray} other files; ` +
    `${(sum(archived) / ((Date.now() - started) / 1000)).toFixed(0)} msg/s; ` +
    `RSS idle ${mib(rss[0])} MiB, at 30 s ${mib(loaded)} MiB, end ${mib(rss.at(-1)!)} MiB, max ${mib(Math.max(...rss))} MiB`);
  await postfix.stop();
  await milter.stop();
  fsys.unmount();
  process.exitCode = missing === 0 && files === sum(archived) && stray === 0 ? 0 : 1;
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
