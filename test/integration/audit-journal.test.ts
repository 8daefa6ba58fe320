// benno-milter-admin audit over a real journal (issue 14): the recorded
// Postfix and benno-milter lines of test/fixtures/audit go into a journal
// file the way the journal keeps them on a Debian host (Postfix through
// syslog, facility mail; the milter's stderr under its unit with
// SyslogFacility=mail), written by systemd-journal-remote and read back by
// the real journalctl with the audit's own filters (--journal-file). The
// report must be the one the plain files give, and a line that only claims
// to be benno-milter (facility mail or another, not from its unit) must not
// hide a gap.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ROOT, runToEnd } from '../helpers/daemon';
import { removeTree, tempDir } from '../helpers/fs';

const ADMIN_BIN = path.join(ROOT, 'dist', 'src', 'cli', 'benno-milter-admin.js');
const FIXTURES = path.join(ROOT, 'test', 'fixtures', 'audit');
const JOURNAL_REMOTE = '/lib/systemd/systemd-journal-remote';

interface Entry {
  usec: number;
  fields: Record<string, string>;
}

const MONTHS = 'Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec'.split(' ');

/** "Nov 24 13:12:05 host postfix/qmgr[29378]: text" → a journal entry of facility mail; the n-th line of its second. */
function syslogEntry(line: string, n: number): Entry | null {
  const m = /^(\w{3}) +(\d+) (\d\d):(\d\d):(\d\d) \S+ ([^[\s]+)\[(\d+)\]: (.*)$/.exec(line);
  if (!m) return null;
  const usec = Date.UTC(2026, MONTHS.indexOf(m[1]), Number(m[2]), Number(m[3]), Number(m[4]), Number(m[5])) * 1000 + n;
  return { usec, fields: { SYSLOG_FACILITY: '2', SYSLOG_IDENTIFIER: m[6], _PID: m[7], MESSAGE: m[8] } };
}

/** "2026-11-24T13:12:05.567Z benno-milter[29061]: info: text" → what the journal keeps of the milter's stderr line. */
function milterEntry(line: string): Entry | null {
  const m = /^(\S+) benno-milter\[(\d+)\]: \w+: (.*)$/.exec(line);
  if (!m) return null;
  const fields = { SYSLOG_FACILITY: '2', SYSLOG_IDENTIFIER: 'benno-milter', _PID: m[2], _SYSTEMD_UNIT: 'benno-milter.service', MESSAGE: m[3] };
  return { usec: Date.parse(m[1]) * 1000, fields };
}

/** The journal export format (systemd's JOURNAL_EXPORT_FORMATS): fields, a blank line per entry. */
function exportFormat(entries: Entry[]): string {
  return entries
    .sort((a, b) => a.usec - b.usec)
    .map((e) => {
      const all = { __REALTIME_TIMESTAMP: String(e.usec), __MONOTONIC_TIMESTAMP: String(e.usec % 1e9), _BOOT_ID: '0123456789abcdef0123456789abcdef', _HOSTNAME: 'mail', PRIORITY: '6', ...e.fields };
      return `${Object.entries(all).map(([k, v]) => `${k}=${v}`).join('\n')}\n\n`;
    })
    .join('');
}

describe('benno-milter-admin audit over a real journal (journalctl --file)', () => {
  let work: string;
  let journal: string;
  const logs = ['plain.maillog', 'plain.milter'].map((f) => path.join(FIXTURES, f));

  before(() => {
    work = tempDir();
    const entries: Entry[] = [];
    fs.readFileSync(logs[0], 'utf8').split('\n').forEach((l, n) => {
      const e = syslogEntry(l, n);
      if (e) entries.push(e);
    });
    for (const l of fs.readFileSync(logs[1], 'utf8').split('\n')) {
      const e = milterEntry(l);
      if (e) entries.push(e);
    }
    // Anyone may log as "benno-milter" with logger(1), even as facility mail, but not under the milter's unit. They claim the two gaps.
    const last = Math.max(...entries.map((e) => e.usec));
    for (const [id, facility] of [['AF48620C4A4', '2'], ['B8C7320C4A4', '1']]) {
      entries.push({ usec: last + 1, fields: { SYSLOG_FACILITY: facility, SYSLOG_IDENTIFIER: 'benno-milter', _PID: '4242', MESSAGE: `${id}: archived from=<down@example.com> rcpts=1 size=1 file=x.eml ms=1` } });
    }
    journal = path.join(work, 'mail.journal');
    const r = spawnSync(JOURNAL_REMOTE, ['--output', journal, '-'], { input: exportFormat(entries) });
    assert.equal(r.status, 0, `${JOURNAL_REMOTE}: ${r.stderr}`);
  });
  after(() => removeTree(work));

  it('the same report as from the plain files; milter lines from outside its unit hide no gap', async () => {
    const fromFiles = await runToEnd(ADMIN_BIN, ['audit', '--json', '--log', ...logs]);
    const fromJournal = await runToEnd(ADMIN_BIN, ['audit', '--json', '--journal-file', journal]);
    assert.equal(fromJournal.code, 1, fromJournal.stderr);
    const a = JSON.parse(fromFiles.stdout);
    const b = JSON.parse(fromJournal.stdout);
    const summary = (r: { accepted: number; archived: number; notArchived: { items: { queueId: string }[] } }) => ({
      accepted: r.accepted,
      archived: r.archived,
      missing: r.notArchived.items.map((i) => i.queueId),
    });
    assert.deepEqual(summary(b), summary(a));
    assert.deepEqual(summary(b), { accepted: 5, archived: 3, missing: ['AF48620C4A4', 'B8C7320C4A4'] });
  });

  it('--check over the journal: CRITICAL, exit 2', async () => {
    const r = await runToEnd(ADMIN_BIN, ['audit', '--check', '--journal-file', journal]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stdout, /^BENNO AUDIT CRITICAL - 2 of 5 messages accepted by the MTA not archived/);
  });
});
