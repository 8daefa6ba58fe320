// Files a crashed process leaves in a spool directory (the milter's and the
// receiver's temp files, the exporter's claims) carry the host and pid of
// their owner. One rule decides when they are abandoned: the owner is on this
// host and its process is gone, or the file is a day old (any host, for a
// spool shared over NFS).

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { processAlive } from '../ops/processes';
import type { Owner } from './names';

const DAY_MS = 24 * 3600 * 1000;

/** This host's name as it appears in temp and claim file names. */
export function hostTag(): string {
  return os.hostname().replace(/[^A-Za-z0-9-]/g, '_') || 'localhost';
}

/**
 * Calls act(path, name) for each abandoned file whose name owner() recognises
 * (it tells host and pid, or null for names of other kinds) and returns their
 * names. A file another process dealt with meanwhile (ENOENT) is skipped.
 */
export function sweepLeftovers(dir: string, owner: (name: string) => Owner | null, act: (full: string, name: string) => void): string[] {
  const ours = hostTag();
  const dayAgo = Date.now() - DAY_MS;
  const done: string[] = [];
  for (const name of fs.readdirSync(dir)) {
    const who = owner(name);
    if (!who) continue;
    const { host, pid } = who;
    const full = path.join(dir, name);
    try {
      const abandoned = (host === ours && pid !== process.pid && !processAlive(pid)) || fs.lstatSync(full).mtimeMs < dayAgo;
      if (!abandoned) continue;
      act(full, name);
      done.push(name);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
  return done;
}
