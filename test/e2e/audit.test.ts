// benno-milter-admin audit against the logs of a real Postfix with
// benno-milter (issue 14): complete, it reports nothing; with the milter
// stopped and milter_default_action = accept, exactly the messages that
// went through unarchived; a content filter's re-injection skipped by
// --skip-daemon is no gap and shows its first queue id.
//
// Postfix writes its own log (maillog_file), the milter its lines on stderr
// in its own form, as started by hand: the audit reads both with --log.

import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { Program, ROOT, runCliAsync, startMilter } from '../helpers/daemon';
import { removeTree, tempDir } from '../helpers/fs';
import { freePort } from '../helpers/net';
import { Postfix, PostfixOptions, queuedAs, swaks } from '../helpers/postfix';

const ADMIN_BIN = path.join(ROOT, 'dist', 'src', 'cli', 'benno-milter-admin.js');

describe('benno-milter-admin audit with a real Postfix', { timeout: 5 * 60_000 }, () => {
  let work: string;
  let spool: string;
  let postfix: Postfix | undefined;
  let milter: Program | undefined;

  beforeEach(() => {
    work = tempDir();
    spool = path.join(work, 'spool');
    fs.mkdirSync(spool);
  });
  afterEach(async () => {
    await postfix?.stop();
    await milter?.stop();
    postfix = milter = undefined;
    removeTree(work);
  });

  async function start(milterArgs: string[], options: Omit<PostfixOptions, 'milter'> = {}): Promise<void> {
    const port = await freePort();
    milter = await startMilter(['-p', `inet:${port}@127.0.0.1`, '-o', spool, ...milterArgs]);
    postfix = await Postfix.start({ ...options, milter: `inet:127.0.0.1:${port}` });
  }

  async function send(from: string): Promise<string> {
    const r = await swaks(['--server', `127.0.0.1:${postfix!.port}`, '--from', from, '--to', 'r@example.org']);
    assert.equal(r.code, 0, r.output);
    return queuedAs(r.output);
  }

  /** The audit over Postfix's log and the milter's, once Postfix is done with these queue ids. */
  async function audit(done: string[], ...args: string[]) {
    for (const id of done) await postfix!.waitForLog(new RegExp(`qmgr\\[\\d+\\]: ${id}: removed`));
    const milterLog = path.join(work, 'milter.log');
    fs.writeFileSync(milterLog, milter!.stderr.join('\n') + '\n');
    return runCliAsync(ADMIN_BIN, ['audit', '--log', postfix!.maillog, milterLog, ...args]);
  }

  it('every message archived: the audit reports nothing, exit 0', async () => {
    await start([]);
    const ids = [await send('a@example.com'), await send('b@example.com'), await send('<>')];
    for (const id of ids) await milter!.waitForLine(new RegExp(`${id}: archived `));
    const r = await audit(ids);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /^accepted by the MTA +3$/m);
    assert.match(r.stdout, /^archived by benno-milter +3$/m);
    assert.doesNotMatch(r.stdout, /NOT ARCHIVED|ARCHIVED TWICE/);
    assert.match(r.stdout, /\nCOMPLETE: every message the MTA accepted in the period was archived\.\n$/);
    const check = await audit([], '--check');
    assert.equal(check.code, 0);
    assert.match(check.stdout, /^BENNO AUDIT OK - all 3 messages accepted by the MTA archived .*\| accepted=3 archived=3 missing=0 /);
  });

  it('milter stopped with milter_default_action = accept: exactly the messages that went through unarchived', async () => {
    await start([], { main: { milter_default_action: 'accept' } });
    const archived = [await send('before@example.com'), await send('before2@example.com')];
    for (const id of archived) await milter!.waitForLine(new RegExp(`${id}: archived `));
    await milter!.stop();
    const lost = [await send('lost1@example.com'), await send('lost2@example.com')];
    const r = await audit([...archived, ...lost], '--json');
    assert.equal(r.code, 1, r.stdout + r.stderr);
    const report = JSON.parse(r.stdout);
    assert.equal(report.complete, false);
    assert.equal(report.accepted, 4);
    assert.equal(report.archived, 2);
    assert.deepEqual(report.notArchived.items.map((f: { queueId: string; sender: string }) => [f.queueId, f.sender]), [
      [lost[0], 'lost1@example.com'],
      [lost[1], 'lost2@example.com'],
    ]);
    assert.match(report.notArchived.items[0].line, new RegExp(`postfix/qmgr\\[\\d+\\]: ${lost[0]}: from=<lost1@example.com>, size=\\d+, nrcpt=1 \\(queue active\\)$`));
    const table = await audit([]);
    assert.equal(table.code, 1);
    assert.match(table.stdout, new RegExp(`NOT ARCHIVED: accepted by the MTA, no archived file \\(2\\):\\n.*\\n\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d  ${lost[0]} +<lost1@example.com>\\n`));
    const check = await audit([], '--check');
    assert.equal(check.code, 2);
    assert.match(check.stdout, /^BENNO AUDIT CRITICAL - 2 of 4 messages accepted by the MTA not archived /);
  });

  it('an Amavis-style re-injection skipped by --skip-daemon: no gap, linked to its first queue id', async () => {
    const filterPort = await freePort();
    await start(['--skip-daemon', 'reinject'], {
      main: { content_filter: `smtp:[127.0.0.1]:${filterPort}` },
      // The content filter here is the same Postfix's second smtpd: what Amavis hands back arrives there.
      services: ['smtp unix - - n - - smtp', `127.0.0.1:${filterPort} inet n - n - - smtpd`, '  -o content_filter=', '  -o milter_macro_daemon_name=reinject'],
    });
    const first = await send('filtered@example.com');
    const sent = await postfix!.waitForLog(new RegExp(`smtp\\[\\d+\\]: ${first}: .*status=sent \\(.*queued as (\\w+)\\)`));
    const second = /queued as (\w+)\)$/.exec(sent)![1];
    await milter!.waitForLine(new RegExp(`${first}: archived `));
    await milter!.waitForLine(new RegExp(`${second}: not archived: daemon_name=reinject is in --skip-daemon`));
    const r = await audit([first, second]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /^accepted by the MTA +2$/m);
    assert.match(r.stdout, /^accepted, archived under a linked queue id +1$/m);
    assert.match(r.stdout, new RegExp(`  ${second} +<filtered@example.com>\\n.*\\n    re-injected; archived as ${first} \\(skipped: daemon_name=reinject\\)\\n`));
    assert.doesNotMatch(r.stdout, /NOT ARCHIVED/);
  });
});
