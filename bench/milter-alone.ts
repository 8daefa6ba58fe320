// (a) benno-milter alone, driven by our MTA-side client: messages/s and peak
//     RSS for 1, 10 and 50 parallel connections × 10 KB messages, fsync on;
//     the libmilter reference peer under the same client for comparison.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { MilterClient } from '../src/milter/client';
import { Program, memoryOf, startMilter } from '../test/helpers/daemon';
import { spoolFiles } from '../test/helpers/spool';
import { Cpu, Part, Rate, cpuPerMessage, cpuSeconds, milterTarget, mib, spoolBase, startPeer, tenKbMessage, timeRate } from './measure';

let messageSeq = 0; // unique content per message: equal content would share one file name

/** Drives a milter with `parallel` connections until `total` messages are accepted. */
function driveMilter(target: { path: string } | { host: string; port: number }, parallel: number, total: number): Promise<Rate> {
  let sent = 0;
  return timeRate(total, () =>
    Promise.all(
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
    ),
  );
}

function cpuText(a: Cpu, b: Cpu, messages: number): string {
  const us = (x: number) => ((x / messages) * 1e6).toFixed(0);
  return `${cpuPerMessage(a, b, messages).toFixed(0)} µs (${us(b.user - a.user)}+${us(b.sys - a.sys)})`;
}

async function run(options: { messages?: number }): Promise<string[][]> {
  const total = options.messages ?? 2000;
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
    out.push(`| benno-milter | ${parallel} | ${r.rate.toFixed(0)} | ${cpuText(c0, c1, total)} | ${mib(peak)} |`);
    console.error(`(a) benno-milter x${parallel}: ${r.rate.toFixed(0)} msg/s, peak RSS ${mib(peak)} MiB`);

    const peerSpool = path.join(work, `peer-${parallel}`);
    fs.mkdirSync(peerSpool);
    const peerSpec = `unix:${path.join(work, `peer-${parallel}.sock`)}`;
    const peer = await startPeer(peerSpec, peerSpool);
    try {
      await driveMilter(milterTarget(peerSpec), parallel, 200);
      const p0 = cpuSeconds(peer.pid!);
      const p = await driveMilter(milterTarget(peerSpec), parallel, total);
      const p1 = cpuSeconds(peer.pid!);
      const peerPeak = memoryOf(peer.pid!).hwm;
      out.push(`| libmilter peer | ${parallel} | ${p.rate.toFixed(0)} | ${cpuText(p0, p1, total)} | ${mib(peerPeak)} |`);
      console.error(`(a) libmilter peer x${parallel}: ${p.rate.toFixed(0)} msg/s (benno-milter/peer ${(r.rate / p.rate).toFixed(2)})`);
    } finally {
      peer.kill();
    }
  }
  return [out];
}

export const milterAlone: Part = { key: 'a', run };
