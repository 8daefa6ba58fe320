// Files a crashed process leaves in a spool directory (the milter's and the
// receiver's temp files, the exporter's claims) carry the host and pid of
// their owner. One rule decides when they are abandoned: the owner is on this
// host and its process is gone, or the file is a day old (any host, for a
// spool shared over NFS).

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { processAlive } from '../ops/processes';

const DAY_MS = 24 * 3600 * 1000;

/** This host's name as it appears in temp and claim file names. */
export function hostTag(): string {
  return os.hostname().replace(/[^A-Za-z0-9-]/g, '_') || 'localhost';
}

/**
 * Calls act(path, match) for each abandoned file whose name matches re
 * (owner(match) tells host and pid) and returns their names. A file another
 * process dealt with meanwhile (ENOENT) is skipped.
 */
export function sweepLeftovers(
  dir: string,
  re: RegExp,
  owner: (m: RegExpExecArray) => { host: string; pid: number },
  act: (full: string, m: RegExpExecArray) => void,
): string[] {
  const ours = hostTag();
  const dayAgo = Date.now() - DAY_MS;
  const done: string[] = [];
  for (const name of fs.readdirSync(dir)) {
    const m = re.exec(name);
    if (!m) continue;
    const { host, pid } = owner(m);
    const full = path.join(dir, name);
    try {
      const abandoned = (host === ours && pid !== process.pid && !processAlive(pid)) || fs.lstatSync(full).mtimeMs < dayAgo;
      if (!abandoned) continue;
      act(full, m);
      done.push(name);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
  return done;
}
