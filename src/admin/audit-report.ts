// The audit's result as an administrator reads it (a table), as monitoring
// reads it (--json), and as one line for cron mail or a Nagios/Icinga check
// (--check). Everything that came from a log passes through printable(): a
// line of the log cannot start a line of the report.

import { printable } from '../ops/text';
import type { AuditRun } from './audit';
import type { Finding, Listing } from './audit-matcher';

/** The plugin states of Nagios and Icinga; the CLI turns them into exit codes. */
export type CheckState = 'OK' | 'WARNING' | 'CRITICAL' | 'UNKNOWN';

/**
 * CRITICAL: a message the MTA accepted has no archived file (the archive is
 * incomplete). WARNING: nothing is missing, but something needs a look: a
 * message archived twice, or archived lines the MTA's log does not show
 * (its log not read, or another MTA). UNKNOWN: no log line in the period,
 * so nothing can be said.
 */
export function checkState(r: AuditRun): CheckState {
  if (r.linesInPeriod === 0) return 'UNKNOWN';
  if (r.missing.count > 0) return 'CRITICAL';
  if (r.twice.count > 0 || r.archivedUnknown > 0) return 'WARNING';
  return 'OK';
}

function localTime(t: number): string {
  const d = new Date(t);
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

function period(r: AuditRun): string {
  const from = r.since === null ? 'the start of the logs' : localTime(r.since);
  const to = r.until === null ? 'their end' : localTime(r.until);
  return `${from} to ${to}`;
}

export function checkLine(r: AuditRun): string {
  const state = checkState(r);
  const what =
    state === 'UNKNOWN'
      ? `no mail log lines from ${period(r)}`
      : state === 'CRITICAL'
        ? `${r.missing.count} of ${r.accepted} messages accepted by the MTA not archived`
        : state === 'WARNING'
          ? `all ${r.accepted} accepted messages archived; ${r.twice.count} archived twice, ${r.archivedUnknown} archived lines unknown to the MTA's log`
          : `all ${r.accepted} messages accepted by the MTA archived`;
  const perf = `accepted=${r.accepted} archived=${r.archived} missing=${r.missing.count} twice=${r.twice.count} linked=${r.linked.count} unknown=${r.archivedUnknown}`;
  return `BENNO AUDIT ${state} - ${what} (${period(r)}) | ${perf}`;
}

function section(title: string, list: Listing, shown = list.items.length): string[] {
  if (list.count === 0) return [];
  const out = ['', `${title} (${list.count}):`, `${'TIME'.padEnd(19)}  ${'QUEUE ID'.padEnd(14)}  SENDER`];
  for (const f of list.items.slice(0, shown)) out.push(...finding(f));
  const left = list.count - Math.min(shown, list.items.length);
  if (left > 0) out.push(`... and ${left} more${shown < list.items.length ? ' (--json lists them)' : ''}`);
  return out;
}

function finding(f: Finding): string[] {
  const out = [`${localTime(f.time)}  ${f.queueId.padEnd(14)}  <${printable(f.sender)}>`, `    ${printable(f.line)}`];
  if (f.note) out.push(`    ${printable(f.note)}`);
  return out;
}

/** Re-injections are normal behind a content filter: a few show the link, the count says the rest. */
const LINKED_SHOWN = 10;

export function textReport(r: AuditRun): string {
  const row = (label: string, n: number) => `${label.padEnd(48)} ${String(n).padStart(9)}`;
  const out = [
    `Mail log audit, ${period(r)}`,
    `sources: ${printable(r.sources.join('; '))}`,
    `log lines read: ${r.lines}, in the period: ${r.linesInPeriod}`,
    '',
    row('accepted by the MTA', r.accepted),
    row('archived by benno-milter', r.archived),
    row('accepted, archived under a linked queue id', r.linked.count),
    row('accepted, NOT archived', r.missing.count),
    row('  of these refused or tempfailed by the milter', r.failedButAccepted.count),
    row('archived twice', r.twice.count),
    row("archived, queue id not in the MTA's log", r.archivedUnknown),
    ...section('NOT ARCHIVED: accepted by the MTA, no archived file', r.missing),
    ...section('ARCHIVED TWICE', r.twice),
    ...section('Linked: passed through a content filter or handed on, archived under the other queue id', r.linked, LINKED_SHOWN),
    '',
    r.linesInPeriod === 0
      ? `NOTHING TO AUDIT: no mail log lines from ${period(r)}.`
      : r.missing.count === 0
        ? `COMPLETE: every message the MTA accepted in the period was archived.`
        : `INCOMPLETE: ${r.missing.count} of ${r.accepted} messages the MTA accepted were not archived.`,
  ];
  return out.join('\n') + '\n';
}

export function jsonReport(r: AuditRun): string {
  const iso = (t: number | null) => (t === null ? null : new Date(t).toISOString());
  const list = (l: Listing) => ({
    count: l.count,
    items: l.items.map((f) => ({ time: iso(f.time), queueId: f.queueId, sender: printable(f.sender), line: printable(f.line), ...(f.note ? { note: printable(f.note) } : {}) })),
  });
  return (
    JSON.stringify(
      {
        since: iso(r.since),
        until: iso(r.until),
        sources: r.sources.map(printable),
        lines: r.lines,
        linesInPeriod: r.linesInPeriod,
        complete: r.missing.count === 0,
        state: checkState(r),
        accepted: r.accepted,
        archived: r.archived,
        archivedUnknownToMta: r.archivedUnknown,
        notArchived: list(r.missing),
        refusedOrTempfailedButAccepted: list(r.failedButAccepted),
        archivedTwice: list(r.twice),
        linked: list(r.linked),
      },
      null,
      2,
    ) + '\n'
  );
}
