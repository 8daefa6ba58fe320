// The report of benno-imapsync --verify: a table for a terminal or a cron
// mail, JSON for monitoring. Folder names and reasons come from the IMAP
// server and the database: printable() keeps them from forging lines or
// playing tricks on the terminal.

import type { AccountVerification, Gap } from '../imap/verify';
import { printable } from '../ops/text';

/** One account's outcome: verified, or why not with the exit status that says so. */
export type Verified = { account: string; result: AccountVerification } | { account: string; error: string; exitCode: number };

export interface VerifyTotals {
  accounts: number;
  /** Accounts that could not be verified. */
  unverified: number;
  folders: number;
  archived: number;
  beforeRecords: number;
  pending: number;
  gaps: number;
  /** Of the gaps, imports that failed. */
  failed: number;
  excludedMessages: number;
}

export function verifyTotals(all: readonly Verified[]): VerifyTotals {
  const t: VerifyTotals = { accounts: all.length, unverified: 0, folders: 0, archived: 0, beforeRecords: 0, pending: 0, gaps: 0, failed: 0, excludedMessages: 0 };
  for (const v of all) {
    if (!('result' in v)) {
      t.unverified++;
      continue;
    }
    const checked = v.result.folders.filter((f) => f.status !== 'excluded');
    t.folders += checked.length;
    for (const f of checked) {
      t.archived += f.archived;
      t.beforeRecords += f.beforeRecords;
      t.pending += f.pending;
    }
    t.gaps += v.result.gaps.length;
    t.failed += v.result.gaps.filter((g) => g.kind === 'failed').length;
    t.excludedMessages += v.result.excludedMessages;
  }
  return t;
}

const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

/** The one line that ends the table: what a cron mail's reader needs first. */
export function verifySummary(t: VerifyTotals): string {
  const verdict = t.gaps > 0 ? 'GAPS' : t.unverified > 0 ? 'INCOMPLETE CHECK' : 'COMPLETE';
  const parts = [
    `${verdict}: ${plural(t.accounts, 'account')} (${t.unverified} not verified), ${plural(t.folders, 'folder')}`,
    `${t.archived} archived with a record`,
    ...(t.beforeRecords > 0 ? [`${t.beforeRecords} archived before records were kept`] : []),
    `${plural(t.gaps, 'gap')} (${t.failed} failed)`,
    `${t.pending} waiting for the next sync`,
    `${t.excludedMessages} in excluded folders`,
  ];
  return parts.join(', ');
}

function gapLine(g: Gap): string {
  const when = g.recorded ? ` (recorded ${g.recorded.toISOString()})` : '';
  const reason = g.reason ? `: ${printable(g.reason)}` : '';
  switch (g.kind) {
    case 'no-record':
      return 'no record of archiving, yet at or below the mark and on the server';
    case 'expunged-but-present':
      return `passed as expunged${when}, yet on the server`;
    case 'failed':
      return `import failed${when}${reason}; ${g.onServer ? 'on the server: the next sync tries again' : 'no longer on the server: never archived'}`;
  }
}

/** Columns padded to their widest cell; numbers to the right. */
function table(rows: string[][], numeric: readonly boolean[], indent: string): string[] {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  return rows.map((r) => indent + r.map((cell, c) => (numeric[c] ? cell.padStart(widths[c]) : cell.padEnd(widths[c]))).join('  ').trimEnd());
}

export function verifyText(all: readonly Verified[]): string {
  const out: string[] = [];
  for (const v of all) {
    const who = printable(v.account);
    if (!('result' in v)) {
      out.push(`${who}: NOT VERIFIED: ${printable(v.error)}`, '');
      continue;
    }
    const r = v.result;
    out.push(`${who}: ${r.gaps.length === 0 ? 'complete' : plural(r.gaps.length, 'gap')}`);
    const rows = [['folder', 'uidvalidity', 'mark', 'on server', 'archived', 'before records', 'pending', 'gaps', 'note']];
    for (const f of r.folders) {
      const name = printable(f.folder);
      const messages = f.messages === null ? '?' : String(f.messages);
      if (f.status === 'excluded') {
        rows.push([name, '', '', messages, '', '', '', '', `excluded, never archived: ${printable(f.reason ?? '')}`]);
        continue;
      }
      const note = f.status === 'new' ? 'not synced yet' : f.status === 'uidvalidity-changed' ? `UIDVALIDITY changed (${printable(f.reason ?? '')}): the next sync imports it again` : '';
      rows.push([name, f.uidValidity === null ? '?' : String(f.uidValidity), String(f.mark), messages, String(f.archived), String(f.beforeRecords), String(f.pending), String(f.gaps), note]);
    }
    out.push(...table(rows, [false, true, true, true, true, true, true, true, false], '  '));
    if (r.gaps.length > 0) {
      out.push('  gaps:');
      out.push(...table(r.gaps.map((g) => [printable(g.folder), `UID ${g.uid}`, gapLine(g)]), [false, false, false], '    '));
    }
    out.push('');
  }
  out.push(verifySummary(verifyTotals(all)));
  return `${out.join('\n')}\n`;
}

export function verifyJson(all: readonly Verified[]): string {
  const t = verifyTotals(all);
  const accounts = all.map((v) => ('result' in v ? v.result : { account: v.account, error: v.error }));
  return `${JSON.stringify({ complete: t.gaps === 0 && t.unverified === 0, totals: t, accounts }, null, 2)}\n`;
}
