// Benchmarks (not tests): npm run bench [-- --only abc] [--messages N]
// [--rounds R] [--files N] [--host-fs]
//
// Each part is one file over the shared helpers of measure.ts; a new part is
// a new file and one line in PARTS. This file reads the command line, runs
// the parts asked for, and prints their sections as Markdown on stdout
// (progress goes to stderr).

import * as os from 'node:os';
import { auditBench } from './audit';
import { exportBench } from './export';
import { imapBench } from './imap';
import { imapSavesBench } from './imap-saves';
import { imapauthBench } from './imapauth';
import { Options, Part, mountBenchFs, numberArg, removeSpoolBases } from './measure';
import { milterAlone } from './milter-alone';
import { throughPostfix } from './through-postfix';

/** In the order they run: the long Postfix part last. */
const PARTS: Part[] = [milterAlone, exportBench, imapBench, imapSavesBench, imapauthBench, auditBench, throughPostfix];

const ONLY = (() => {
  const i = process.argv.indexOf('--only');
  return i > 0 ? process.argv[i + 1] : PARTS.map((p) => p.key).join('');
})();

async function main(): Promise<void> {
  const options: Options = { messages: numberArg('messages'), rounds: numberArg('rounds'), files: numberArg('files') };
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
  process.on('exit', () => (benchFs ? benchFs.remove() : removeSpoolBases()));
  for (const part of PARTS) if (ONLY.includes(part.key)) sections.push(...(await part.run(options)));
  console.log([...header, ...sections.flatMap((s) => [...s, ''])].join('\n'));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
