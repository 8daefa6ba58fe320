// `benno-milter-admin status`: what waits in the spool, and how the last
// export went. The exporter leaves its result in the spool directory as a
// dot file, which neither Benno nor the exporter itself picks up.

import * as fs from 'node:fs';
import * as path from 'node:path';
import type { RefusedFile } from '../export/exporter';
import { printable } from '../ops/text';
import { FAILED_SUFFIX } from '../spool/reader';

export const EXPORT_STATUS_FILE = '.benno-export-status.json';

export interface Backlog {
  count: number;
  bytes: number;
  /** Age of the oldest waiting file, in seconds; null when none waits. */
  oldestSeconds: number | null;
  /** Files set aside as .err. */
  failed: number;
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

/** How many refused files the status report names. */
const SHOWN_REFUSALS = 5;

export function spoolBacklog(dir: string, suffix = '.eml', now = Date.now()): Backlog | null {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return null;
  }
  const b: Backlog = { count: 0, bytes: 0, oldestSeconds: null, failed: 0 };
  for (const name of names) {
    if (name.startsWith('.')) continue;
    if (name.endsWith(FAILED_SUFFIX)) {
      b.failed++;
      continue;
    }
    if (!name.endsWith(suffix)) continue;
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
  const tmp = path.join(dir, `${EXPORT_STATUS_FILE}.${process.pid}`);
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

function human(seconds: number): string {
  if (seconds < 120) return `${Math.round(seconds)} s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

/** The status report, one fact a line. */
export function statusReport(spoolDir: string, bennoHost: string | undefined, now = Date.now()): string[] {
  const lines: string[] = [];
  const b = spoolBacklog(spoolDir, '.eml', now);
  if (!b) return [`spool ${spoolDir}: cannot be read`];
  lines.push(
    `spool ${spoolDir}: ${b.count} file(s) waiting, ${b.bytes} bytes` + (b.oldestSeconds !== null ? `, oldest ${human(b.oldestSeconds)}` : ''),
  );
  if (b.failed > 0) {
    lines.push(
      `${b.failed} file(s) set aside as *${FAILED_SUFFIX} (not spool files, or refused by the archive host under an older version): ` +
        'look at them; rename one back without .err to send it again',
    );
  }
  if (!bennoHost) {
    lines.push('BENNOHOST is not set: the milter writes into the archive inbox directly, nothing is exported');
    return lines;
  }
  const last = readExportStatus(spoolDir);
  if (!last) lines.push(`export to ${bennoHost}: no run recorded yet`);
  else {
    const ago = human((now - Date.parse(last.time)) / 1000);
    lines.push(
      `last export to ${last.host}: ${ago} ago, exit ${last.exitCode}, sent ${last.sent}, deferred ${last.deferred}, ` +
        `refused ${last.refused ?? 0}, failed ${last.failed}, ${last.seconds.toFixed(1)} s`,
    );
    lines.push(...refusedReport(last));
  }
  return lines;
}

/** The files the archive host refused in the last export, for status; nothing when there were none. */
export function refusedReport(last: ExportStatus): string[] {
  const count = last.refused ?? 0;
  if (count === 0) return [];
  const named = (last.refusedFiles ?? []).slice(0, SHOWN_REFUSALS);
  // The reasons are the archive host's words: printable() keeps them to one harmless line each.
  return [
    `${count} file(s) the archive host refused in the last export (kept in the spool, tried again at every run):`,
    ...named.map((f) => `  ${printable(f.name)}: ${printable(f.reason)}`),
    ...(count > named.length ? [`  … and ${count - named.length} more`] : []),
  ];
}
