// (c) The export side: benno-milter2smtp shipping a spool to benno-smtp with
//     1, 2 and 4 connections; benno-smtp against Postfix's smtpd under the
//     same smtp-source load; and what the exporters cost at start-up when
//     there is nothing to do.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { freePort } from '../test/helpers/net';
import { Postfix } from '../test/helpers/postfix';
import { EXPORT2ARCHIVE_BIN, EXPORT_BIN, startReceiver } from '../test/helpers/smtp';
import { spoolFiles } from '../test/helpers/spool';
import { Options, Part, cpuPerMessage, cpuSeconds, median, paired, ratioText, smtpSource, spoolBase, timed, writeSpoolFiles } from './measure';

async function run(options: Options): Promise<string[][]> {
  const files = options.files ?? 5000;
  const rounds = options.rounds ?? 3;
  const messages = options.messages ?? 2000;
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
      rxCpu.push(cpuPerMessage(c0, cpuSeconds(rx.program.pid), messages));
      console.error(`(c) round ${round + 1}: postfix smtpd ${rates.postfix[round].toFixed(0)}, benno-smtp ${rates.benno[round].toFixed(0)} msg/s`);
    }
  } finally {
    await postfix.stop();
    await rx.program.stop();
  }
  out.push(
    '',
    `### (c) benno-smtp vs Postfix's smtpd into its queue: smtp-source, 20 sessions, ${messages} × 10 KB, ${rounds} rounds interleaved`,
    '',
    '| receiver | messages/s (median) | each round | CPU per message |',
    '| --- | ---: | --- | ---: |',
    `| Postfix smtpd (queue, discard transport) | ${median(rates.postfix).toFixed(0)} | ${rates.postfix.map((r) => r.toFixed(0)).join(', ')} | – |`,
    `| benno-smtp (inbox) | ${median(rates.benno).toFixed(0)} | ${rates.benno.map((r) => r.toFixed(0)).join(', ')} | ${median(rxCpu).toFixed(0)} µs |`,
    '',
    `benno-smtp / Postfix, same rounds: ${ratioText(paired(rates.benno, rates.postfix))}.`,
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
  return [out];
}

export const exportBench: Part = { key: 'c', run };
