// benno-milter2smtp, benno-export2archive and benno-smtp as processes:
// faults, overlapping and killed runs, the receiver's refusals, and what the
// exporter puts on the wire (a raw SMTP recorder: addresses, AUTH, bytes).

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DEFAULT_ENVELOPE_NAMES, envelopeBlock } from '../../src/spool/format';
import { eventually, run, runToEnd, sha256 } from '../helpers/daemon';
import { mountExt4, removeTree, tempDir } from '../helpers/fs';
import { RawSmtp } from '../helpers/raw-smtp-client';
import { RawSmtpServer } from '../helpers/raw-smtp-server';
import { freePort } from '../helpers/net';
import { EXPORT2ARCHIVE_BIN, EXPORT_BIN, SmtpDouble, startReceiver } from '../helpers/smtp';
import { b, u } from '../helpers/bytes';
import { allFiles, inSpool, spoolFiles } from '../helpers/spool';

function spoolMessage(i: number, extra = ''): Buffer {
  return b(
    `X-REAL-MAILFROM: <sender${i}@example.com>\r\nX-REAL-RCPTTO: <rcpt${i}@example.org>\r\n` +
      `Subject: message ${i}${extra}\r\nMessage-ID: <${i}@example.com>\r\n\r\nbody ${i}\r\n.\r\n..dots\r\n`,
  );
}

/** Writes n spool files the way the milter does (content-hash names); returns name → content. */
function fillSpool(dir: string, n: number, extra: (i: number) => string = () => ''): Map<string, Buffer> {
  const files = new Map<string, Buffer>();
  for (let i = 0; i < n; i++) {
    const content = spoolMessage(i, extra(i));
    const name = `${sha256(content)}.eml`;
    fs.writeFileSync(path.join(dir, name), content);
    files.set(name, content);
  }
  return files;
}

const messagePart = (content: Buffer) => content.subarray(content.indexOf('Subject:'));
const shaOf = (data: Buffer) => createHash('sha256').update(data).digest('hex');

describe('benno-milter2smtp against an SMTP double', () => {
  let work: string;
  let double: SmtpDouble;
  before(async () => {
    work = tempDir();
    double = new SmtpDouble();
    await double.listen();
  });
  after(async () => {
    await double.close();
    removeTree(work);
  });
  const spoolDir = (name: string) => {
    const d = path.join(work, name);
    fs.mkdirSync(d);
    return d;
  };

  it('sends every file once as envelope + unchanged message, removes it after the 250, prints a summary, exit 0', async () => {
    const spool = spoolDir('ok');
    const files = fillSpool(spool, 20);
    double.received.length = 0;
    const r = await runToEnd(EXPORT_BIN, ['--host', '127.0.0.1', '--port', String(double.port), spool]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(inSpool(spool), []);
    assert.equal(double.received.length, 20);
    for (const [, content] of files) {
      const got = double.received.find((m) => m.sha === shaOf(messagePart(content)));
      assert.ok(got, 'message arrived unchanged');
    }
    const i = 7;
    const seven = double.received.find((m) => m.data.includes(b(`Subject: message ${i}\r\n`)))!;
    assert.equal(seven.from, `sender${i}@example.com`);
    assert.deepEqual(seven.to, [`rcpt${i}@example.org`]);
    assert.match(r.stderr, /summary: sent=20 deferred=0 refused=0 failed=0 skipped=0 bytes=\d+ seconds=[\d.]+ to 127\.0\.0\.1:\d+/);
    assert.equal(r.stderr.split('\n').filter((l) => / sent to 127\.0\.0\.1/.test(l)).length, 20, 'one line per file');
    const { readExportStatus } = await import('../../src/spool/status');
    assert.deepEqual({ ...readExportStatus(spool)!, time: 't', seconds: 0 }, {
      time: 't',
      host: `127.0.0.1:${double.port}`,
      exitCode: 0,
      sent: 20,
      deferred: 0,
      refused: 0,
      refusedFiles: [],
      failed: 0,
      seconds: 0,
    });
  });

  it('4xx: kept for the next run (exit 75); 5xx: kept and tried again at every run; only files without envelope: renamed .err', async () => {
    const spool = spoolDir('faults');
    fillSpool(spool, 6, (i) => (i === 1 ? ' DEFER-ME' : i === 2 ? ' REJECT-ME' : ''));
    fs.writeFileSync(path.join(spool, 'no-envelope.eml'), 'Subject: lost its envelope\r\n\r\nbody\r\n');
    double.received.length = 0;
    double.answer = (data) =>
      data.includes(b('DEFER-ME')) ? { code: 451, text: 'try later' } : data.includes(b('REJECT-ME')) ? { code: 550, text: 'no thanks' } : undefined;
    try {
      const r = await runToEnd(EXPORT_BIN, ['--host', '127.0.0.1', '--port', String(double.port), '--connections', '1', spool]);
      assert.equal(r.code, 75, r.stderr);
      const left = inSpool(spool).sort();
      assert.equal(left.length, 3, left.join(' '));
      const kept = left.filter((n) => n.endsWith('.eml'));
      assert.equal(kept.length, 2, 'the deferred and the refused file keep their names');
      assert.ok(kept.some((n) => fs.readFileSync(path.join(spool, n)).includes(b('DEFER-ME'))));
      assert.ok(kept.some((n) => fs.readFileSync(path.join(spool, n)).includes(b('REJECT-ME'))));
      assert.deepEqual(left.filter((n) => n.endsWith('.err')), ['no-envelope.eml.err']);
      assert.equal(double.received.length, 4);
      assert.match(r.stderr, /deferred by 127\.0\.0\.1:\d+: 451 .*try later; kept for the next run/);
      assert.match(r.stderr, /error: [0-9a-f]{64}\.eml: refused by 127\.0\.0\.1:\d+: 550 .*no thanks; kept in the spool and tried again at every run; fix the cause on the archive host/);
      assert.match(r.stderr, /no-envelope\.eml: no valid X-REAL-MAILFROM\/X-REAL-RCPTTO lines at its start, or more than 1048576 bytes of them; renamed to no-envelope\.eml\.err/);
      assert.match(r.stderr, /summary: sent=4 deferred=1 refused=1 failed=1 /);

      // The next run sends both once the server takes them; the .err file stays untouched.
      double.answer = () => undefined;
      const again = await runToEnd(EXPORT_BIN, ['--host', '127.0.0.1', '--port', String(double.port), spool]);
      assert.equal(again.code, 0, again.stderr);
      assert.deepEqual(inSpool(spool), ['no-envelope.eml.err']);
      assert.equal(double.received.length, 6);
    } finally {
      double.answer = () => undefined;
    }
  });

  it('only refusals left: exit 65', async () => {
    const spool = spoolDir('refused');
    fillSpool(spool, 2, () => ' REJECT-ME');
    double.answer = (data) => (data.includes(b('REJECT-ME')) ? { code: 554, text: 'refused' } : undefined);
    try {
      const r = await runToEnd(EXPORT_BIN, ['--host', '127.0.0.1', '--port', String(double.port), spool]);
      assert.equal(r.code, 65, r.stderr);
    } finally {
      double.answer = () => undefined;
    }
  });

  it('receiver down: nothing is lost, files keep their names, exit 75', async () => {
    const spool = spoolDir('down');
    const files = fillSpool(spool, 5);
    const port = await freePort();
    const r = await runToEnd(EXPORT_BIN, ['--host', '127.0.0.1', '--port', String(port), spool]);
    assert.equal(r.code, 75, r.stderr);
    assert.match(r.stderr, /cannot deliver to 127\.0\.0\.1:\d+: .*ECONNREFUSED.*; files stay in the spool for the next run/);
    assert.deepEqual(inSpool(spool).sort(), [...files.keys()].sort());
  });

  it('SIGKILL mid-run loses nothing: the next run sends the rest, in-flight files at most twice', async () => {
    const spool = spoolDir('killed');
    const files = fillSpool(spool, 120);
    double.received.length = 0;
    double.delayMs = 30;
    const exporter = run(EXPORT_BIN, ['--host', '127.0.0.1', '--port', String(double.port), '--connections', '2', spool]);
    await double.until(30);
    exporter.proc.kill('SIGKILL');
    await exporter.exited;
    double.delayMs = 0;
    assert.ok(inSpool(spool).some((n) => n.endsWith('.sending')), 'the killed run left claimed files');
    const r = await runToEnd(EXPORT_BIN, ['--host', '127.0.0.1', '--port', String(double.port), spool]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /put back \d+ file\(s\) claimed by an exporter that died/);
    assert.deepEqual(inSpool(spool), []);
    const got = new Set(double.received.map((m) => m.sha));
    for (const content of files.values()) assert.ok(got.has(shaOf(messagePart(content))), 'every message arrived');
    assert.ok(double.received.length - files.size <= 2, `${double.received.length - files.size} sent twice, at most the 2 in flight`);
  });

  it('two exporters at once never send a file twice', async () => {
    const spool = spoolDir('overlap');
    const files = fillSpool(spool, 400);
    double.received.length = 0;
    double.delayMs = 2;
    try {
      const args = ['--host', '127.0.0.1', '--port', String(double.port), '--connections', '3', spool];
      const [r1, r2] = await Promise.all([runToEnd(EXPORT_BIN, args), runToEnd(EXPORT_BIN, args)]);
      assert.equal(r1.code, 0, r1.stderr);
      assert.equal(r2.code, 0, r2.stderr);
      assert.equal(double.received.length, files.size, 'each file exactly once');
      assert.equal(new Set(double.received.map((m) => m.sha)).size, files.size);
      const sent = (s: string) => Number(/summary: sent=(\d+)/.exec(s)?.[1] ?? 0);
      assert.equal(sent(r1.stderr) + sent(r2.stderr), files.size);
      assert.ok(sent(r1.stderr) > 0 && sent(r2.stderr) > 0, 'both runs took part');
    } finally {
      double.delayMs = 0;
    }
  });

  it('usage errors: one line, exit 64; a missing PATH: exit 66', async () => {
    const noHost = await runToEnd(EXPORT_BIN, [work]);
    assert.equal(noHost.code, 64);
    assert.match(noHost.stderr.trim(), /^benno-milter2smtp: Missing required argument: host \(try --help\)$/);
    const noPath = await runToEnd(EXPORT_BIN, ['--host', 'x']);
    assert.equal(noPath.code, 64);
    const badTls = await runToEnd(EXPORT_BIN, ['--host', 'x', '--starttls', 'maybe', work]);
    assert.equal(badTls.code, 64);
    const missing = await runToEnd(EXPORT_BIN, ['--host', '127.0.0.1', path.join(work, 'nope')]);
    assert.equal(missing.code, 66);
    assert.match(missing.stderr.trim(), /^benno-milter2smtp: .*nope: no such file or directory$/);
    const sameNames = await runToEnd(EXPORT_BIN, ['--host', 'x', '--sender-header', 'X-Env', '--recipient-header', 'x-env', work]);
    assert.equal(sameNames.code, 64);
    assert.match(sameNames.stderr.trim(), /^benno-milter2smtp: bad --recipient-header: the sender and recipient header names must differ$/);
  });
});

describe('benno-smtp receiver', () => {
  let work: string;
  before(() => {
    work = tempDir();
  });
  after(() => removeTree(work));

  it('stores what benno-milter2smtp sends byte for byte, under the same name', async () => {
    const spool = path.join(work, 'spool');
    const inbox = path.join(work, 'inbox');
    fs.mkdirSync(spool);
    fs.mkdirSync(inbox);
    const files = fillSpool(spool, 10);
    const port = await freePort();
    const rx = await startReceiver(work, [`listen = 127.0.0.1:${port}`, `inbox = ${inbox}`]);
    try {
      const r = await runToEnd(EXPORT_BIN, ['--host', '127.0.0.1', '--port', String(port), spool]);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(spoolFiles(inbox), [...files.keys()].sort());
      for (const [name, content] of files) assert.deepEqual(fs.readFileSync(path.join(inbox, name)), content);
      for (const name of files.keys()) await rx.program.waitForLine(new RegExp(`${name}: stored from=<sender\\d+@example.com> rcpts=1 size=\\d+ client=127.0.0.1 ms=`));
    } finally {
      await rx.program.stop();
    }
  });

  it('byte identity through benno-smtp: a CRLF file with dot lines and 1,000-character lines arrives as it is, under its name; bare LF arrives as CRLF, under a new name', async () => {
    const spool = path.join(work, 'spool-bytes');
    const inbox = path.join(work, 'inbox-bytes');
    fs.mkdirSync(spool);
    fs.mkdirSync(inbox);
    const long = 'x'.repeat(998);
    const exact = writeSpoolFile(spool, 'a@x.org', ['b@x.org'], Buffer.concat([b(`Subject: exact\r\n\r\n.\r\n..\r\n...x\r\n.${long}\r\n${long}yz\r\n`), Buffer.from([0xff, 0xfe, 0x0d, 0x0a])]));
    const bare = writeSpoolFile(spool, 'a@x.org', ['c@x.org'], b('Subject: bare LF\n\nline one\n.dot\nno final line end'));
    const port = await freePort();
    const rx = await startReceiver(work, [`listen = 127.0.0.1:${port}`, `inbox = ${inbox}`]);
    try {
      const r = await runToEnd(EXPORT_BIN, ['--host', '127.0.0.1', '--port', String(port), spool]);
      assert.equal(r.code, 0, r.stderr);
      const stored = spoolFiles(inbox);
      assert.equal(stored.length, 2);
      assert.ok(stored.includes(exact.name));
      assert.deepEqual(fs.readFileSync(path.join(inbox, exact.name)), exact.content);
      const wireForm = Buffer.concat([bare.content.subarray(0, bare.content.indexOf('Subject:')), b('Subject: bare LF\r\n\r\nline one\r\n.dot\r\nno final line end\r\n')]);
      assert.deepEqual(stored.filter((n) => n !== exact.name), [`${sha256(wireForm)}.eml`]);
      assert.deepEqual(fs.readFileSync(path.join(inbox, `${sha256(wireForm)}.eml`)), wireForm);
    } finally {
      await rx.program.stop();
    }
  });

  it('envelope_header = false stores the message alone', async () => {
    const spool = path.join(work, 'spool-noenv');
    const inbox = path.join(work, 'inbox-noenv');
    fs.mkdirSync(spool);
    fs.mkdirSync(inbox);
    const files = fillSpool(spool, 1);
    const port = await freePort();
    const rx = await startReceiver(work, [`listen = 127.0.0.1:${port}`, `inbox = ${inbox}`, 'envelope_header = false']);
    try {
      assert.equal((await runToEnd(EXPORT_BIN, ['--host', '127.0.0.1', '--port', String(port), spool])).code, 0);
      const [content] = files.values();
      const stored = spoolFiles(inbox).map((n) => fs.readFileSync(path.join(inbox, n)));
      assert.deepEqual(stored, [messagePart(content)]);
    } finally {
      await rx.program.stop();
    }
  });

  it('a client outside allowed_clients is refused (554); the exporter says so and exits 69', async () => {
    const spool = path.join(work, 'spool-refused');
    const inbox = path.join(work, 'inbox-refused');
    fs.mkdirSync(spool);
    fs.mkdirSync(inbox);
    fillSpool(spool, 1);
    const port = await freePort();
    const rx = await startReceiver(work, [`listen = 127.0.0.1:${port}`, `inbox = ${inbox}`, 'allowed_clients = 192.0.2.0/24']);
    try {
      const r = await runToEnd(EXPORT_BIN, ['--host', '127.0.0.1', '--port', String(port), spool]);
      assert.equal(r.code, 69, r.stderr);
      assert.match(r.stderr, /554 Client not allowed to deliver to this archive.*check its allowed_clients/);
      await rx.program.waitForLine(/refused client 127\.0\.0\.1: not in allowed_clients/);
      assert.equal(spoolFiles(spool).length, 1);
      assert.deepEqual(allFiles(inbox), []);
    } finally {
      await rx.program.stop();
    }
  });

  it('an inbox that refuses files answers 451; the file stays with the exporter (exit 75)', async () => {
    const ext4 = mountExt4();
    const spool = path.join(work, 'spool-451');
    fs.mkdirSync(spool);
    fillSpool(spool, 1);
    const port = await freePort();
    const rx = await startReceiver(work, [`listen = 127.0.0.1:${port}`, `inbox = ${ext4.dir}`]);
    const { execFileSync } = await import('node:child_process');
    try {
      execFileSync('chattr', ['+i', ext4.dir]);
      const r = await runToEnd(EXPORT_BIN, ['--host', '127.0.0.1', '--port', String(port), spool]);
      assert.equal(r.code, 75, r.stderr);
      assert.match(r.stderr, /deferred by .*451 4\.3\.0 Message archiving failed, try again later/);
      await rx.program.waitForLine(/storing a message from=<sender0@example.com> failed: EPERM/);
      assert.equal(spoolFiles(spool).length, 1);
    } finally {
      execFileSync('chattr', ['-i', ext4.dir]);
      await rx.program.stop();
      ext4.unmount();
    }
  });

  it('an oversized message: refused at MAIL for its SIZE, kept in the spool (exit 65); a client without SIZE gets 552', async () => {
    const spool = path.join(work, 'spool-big');
    const inbox = path.join(work, 'inbox-big');
    fs.mkdirSync(spool);
    fs.mkdirSync(inbox);
    const files = fillSpool(spool, 1, () => ` ${'x'.repeat(5000)}`);
    const port = await freePort();
    const rx = await startReceiver(work, [`listen = 127.0.0.1:${port}`, `inbox = ${inbox}`, 'max_size = 1K']);
    try {
      const r = await runToEnd(EXPORT_BIN, ['--host', '127.0.0.1', '--port', String(port), spool]);
      assert.equal(r.code, 65, r.stderr);
      assert.match(r.stderr, /refused by .*: 552 .*1024 \(MAIL FROM:<sender0@example\.com>\); kept in the spool and tried again at every run; fix the cause on the archive host \(max_size/);
      assert.deepEqual(inSpool(spool), [...files.keys()]);
      const { swaks } = await import('../helpers/postfix');
      const big = await swaks(['--server', `127.0.0.1:${port}`, '--from', 'a@example.com', '--to', 'b@example.org', '--body', 'x'.repeat(5000)]);
      assert.match(big.output, /<\*\* +552 5\.\d\.\d Message exceeds the archive's size limit of 1024 bytes/);
      await rx.program.waitForLine(/message from=<a@example.com> over max_size 1024 bytes refused/);
      assert.deepEqual(allFiles(inbox), []);
    } finally {
      await rx.program.stop();
    }
  });

  it('bad commands get SMTP errors, and the session goes on', async () => {
    const inbox = path.join(work, 'inbox-commands');
    fs.mkdirSync(inbox);
    const port = await freePort();
    const rx = await startReceiver(work, [`listen = 127.0.0.1:${port}`, `inbox = ${inbox}`]);
    try {
      const script = ['EHLO client.example', 'FOO bar', 'RCPT TO:<a@example.org>', 'MAIL FROM:a@example.com', 'MAIL FROM:<a@example.com>', 'RCPT TO:<>', 'DATA', 'QUIT'];
      const { client, greeting } = await RawSmtp.open(port);
      const replies = [greeting];
      for (const line of script) replies.push(await client.command(line));
      await client.closed;
      assert.deepEqual(
        replies.map((r) => String(r.code)),
        ['220', '250', '500', '503', '501', '250', '501', '503', '221'],
        replies.map((r) => r.text).join('\n'),
      );
      assert.deepEqual(allFiles(inbox), []);
    } finally {
      await rx.program.stop();
    }
  });

  it('a client that disconnects in the middle of DATA leaves nothing behind', async () => {
    const inbox = path.join(work, 'inbox-cut');
    fs.mkdirSync(inbox);
    const port = await freePort();
    const rx = await startReceiver(work, [`listen = 127.0.0.1:${port}`, `inbox = ${inbox}`]);
    try {
      const { client } = await RawSmtp.open(port);
      for (const line of ['EHLO x', 'MAIL FROM:<a@example.com>', 'RCPT TO:<b@example.org>']) assert.equal((await client.command(line)).code, 250);
      assert.equal((await client.command('DATA')).code, 354);
      await client.writeAll(b(`Subject: cut\r\n\r\n${'y'.repeat(600_000)}\r\n`));
      client.destroy();
      await rx.program.waitForLine(/client 127\.0\.0\.1: disconnected during DATA; nothing stored/);
      await eventually(() => allFiles(inbox).length === 0, 'the temp file is removed');
    } finally {
      await rx.program.stop();
    }
  });

  it('a bad configuration stops it at start with the file, line and reason (exit 78)', async () => {
    const conf = path.join(work, 'bad.conf');
    fs.writeFileSync(conf, 'listen = 127.0.0.1:2525\ncolour = blue\n');
    const { SMTP_BIN } = await import('../helpers/smtp');
    const r = await runToEnd(SMTP_BIN, ['-c', conf]);
    assert.equal(r.code, 78);
    assert.match(r.stderr.trim(), /^benno-smtp: .*bad\.conf, line 2: unknown key "colour"/);
    const missing = await runToEnd(SMTP_BIN, ['-c', path.join(work, 'none.conf')]);
    assert.equal(missing.code, 78);
    assert.match(missing.stderr.trim(), /^benno-smtp: cannot read .*none\.conf: ENOENT$/);
  });
});

describe('benno-export2archive', () => {
  let work: string;
  before(() => (work = tempDir()));
  after(() => removeTree(work));

  it('without BENNOHOST: does nothing, says nothing, exit 0', async () => {
    const spool = path.join(work, 'spool-nohost');
    fs.mkdirSync(spool);
    fillSpool(spool, 2);
    const def = path.join(work, 'default-nohost');
    fs.writeFileSync(def, `SOCKET=/var/spool/postfix/benno-milter/benno-milter.sock\nSPOOLDIR=${spool}\n#BENNOHOST=your.benno-archive.host\n`);
    const r = await runToEnd(EXPORT2ARCHIVE_BIN, ['--config', def]);
    assert.deepEqual([r.code, r.stdout, r.stderr], [0, '', '']);
    assert.equal(spoolFiles(spool).length, 2);
    const absent = await runToEnd(EXPORT2ARCHIVE_BIN, ['--config', path.join(work, 'no-such-default')]);
    assert.deepEqual([absent.code, absent.stderr], [0, '']);
  });

  it('with BENNOHOST: ships the spool to the receiver; an empty spool is quiet', async () => {
    const spool = path.join(work, 'spool-ship');
    const inbox = path.join(work, 'inbox-ship');
    fs.mkdirSync(spool);
    fs.mkdirSync(inbox);
    const files = fillSpool(spool, 3);
    const port = await freePort();
    const rx = await startReceiver(work, [`listen = 127.0.0.1:${port}`, `inbox = ${inbox}`]);
    try {
      const def = path.join(work, 'default-ship');
      fs.writeFileSync(def, `SPOOLDIR="${spool}"\nBENNOHOST=127.0.0.1\nBENNOPORT=${port}\n`);
      const r = await runToEnd(EXPORT2ARCHIVE_BIN, ['--config', def]);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(spoolFiles(inbox), [...files.keys()].sort());
      assert.deepEqual(inSpool(spool), []);
      const quiet = await runToEnd(EXPORT2ARCHIVE_BIN, ['--config', def]);
      assert.deepEqual([quiet.code, quiet.stderr], [0, '']);
      fs.writeFileSync(def, `SPOOLDIR=${spool}\nBENNOHOST=127.0.0.1\nBENNOPORT=http\n`);
      const bad = await runToEnd(EXPORT2ARCHIVE_BIN, ['--config', def]);
      assert.equal(bad.code, 78);
      assert.match(bad.stderr.trim(), /^benno-export2archive: bad BENNOPORT in .*default-ship: "http" is not a whole number from 1 to 65535$/);
    } finally {
      await rx.program.stop();
    }
  });

  it('--watch ships a new file within a second or two of its arrival, and stops on SIGTERM', async () => {
    const spool = path.join(work, 'spool-watch');
    const inbox = path.join(work, 'inbox-watch');
    fs.mkdirSync(spool);
    fs.mkdirSync(inbox);
    const port = await freePort();
    const rx = await startReceiver(work, [`listen = 127.0.0.1:${port}`, `inbox = ${inbox}`]);
    const def = path.join(work, 'default-watch');
    fs.writeFileSync(def, `SPOOLDIR=${spool}\nBENNOHOST=127.0.0.1\nBENNOPORT=${port}\n`);
    const watcher = run(EXPORT2ARCHIVE_BIN, ['--config', def, '--watch']);
    try {
      await watcher.waitForLine(/started: watching /);
      for (let i = 0; i < 3; i++) {
        const content = spoolMessage(100 + i);
        const name = `${sha256(content)}.eml`;
        // arrive as the milter writes: temp name, then rename
        const tmp = path.join(spool, `.watch.${process.pid}.${i}.tmp`);
        fs.writeFileSync(tmp, content);
        const arrived = Date.now();
        fs.renameSync(tmp, path.join(spool, name));
        await rx.program.waitForLine(new RegExp(`${name}: stored`), 5000);
        assert.ok(Date.now() - arrived < 1000, `shipped after ${Date.now() - arrived} ms`);
        await eventually(() => !fs.existsSync(path.join(spool, name)), 'removed from the spool');
      }
      watcher.proc.kill('SIGTERM');
      assert.equal((await watcher.exited).code, 0);
    } finally {
      await watcher.stop('SIGKILL');
      await rx.program.stop();
    }
  });
});

describe('benno-smtp with STARTTLS and AUTH', () => {
  let work: string;
  let port: number;
  let rx: { program: import('../helpers/daemon').Program; config: string };
  let inbox: string;
  let cert: string;
  let passwordFile: string;

  before(async () => {
    const { execFileSync } = await import('node:child_process');
    const { SMTP_BIN } = await import('../helpers/smtp');
    work = tempDir();
    inbox = path.join(work, 'inbox');
    fs.mkdirSync(inbox);
    cert = path.join(work, 'cert.pem');
    const key = path.join(work, 'key.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'], { stdio: 'ignore' });
    const hash = execFileSync(process.execPath, [SMTP_BIN, '--hash-password'], { input: 'correct horse\n' }).toString().trim();
    assert.match(hash, /^\$scrypt\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+$/);
    const users = path.join(work, 'users');
    fs.writeFileSync(users, `# archive senders\nexporter:${hash}\n`);
    passwordFile = path.join(work, 'password');
    fs.writeFileSync(passwordFile, 'correct horse\n', { mode: 0o600 });
    port = await freePort();
    rx = await startReceiver(work, [`listen = 127.0.0.1:${port}`, `inbox = ${inbox}`, `tls_key = ${key}`, `tls_cert = ${cert}`, `auth_users = ${users}`]);
  });
  after(async () => {
    await rx.program.stop();
    removeTree(work);
  });

  const spoolWith = (name: string) => {
    const d = path.join(work, name);
    fs.mkdirSync(d);
    fillSpool(d, 2);
    return d;
  };

  it('STARTTLS required, the server certificate checked against --ca-file, AUTH with a password file: sent', async () => {
    const spool = spoolWith('tls-ok');
    const r = await runToEnd(EXPORT_BIN, ['--host', '127.0.0.1', '--port', String(port), '--starttls', 'require', '--ca-file', cert, '--user', 'exporter', '--password-file', passwordFile, spool]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(inSpool(spool), []);
  });

  it('no AUTH where it is required: the files stay (not .err), exit 69', async () => {
    const spool = spoolWith('no-auth');
    const r = await runToEnd(EXPORT_BIN, ['--host', '127.0.0.1', '--port', String(port), '--ca-file', cert, spool]);
    assert.equal(r.code, 69, r.stderr);
    assert.match(r.stderr, /refuses us: 530 .*check the AUTH settings/);
    assert.equal(spoolFiles(spool).length, 2);
  });

  it('a wrong password: refused, files stay, exit 69; the receiver logs the failed login', async () => {
    const spool = spoolWith('bad-auth');
    const wrong = path.join(work, 'wrong');
    fs.writeFileSync(wrong, 'battery staple\n');
    const r = await runToEnd(EXPORT_BIN, ['--host', '127.0.0.1', '--port', String(port), '--ca-file', cert, '--user', 'exporter', '--password-file', wrong, spool]);
    assert.equal(r.code, 69, r.stderr);
    assert.match(r.stderr, /authentication as exporter failed: 535 /);
    await rx.program.waitForLine(/authentication as exporter failed/);
    assert.equal(spoolFiles(spool).length, 2);
  });

  it('a certificate the exporter cannot verify: nothing sent, files stay', async () => {
    const spool = spoolWith('untrusted');
    const r = await runToEnd(EXPORT_BIN, ['--host', '127.0.0.1', '--port', String(port), '--starttls', 'require', '--user', 'exporter', '--password-file', passwordFile, spool]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /cannot deliver to 127\.0\.0\.1:\d+: .*(self[- ]signed|certificate)/i);
    assert.equal(spoolFiles(spool).length, 2);
  });

  it('AUTH without STARTTLS for clients on other hosts: a warning at start; loopback only: none', async () => {
    const users = path.join(work, 'users');
    const inbox = path.join(work, 'inbox-plain');
    fs.mkdirSync(inbox);
    const open = await startReceiver(work, [`listen = 127.0.0.1:${await freePort()}`, `inbox = ${inbox}`, `auth_users = ${users}`, 'allowed_clients = 127.0.0.0/8, 192.0.2.0/24']);
    try {
      assert.ok(open.program.stderr.some((l) => /auth_users without STARTTLS: passwords from other hosts cross the network in clear text; set tls_key and tls_cert/.test(l)), open.program.stderr.join('\n'));
    } finally {
      await open.program.stop();
    }
    const local = await startReceiver(work, [`listen = 127.0.0.1:${await freePort()}`, `inbox = ${inbox}`, `auth_users = ${users}`]);
    try {
      // The warning comes before the start line, so its absence is final here.
      assert.ok(!local.program.stderr.some((l) => /clear text/.test(l)), local.program.stderr.join('\n'));
    } finally {
      await local.program.stop();
    }
  });
});

/** A spool file as the milter writes it: the envelope block from the format module, then the message. */
function writeSpoolFile(dir: string, sender: string, recipients: string[], message: Buffer): { name: string; content: Buffer } {
  const content = Buffer.concat([envelopeBlock(DEFAULT_ENVELOPE_NAMES, u(sender), recipients.map(u)), message]);
  const name = `${sha256(content)}.eml`;
  fs.writeFileSync(path.join(dir, name), content);
  return { name, content };
}

const lines = (...l: string[]) => l.map((x) => b(x));

describe('benno-milter2smtp on the wire (raw SMTP recorder)', () => {
  let work: string;
  let server: RawSmtpServer;
  before(async () => {
    work = tempDir();
    server = new RawSmtpServer();
    await server.listen();
  });
  after(async () => {
    await server.close();
    removeTree(work);
  });
  const spoolDir = (name: string) => {
    const d = path.join(work, name);
    fs.mkdirSync(d);
    return d;
  };
  const exportTo = (args: string[]) => runToEnd(EXPORT_BIN, ['--host', '127.0.0.1', '--port', String(server.port), '--connections', '1', ...args]);
  const mailAndRcpts = () => server.commands.filter((c) => /^(MAIL|RCPT) /.test(c.toString('latin1')));

  it('every address Postfix accepts goes on the wire byte for byte: quoted local parts with <, >, spaces and @, SMTPUTF8, address literals, 900 bytes', async () => {
    server.clear();
    const spool = spoolDir('hostile');
    const sender = '"a> X-REAL-RCPTTO: <e"@x.org';
    const long = `${'l'.repeat(900 - '@example.org'.length)}@example.org`;
    const recipients = ['"a b @ c"@x.org', '"<>"@x.org', 'jürgen@bücher.example', 'a@[IPv6:::1]', long, 'line\u2028sep@x.org'];
    const message = b('Subject: hostile but valid\r\n\r\nbody\r\n');
    const file = writeSpoolFile(spool, sender, recipients, message);
    assert.equal(Buffer.byteLength(long), 900);
    const r = await exportTo([spool]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(inSpool(spool), []);
    const size = message.length;
    assert.deepEqual(mailAndRcpts(), [
      u(`MAIL FROM:<${sender}> SIZE=${size} BODY=8BITMIME SMTPUTF8`),
      u('RCPT TO:<"a b @ c"@x.org>'),
      u('RCPT TO:<"<>"@x.org>'),
      u('RCPT TO:<jürgen@bücher.example>'),
      u('RCPT TO:<a@[IPv6:::1]>'),
      u(`RCPT TO:<${long}>`),
      // As the spool file holds it: the line separator written as an escape (spool/format.ts).
      u('RCPT TO:<line\\x{2028}sep@x.org>'),
    ]);
    assert.equal(server.messages.length, 1);
    assert.deepEqual(server.messages[0].data, file.content.subarray(file.content.indexOf('Subject:')));

    // Without a UTF-8 address there is no SMTPUTF8 parameter.
    server.clear();
    writeSpoolFile(spool, sender, ['"<>"@x.org'], message);
    assert.equal((await exportTo([spool])).code, 0);
    assert.deepEqual(mailAndRcpts(), [u(`MAIL FROM:<${sender}> SIZE=${size} BODY=8BITMIME`), u('RCPT TO:<"<>"@x.org>')]);
  });

  it('without PIPELINING, one command at a time; without ESMTP (EHLO refused), HELO and no parameters', async () => {
    server.clear();
    const spool = spoolDir('plain');
    server.extensions = [];
    writeSpoolFile(spool, 'a@x.org', ['b@x.org', 'c@x.org'], b('Subject: x\r\n\r\nbody\r\n'));
    assert.equal((await exportTo([spool])).code, 0);
    assert.deepEqual(mailAndRcpts(), lines('MAIL FROM:<a@x.org>', 'RCPT TO:<b@x.org>', 'RCPT TO:<c@x.org>'));
    // One write per command: the recorder saw each before answering it.
    assert.ok(server.bytes.some((chunk) => chunk.toString('latin1') === 'RCPT TO:<c@x.org>\r\n'), 'RCPT sent alone');

    server.clear();
    server.reply = (c) => (c.toString('latin1').startsWith('EHLO') ? '502 5.5.2 Error: command not recognized' : undefined);
    writeSpoolFile(spool, 'a@x.org', ['b@x.org'], b('Subject: y\r\n\r\nbody\r\n'));
    assert.equal((await exportTo([spool])).code, 0);
    assert.ok(server.commandText().some((c) => c.startsWith('HELO ')));
    assert.deepEqual(mailAndRcpts(), lines('MAIL FROM:<a@x.org>', 'RCPT TO:<b@x.org>'));
  });

  it('an imported file without a sender line is kept, not sent with an invented sender, an error at every run, exit 65 (issue 11)', async () => {
    server.clear();
    const spool = spoolDir('imported');
    const ok = writeSpoolFile(spool, 'a@x.org', ['b@x.org'], b('Subject: fine\r\n\r\nbody\r\n'));
    const imported = Buffer.from('X-REAL-RCPTTO: <owner@x.org>\r\nSubject: sent copy\r\n\r\nbody\r\n');
    const importedName = `${sha256(imported)}.eml`;
    fs.writeFileSync(path.join(spool, importedName), imported);
    for (let run = 1; run <= 2; run++) {
      const r = await exportTo([spool]);
      assert.equal(r.code, 65, r.stderr);
      assert.deepEqual(inSpool(spool), [importedName], 'kept under its name, no .err');
      assert.match(r.stderr, new RegExp(`error: ${importedName}: no X-REAL-MAILFROM line \\(an IMAP import whose envelope sender is not known\\): SMTP cannot carry it without inventing one; kept in the spool`));
    }
    assert.equal(server.messages.length, 1);
    assert.deepEqual(server.messages[0].data, ok.content.subarray(ok.content.indexOf('Subject:')));
    assert.ok(!server.commandText().includes('MAIL FROM:<>'), 'no null sender invented');
  });

  it('a 5xx for DATA or for one RCPT: the file keeps its name (no .err), an error at every run, exit 65, in the status; sent once the server takes it; never with part of its envelope', async () => {
    server.clear();
    const spool = spoolDir('refusals');
    const ok = writeSpoolFile(spool, 'a@x.org', ['b@x.org'], b('Subject: fine\r\n\r\nbody\r\n'));
    const dataRefused = writeSpoolFile(spool, 'a@x.org', ['b@x.org'], b('Subject: REJECT-DATA\r\n\r\nbody\r\n'));
    const rcptRefused = writeSpoolFile(spool, 'a@x.org', ['first@x.org', 'nobody@x.org', 'last@x.org'], b('Subject: one recipient refused\r\n\r\nbody\r\n'));
    server.reply = (c) => (c.toString('latin1') === 'RCPT TO:<nobody@x.org>' ? '550 5.1.1 <nobody@x.org>: Recipient address rejected' : undefined);
    server.dataReply = (m) => (m.data.includes(b('REJECT-DATA')) ? '554 5.7.1 Message refused by policy' : undefined);

    for (let run = 1; run <= 2; run++) {
      const r = await exportTo([spool]);
      assert.equal(r.code, 65, r.stderr);
      assert.deepEqual(inSpool(spool).sort(), [dataRefused.name, rcptRefused.name].sort(), 'kept under their names, no .err');
      assert.match(r.stderr, new RegExp(`error: ${dataRefused.name}: refused by 127\\.0\\.0\\.1:\\d+: 554 5\\.7\\.1 Message refused by policy; kept in the spool and tried again at every run; fix the cause on the archive host \\(max_size, max_recipients, SMTPUTF8\\) or remove the file by hand`));
      assert.match(r.stderr, new RegExp(`error: ${rcptRefused.name}: refused by 127\\.0\\.0\\.1:\\d+: 550 5\\.1\\.1 <nobody@x\\.org>: Recipient address rejected \\(RCPT TO:<nobody@x\\.org>\\); kept in the spool`));
      assert.match(r.stderr, /summary: sent=\d+ deferred=0 refused=2 failed=0 /);
    }
    assert.equal(server.messages.length, 1);
    assert.deepEqual(server.messages[0].data, ok.content.subarray(ok.content.indexOf('Subject:')));
    // All or nothing: after the refused RCPT the transaction is reset, DATA never follows.
    const cmds = server.commandText();
    for (let i = cmds.indexOf('RCPT TO:<nobody@x.org>'); i >= 0; i = cmds.indexOf('RCPT TO:<nobody@x.org>', i + 1)) {
      assert.deepEqual(cmds.slice(i + 1, i + 3), ['RCPT TO:<last@x.org>', 'RSET'], cmds.join(' | '));
    }

    const { readExportStatus } = await import('../../src/spool/status');
    const { statusReport } = await import('../../src/admin/status');
    const status = readExportStatus(spool)!;
    assert.equal(status.exitCode, 65);
    assert.equal(status.refused, 2);
    assert.deepEqual(status.refusedFiles!.map((f) => f.name).sort(), [dataRefused.name, rcptRefused.name].sort());
    const report = statusReport({ dir: spool, suffix: '.eml' }, '127.0.0.1');
    const at = report.indexOf('2 file(s) the archive host refused in the last export (kept in the spool, tried again at every run):');
    assert.ok(at >= 0, report.join('\n'));
    assert.deepEqual(report.slice(at + 1).sort(), [
      `  ${dataRefused.name}: 554 5.7.1 Message refused by policy`,
      `  ${rcptRefused.name}: 550 5.1.1 <nobody@x.org>: Recipient address rejected (RCPT TO:<nobody@x.org>)`,
    ].sort());

    server.reply = () => undefined;
    server.dataReply = () => undefined;
    const last = await exportTo([spool]);
    assert.equal(last.code, 0, last.stderr);
    assert.deepEqual(inSpool(spool), []);
    const whole = server.messages.find((m) => m.data.includes(b('one recipient refused')))!;
    assert.deepEqual(whole.rcpts.map(String), ['RCPT TO:<first@x.org>', 'RCPT TO:<nobody@x.org>', 'RCPT TO:<last@x.org>'], 'the whole envelope, once');
    assert.equal(server.messages.filter((m) => m.data.includes(b('one recipient refused'))).length, 1);
    assert.equal(readExportStatus(spool)!.refused, 0);
  });

  it('--watch: a file the archive host refuses is tried again at the next run, not in a loop of its own renames', async () => {
    server.clear();
    server.reply = (c) => (c.toString('latin1') === 'RCPT TO:<refused@x.org>' ? '550 5.1.1 no such user' : undefined);
    const spool = spoolDir('watch-refused');
    const refused = writeSpoolFile(spool, 'a@x.org', ['refused@x.org'], b('Subject: refused\r\n\r\nbody\r\n'));
    const def = path.join(work, 'default-watch-refused');
    fs.writeFileSync(def, `SPOOLDIR=${spool}\nBENNOHOST=127.0.0.1\nBENNOPORT=${server.port}\n`);
    const watcher = run(EXPORT2ARCHIVE_BIN, ['--config', def, '--watch']);
    try {
      await watcher.waitForLine(/summary: sent=0 deferred=0 refused=1 /);
      // A new file wakes the watch: it is sent, and the refused one is tried once more with it.
      const fresh = writeSpoolFile(spool, 'a@x.org', ['b@x.org'], b('Subject: fresh\r\n\r\nbody\r\n'));
      await watcher.waitForLine(new RegExp(`${fresh.name}: sent to `));
      await watcher.waitForLine(/summary: sent=1 deferred=0 refused=1 /);
      const errors = watcher.stderr.filter((l) => l.includes(`error: ${refused.name}: refused by `));
      assert.equal(errors.length, 2, watcher.log());
      assert.deepEqual(inSpool(spool), [refused.name]);
    } finally {
      await watcher.stop('SIGTERM');
    }
  });

  it('a UTF-8 address to a server without SMTPUTF8: nothing sent for it, kept with an error line (exit 65)', async () => {
    server.clear();
    server.extensions = ['PIPELINING', '8BITMIME'];
    const spool = spoolDir('no-smtputf8');
    const file = writeSpoolFile(spool, 'a@x.org', ['b@x.org', 'jürgen@bücher.example'], b('Subject: x\r\n\r\nbody\r\n'));
    const r = await exportTo([spool]);
    assert.equal(r.code, 65, r.stderr);
    assert.deepEqual(inSpool(spool), [file.name]);
    assert.match(r.stderr, new RegExp(`error: ${file.name}: cannot be sent to 127\\.0\\.0\\.1:\\d+: the address <jürgen@bücher\\.example> is not ASCII and the server does not offer SMTPUTF8; kept in the spool and tried again at every run`));
    assert.deepEqual(mailAndRcpts(), [], 'not a single command for it');
  });

  it('AUTH offered without STARTTLS: the password is not sent (exit 69, one line) unless --allow-plain-auth; a readable password file is warned about', async () => {
    server.clear();
    const password = 'correct horse battery';
    const passwordFile = path.join(work, 'password');
    fs.writeFileSync(passwordFile, `${password}\n`, { mode: 0o600 });
    fs.chmodSync(passwordFile, 0o600);
    const spool = spoolDir('auth');
    const file = writeSpoolFile(spool, 'a@x.org', ['b@x.org'], b('Subject: x\r\n\r\nbody\r\n'));
    const auth = ['--user', 'exporter', '--password-file', passwordFile];
    const never = [password, Buffer.from(`\0exporter\0${password}`).toString('base64'), Buffer.from(password).toString('base64')];
    for (const mechanisms of ['AUTH PLAIN LOGIN', 'AUTH LOGIN']) {
      server.clear();
      server.extensions = ['PIPELINING', mechanisms];
      const r = await exportTo([...auth, spool]);
      assert.equal(r.code, 69, r.stderr);
      const errors = r.stderr.split('\n').filter((l) => / error: /.test(l));
      assert.equal(errors.length, 1, r.stderr);
      assert.match(
        errors[0],
        /cannot deliver to 127\.0\.0\.1:\d+: the server offers no STARTTLS: not sending the password of exporter in clear; set tls_key and tls_cert on benno-smtp, or pass --allow-plain-auth \(BENNOALLOWPLAINAUTH=yes\) on a trusted network; files stay in the spool/,
      );
      assert.ok(!server.commandText().some((c) => /^AUTH/i.test(c)), 'no AUTH command');
      for (const secret of never) assert.ok(!server.received().includes(b(secret)), 'the password never crosses the wire');
      assert.ok(!r.stderr.includes(password));
      assert.deepEqual(inSpool(spool), [file.name]);
      assert.ok(!/readable by group or others/.test(r.stderr), 'mode 0600: no warning');
    }

    // Told so, for a trusted network: PLAIN when offered, else LOGIN.
    for (const mechanisms of ['AUTH PLAIN LOGIN', 'AUTH LOGIN']) {
      server.clear();
      server.extensions = ['PIPELINING', mechanisms];
      const sent = writeSpoolFile(spool, 'a@x.org', ['b@x.org'], b(`Subject: ${mechanisms}\r\n\r\nbody\r\n`));
      const r = await exportTo([...auth, '--allow-plain-auth', spool]);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(server.authenticated, ['exporter']);
      assert.ok(server.commandText().some((c) => c.startsWith(`AUTH ${mechanisms.split(' ')[1]}`)));
      assert.ok(!inSpool(spool).includes(sent.name));
      assert.ok(!r.stderr.includes(password));
    }

    // A password file others can read: one warning naming it and the fix, never the password.
    fs.chmodSync(passwordFile, 0o644);
    server.clear();
    server.extensions = ['PIPELINING', 'AUTH PLAIN'];
    writeSpoolFile(spool, 'a@x.org', ['b@x.org'], b('Subject: warned\r\n\r\nbody\r\n'));
    const warned = await exportTo([...auth, '--allow-plain-auth', spool]);
    assert.equal(warned.code, 0, warned.stderr);
    const warnings = warned.stderr.split('\n').filter((l) => /readable by group or others/.test(l));
    assert.equal(warnings.length, 1, warned.stderr);
    assert.match(warnings[0], new RegExp(`warn: password file ${passwordFile} is readable by group or others \\(mode 0644\\): chmod 0600 ${passwordFile}$`));
    assert.ok(!warned.stderr.includes(password));
  });

  it('benno-export2archive: BENNOALLOWPLAINAUTH=yes lets AUTH go without TLS; unset it does not; a bad value is exit 78', async () => {
    server.clear();
    server.extensions = ['PIPELINING', 'AUTH PLAIN'];
    const spool = spoolDir('auth-default');
    const passwordFile = path.join(work, 'password-default');
    fs.writeFileSync(passwordFile, 'pw\n', { mode: 0o600 });
    writeSpoolFile(spool, 'a@x.org', ['b@x.org'], b('Subject: x\r\n\r\nbody\r\n'));
    const def = path.join(work, 'default-auth');
    const base = `SPOOLDIR=${spool}\nBENNOHOST=127.0.0.1\nBENNOPORT=${server.port}\nBENNOUSER=exporter\nBENNOPASSWORDFILE=${passwordFile}\n`;
    fs.writeFileSync(def, base);
    const refused = await runToEnd(EXPORT2ARCHIVE_BIN, ['--config', def]);
    assert.equal(refused.code, 69, refused.stderr);
    assert.match(refused.stderr, /not sending the password of exporter in clear/);
    assert.deepEqual(server.authenticated, []);
    fs.writeFileSync(def, `${base}BENNOALLOWPLAINAUTH=maybe\n`);
    const bad = await runToEnd(EXPORT2ARCHIVE_BIN, ['--config', def]);
    assert.equal(bad.code, 78);
    assert.match(bad.stderr.trim(), /^benno-export2archive: bad BENNOALLOWPLAINAUTH in .*: "maybe": use yes or no$/);
    fs.writeFileSync(def, `${base}BENNOALLOWPLAINAUTH=yes\n`);
    const sent = await runToEnd(EXPORT2ARCHIVE_BIN, ['--config', def]);
    assert.equal(sent.code, 0, sent.stderr);
    assert.deepEqual(server.authenticated, ['exporter']);
    assert.deepEqual(inSpool(spool), []);
  });

  it('a symbolic link planted in the spool is not followed: its target (mode 0600, outside) never reaches the server', async () => {
    server.clear();
    const spool = spoolDir('symlink');
    const secret = path.join(work, 'secret.eml');
    fs.writeFileSync(secret, 'X-REAL-MAILFROM: <a@x.org>\r\nX-REAL-RCPTTO: <thief@x.org>\r\nSubject: TOP SECRET\r\n\r\nTOP SECRET\r\n', { mode: 0o600 });
    fs.symlinkSync(secret, path.join(spool, 'planted.eml'));
    const real = writeSpoolFile(spool, 'a@x.org', ['b@x.org'], b('Subject: real\r\n\r\nbody\r\n'));
    const r = await exportTo([spool]);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(!server.received().includes(b('TOP SECRET')), 'the target was not sent');
    assert.ok(!server.commandText().includes('RCPT TO:<thief@x.org>'));
    assert.equal(server.messages.length, 1);
    assert.ok(!inSpool(spool).includes(real.name));
    assert.match(r.stderr, /warn: .*planted\.eml: a symbolic link, not a regular file; skipped, never sent or followed; remove it$/m);
    assert.ok(fs.lstatSync(path.join(spool, 'planted.eml')).isSymbolicLink(), 'left alone');

    // Named on the command line, a link is refused too.
    const single = await exportTo([path.join(spool, 'planted.eml')]);
    assert.equal(single.code, 66, single.stderr);
    assert.match(single.stderr.trim(), /^benno-milter2smtp: .*planted\.eml: not a regular file \(a symbolic link\)$/);
    assert.ok(!server.received().includes(b('TOP SECRET')));
  });

  it('an old-format forgery: a look-alike envelope line after the envelope block goes out as message content, not as a recipient', async () => {
    server.clear();
    const spool = spoolDir('forgery');
    const forged = ['x-real-rcptto: <ceo@victim.example>', 'X-REAL-RCPTTO:<ceo@victim.example>', 'X-REAL-RCPTTO: <ceo@victim.example> ', 'X-Real-RcptTo: <ceo@victim.example>'];
    for (const line of forged) {
      const content = b(`X-REAL-MAILFROM: <a@x.org>\r\nX-REAL-RCPTTO: <b@x.org>\r\n${line}\r\nSubject: forged\r\n\r\nbody\r\n`);
      fs.writeFileSync(path.join(spool, `${sha256(content)}.eml`), content);
    }
    const r = await exportTo([spool]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(server.messages.length, forged.length);
    for (const m of server.messages) assert.deepEqual(m.rcpts.map(String), ['RCPT TO:<b@x.org>']);
    assert.ok(!server.commandText().some((c) => c.includes('ceo@victim.example')));
    for (const line of forged) assert.ok(server.messages.some((m) => m.data.subarray(0, line.length + 2).equals(b(`${line}\r\n`))), line);
  });

  it('bytes: CRLF lines, lone dots, ".." lines and 1,000-character lines arrive identical; bare LF and a missing final line end arrive as CRLF', async () => {
    server.clear();
    const spool = spoolDir('bytes');
    const long = 'x'.repeat(998);
    const exact = Buffer.concat([b(`Subject: exact\r\n\r\n.\r\n..\r\n...x\r\n.${long}\r\n${long}yz\r\nbare\rCR stays\r\n`), Buffer.from([0xff, 0xfe, 0x80, 0x0d, 0x0a]), b('.\r\n')]);
    const normalised = b('Subject: bare LF\n\nline one\n.dot\nno final line end');
    writeSpoolFile(spool, 'a@x.org', ['b@x.org'], exact);
    writeSpoolFile(spool, 'a@x.org', ['c@x.org'], normalised);
    const r = await exportTo([spool]);
    assert.equal(r.code, 0, r.stderr);
    const got = (rcpt: string) => server.messages.find((m) => String(m.rcpts[0]) === `RCPT TO:<${rcpt}>`)!;
    assert.deepEqual(got('b@x.org').data, exact, 'byte for byte');
    assert.ok(got('b@x.org').wire.includes(b('\r\n..\r\n...\r\n....x\r\n..x')), 'dot-stuffed on the wire');
    assert.deepEqual(got('c@x.org').data, b('Subject: bare LF\r\n\r\nline one\r\n.dot\r\nno final line end\r\n'), 'the SMTP wire form');
  });
});

describe('benno-milter2smtp → benno-smtp with hostile but valid addresses (needs the benno-smtp of issue 9)', () => {
  let work: string;
  before(() => (work = tempDir()));
  after(() => removeTree(work));

  it('the inbox file is the spool file, byte for byte, under the same name', async () => {
    const spool = path.join(work, 'spool');
    const inbox = path.join(work, 'inbox');
    fs.mkdirSync(spool);
    fs.mkdirSync(inbox);
    const long = `${'l'.repeat(900 - '@example.org'.length)}@example.org`;
    const file = writeSpoolFile(
      spool,
      '"a> X-REAL-RCPTTO: <e"@x.org',
      ['"a b @ c"@x.org', '"<>"@x.org', 'jürgen@bücher.example', 'a@[IPv6:::1]', long, 'line\u2028sep@x.org'],
      b('Subject: hostile but valid\r\n\r\nbody\r\n'),
    );
    const port = await freePort();
    const rx = await startReceiver(work, [`listen = 127.0.0.1:${port}`, `inbox = ${inbox}`]);
    try {
      const r = await runToEnd(EXPORT_BIN, ['--host', '127.0.0.1', '--port', String(port), spool]);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(spoolFiles(inbox), [file.name]);
      assert.deepEqual(fs.readFileSync(path.join(inbox, file.name)), file.content);
    } finally {
      await rx.program.stop();
    }
  });
});
