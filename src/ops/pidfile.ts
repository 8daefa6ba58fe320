// The pid file: written at start, removed at exit, and a guard against a
// second instance started with the same file.

import * as fs from 'node:fs';
import { processAlive } from './processes';

export function writePidFile(file: string): void {
  try {
    const old = Number(fs.readFileSync(file, 'ascii').trim());
    if (Number.isInteger(old) && old > 0 && old !== process.pid && processAlive(old)) {
      throw new Error(`pid file ${file} names running process ${old}; is another instance running?`);
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, `${process.pid}\n`, { mode: 0o644 });
  fs.renameSync(tmp, file);
}

/** Removes the pid file if it is still ours. */
export function removePidFile(file: string): void {
  try {
    if (Number(fs.readFileSync(file, 'ascii').trim()) === process.pid) fs.unlinkSync(file);
  } catch {
    // gone already, or not ours: nothing to do
  }
}
