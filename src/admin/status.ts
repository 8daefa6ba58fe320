// `benno-milter-admin status`: what waits in the spool, and how the last
// export went (spool/status.ts counts and reads them).

import { printable } from '../ops/text';
import { FAILED_SUFFIX } from '../spool/names';
import { ExportStatus, readExportStatus, spoolBacklog } from '../spool/status';

/** How many refused files the status report names. */
const SHOWN_REFUSALS = 5;

function human(seconds: number): string {
  if (seconds < 120) return `${Math.round(seconds)} s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

/** The status report, one fact a line. */
export function statusReport(spool: { dir: string; suffix: string }, bennoHost: string | undefined, now = Date.now()): string[] {
  const spoolDir = spool.dir;
  const lines: string[] = [];
  const b = spoolBacklog(spoolDir, spool.suffix, now);
  if (!b) return [`spool ${spoolDir}: cannot be read`];
  lines.push(
    `spool ${spoolDir}: ${b.count} file(s) waiting, ${b.bytes} bytes` + (b.oldestSeconds !== null ? `, oldest ${human(b.oldestSeconds)}` : ''),
  );
  if (b.failed > 0) {
    lines.push(
      `${b.failed} file(s) set aside as *${FAILED_SUFFIX} (not spool files, or refused by the archive host under an older version): ` +
        `look at them; rename one back without ${FAILED_SUFFIX} to send it again`,
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
