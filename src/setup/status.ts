// `benno-milter-admin status`: what waits in the spool, and how the last
// export went. The exporter leaves its result in the spool directory as a
// dot file, which neither Benno nor the exporter itself picks up.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { FAILED_SUFFIX } from '../spool/reader';

export const EXPORT_STATUS_FILE = '.benno-export-status.json';

export interface Backlog {
  count: number;
  bytes: number;
  /** Age of the oldest waiting file, in seconds; null when none waits. */
  oldestSeconds: number | null;
  /** Files renamed .err. */
  failed: number;
}

export interface ExportStatus {
  time: string;
  host: string;
  exitCode: number;
  sent: number;
  deferred: number;
  failed: number;
  seconds: number;
}

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
      const st = fs.statSync(path.join(dir, name));
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

export function writeExportStatus(dir: string, status: ExportStatus): void {
  const tmp = path.join(dir, `${EXPORT_STATUS_FILE}.${process.pid}`);
  fs.writeFileSync(tmp, `${JSON.stringify(status)}\n`, { mode: 0o640 });
  fs.renameSync(tmp, path.join(dir, EXPORT_STATUS_FILE));
}

export function readExportStatus(dir: string): ExportStatus | null {
  try {
    return JSON.parse(fs.readFileSync(path.join(dir, EXPORT_STATUS_FILE), 'utf8')) as ExportStatus;
  } catch {
    return null;
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
  if (b.failed > 0) lines.push(`${b.failed} file(s) refused by the archive host (*${FAILED_SUFFIX}): look at them and send them again by hand`);
  if (!bennoHost) {
    lines.push('BENNOHOST is not set: the milter writes into the archive inbox directly, nothing is exported');
    return lines;
  }
  const last = readExportStatus(spoolDir);
  if (!last) lines.push(`export to ${bennoHost}: no run recorded yet`);
  else {
    const ago = human((now - Date.parse(last.time)) / 1000);
    lines.push(
      `last export to ${last.host}: ${ago} ago, exit ${last.exitCode}, sent ${last.sent}, deferred ${last.deferred}, failed ${last.failed}, ${last.seconds.toFixed(1)} s`,
    );
  }
  return lines;
}
