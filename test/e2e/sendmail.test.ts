// End to end with a real Sendmail (Debian 12's sendmail-bin, in a Debian root
// of its own: it conflicts with Postfix as a package) whose INPUT_MAIL_FILTER
// points at benno-milter on the host. The corpus of the Postfix test must be
// archived byte for byte with its envelope, the log lines must carry
// Sendmail's queue id, and with the milter down Sendmail (F=T) must answer
// 4xx so that nothing is lost.
//
// What Sendmail itself does differently from Postfix, seen here:
// - It never shows a milter the Received: header it adds (neither does
//   Postfix), so the archived copy is what Sendmail delivers minus that line.
// - It refuses what Postfix lets through: a bare LF in the message (421
//   4.5.0, since the SMTP smuggling fix), SMTPUTF8, 8-bit or control
//   characters in an address (501), a local part or domain over about 240
//   bytes (553). Such a message is refused before the milter sees it:
//   nothing to archive.
// - It writes "X-REAL-RCPTTO : v" (blank before the colon) as "X-REAL-RCPTTO: v"
//   when it passes headers on, as Postfix does.
// - Local mail goes through the MSP (submit.cf), which adds its own Received:
//   line and hands the message to the MTA over SMTP: the milter sees that line.
// - With the milter down (or gone in the middle of a session) it answers the
//   next MAIL FROM or RCPT TO with 451 4.3.2; Postfix says 451 4.7.1.
// For the same submission both MTAs make the same spool file, byte for byte
// (the corpus message, checked by hand against the Postfix test's).
// The first run makes the Debian root (scripts/sendmail-root: debootstrap and
// apt, about half a minute with a near mirror); later runs reuse it, and the
// whole file then takes about four seconds (two of them the R= timeout test).

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as C from '../../src/milter/constants';
import { PacketDecoder, encodeOptneg } from '../../src/milter/codec';
import { ARCHIVER_MACROS, ARCHIVER_PROTOCOL } from '../../src/milter-app/archiver';
import { parseEnvelope } from '../../src/spool/format';
import { b } from '../helpers/bytes';
import {
  LOCAL_SUBMISSION,
  NASTY,
  NASTY_STORED,
  ODD_RECIPIENTS,
  QUOTED_SENDER,
  TOO_LONG_RECIPIENT,
  assertForgedRenamed,
  assertNastyIntact,
  forgedEnvelopeMessage,
} from '../helpers/corpus';
import { Program, ROOT, eventually, runCli, sha256, startMilter } from '../helpers/daemon';
import { mountTmpfs, removeTree, tempDir } from '../helpers/fs';
import { freePort } from '../helpers/net';
import { RawSmtp, submit } from '../helpers/raw-smtp-client';
import { RECOMMENDED_TIMEOUTS, Sendmail, sendmailRoot, withoutSendmailReceived } from '../helpers/sendmail';
import { allFiles, spoolFiles } from '../helpers/spool';

/** The spool file a message must give, spelled out here rather than by src/spool/format. */
function spoolFile(sender: string, recipients: string[], message: Buffer): Buffer {
  const lines = [`X-REAL-MAILFROM: <${sender}>\r\n`, ...recipients.map((r) => `X-REAL-RCPTTO: <${r}>\r\n`)].join('');
  return Buffer.concat([b(lines), message]);
}

/** Waits for the spool file with exactly these bytes (its name is their hash) and returns it. */
async function archived(spool: string, expected: Buffer): Promise<Buffer> {
  const file = path.join(spool, `${sha256(expected)}.eml`);
  await eventually(() => fs.existsSync(file), `${path.basename(file)} in the spool (have: ${spoolFiles(spool).join(' ')})`, 20_000);
  return fs.readFileSync(file);
}

/** The spool file the milter logged for a queue id. */
async function spoolFileFor(milter: Program, spool: string, queueId: string): Promise<Buffer> {
  const line = await milter.waitForLine(new RegExp(`^.*${queueId}: archived `));
  return fs.readFileSync(path.join(spool, /file=(\S+)/.exec(line)![1]));
}

/**
 * Sendmail refused the message for good: its queue is empty (it may remove
 * the files just after its reply) and nothing more was delivered.
 */
async function nothingKept(sm: Sendmail, delivered = 0): Promise<void> {
  await eventually(() => sm.queueFiles().length === 0, `an empty queue (have: ${sm.queueFiles().join(' ')})`);
  assert.equal(sm.deliveredIds().length, delivered, 'nothing delivered');
}

function replies(d: { replies: { text: string }[] }): string {
  return d.replies.map((r) => r.text).join('\n');
}

describe('benno-milter behind a real Sendmail', { timeout: 25 * 60_000 }, () => {
  let work: string;
  let spool: string;
  let milter: Program;
  let sendmail: Sendmail;

  before(async () => {
    await sendmailRoot(); // made once; the first time takes a while
    work = tempDir();
    spool = path.join(work, 'spool');
    fs.mkdirSync(spool);
    const milterPort = await freePort();
    milter = await startMilter(['-p', `inet:${milterPort}@127.0.0.1`, '-o', spool]);
    sendmail = await Sendmail.start({ milterPort });
  });
  after(async () => {
    await sendmail?.stop();
    await milter?.stop();
    if (work) removeTree(work);
  });

  it('the corpus through Sendmail is archived byte for byte with its envelope (Bcc included), as Sendmail delivers it minus its Received: header', async () => {
    const d = await submit(sendmail.port, 'envelope-sender@example.com', ['first@example.org', 'second@example.org', 'bcc-only@example.net'], NASTY);
    const qid = Sendmail.queueId(d.final.text);
    // What the Postfix test expects too: the envelope, then the message with only a final newline added.
    const expected = spoolFile('envelope-sender@example.com', ['first@example.org', 'second@example.org', 'bcc-only@example.net'], NASTY_STORED);
    const file = await archived(spool, expected);
    assert.deepEqual(file, expected);
    assertNastyIntact(file);
    const env = parseEnvelope(file)!;
    assert.deepEqual(file.subarray(env.messageOffset), withoutSendmailReceived(await sendmail.delivered(qid), qid));
  });

  it('forged envelope fields are renamed; a message with a bare LF is refused by Sendmail itself, never half archived', async () => {
    const d = await submit(sendmail.port, 'real-sender@example.com', ['real@example.org'], forgedEnvelopeMessage(false), { asIs: true });
    const qid = Sendmail.queueId(d.final.text);
    const file = await spoolFileFor(milter, spool, qid);
    const env = parseEnvelope(file)!;
    assert.equal(env.sender!.toString(), 'real-sender@example.com');
    assert.deepEqual(env.recipients.map(String), ['real@example.org']);
    const message = file.toString('latin1', env.messageOffset);
    assertForgedRenamed(message);
    await milter.waitForLine(new RegExp(`${qid}: archived .* renamed=5 `));
    // Apart from the renaming, the file is what Sendmail delivers.
    assert.equal(message.replace(/X-Untrusted-/g, ''), withoutSendmailReceived(await sendmail.delivered(qid), qid).toString('latin1'));

    // Postfix takes the bare LF (its test checks the renaming after it); Sendmail does not.
    const before = spoolFiles(spool).length;
    const bare = await RawSmtp.open(sendmail.port);
    for (const c of ['EHLO test.invalid', 'MAIL FROM:<bare-lf@example.com>', 'RCPT TO:<real@example.org>']) assert.equal((await bare.client.command(c)).code, 250);
    const refused = await bare.client.data(forgedEnvelopeMessage(true));
    assert.match(refused.text, /^421 4\.5\.0 Bare linefeed/);
    await bare.client.closed;
    assert.equal(spoolFiles(spool).length, before);
  });

  it('addresses: what Sendmail accepts is archived with its bytes; what it refuses never reaches the milter', async () => {
    // Sendmail offers no SMTPUTF8, so the addresses go without it.
    const d = await submit(sendmail.port, QUOTED_SENDER, ODD_RECIPIENTS.map((r) => r.address), b('Subject: addresses\r\n\r\nbody\r\n'), { asIs: true });
    const rcptReplies = d.replies.slice(3, 3 + ODD_RECIPIENTS.length).map((r) => r.text);
    assert.match(rcptReplies[0], /^250 /, replies(d));
    assert.match(rcptReplies[1], /^501 5\.1\.3 8-bit character in mailbox address/);
    assert.match(rcptReplies[2], /^501 5\.1\.3 Syntax error in mailbox address .*non-printable character/);
    assert.match(rcptReplies[3], /^553 5\.1\.0 .*token too long/);
    const qid = Sendmail.queueId(d.final.text);
    const file = await spoolFileFor(milter, spool, qid);
    const env = parseEnvelope(file)!;
    assert.deepEqual(env.sender, QUOTED_SENDER);
    assert.deepEqual(env.recipients.map((r) => r.toString('utf8')), [ODD_RECIPIENTS[0].archived], 'only the recipient Sendmail accepted');

    // Postfix lets a 1000-byte address through and the milter refuses the message (554 5.1.3); Sendmail refuses the address.
    const long = await submit(sendmail.port, 's@example.com', [TOO_LONG_RECIPIENT], b('Subject: long\r\n\r\nbody\r\n'), { asIs: true });
    assert.match(long.replies[3].text, /^553 5\.1\.0 .*token too long/);
    assert.match(long.final.text, /^503 /);
  });

  it('the null sender and 50 recipients', async () => {
    const rcpts = Array.from({ length: 50 }, (_, i) => `r${i}@example.org`);
    const message = b('Subject: bounce\r\nFrom: MAILER-DAEMON@example.com\r\n\r\nbody\r\n');
    const d = await submit(sendmail.port, '', rcpts, message);
    const qid = Sendmail.queueId(d.final.text);
    const expected = spoolFile('', rcpts, message);
    assert.deepEqual(await archived(spool, expected), expected);
    assert.deepEqual(withoutSendmailReceived(await sendmail.delivered(qid), qid), message);
  });

  it("a message through Sendmail's sendmail command (the MSP: submit.cf, then SMTP to the MTA) is archived like mail from outside", async () => {
    await sendmail.submitLocal(['-f', 'local-sender@example.com', 'local-rcpt@example.org', 'second@example.org'], LOCAL_SUBMISSION);
    const line = await milter.waitForLine(/ archived from=<local-sender@example\.com> rcpts=2 /);
    const qid = /(\w+): archived/.exec(line)![1];
    const file = await spoolFileFor(milter, spool, qid);
    const env = parseEnvelope(file)!;
    // The MSP hands the recipients on in an order of its own; the file has the MTA's.
    assert.deepEqual(env.recipients.map(String).sort(), ['local-rcpt@example.org', 'second@example.org']);
    const message = file.subarray(env.messageOffset);
    assert.deepEqual(message, withoutSendmailReceived(await sendmail.delivered(qid), qid));
    // To the MTA, the MSP's Received:, Date:, From: and Message-Id: are part of the message, so they are archived
    // (Postfix adds the same three for a local submission); the lone dot ended the input, as it does for Postfix.
    const text = message.toString('latin1');
    assert.match(text, /^Received: from localhost \(localhost \[\[UNIX: localhost\]\]\)\r\n\tby sendmail\.test\.invalid \(8\.[^)]*\) id \w+;\r\n\t[^\r\n]+\r\nDate: [^\r\n]+\r\nFrom: local-sender@example\.com\r\nMessage-Id: <[^>]+@sendmail\.test\.invalid>\r\n/);
    assert.ok(text.endsWith('\r\nSubject: local submission\r\nX-8bit: \xe4\xf6\xfc\r\n\r\nline one\r\n'), text);
  });

  it("log lines carry Sendmail's queue id, not NOQUEUE", async () => {
    const d = await submit(sendmail.port, 'log@example.com', ['r@example.org'], b('Subject: queue id\r\n\r\nbody\r\n'));
    const qid = Sendmail.queueId(d.final.text);
    const line = await milter.waitForLine(/ archived from=<log@example\.com> rcpts=1 /);
    assert.match(line, new RegExp(`: ${qid}: archived from=<log@example\\.com> rcpts=1 size=\\d+ file=\\w+\\.eml ms=`));
    assert.deepEqual(milter.stderr.filter((l) => l.includes('NOQUEUE')), []);
  });

  it("the unix socket as README.md gives it: the milter as its own user, the socket in that user's directory (0750), Sendmail connecting as root", async () => {
    const root = await sendmailRoot();
    const sockDir = fs.mkdtempSync(path.join(root, 'run', 'benno-milter-'));
    const unixSpool = path.join(work, 'unix');
    fs.mkdirSync(unixSpool);
    for (const d of [sockDir, unixSpool]) execFileSync('chown', ['nobody:nogroup', d]);
    fs.chmodSync(sockDir, 0o750);
    fs.chmodSync(work, 0o755); // nobody reaches its spool
    const asNobody = ['setpriv', '--reuid=nobody', '--regid=nogroup', '--clear-groups'];
    let unixMilter: Program | undefined;
    let sm: Sendmail | undefined;
    try {
      unixMilter = await startMilter(['-p', `unix:${sockDir}/benno-milter.sock`, '-o', unixSpool], {}, asNobody);
      sm = await Sendmail.start({ socket: `unix:/${path.relative(root, sockDir)}/benno-milter.sock` });
      const d = await submit(sm.port, 'unix@example.com', ['r@example.org'], NASTY);
      const qid = Sendmail.queueId(d.final.text);
      await unixMilter.waitForLine(new RegExp(`${qid}: archived from=<unix@example\\.com> rcpts=1 `));
      const expected = spoolFile('unix@example.com', ['r@example.org'], NASTY_STORED);
      assert.deepEqual(await archived(unixSpool, expected), expected);
    } finally {
      await sm?.stop();
      await unixMilter?.stop();
      removeTree(sockDir);
    }
  });

  it("--skip-daemon matches Sendmail's daemon name (DAEMON_OPTIONS Name=, sent as {daemon_name} at MAIL): accepted, not archived", async () => {
    const skipSpool = path.join(work, 'skip');
    fs.mkdirSync(skipSpool);
    const milterPort = await freePort();
    const skipping = await startMilter(['-p', `inet:${milterPort}@127.0.0.1`, '-o', skipSpool, '--skip-daemon', 'MTA']);
    let sm: Sendmail | undefined;
    try {
      sm = await Sendmail.start({ milterPort });
      const d = await submit(sm.port, 'reinjected@example.com', ['r@example.org'], b('Subject: already archived\r\n\r\nbody\r\n'));
      const qid = Sendmail.queueId(d.final.text);
      await skipping.waitForLine(new RegExp(`${qid}: not archived: daemon_name=MTA is in --skip-daemon`));
      await sm.delivered(qid);
      assert.deepEqual(allFiles(skipSpool), []);
    } finally {
      await sm?.stop();
      await skipping.stop();
    }
  });

  it('spool full: Sendmail passes on the milter\'s 451 4.3.0, accepts nothing, and nothing half-written appears', async () => {
    const fsys = mountTmpfs(256);
    const milterPort = await freePort();
    let small: Program | undefined;
    let sm: Sendmail | undefined;
    try {
      small = await startMilter(['-p', `inet:${milterPort}@127.0.0.1`, '-o', fsys.dir]);
      sm = await Sendmail.start({ milterPort });
      const big = Buffer.concat([b('Subject: too big for the spool\r\n\r\n'), Buffer.alloc(1024 * 1024, 0x61)]);
      const d = await submit(sm.port, 'a@example.com', ['b@example.org'], big);
      assert.equal(d.final.text, '451 4.3.0 Message archiving failed, try again later');
      await small.waitForLine(/archiving failed: ENOSPC/);
      assert.deepEqual(allFiles(fsys.dir), []);
      await nothingKept(sm);
    } finally {
      await sm?.stop();
      await small?.stop();
      fsys.unmount();
    }
  });
});

describe('the Sendmail set-up the documentation gives', () => {
  it('every INPUT_MAIL_FILTER line in README.md and benno-milter(8) has F=T and the timeouts these tests run with', () => {
    for (const doc of ['README.md', 'man/benno-milter.8']) {
      const text = fs.readFileSync(path.join(ROOT, doc), 'utf8').replace(/\\\(ga|\\\(aq/g, "'").replace(/\\-/g, '-');
      const lines = text.split('\n').filter((l) => l.startsWith('INPUT_MAIL_FILTER('));
      assert.ok(lines.length > 0, `${doc} has an INPUT_MAIL_FILTER line`);
      for (const l of lines) assert.ok(l.includes(`, F=T, T=${RECOMMENDED_TIMEOUTS}'`), `${doc}: ${l}`);
    }
  });
});

describe('Sendmail with benno-milter down (F=T)', { timeout: 25 * 60_000 }, () => {
  let work: string;
  let spool: string;
  let milterPort: number;
  let sendmail: Sendmail;

  before(async () => {
    await sendmailRoot();
    work = tempDir();
    spool = path.join(work, 'spool');
    fs.mkdirSync(spool);
    milterPort = await freePort(); // nothing listens there yet
    sendmail = await Sendmail.start({ milterPort });
  });
  after(async () => {
    await sendmail?.stop();
    if (work) removeTree(work);
  });

  const message = b('Subject: waits for the milter\r\nMessage-ID: <down.1@example.com>\r\n\r\nbody\r\n');
  const expected = spoolFile('a@example.com', ['b@example.org'], message);

  it('milter not running: Sendmail answers 4xx and keeps nothing; the client retries once the milter is back, and it is archived once', async () => {
    const d = await submit(sendmail.port, 'a@example.com', ['b@example.org'], message);
    assert.match(d.refusal?.text ?? '', /^451 4\.3\.2 /, replies(d));
    assert.notEqual(d.final.code, 250, 'the message was not accepted');
    await nothingKept(sendmail);
    assert.deepEqual(allFiles(spool), []);

    const milter = await startMilter(['-p', `inet:${milterPort}@127.0.0.1`, '-o', spool]);
    try {
      const retry = await submit(sendmail.port, 'a@example.com', ['b@example.org'], message);
      const qid = Sendmail.queueId(retry.final.text);
      await milter.waitForLine(new RegExp(`${qid}: archived from=<a@example\\.com> rcpts=1 `));
      assert.deepEqual(spoolFiles(spool), [`${sha256(expected)}.eml`]);
      assert.deepEqual(withoutSendmailReceived(await sendmail.delivered(qid), qid), message);
      assert.deepEqual(sendmail.deliveredIds(), [qid], 'delivered once');
    } finally {
      await milter.stop();
    }
  });

  it("a milter that never answers end-of-message: Sendmail gives up after T=R (E does not cut the one wait short), answers 451 and keeps nothing", async () => {
    // What README.md's timeouts rest on: benno-milter answers only at end of
    // message (once the file is durable) and sends no progress replies, so R
    // is what bounds that wait; E counts only between replies.
    const port = await freePort();
    const silent = net.createServer((socket) => {
      const decoder = new PacketDecoder();
      socket.on('error', () => undefined);
      socket.on('data', (chunk: Buffer) => {
        decoder.push(chunk);
        for (let p = decoder.next(); p; p = decoder.next()) {
          if (p.cmd === C.SMFIC_OPTNEG) socket.write(encodeOptneg(6, 0, ARCHIVER_PROTOCOL, ARCHIVER_MACROS));
        }
      });
    });
    await new Promise<void>((resolve) => silent.listen(port, '127.0.0.1', resolve));
    let sm: Sendmail | undefined;
    try {
      sm = await Sendmail.start({ milterPort: port, timeouts: 'C:10s;S:10s;R:2s;E:1s' });
      const started = Date.now();
      const d = await submit(sm.port, 'a@example.com', ['b@example.org'], message);
      const waited = Date.now() - started;
      assert.match(d.final.text, /^451 4\.3\.2 /, replies(d));
      assert.ok(waited >= 1900, `gave up after ${waited} ms: E:1s cut the wait short`);
      await nothingKept(sm);
    } finally {
      await sm?.stop();
      silent.close();
    }
  });

  it('milter killed in the middle of a session: Sendmail answers 4xx to that message; the retry is archived once', async () => {
    for (const f of spoolFiles(spool)) fs.unlinkSync(path.join(spool, f));
    const deliveredBefore = sendmail.deliveredIds().length;
    let milter = await startMilter(['-p', `inet:${milterPort}@127.0.0.1`, '-o', spool]);
    const { client } = await RawSmtp.open(sendmail.port);
    assert.equal((await client.command('EHLO test.invalid')).code, 250);
    assert.equal((await client.command('MAIL FROM:<a@example.com>')).code, 250); // the milter has the connection and the MAIL
    await milter.stop('SIGKILL');
    const rest = [await client.command('RCPT TO:<b@example.org>')];
    if (rest[0].code === 250) rest.push(await client.data(message, { stuff: true }));
    client.end();
    const last = rest[rest.length - 1];
    assert.equal(Math.floor(last.code / 100), 4, rest.map((r) => r.text).join('\n'));
    await nothingKept(sendmail, deliveredBefore);
    assert.deepEqual(allFiles(spool), []);

    milter = await startMilter(['-p', `inet:${milterPort}@127.0.0.1`, '-o', spool]);
    try {
      const retry = await submit(sendmail.port, 'a@example.com', ['b@example.org'], message);
      const qid = Sendmail.queueId(retry.final.text);
      await milter.waitForLine(new RegExp(`${qid}: archived from=<a@example\\.com> rcpts=1 `));
      assert.deepEqual(spoolFiles(spool), [`${sha256(expected)}.eml`]);
      await sendmail.delivered(qid);
      assert.equal(sendmail.deliveredIds().length, deliveredBefore + 1, 'delivered once');
    } finally {
      await milter.stop();
    }
  });
});

describe("benno-milter-admin audit over a real Sendmail's log (issue 14)", { timeout: 25 * 60_000 }, () => {
  const ADMIN_BIN = path.join(ROOT, 'dist', 'src', 'cli', 'benno-milter-admin.js');
  let work: string;
  let spool: string;
  let milterPort: number;
  const instances: Sendmail[] = [];

  before(async () => {
    await sendmailRoot();
    work = tempDir();
    spool = path.join(work, 'spool');
    fs.mkdirSync(spool);
    milterPort = await freePort();
  });
  after(async () => {
    for (const sm of instances) await sm.stop();
    if (work) removeTree(work);
  });

  /** The audit over the Sendmails' logs and the milter's. */
  function audit(milter: Program, sendmails: Sendmail[]): { code: number | null; stdout: string } {
    const milterLog = path.join(work, 'milter.log');
    fs.writeFileSync(milterLog, milter.stderr.join('\n') + '\n');
    const r = runCli(ADMIN_BIN, ['audit', '--log', ...sendmails.map((s) => s.maillogPath()), milterLog]);
    return { code: r.code, stdout: r.stdout + r.stderr };
  }

  it('every message archived: complete; then, with the milter down and a Sendmail without F=T, exactly the message it accepted unarchived', async () => {
    const milter = await startMilter(['-p', `inet:${milterPort}@127.0.0.1`, '-o', spool]);
    const sm = await Sendmail.start({ milterPort, syslog: true });
    instances.push(sm);
    const ids: string[] = [];
    try {
      for (const from of ['a@example.com', 'b@example.com']) {
        const d = await submit(sm.port, from, ['r@example.org', 'bcc@example.net'], b('Subject: audited\r\n\r\nbody\r\n'));
        ids.push(Sendmail.queueId(d.final.text));
      }
      for (const id of ids) await sm.waitForLog(new RegExp(`sendmail\\[\\d+\\]: ${id}: to=.*stat=Sent`));
      for (const id of ids) await milter.waitForLine(new RegExp(`${id}: archived `));
      const complete = audit(milter, [sm]);
      assert.equal(complete.code, 0, complete.stdout);
      assert.match(complete.stdout, /^accepted by the MTA +2$/m);
      assert.match(complete.stdout, /^archived by benno-milter +2$/m);
      assert.match(complete.stdout, /\nCOMPLETE: /);
    } finally {
      await milter.stop();
    }
    // Without F=T, Sendmail accepts while the milter is down.
    const unsafe = await Sendmail.start({ milterPort, syslog: true, flags: '' });
    instances.push(unsafe);
    const d = await submit(unsafe.port, 'lost@example.com', ['r@example.org'], b('Subject: not archived\r\n\r\nbody\r\n'));
    const lost = Sendmail.queueId(d.final.text);
    await unsafe.waitForLog(new RegExp(`sendmail\\[\\d+\\]: ${lost}: to=.*stat=Sent`));
    const r = audit(milter, [sm, unsafe]);
    assert.equal(r.code, 1, r.stdout);
    assert.match(r.stdout, new RegExp(`NOT ARCHIVED: accepted by the MTA, no archived file \\(1\\):\\n.*\\n\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d  ${lost} +<lost@example.com>\\n    .* mx sendmail\\[\\d+\\]: ${lost}: from=<lost@example.com>, size=\\d+, class=0, nrcpts=1, .*daemon=MTA`));
    assert.match(r.stdout, /^accepted by the MTA +3$/m);
  });
});
