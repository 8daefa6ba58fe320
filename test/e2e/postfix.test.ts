// End to end with a real Postfix: smtpd_milters and non_smtpd_milters point
// at benno-milter; what Postfix queued must be what the spool file holds.

import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { parseEnvelope } from '../../src/spool/format';
import { Program, startMilter } from '../helpers/daemon';
import { mountTmpfs, removeTree, tempDir } from '../helpers/fs';
import { Postfix, milterBehindPostfix, queuedAs, swaks } from '../helpers/postfix';
import { submit } from '../helpers/raw-smtp-client';
import { b } from '../helpers/bytes';
import { LOCAL_SUBMISSION, NASTY, ODD_RECIPIENTS, QUOTED_SENDER, TOO_LONG_RECIPIENT, assertForgedRenamed, assertNastyIntact, forgedEnvelopeMessage } from '../helpers/corpus';
import { allFiles, spoolFiles, tempFiles } from '../helpers/spool';

const execFileP = promisify(execFile);

/**
 * What the milter must have written for a queued message: postcat's view with
 * CRLF line ends, minus the Received: header Postfix adds itself (Postfix
 * never shows its own Received: header to milters).
 */
function withoutOwnReceived(postcat: Buffer): Buffer {
  const text = postcat.toString('latin1');
  const m = /^Received: [^\n]*\n(?:[ \t][^\n]*\n)*/.exec(text);
  assert.ok(m, 'Postfix prepended its Received: header');
  assert.match(m[0], /by postfix\.test\.invalid \(Postfix/);
  return b(text.slice(m[0].length).replace(/\n/g, '\r\n'));
}

function spoolFileFor(milter: Program, spool: string, queueId: string): Promise<Buffer> {
  return milter.waitForLine(new RegExp(`^.*${queueId}: archived `)).then((line) => {
    const name = /file=(\S+)/.exec(line)![1];
    return fs.readFileSync(path.join(spool, name));
  });
}

describe('benno-milter behind a real Postfix', () => {
  let work: string;
  let spool: string;
  let milter: Program;
  let postfix: Postfix;
  let smtpPort: number;

  before(async () => {
    work = tempDir();
    spool = path.join(work, 'spool');
    fs.mkdirSync(spool);
    ({ milter, postfix } = await milterBehindPostfix(spool, { hold: true }));
    smtpPort = postfix.port;
  });
  after(async () => {
    await postfix?.stop();
    await milter?.stop();
    removeTree(work);
  });

  it('a message through smtpd arrives as the file Postfix queued, with its envelope', async () => {
    const data = path.join(work, 'nasty.eml');
    fs.writeFileSync(data, NASTY);
    const r = await swaks(['--server', `127.0.0.1:${smtpPort}`, '--from', 'envelope-sender@example.com', '--to', 'first@example.org,bcc-only@example.net', '--data', data]);
    assert.equal(r.code, 0, r.output);
    const qid = queuedAs(r.output);
    const file = await spoolFileFor(milter, spool, qid);
    const env = parseEnvelope(file)!;
    assert.equal(env.sender!.toString(), 'envelope-sender@example.com');
    assert.deepEqual(env.recipients.map(String), ['first@example.org', 'bcc-only@example.net']);
    assert.deepEqual(file.subarray(env.messageOffset), withoutOwnReceived(await postfix.queued(qid)));
    // and the message itself came through unchanged
    assertNastyIntact(file);
  });

  it('forged envelope fields in the message are renamed, whatever their case and spacing (issue 9)', async () => {
    const d = await submit(smtpPort, b('real-sender@example.com'), [b('real@example.org')], forgedEnvelopeMessage(), { asIs: true });
    assert.ok(d.queueId, d.replies.map((r) => r.text).join('\n'));
    const file = await spoolFileFor(milter, spool, d.queueId);
    const env = parseEnvelope(file)!;
    assert.equal(env.sender!.toString(), 'real-sender@example.com');
    assert.deepEqual(env.recipients.map(String), ['real@example.org']);
    const message = file.toString('latin1', env.messageOffset);
    assertForgedRenamed(message);
    // Apart from the renaming, the file is what Postfix queued.
    const queued = withoutOwnReceived(await postfix.queued(d.queueId)).toString('latin1');
    assert.equal(message.replace(/X-Untrusted-/g, ''), queued);
    await milter.waitForLine(new RegExp(`${d.queueId}: archived .* renamed=5 `));
  });

  it('addresses Postfix accepts are archived with their bytes; what could split or disguise a line is escaped (issue 9)', async () => {
    const rcpts = ODD_RECIPIENTS.map((r) => r.address);
    const d = await submit(smtpPort, QUOTED_SENDER, rcpts, b('Subject: addresses\r\n\r\nbody\r\n'), { mailParams: ' SMTPUTF8', asIs: true });
    assert.ok(d.queueId, d.replies.map((r) => r.text).join('\n'));
    const file = await spoolFileFor(milter, spool, d.queueId);
    const env = parseEnvelope(file)!;
    assert.deepEqual(env.sender, QUOTED_SENDER);
    assert.deepEqual(env.recipients.map((r) => r.toString('utf8')), ODD_RECIPIENTS.map((r) => r.archived));
    assert.equal(file.toString('latin1', 0, env.messageOffset).split('\r\n').length, 6, 'sender, four recipients, and the message after them: no line was split');
  });

  it('an address over 900 bytes that Postfix accepts is refused with 554 by the milter: not accepted unarchived (issue 9)', async () => {
    const d = await submit(smtpPort, b('s@example.com'), [TOO_LONG_RECIPIENT], b('Subject: long\r\n\r\nbody\r\n'), { asIs: true });
    assert.equal(d.queueId, undefined);
    assert.ok(d.replies.some((r) => r.text.startsWith('554 5.1.3 Message refused by the archive: an address longer than 900 bytes')), d.replies.map((r) => r.text).join('\n'));
  });

  it('the null sender and many recipients', async () => {
    const rcpts = Array.from({ length: 50 }, (_, i) => `r${i}@example.org`);
    const r = await swaks(['--server', `127.0.0.1:${smtpPort}`, '--from', '<>', '--to', rcpts.join(','), '--header', 'Subject: bounce']);
    assert.equal(r.code, 0, r.output);
    const qid = queuedAs(r.output);
    const file = await spoolFileFor(milter, spool, qid);
    assert.ok(file.subarray(0, 26).equals(b('X-REAL-MAILFROM: <>\r\nX-REA')));
    const env = parseEnvelope(file)!;
    assert.deepEqual(env.recipients.map(String), rcpts);
    assert.deepEqual(file.subarray(env.messageOffset), withoutOwnReceived(await postfix.queued(qid)));
  });

  it("a message through Postfix's sendmail command (non_smtpd_milters)", async () => {
    await postfix.sendmail(['-f', 'local-sender@example.com', 'local-rcpt@example.org', 'second@example.org'], LOCAL_SUBMISSION);
    await postfix.kickPickup();
    const line = await milter.waitForLine(/archived from=<local-sender@example.com> rcpts=2 /, 90_000); // pickup scans at least once a minute
    const qid = /(\w+): archived/.exec(line)![1];
    const file = await spoolFileFor(milter, spool, qid);
    const env = parseEnvelope(file)!;
    assert.deepEqual(env.recipients.map(String), ['local-rcpt@example.org', 'second@example.org']);
    assert.deepEqual(file.subarray(env.messageOffset), withoutOwnReceived(await postfix.queued(qid)));
  });

  it('a burst from smtp-source: every message Postfix queued is archived once', async () => {
    const before = spoolFiles(spool).length;
    await execFileP('smtp-source', ['-s', '5', '-m', '40', '-l', '4096', '-f', 'burst@example.com', '-t', 'sink@example.org', `127.0.0.1:${smtpPort}`]);
    const ids = new Set<string>();
    const deadline = Date.now() + 20_000;
    while (ids.size < 40 && Date.now() < deadline) {
      for (const l of postfix.log().split('\n')) {
        const m = /cleanup\[\d+\]: (\w+): hold: .*from=<burst@example.com>/.exec(l);
        if (m) ids.add(m[1]);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(ids.size, 40, 'Postfix queued 40 messages');
    for (const id of ids) await milter.waitForLine(new RegExp(`${id}: archived from=<burst@example.com> rcpts=1 `));
    assert.equal(spoolFiles(spool).length, before + 40);
    assert.deepEqual(tempFiles(spool), []);
  });
});

describe('Postfix with benno-milter unavailable or failing', () => {
  let work: string;
  let spool: string;
  let postfix: Postfix;
  let socketPath: string;

  before(async () => {
    work = tempDir();
    fs.chmodSync(work, 0o755); // Postfix (user postfix) must reach the socket
    spool = path.join(work, 'spool');
    fs.mkdirSync(spool);
    socketPath = path.join(work, 'milter.sock');
    // Over a unix socket, as in production (without Postfix's chroot here).
    postfix = await Postfix.start({ milter: `unix:${socketPath}` });
  });
  after(async () => {
    await postfix?.stop();
    removeTree(work);
  });

  /** Runs the milter as Postfix would reach it: the socket's group is postfix. */
  async function milterOn(dir: string): Promise<Program> {
    const m = await startMilter(['-p', `unix:${socketPath}`, '-o', dir]);
    execFileSync('chgrp', ['postfix', socketPath]);
    return m;
  }

  it('milter stopped: the SMTP client gets 4xx, and after a restart the retry is archived', async () => {
    const r = await swaks(['--server', `127.0.0.1:${postfix.port}`, '--from', 'a@example.com', '--to', 'b@example.org', '--header', 'Message-ID: <down.1@example.com>']);
    assert.notEqual(r.code, 0);
    assert.match(r.output, /<\*\* +451 4\.7\.1 /);
    assert.doesNotMatch(r.output, /queued as/);
    assert.deepEqual(allFiles(spool), []);

    const milter = await milterOn(spool);
    try {
      const retry = await swaks(['--server', `127.0.0.1:${postfix.port}`, '--from', 'a@example.com', '--to', 'b@example.org', '--header', 'Message-ID: <down.1@example.com>']);
      assert.equal(retry.code, 0, retry.output);
      await milter.waitForLine(new RegExp(`${queuedAs(retry.output)}: archived`));
    } finally {
      await milter.stop();
    }
  });

  it('milter stopped: a sendmail submission waits in the queue and is archived once the milter is back', async () => {
    await postfix.sendmail(['-f', 'waiting@example.com', 'r@example.org'], b('Subject: waits for the milter\n\nbody\n'));
    await postfix.kickPickup();
    await postfix.waitForLog(/connect to Milter service unix:.*milter\.sock: No such file or directory/);
    const milter = await milterOn(spool);
    try {
      await postfix.kickPickup();
      await milter.waitForLine(/archived from=<waiting@example.com> rcpts=1 /, 90_000);
    } finally {
      await milter.stop();
    }
  });

  it('spool full or gone: the SMTP client gets 451 4.3.0, nothing half-written appears', async () => {
    const fsys = mountTmpfs(256);
    const milter = await milterOn(fsys.dir);
    try {
      const big = path.join(work, 'big.eml');
      fs.writeFileSync(big, Buffer.concat([b('Subject: too big for the spool\r\n\r\n'), Buffer.alloc(1024 * 1024, 0x61)]));
      const r = await swaks(['--server', `127.0.0.1:${postfix.port}`, '--from', 'a@example.com', '--to', 'b@example.org', '--data', big]);
      assert.notEqual(r.code, 0);
      assert.match(r.output, /<\*\* +451 4\.3\.0 Message archiving failed, try again later/);
      await milter.waitForLine(/archiving failed: ENOSPC/);
      assert.deepEqual(allFiles(fsys.dir), []);
    } finally {
      await milter.stop();
      fsys.unmount();
    }
  });
});
