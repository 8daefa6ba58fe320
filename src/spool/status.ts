// What a spool directory holds, counted, and the exporter's record of its
// last run, kept in the directory as a dot file (names.ts) for
// `benno-milter-admin status` and `doctor`.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { DEFAULT_SUFFIX, EXPORT_STATUS_FILE, isFailedName, isWaitingName, statusTempName } from './names';

export interface Backlog {
  count: number;
  bytes: number;
  /** Age of the oldest waiting file, in seconds; null when none waits. */
  oldestSeconds: number | null;
  /** Files set aside as .err. */
  failed: number;
}

/** A file the archive host would not take, and why. */
export interface RefusedFile {
  name: string;
  reason: string;
}

export interface ExportStatus {
  time: string;
  host: string;
  exitCode: number;
  sent: number;
  deferred: number;
  /** Files the archive host refused (kept, tried again at every run); absent in files of older versions. */
  refused?: number;
  /** The first of them, with the host's answer. */
  refusedFiles?: RefusedFile[];
  failed: number;
  seconds: number;
}

/** Files waiting and set aside; null when the directory cannot be read. */
export function spoolBacklog(dir: string, suffix = DEFAULT_SUFFIX, now = Date.now()): Backlog | null {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return null;
  }
  const b: Backlog = { count: 0, bytes: 0, oldestSeconds: null, failed: 0 };
  for (const name of names) {
    if (isFailedName(name)) {
      b.failed++;
      continue;
    }
    if (!isWaitingName(name, suffix)) continue;
    try {
      // Only regular files are spool files; the exporter skips anything else.
      const st = fs.lstatSync(path.join(dir, name));
      if (!st.isFile()) continue;
      b.count++;
      b.bytes += st.size;
      const age = (now - st.mtimeMs) / 1000;
      if (b.oldestSeconds === null || age > b.oldestSeconds) b.oldestSeconds = age;
    } catch {
      // sent meanwhile
    }
  }
  return b;
}

/**
 * Written under a temp name and renamed; the temp file is created with
 * O_EXCL and O_NOFOLLOW, so that a link planted under its name in the spool
 * cannot make the exporter write somewhere else.
 */
export function writeExportStatus(dir: string, status: ExportStatus): void {
  const tmp = path.join(dir, statusTempName(process.pid));
  fs.rmSync(tmp, { force: true });
  const fd = fs.openSync(tmp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, 0o640);
  try {
    fs.writeSync(fd, `${JSON.stringify(status)}\n`);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, path.join(dir, EXPORT_STATUS_FILE));
}

export function readExportStatus(dir: string): ExportStatus | null {
  let fd: number | undefined;
  try {
    fd = fs.openSync(path.join(dir, EXPORT_STATUS_FILE), fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
    if (!fs.fstatSync(fd).isFile()) return null;
    return JSON.parse(fs.readFileSync(fd, 'utf8')) as ExportStatus;
  } catch {
    return null;
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}
