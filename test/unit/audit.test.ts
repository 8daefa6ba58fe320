// benno-milter-admin audit: the line parsers, the log sources and the
// matcher, over log lines recorded from real Postfix, Sendmail and
// benno-milter runs (test/fixtures/audit/README) and variations of them:
// a queue id used twice, rotation in the middle of the period with a .gz
// sibling, years across New Year, hostile text in lines.

import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { after, before, describe, it } from 'node:test';
import { AuditRun, runAudit } from '../../src/admin/audit';
import { auditEvent } from '../../src/admin/audit-events';
import { YearGuess, parseLogLine, parseTimeArgument } from '../../src/admin/audit-lines';
import { LIST_LIMIT } from '../../src/admin/audit-matcher';
import { checkLine, checkState, jsonReport, textReport } from '../../src/admin/audit-report';
import { LogUnreadable, MAX_LINE, fileSource, journalArguments, journalSource, journalSources, rotatedSiblings } from '../../src/admin/audit-sources';
import { ROOT } from '../helpers/daemon';
import { removeTree, tempDir } from '../helpers/fs';

const FIXTURES = path.join(ROOT, 'test', 'fixtures', 'audit');
const fixture = (name: string) => fs.readFileSync(path.join(FIXTURES, name), 'utf8').split('\n').filter(Boolean);

/** The day after the recordings: what a file rotated then would carry as its modification time. */
const RECORDED = new Date(2026, 10, 25, 6, 25).getTime();

let work: string;
let n = 0;
before(() => (work = tempDir()));
after(() => removeTree(work));

/** A log file with these lines (gzip-compressed for a .gz name), last written at `mtime`. */
function logFile(name: string, lines: string[] | Buffer, mtime = RECORDED): string {
  const file = path.join(work, `${n++}-${name}`);
  const bytes = Buffer.isBuffer(lines) ? lines : Buffer.from(lines.map((l) => `${l}\n`).join(''), 'utf8');
  fs.writeFileSync(file, name.endsWith('.gz') ? zlib.gzipSync(bytes) : bytes);
  fs.utimesSync(file, mtime / 1000, mtime / 1000);
  return file;
}

function audit(files: string[], since: number | null = null, until: number | null = null): Promise<AuditRun> {
  return runAudit(files.map((f) => fileSource([f])), since, until);
}

const ids = (l: { items: { queueId: string }[] }) => l.items.map((f) => f.queueId);

describe('log lines', () => {
  const years = new YearGuess(RECORDED);
  it('traditional syslog (whole seconds), with and without a host', () => {
    const l = parseLogLine('Nov 24 13:12:05 postfix postfix/qmgr[29378]: 89ADF20C49C: removed', years)!;
    assert.equal(l.time, new Date(2026, 10, 24, 13, 12, 5, 999).getTime());
    assert.equal(l.tag, 'postfix/qmgr');
    assert.equal(l.message, '89ADF20C49C: removed');
    assert.equal(parseLogLine('Nov  4 01:02:03 mx sm-mta[1]: x', years)!.time, new Date(2026, 10, 4, 1, 2, 3, 999).getTime());
  });
  it("RFC 3339 as Debian 12's rsyslog writes it, journalctl's short-iso-precise, and benno-milter's own form", () => {
    const rfc = parseLogLine('2026-11-24T14:12:05.567890+01:00 mx postfix/smtpd[1]: 89ADF20C49C: client=localhost[127.0.0.1]', years)!;
    assert.equal(rfc.time, Date.UTC(2026, 10, 24, 13, 12, 5, 567));
    assert.equal(rfc.tag, 'postfix/smtpd');
    const journal = parseLogLine('2026-11-24T13:12:05.567890+0000 mx benno-milter[7]: 89ADF20C49C: archived from=<a@b> rcpts=1 size=1 file=x.eml ms=1', years)!;
    assert.equal(journal.time, Date.UTC(2026, 10, 24, 13, 12, 5, 567));
    assert.equal(journal.tag, 'benno-milter');
    const own = parseLogLine(fixture('plain.milter')[1], years)!;
    assert.equal(own.time, Date.UTC(2026, 10, 24, 13, 12, 5, 567));
    assert.equal(own.tag, 'benno-milter');
    assert.deepEqual(auditEvent(own), { kind: 'archived', queueId: '89ADF20C49C', time: own.time });
  });
  it('a host that is an IPv6 address is not taken for the tag', () => {
    assert.equal(parseLogLine('Nov 24 13:12:05 2001:db8::25 postfix/qmgr[1]: 89ADF20C49C: removed', years)!.tag, 'postfix/qmgr');
  });
  it('lines without a time we know are not log lines', () => {
    for (const l of ['', 'garbage', '\tcontinued', 'Foo 24 13:12:05 h t: m', '2026-13-45T99:00:00Z h t: m', 'Nov 24 13:12:05 hostonly']) {
      assert.equal(parseLogLine(l, years), null, l);
    }
  });
  it('the year of a line without one: within a day of the file time, else the year before, across New Year too', () => {
    const jan2 = new YearGuess(new Date(2027, 0, 2, 8).getTime());
    assert.equal(new Date(parseLogLine('Dec 31 23:59:59 h t: m', jan2)!.time).getFullYear(), 2026);
    assert.equal(new Date(parseLogLine('Jan  1 00:00:01 h t: m', jan2)!.time).getFullYear(), 2027);
    assert.equal(new Date(parseLogLine('Jan  3 00:00:01 h t: m', jan2)!.time).getFullYear(), 2027, 'a day ahead: clock skew, same year');
    assert.equal(new Date(parseLogLine('Jan  5 00:00:01 h t: m', jan2)!.time).getFullYear(), 2026);
  });
  it('--since and --until', () => {
    const now = new Date(2026, 10, 24, 15, 30).getTime();
    assert.equal(parseTimeArgument('2026-11-24', now), new Date(2026, 10, 24).getTime());
    assert.equal(parseTimeArgument('2026-11-24 10:00', now), new Date(2026, 10, 24, 10).getTime());
    assert.equal(parseTimeArgument('2026-11-24T10:00:00+01:00', now), Date.UTC(2026, 10, 24, 9));
    assert.equal(parseTimeArgument('today', now), new Date(2026, 10, 24).getTime());
    assert.equal(parseTimeArgument('yesterday', now), new Date(2026, 10, 23).getTime());
    assert.equal(parseTimeArgument('-24h', now), now - 86_400_000);
    for (const bad of ['', 'tomorrow', '2026-13-01', '24.11.2026', '-5y']) assert.equal(parseTimeArgument(bad, now), null, bad);
  });
});

describe('the audit of real Postfix logs', () => {
  it('milter stopped with milter_default_action = accept: exactly the two messages that went through unarchived', async () => {
    const r = await audit([logFile('mail.log', fixture('plain.maillog')), logFile('milter.log', fixture('plain.milter'))]);
    assert.equal(r.accepted, 5);
    assert.equal(r.archived, 3);
    assert.deepEqual(ids(r.missing), ['AF48620C4A4', 'B8C7320C4A4']);
    assert.equal(r.missing.items[0].sender, 'down0@example.com');
    assert.match(r.missing.items[0].line, /postfix\/qmgr\[29378\]: AF48620C4A4: from=<down0@example.com>, size=458, nrcpt=1 \(queue active\)$/);
    assert.equal(r.failedButAccepted.count, 0, 'the refused message was not accepted: no finding');
    assert.equal(r.twice.count + r.archivedUnknown, 0);
    assert.equal(checkState(r), 'CRITICAL');
  });

  it('one stream (the milter under systemd, in mail.log): the same result', async () => {
    const toSyslog = (l: string) => {
      const m = /^(\S+) benno-milter\[(\d+)\]: \w+: (.*)$/.exec(l)!;
      const d = new Date(m[1]);
      const p = (x: number) => String(x).padStart(2, '0');
      return `Nov ${d.getDate()} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())} postfix benno-milter[${m[2]}]: ${m[3]}`;
    };
    const merged = [...fixture('plain.maillog').map((l) => ({ l, t: parseLogLine(l, new YearGuess(RECORDED))!.time - 999 })), ...fixture('plain.milter').map((l) => ({ l: toSyslog(l), t: new Date(l.slice(0, 24)).getTime() }))];
    merged.sort((a, b) => a.t - b.t);
    const r = await audit([logFile('mail.log', merged.map((m) => m.l))]);
    assert.deepEqual([r.accepted, r.archived], [5, 3]);
    assert.deepEqual(ids(r.missing), ['AF48620C4A4', 'B8C7320C4A4']);
  });

  it('content filter re-injection skipped by --skip-daemon: not a gap, each linked to its first queue id', async () => {
    const r = await audit([logFile('mail.log', fixture('reinject.maillog')), logFile('milter.log', fixture('reinject.milter'))]);
    assert.equal(r.missing.count, 0);
    assert.deepEqual(ids(r.linked), ['BD3FF20C2D4', 'C40EC20C2B0']);
    assert.match(r.linked.items[0].note!, /archived as B968120C444 \(skipped: daemon_name=reinject\)/);
    assert.equal(checkState(r), 'OK');
  });

  it('the same without --skip-daemon: archived twice, named with the fix', async () => {
    const milter = fixture('reinject.milter').map((l) => l.replace(/not archived: daemon_name=reinject is in --skip-daemon .*/, 'archived from=<a@example.com> rcpts=1 size=500 file=x.eml ms=1.0'));
    const r = await audit([logFile('mail.log', fixture('reinject.maillog')), logFile('milter.log', milter)]);
    assert.equal(r.missing.count, 0);
    assert.deepEqual(ids(r.twice), ['BD3FF20C2D4', 'C40EC20C2B0']);
    assert.match(r.twice.items[0].note!, /archived again after B968120C444 came back from the content filter .*--skip-daemon/);
    assert.equal(checkState(r), 'WARNING');
  });

  it('a re-injection skipped whose first queue id was not archived is a gap', async () => {
    const milter = fixture('reinject.milter').filter((l) => !l.includes('B968120C444'));
    const r = await audit([logFile('mail.log', fixture('reinject.maillog')), logFile('milter.log', milter)]);
    assert.deepEqual(ids(r.missing), ['B968120C444', 'BD3FF20C2D4']);
    assert.match(r.missing.items[1].note!, /skipped .* but its first queue id B968120C444 was not archived/);
  });

  it('a queue id Postfix used again: matched by time order, the second use without an archived file is the gap', async () => {
    // 89ADF20C49C again a minute later, with the milter down: the id is the same, the message another.
    const first = fixture('plain.maillog').filter((l) => l.includes('89ADF20C49C'));
    const again = first.map((l) => l.replace('13:12:05', '13:13:05').replace('c0@example.com', 'again@example.com'));
    const maillog = [...fixture('plain.maillog').filter((l) => l.startsWith('Nov 24 13:12')), ...again];
    const r = await audit([logFile('mail.log', maillog), logFile('milter.log', fixture('plain.milter'))]);
    assert.equal(r.accepted, 6);
    assert.deepEqual(ids(r.missing), ['AF48620C4A4', 'B8C7320C4A4', '89ADF20C49C']);
    assert.equal(r.missing.items[2].sender, 'again@example.com');
    assert.equal(r.twice.count, 0);
    // and with both uses archived, nothing is missing and nothing is twice
    const milter2 = [...fixture('plain.milter'), '2026-11-24T13:13:05.100Z benno-milter[29061]: info: 89ADF20C49C: archived from=<again@example.com> rcpts=1 size=322 file=y.eml ms=1.0'];
    const r2 = await audit([logFile('mail.log', maillog), logFile('milter.log', milter2)]);
    assert.deepEqual(ids(r2.missing), ['AF48620C4A4', 'B8C7320C4A4']);
    assert.equal(r2.twice.count, 0);
  });

  it('one queue id archived twice for one message is listed', async () => {
    const milter = [...fixture('plain.milter')];
    milter.splice(2, 0, milter[1].replace('05.567Z', '05.568Z'));
    const r = await audit([logFile('mail.log', fixture('plain.maillog')), logFile('milter.log', milter)]);
    assert.deepEqual(ids(r.twice), ['89ADF20C49C']);
    assert.match(r.twice.items[0].note!, /archived 2 times/);
  });

  it('refused or tempfailed by the milter, accepted by the MTA all the same: listed, and a gap', async () => {
    const maillog = fixture('plain.maillog').filter((l) => !l.includes('942D320C49C'));
    const milter = fixture('plain.milter').map((l) => l.replace('89ADF20C49C: archived from=<c0@example.com> rcpts=1 size=322 file=e3087596a05025b371f3eed1854d9854966025e50457f098a4cd4198f504a256.eml ms=1.2', '89ADF20C49C: archiving failed: ENOSPC: no space left on device, write; answered "451 4.3.0 Message archiving failed, try again later"'));
    const r = await audit([logFile('mail.log', maillog), logFile('milter.log', milter)]);
    assert.deepEqual(ids(r.failedButAccepted), ['89ADF20C49C']);
    assert.match(r.failedButAccepted.items[0].note!, /the milter tempfailed it: .*ENOSPC/);
    assert.deepEqual(ids(r.missing), ['89ADF20C49C', 'AF48620C4A4', 'B8C7320C4A4']);
  });

  it('rotation in the middle of the period, with a gzip-compressed sibling: the same result as one file', async () => {
    const lines = fixture('plain.maillog');
    const dir = path.join(work, 'rotated');
    fs.mkdirSync(dir);
    const write = (name: string, part: string[], mtime: number) => {
      const file = path.join(dir, name);
      const bytes = Buffer.from(part.map((l) => `${l}\n`).join(''));
      fs.writeFileSync(file, name.endsWith('.gz') ? zlib.gzipSync(bytes) : bytes);
      fs.utimesSync(file, mtime / 1000, mtime / 1000);
    };
    // Cut inside the messages: 927B220C49C's client= in .2.gz, its qmgr line in .1; AF48620C4A4 across .1 and the log.
    const a = lines.findIndex((l) => l.includes('927B220C49C: client='));
    const b = lines.findIndex((l) => l.includes('AF48620C4A4: message-id'));
    write('mail.log.2.gz', lines.slice(0, a + 1), RECORDED - 2000);
    write('mail.log.1', lines.slice(a + 1, b), RECORDED - 1000);
    write('mail.log', lines.slice(b), RECORDED);
    write('mail.log.10.gz', [], RECORDED - 9000);
    write('mail.logrotate.conf', ['not a sibling'], RECORDED);
    const files = rotatedSiblings(path.join(dir, 'mail.log'));
    assert.deepEqual(files.map((f) => path.basename(f)), ['mail.log.10.gz', 'mail.log.2.gz', 'mail.log.1', 'mail.log']);
    const r = await runAudit([fileSource(files), fileSource([logFile('milter.log', fixture('plain.milter'))])], null, null);
    assert.deepEqual([r.accepted, r.archived], [5, 3]);
    assert.deepEqual(ids(r.missing), ['AF48620C4A4', 'B8C7320C4A4']);
    assert.equal(r.lines, lines.length + fixture('plain.milter').length);
  });

  it('logrotate dateext names sort by date, before the log', () => {
    const dir = path.join(work, 'dateext');
    fs.mkdirSync(dir);
    for (const name of ['mail.log', 'mail.log-20261124', 'mail.log-20261122.gz', 'mail.log-20261123.gz']) fs.writeFileSync(path.join(dir, name), '');
    assert.deepEqual(rotatedSiblings(path.join(dir, 'mail.log')).map((f) => path.basename(f)), ['mail.log-20261122.gz', 'mail.log-20261123.gz', 'mail.log-20261124', 'mail.log']);
  });

  it('across New Year: December lines in last year, January lines in this one, matched in order', async () => {
    const shift = (l: string) => l.replace(/^Nov 24 13:12:0[0-5]/, 'Dec 31 23:59:59').replace(/^Nov 24 13:12:06/, 'Jan  1 00:00:01');
    const r = await audit([logFile('mail.log', fixture('plain.maillog').map(shift), new Date(2027, 0, 1, 6).getTime())]);
    assert.deepEqual(ids(r.missing).slice(-2), ['AF48620C4A4', 'B8C7320C4A4']);
    assert.equal(new Date(r.missing.items.at(-1)!.time).getFullYear(), 2027);
    assert.equal(new Date(r.missing.items[0].time).getFullYear(), 2026);
  });

  it('--since and --until: only messages accepted in the period count', async () => {
    const files = [logFile('mail.log', fixture('plain.maillog')), logFile('milter.log', fixture('plain.milter'))];
    const r = await audit(files, new Date(2026, 10, 24, 13, 12, 6).getTime(), new Date(2026, 10, 24, 13, 13).getTime());
    assert.deepEqual([r.accepted, r.archived], [2, 0]);
    assert.deepEqual(ids(r.missing), ['AF48620C4A4', 'B8C7320C4A4']);
    const before = await audit(files, null, new Date(2026, 10, 24, 13, 12, 6).getTime());
    assert.deepEqual([before.accepted, before.archived, before.missing.count], [3, 3, 0]);
  });
});

describe('the audit of real Sendmail logs', () => {
  it('F=T down (451, nothing accepted), then without F=T an accepted message unarchived; the MSP submission linked to the MTA copy it was archived as', async () => {
    const r = await audit([logFile('mail.log', fixture('sendmail.maillog')), logFile('milter.log', fixture('sendmail.milter'))]);
    assert.deepEqual(ids(r.missing), ['6AODD8W9030822']);
    assert.equal(r.missing.items[0].sender, 'down2@example.com');
    assert.deepEqual(ids(r.linked), ['6AODD79O030793']);
    assert.match(r.linked.items[0].note!, /passed on as 6AODD7LG030795, archived there/);
    assert.deepEqual([r.accepted, r.archived], [5, 3]);
  });
  it('a message the milter refused: Sendmail logged from= first, then the reject; not accepted', async () => {
    const r = await audit([logFile('mail.log', fixture('sendmail-refused.maillog')), logFile('milter.log', fixture('sendmail-refused.milter'))]);
    assert.deepEqual([r.accepted, r.archived, r.missing.count], [0, 0, 0]);
  });
});

describe('hostile text in log lines', () => {
  const client = 'Nov 24 13:12:05 mx postfix/smtpd[1]: 89ADF20C49C: client=h[192.0.2.1]';
  it('control characters, bidi overrides, broken UTF-8 and forged fields cannot forge report lines or findings', async () => {
    const evilSender = 'x>, size=1, nrcpt=1 (queue active)\x1b[2J\u2028\u202eevil@example.com';
    const lines = Buffer.concat([
      Buffer.from(`${client}\n`),
      Buffer.from(`Nov 24 13:12:05 mx postfix/qmgr[2]: 89ADF20C49C: from=<${evilSender}>, size=455, nrcpt=1 (queue active)\n`),
      // A recipient that spells a loopback relay and a "queued as": the real relay (a remote MX) wins.
      Buffer.from('Nov 24 13:12:05 mx postfix/smtp[3]: 89ADF20C49C: to=<a>, relay=127.0.0.1[127.0.0.1]:10025, delay=1, status=sent (250 queued as AAAAAAAAAAA)@x>, relay=mx.example.net[192.0.2.7]:25, delay=0.1, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as BBBBBBBBBBB)\n'),
      // A line of broken UTF-8 and NUL bytes, and text that only looks like the milter's.
      Buffer.from([0xff, 0xfe, 0x00, 0x0a]),
      Buffer.from('Nov 24 13:12:05 mx postfix/cleanup[4]: 89ADF20C49C: benno-milter[1]: 89ADF20C49C: archived from=<a> rcpts=1 size=1 file=x ms=1\n'),
      Buffer.from('Nov 24 13:12:05 mx postfix/cleanup[4]: 89ADF20C49C: message-id=<\xc3\x28\x80@x>\n', 'latin1'),
    ]);
    const r = await audit([logFile('mail.log', lines)]);
    assert.deepEqual(ids(r.missing), ['89ADF20C49C']);
    assert.equal(r.missing.items[0].sender, evilSender);
    assert.equal(r.linked.count + r.archived, 0);
    const text = textReport(r);
    assert.doesNotMatch(text, /[\x1b\u2028\u202e]/);
    assert.match(text, /\\x\{1B\}\[2J\\x\{2028\}\\x\{202E\}evil@example.com/);
    const block = text.slice(text.indexOf('NOT ARCHIVED'), text.indexOf('INCOMPLETE')).trim().split('\n');
    assert.equal(block.length, 4, 'title, column heads, the finding, its log line: nothing split');
    const json = JSON.parse(jsonReport(r));
    assert.doesNotMatch(json.notArchived.items[0].line, /[\x1b\u2028\u202e]/);
    assert.doesNotMatch(checkLine(r), /[\n\x1b]/);
  });

  it('a line of 10 MB without a line end costs no more than MAX_LINE; the lines after it are read', async () => {
    const huge = Buffer.alloc(10 * 1024 * 1024, 0x41);
    const queued = 'Nov 24 13:12:05 mx postfix/qmgr[2]: 89ADF20C49C: from=<a@b>, size=1, nrcpt=1 (queue active)';
    const file = logFile('mail.log', Buffer.concat([Buffer.from('Nov 24 13:12:05 mx postfix/qmgr[2]: '), huge, Buffer.from(`\n${client}\r\n${queued}`)]));
    const lengths: number[] = [];
    for await (const l of fileSource([file]).lines()) lengths.push(l.text.length);
    assert.deepEqual(lengths.slice(1), [client.length, queued.length], 'CRLF and a last line without LF read too');
    assert.ok(lengths[0] <= MAX_LINE, `${lengths[0]}`);
    assert.deepEqual(ids((await audit([file])).missing), ['89ADF20C49C']);
  });

  it('a queue id field that is not a queue id is not an event', () => {
    const years = new YearGuess(RECORDED);
    for (const msg of ['NOQUEUE: archived from=<a> rcpts=1 size=1 file=x ms=1', '../../x: archived from=<a> rcpts=1 size=1 file=x ms=1', 'AB: archived from=<a> rcpts=1 size=1 file=x ms=1']) {
      assert.equal(auditEvent(parseLogLine(`2026-11-24T13:12:05.000Z benno-milter[1]: info: ${msg}`, years)!), null, msg);
    }
  });

  it('the lists keep LIST_LIMIT entries; the counts stay exact', async () => {
    const lines: string[] = [];
    for (let i = 0; i < LIST_LIMIT + 5; i++) {
      const id = `A${String(i).padStart(10, '0')}`;
      lines.push(`Nov 24 13:12:05 mx postfix/smtpd[1]: ${id}: client=h[192.0.2.1]`, `Nov 24 13:12:05 mx postfix/qmgr[2]: ${id}: from=<a@b>, size=1, nrcpt=1 (queue active)`);
    }
    const r = await audit([logFile('mail.log', lines)]);
    assert.equal(r.missing.count, LIST_LIMIT + 5);
    assert.equal(r.missing.items.length, LIST_LIMIT);
    assert.match(textReport(r), /\.\.\. and 5 more\n/);
  });
});

describe('report forms', () => {
  it('complete: the table says so; --json and --check agree', async () => {
    const r = await audit([logFile('mail.log', fixture('reinject.maillog')), logFile('milter.log', fixture('reinject.milter'))]);
    assert.match(textReport(r), /\nCOMPLETE: every message the MTA accepted in the period was archived\.\n$/);
    const j = JSON.parse(jsonReport(r));
    assert.equal(j.complete, true);
    assert.equal(j.state, 'OK');
    assert.equal(j.linked.count, 2);
    assert.match(checkLine(r), /^BENNO AUDIT OK - all 4 messages accepted by the MTA archived \(.*\) \| accepted=4 archived=2 missing=0 twice=0 linked=2 unknown=0$/);
  });
  it('nothing in the period: UNKNOWN', async () => {
    const r = await audit([logFile('mail.log', fixture('plain.maillog'))], Date.UTC(2030, 0, 1), null);
    assert.equal(checkState(r), 'UNKNOWN');
    assert.match(checkLine(r), /^BENNO AUDIT UNKNOWN - no mail log lines from 2030-01-01/);
  });
  it("archived lines only, the MTA's log not read: WARNING", async () => {
    const r = await audit([logFile('milter.log', fixture('plain.milter'))]);
    assert.equal(r.archivedUnknown, 3);
    assert.equal(checkState(r), 'WARNING');
  });
});

describe('log sources', () => {
  it('a missing file, and a .gz file that is not gzip data', async () => {
    await assert.rejects(audit([path.join(work, 'nonexistent.log')]), (e: unknown) => e instanceof LogUnreadable && e.reason === 'missing' && /ENOENT/.test(e.message));
    const bad = logFile('broken.log', fixture('plain.maillog'));
    fs.renameSync(bad, `${bad}.gz`);
    await assert.rejects(audit([`${bad}.gz`]), (e: unknown) => e instanceof LogUnreadable && e.reason === 'corrupt');
  });
  it('journalctl: entries of facility mail and, apart, of the milter unit, a margin around the period; its output parsed, its failure reported', async () => {
    assert.deepEqual(journalArguments(Date.UTC(2026, 10, 24), Date.UTC(2026, 10, 25), 3600_000), [
      '--no-pager',
      '--quiet',
      '--output=short-iso-precise',
      `--since=@${Date.UTC(2026, 10, 23, 23) / 1000}`,
      `--until=@${Date.UTC(2026, 10, 25, 1) / 1000}`,
    ]);
    assert.deepEqual(
      journalSources(null, null, 0, ['/j/system.journal']).map((s) => s.name),
      [
        'journalctl --no-pager --quiet --output=short-iso-precise --file=/j/system.journal SYSLOG_FACILITY=2',
        'journalctl --no-pager --quiet --output=short-iso-precise --file=/j/system.journal _SYSTEMD_UNIT=benno-milter.service',
      ],
    );
    // A stand-in for journalctl that prints what the real one prints for these entries.
    const stub = path.join(work, 'journalctl');
    const out = [
      '2026-11-24T13:12:06.100000+0000 mx postfix/smtpd[1]: AF48620C4A4: client=localhost[127.0.0.1]',
      '2026-11-24T13:12:06.200000+0000 mx postfix/qmgr[2]: AF48620C4A4: from=<down0@example.com>, size=458, nrcpt=1 (queue active)',
    ];
    fs.writeFileSync(stub, `#!/bin/sh\nprintf '%s\\n' ${out.map((l) => `'${l}'`).join(' ')}\n[ "$1" = fail ] && { echo 'Failed to open journal' >&2; exit 1; }\nexit 0\n`, { mode: 0o755 });
    const r = await runAudit([journalSource(['ok'], stub)], null, null);
    assert.deepEqual(ids(r.missing), ['AF48620C4A4']);
    await assert.rejects(runAudit([journalSource(['fail'], stub)], null, null), (e: unknown) => e instanceof LogUnreadable && e.reason === 'failed' && /exited 1: Failed to open journal/.test(e.message));
    await assert.rejects(runAudit([journalSource([], path.join(work, 'no-journalctl'))], null, null), (e: unknown) => e instanceof LogUnreadable && e.reason === 'missing');
  });
});
