// A third-party MTA simulator: OpenDKIM's miltertest (Debian package
// miltertest) runs Lua-scripted sessions against the daemon.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { Program, ROOT, startMilter } from '../helpers/daemon';
import { removeTree, tempDir } from '../helpers/fs';
import { spoolFiles, tempFiles } from '../helpers/spool';

const execFileP = promisify(execFile);
const SCRIPTS = path.join(ROOT, 'test', 'fixtures', 'miltertest');

function spoolText(dir: string): string[] {
  return spoolFiles(dir).map((n) => fs.readFileSync(path.join(dir, n), 'latin1'));
}

describe('miltertest (OpenDKIM) against benno-milter', () => {
  let work: string;
  let socket: string;
  let milter: Program;

  before(async () => {
    if (!fs.existsSync('/usr/bin/miltertest')) throw new Error('miltertest is missing: apt-get install miltertest (scripts/test-deps does it)');
    work = tempDir();
    socket = `unix:${path.join(work, 'milter.sock')}`;
    milter = await startMilter(['-p', socket, '-o', work]);
  });
  after(async () => {
    await milter.stop();
    removeTree(work);
  });

  const runScript = (name: string) => execFileP('miltertest', ['-D', `socket=${socket}`, '-s', path.join(SCRIPTS, name)]);

  it('a v6 session: two messages archived, the aborted one not', async () => {
    await runScript('archive.lua');
    await milter.waitForLine(/MT0003: archived from=<> rcpts=1 /);
    assert.deepEqual(spoolText(work).sort(), [
      'X-REAL-MAILFROM: <>\r\nX-REAL-RCPTTO: <postmaster@example.org>\r\nSubject: miltertest three\r\n\r\nthird body\r\n',
      'X-REAL-MAILFROM: <sender@example.com>\r\nX-REAL-RCPTTO: <first@example.org>\r\nX-REAL-RCPTTO: <second@example.org>\r\n' +
        'From: sender@example.com\r\nSubject: miltertest one\r\n\r\nfirst body\r\n.\r\nend\r\n',
    ]);
    assert.ok(!milter.log().includes('aborted@example.com'));
    assert.deepEqual(tempFiles(work), []);
  });

  it('an MTA offering no protocol flags gets a reply to every event', async () => {
    for (const n of spoolFiles(work)) fs.unlinkSync(path.join(work, n));
    await runScript('old-mta.lua');
    await milter.waitForLine(/MTOLD1: archived from=<old@example.com> rcpts=1 /);
    assert.deepEqual(spoolText(work), ['X-REAL-MAILFROM: <old@example.com>\r\nX-REAL-RCPTTO: <r@example.org>\r\nSubject: old protocol\r\n\r\nold body\r\n']);
  });

  it('a failing script fails the run (the harness can fail)', async () => {
    const bad = path.join(work, 'bad.lua');
    fs.writeFileSync(bad, 'conn = mt.connect(socket, 5, 0.1)\nmt.negotiate(conn, nil, nil, nil)\nmt.conninfo(conn, "h", "192.0.2.1")\n');
    await assert.rejects(execFileP('miltertest', ['-D', `socket=${socket}`, '-s', bad]), 'conninfo after SMFIP_NOCONNECT was negotiated is refused');
  });
});
