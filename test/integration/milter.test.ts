// benno-milter as a process, driven by our own MTA-side client.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as C from '../../src/milter/constants';
import { MilterClient, TestMessage } from '../../src/milter/client';
import { encodePacket, encodeStrings } from '../../src/milter/codec';
import { MILTER_BIN, Program, eventually, runToEnd, sha256, startMilter } from '../helpers/daemon';
import { parseEnvelope } from '../../src/spool/format';
import { freePort } from '../helpers/net';
import { mountExt4, mountTmpfs, removeTree, tempDir } from '../helpers/fs';
import { b } from '../helpers/bytes';
import { allFiles, spoolFiles, tempFiles } from '../helpers/spool';

/** The spool file a message must produce, spelled out independently of src/spool/format. */
function expected(msg: TestMessage, sender: string, rcpts: string[]): Buffer {
  const lines = [`X-REAL-MAILFROM: <${sender}>\r\n`, ...rcpts.map((r) => `X-REAL-RCPTTO: <${r}>\r\n`)];
  const head = msg.headers.map(([n, v]) => Buffer.concat([b(String(n)), b(':'), b(String(v).replace(/\r?\n/g, '\r\n')), b('\r\n')]));
  return Buffer.concat([b(lines.join('')), ...head, b('\r\n'), msg.body as Buffer]);
}

function message(i: number, extra: Partial<TestMessage> = {}): TestMessage {
  return {
    sender: `<sender${i}@example.com>`,
    recipients: [`<rcpt${i}@example.org>`],
    headers: [
      ['From', ` sender${i}@example.com`],
      ['Subject', ` message ${i}`],
      ['Message-ID', ` <${i}.${Date.now()}@example.com>`],
    ],
    body: b(`body of message ${i}\r\n`),
    macros: { [C.SMFIC_BODYEOB]: { i: `QID${i}` } },
    ...extra,
  };
}

function readSpool(dir: string, name: string): Buffer {
  return fs.readFileSync(path.join(dir, name));
}

describe('benno-milter daemon', () => {
  let work: string;
  let spool: string;
  let socketPath: string;
  let milter: Program;
  const target = () => ({ path: socketPath });

  before(async () => {
    work = tempDir();
    spool = path.join(work, 'spool');
    fs.mkdirSync(spool);
    socketPath = path.join(work, 'milter.sock');
    milter = await startMilter(['-p', `local:${socketPath}`, '-o', spool, '-l', path.join(work, 'pid'), '--skip-daemon', 'amavis-reinject']);
  });
  after(async () => {
    await milter.stop();
    removeTree(work);
  });

  const clearSpool = () => {
    for (const n of allFiles(spool)) fs.unlinkSync(path.join(spool, n));
  };

  it('listens on a unix socket with mode 0660 and writes its pid file', () => {
    assert.equal(fs.statSync(socketPath).mode & 0o777, 0o660);
    assert.ok(fs.statSync(socketPath).isSocket());
    assert.equal(fs.readFileSync(path.join(work, 'pid'), 'ascii'), `${milter.pid}\n`);
  });

  it('negotiates only end-of-message replies, header leading spaces, and the macros it needs', async () => {
    const c = await MilterClient.open(target());
    try {
      assert.equal(c.version, 6);
      for (const f of [C.SMFIP_NOCONNECT, C.SMFIP_NOHELO, C.SMFIP_NODATA, C.SMFIP_NOUNKNOWN, C.SMFIP_NR_MAIL, C.SMFIP_NR_RCPT, C.SMFIP_NR_HDR, C.SMFIP_NR_EOH, C.SMFIP_NR_BODY, C.SMFIP_HDR_LEADSPC]) {
        assert.ok(c.protocol & f, `flag 0x${f.toString(16)}`);
      }
      for (const f of [C.SMFIP_NOMAIL, C.SMFIP_NORCPT, C.SMFIP_NOHDRS, C.SMFIP_NOEOH, C.SMFIP_NOBODY]) assert.equal(c.protocol & f, 0);
      // `i` at end-of-headers too: Sendmail honours the end-of-message list only then.
      assert.deepEqual([...c.macroLists], [[C.SMFIM_ENVFROM, '{daemon_name}'], [C.SMFIM_EOH, 'i'], [C.SMFIM_EOM, 'i']]);
    } finally {
      await c.quit();
    }
  });

  it('several messages on one connection, each its own exact file, logged with the queue id', async () => {
    clearSpool();
    const c = await MilterClient.open(target());
    const msgs = [message(1), message(2), message(3)];
    for (const m of msgs) {
      assert.deepEqual(await c.sendMessage(m), { type: 'accept' });
      await c.abort(); // Postfix sends SMFIC_ABORT after every transaction
    }
    await c.quit();
    const files = spoolFiles(spool);
    assert.equal(files.length, 3);
    for (let i = 0; i < 3; i++) {
      const want = expected(msgs[i], `sender${i + 1}@example.com`, [`rcpt${i + 1}@example.org`]);
      const name = `${sha256(want)}.eml`;
      assert.ok(files.includes(name), `message ${i + 1} is in the spool as ${name}`);
      assert.deepEqual(readSpool(spool, name), want);
      await milter.waitForLine(new RegExp(`QID${i + 1}: archived from=<sender${i + 1}@example.com> rcpts=1 size=${want.length} file=${name} ms=`));
    }
    assert.deepEqual(tempFiles(spool), []);
  });

  it('null sender, in both spellings Postfix uses', async () => {
    clearSpool();
    const c = await MilterClient.open(target());
    const smtpd = message(10, { sender: '<>' });
    const cleanup = message(11, { sender: '', recipients: ['rcpt11@example.org'] }); // non_smtpd_milters: no brackets
    assert.equal((await c.sendMessage(smtpd)).type, 'accept');
    assert.equal((await c.sendMessage(cleanup)).type, 'accept');
    await c.quit();
    assert.deepEqual(readSpool(spool, `${sha256(expected(smtpd, '', ['rcpt10@example.org']))}.eml`), expected(smtpd, '', ['rcpt10@example.org']));
    assert.deepEqual(readSpool(spool, `${sha256(expected(cleanup, '', ['rcpt11@example.org']))}.eml`), expected(cleanup, '', ['rcpt11@example.org']));
  });

  it('100 recipients in SMTP order; ESMTP parameters are not part of the address', async () => {
    clearSpool();
    const rcpts = Array.from({ length: 100 }, (_, i) => `r${String(99 - i).padStart(3, '0')}@example.org`);
    const m = message(20, { recipients: rcpts.map((r) => `<${r}>`), mailArgs: ['SIZE=1000', 'BODY=8BITMIME'] });
    const c = await MilterClient.open(target());
    assert.equal((await c.sendMessage(m)).type, 'accept');
    await c.quit();
    const want = expected(m, 'sender20@example.com', rcpts);
    assert.deepEqual(readSpool(spool, `${sha256(want)}.eml`), want);
    await milter.waitForLine(/QID20: archived .* rcpts=100 /);
  });

  it('8-bit, folded, tab-led, space-less and empty headers and a nasty body survive byte for byte', async () => {
    clearSpool();
    const m = message(30, {
      sender: Buffer.from('<jürgen@bücher.example>', 'utf8'),
      headers: [
        ['Subject', Buffer.from(' =?utf-8?q?x?= Grüße \xff\xfe broken', 'latin1')],
        ['X-Folded', ' first\n\tsecond\n    third'],
        ['X-Three-Spaces', '   three'],
        ['X-Tab', '\ttab'],
        ['X-NoSpace', 'nospace'],
        ['X-Empty', ''],
        ['X-Long', ' ' + 'L'.repeat(998)],
      ],
      body: Buffer.concat([
        b('.\r\n'),
        b('..leading dots\r\n'),
        b('bare\rcr and bare\nlf\r\n'),
        Buffer.from([0, 1, 2, 0xff, 0x0d, 0x0a]),
        b('x'.repeat(1000) + '\r\n'),
        b('no final newline'),
      ]),
    });
    const c = await MilterClient.open(target());
    assert.equal((await c.sendMessage(m)).type, 'accept');
    await c.quit();
    const want = Buffer.concat([
      Buffer.from('X-REAL-MAILFROM: <jürgen@bücher.example>\r\nX-REAL-RCPTTO: <rcpt30@example.org>\r\n', 'utf8'),
      Buffer.from('Subject: =?utf-8?q?x?= Grüße \xff\xfe broken\r\n', 'latin1'),
      b('X-Folded: first\r\n\tsecond\r\n    third\r\nX-Three-Spaces:   three\r\nX-Tab:\ttab\r\nX-NoSpace:nospace\r\nX-Empty:\r\n'),
      b('X-Long: ' + 'L'.repeat(998) + '\r\n'),
      b('\r\n'),
      m.body as Buffer,
    ]);
    const files = spoolFiles(spool);
    assert.deepEqual(files, [`${sha256(want)}.eml`]);
    assert.deepEqual(readSpool(spool, files[0]), want);
  });

  it('an MTA without HDR_LEADSPC (old protocol version) gets one space after the colon and a reply to every event', async () => {
    clearSpool();
    const c = await MilterClient.open(target(), { version: 2, actions: 0x3f, protocol: 0x7f });
    assert.equal(c.version, 2);
    assert.equal(c.protocol & C.SMFIP_HDR_LEADSPC, 0);
    const m = message(40, { headers: [['Subject', ' hello'], ['X-Folded', ' a\n b']] });
    assert.equal((await c.sendMessage(m)).type, 'accept');
    await c.quit();
    const want = expected(m, 'sender40@example.com', ['rcpt40@example.org']);
    assert.deepEqual(readSpool(spool, `${sha256(want)}.eml`), want);
  });

  it('abort mid-body and a connection lost mid-message leave nothing behind', async () => {
    clearSpool();
    const big = Buffer.alloc(3 * 1024 * 1024, 0x41); // beyond the in-memory buffer: a temp file exists
    const c = await MilterClient.open(target());
    assert.equal(await c.sendContent(message(50, { body: big })), null);
    await eventually(() => tempFiles(spool).length === 1, 'the temp file of the unfinished message');
    await c.abort();
    assert.equal((await c.sendMessage(message(51))).type, 'accept', 'the connection still works after the abort');
    await c.quit();

    const d = await MilterClient.open(target());
    assert.equal(await d.sendContent(message(52, { body: big })), null);
    await eventually(() => tempFiles(spool).length === 1, 'the temp file of the second unfinished message');
    d.destroy();
    await eventually(() => tempFiles(spool).length === 0, 'temp files removed');
    assert.equal(spoolFiles(spool).length, 1);
    await milter.waitForLine(/QID51: archived/);
    assert.ok(!milter.log().includes('QID50') && !milter.log().includes('QID52'));
  });

  it('--skip-daemon: a re-injected message is accepted without a file', async () => {
    clearSpool();
    const c = await MilterClient.open(target());
    const skipped = message(60, { macros: { [C.SMFIC_MAIL]: { '{daemon_name}': 'amavis-reinject' }, [C.SMFIC_BODYEOB]: { i: 'QID60' } } });
    const kept = message(61, { macros: { [C.SMFIC_MAIL]: { '{daemon_name}': 'smtpd' }, [C.SMFIC_BODYEOB]: { i: 'QID61' } } });
    assert.equal((await c.sendMessage(skipped)).type, 'accept');
    assert.equal((await c.sendMessage(kept)).type, 'accept');
    await c.quit();
    assert.equal(spoolFiles(spool).length, 1);
    await milter.waitForLine(/QID60: not archived: daemon_name=amavis-reinject is in --skip-daemon/);
    await milter.waitForLine(/QID61: archived/);
    assert.deepEqual(tempFiles(spool), []);
  });

  it('20 concurrent connections × 5 messages: 100 exact files', async () => {
    clearSpool();
    const wants: Buffer[] = [];
    await Promise.all(
      Array.from({ length: 20 }, async (_, conn) => {
        const c = await MilterClient.open(target());
        for (let k = 0; k < 5; k++) {
          const i = 1000 + conn * 10 + k;
          const m = message(i, { body: Buffer.alloc(10 * 1024 + i, 0x30 + (i % 10)) });
          wants.push(expected(m, `sender${i}@example.com`, [`rcpt${i}@example.org`]));
          assert.equal((await c.sendMessage(m)).type, 'accept');
        }
        await c.quit();
      }),
    );
    assert.deepEqual(spoolFiles(spool), wants.map((w) => `${sha256(w)}.eml`).sort());
    for (const w of wants) assert.deepEqual(readSpool(spool, `${sha256(w)}.eml`), w);
  });

  it('a malformed or oversized packet closes only that connection', async () => {
    clearSpool();
    const good = await MilterClient.open(target());
    assert.equal(await good.sendContent(message(70)), null, 'a message in progress on another connection');

    const before = milter.stderr.length;
    const bad = await MilterClient.open(target());
    const closed = new Promise((r) => bad.socket.once('close', r));
    await bad.send(encodePacket(C.SMFIC_HEADER, b('only-a-name\0')));
    await closed;
    await milter.waitForLine(/protocol error: SMFIC_HEADER: 1 strings, need name and value; connection closed/);

    const huge = await MilterClient.open(target());
    const hugeClosed = new Promise((r) => huge.socket.once('close', r));
    const head = Buffer.alloc(5);
    head.writeUInt32BE(0x7fffffff, 0);
    head[4] = C.SMFIC_BODY;
    await huge.send(head);
    await hugeClosed;
    await milter.waitForLine(/exceeds the limit/);

    const early = await MilterClient.connect(target());
    const earlyClosed = new Promise((r) => early.socket.once('close', r));
    await early.send(encodeStrings(C.SMFIC_MAIL, ['<a@b>']));
    await earlyClosed;
    await milter.waitForLine(/mail before option negotiation/);

    const noMail = await MilterClient.open(target());
    const noMailClosed = new Promise((r) => noMail.socket.once('close', r));
    await noMail.send(encodePacket(C.SMFIC_BODYEOB));
    await noMailClosed;
    await milter.waitForLine(/protocol error: eom outside a message \(no MAIL before it\)/);

    assert.equal((await good.endOfMessage(message(70))).type, 'accept', 'the other session is unaffected');
    await good.quit();
    assert.equal(spoolFiles(spool).length, 1, 'only the good message: nothing archived for a message without MAIL');
    assert.equal(milter.linesSince(before).filter((l) => /protocol error/.test(l)).length, 4);
  });

  it('50 MB and 100 MB bodies stream to disk: peak memory stays flat', async () => {
    clearSpool();
    const send = async (mb: number, i: number) => {
      const hash = createHash('sha256');
      const piece = Buffer.alloc(65536);
      function* body() {
        for (let k = 0; k < mb * 16; k++) {
          piece.fill(k & 0xff);
          piece.write(`chunk ${k}\r\n`, 0, 'latin1');
          hash.update(piece);
          yield Buffer.from(piece);
        }
      }
      const c = await MilterClient.open(target());
      const m = message(i, { body: body() });
      assert.equal((await c.sendMessage(m)).type, 'accept');
      await c.quit();
      return hash;
    };
    await send(2, 80); // warm up
    const baseline = milter.memory().hwm;
    await send(50, 81);
    const after50 = milter.memory().hwm;
    await send(100, 82);
    const after100 = milter.memory().hwm;
    const line = await milter.waitForLine(/QID81: archived/);
    const name = /file=(\S+)/.exec(line)![1];
    assert.ok(fs.statSync(path.join(spool, name)).size > 50 * 1024 * 1024);
    const mib = (n: number) => (n / 1048576).toFixed(1);
    const seen = `peak RSS: ${mib(baseline)} MiB after warm-up, ${mib(after50)} after 50 MB, ${mib(after100)} after 100 MB`;
    // The garbage collector lets some tens of MiB of spent buffers pile up before it
    // runs; beyond that, memory that grew with the message would put the 100 MB
    // peak 50 MiB above the 50 MB one.
    assert.ok(after100 - after50 < 12 * 1024 * 1024, seen);
    assert.ok(after100 - baseline < 56 * 1024 * 1024, seen);
  });
});

describe('benno-milter when the spool fails', () => {
  it('disk full and a removed directory answer 451 4.3.0, leave no partial file, and recover', async () => {
    const fsys = mountTmpfs(512);
    const work = tempDir();
    const socketPath = path.join(work, 'm.sock');
    const milter = await startMilter(['-p', `unix:${socketPath}`, '-o', fsys.dir]);
    try {
      const c = await MilterClient.open({ path: socketPath });
      const full = message(90, { body: Buffer.alloc(1024 * 1024, 0x61) });
      assert.deepEqual(await c.sendMessage(full), { type: 'replycode', text: '451 4.3.0 Message archiving failed, try again later' });
      await milter.waitForLine(/QID90: archiving failed: ENOSPC: .*answered "451 4.3.0 .*the MTA keeps the message and retries/);
      assert.deepEqual(allFiles(fsys.dir), []);

      assert.equal((await c.sendMessage(message(91))).type, 'accept', 'a message that fits is archived');
      assert.equal(spoolFiles(fsys.dir).length, 1);
      await c.quit();
    } finally {
      await milter.stop();
      fsys.unmount();
    }

    const spool = path.join(work, 'spool');
    fs.mkdirSync(spool);
    const m2 = await startMilter(['-p', `unix:${socketPath}`, '-o', spool]);
    try {
      removeTree(spool);
      const c = await MilterClient.open({ path: socketPath });
      assert.equal((await c.sendMessage(message(92))).type, 'replycode');
      await m2.waitForLine(/QID92: archiving failed: ENOENT/);
      fs.mkdirSync(spool);
      assert.equal((await c.sendMessage(message(93))).type, 'accept', 'recovers once the directory is back');
      await c.quit();
    } finally {
      await m2.stop();
      removeTree(work);
    }
  });

  it('a spool that refuses new files while running (immutable directory) answers 451 and recovers', async () => {
    const ext4 = mountExt4();
    const work = tempDir();
    const socketPath = path.join(work, 'm.sock');
    const milter = await startMilter(['-p', `unix:${socketPath}`, '-o', ext4.dir]);
    const { execFileSync } = await import('node:child_process');
    try {
      execFileSync('chattr', ['+i', ext4.dir]);
      const c = await MilterClient.open({ path: socketPath });
      assert.deepEqual(await c.sendMessage(message(95)), { type: 'replycode', text: '451 4.3.0 Message archiving failed, try again later' });
      await milter.waitForLine(/QID95: archiving failed: EPERM: /);
      execFileSync('chattr', ['-i', ext4.dir]);
      assert.equal((await c.sendMessage(message(96))).type, 'accept');
      await c.quit();
      assert.equal(spoolFiles(ext4.dir).length, 1);
      assert.deepEqual(tempFiles(ext4.dir), []);
    } finally {
      execFileSync('chattr', ['-i', ext4.dir]);
      await milter.stop();
      ext4.unmount();
      removeTree(work);
    }
  });

  it('a read-only spool is refused at start with exit 73', async () => {
    const fsys = mountTmpfs(64, true);
    try {
      const p = await import('../helpers/daemon');
      const r = await p.runToEnd(p.MILTER_BIN, ['-p', `inet:${await freePort()}@127.0.0.1`, '-o', fsys.dir]);
      assert.equal(r.code, 73);
      assert.match(r.stderr, new RegExp(`^benno-milter: cannot create files in spool directory ${fsys.dir} as user \\w+ \\(EROFS\\)\\n?$`));
    } finally {
      fsys.unmount();
    }
  });
});

describe('benno-milter shutdown', () => {
  it('SIGTERM lets a message in progress finish, closes idle connections, removes socket and pid file', async () => {
    const work = tempDir();
    const spool = path.join(work, 'spool');
    fs.mkdirSync(spool);
    const socketPath = path.join(work, 'm.sock');
    const pidFile = path.join(work, 'm.pid');
    const milter = await startMilter(['-p', `local:${socketPath}`, '-o', spool, '-l', pidFile]);
    try {
      const idle = await MilterClient.open({ path: socketPath });
      const idleClosed = new Promise((r) => idle.socket.once('close', r));
      const busy = await MilterClient.open({ path: socketPath });
      assert.equal(await busy.sendContent(message(100)), null);
      const busyClosed = new Promise((r) => busy.socket.once('close', r));

      milter.proc.kill('SIGTERM');
      await milter.waitForLine(/SIGTERM: stopping/);
      await idleClosed;
      // no new connections once stopping
      await assert.rejects(MilterClient.open({ path: socketPath }));

      assert.equal((await busy.endOfMessage(message(100))).type, 'accept', 'the message in progress is archived');
      await busyClosed;
      const exit = await milter.exited;
      assert.deepEqual(exit, { code: 0, signal: null });
      assert.equal(spoolFiles(spool).length, 1);
      assert.ok(!fs.existsSync(socketPath), 'socket removed');
      assert.ok(!fs.existsSync(pidFile), 'pid file removed');
    } finally {
      await milter.stop('SIGKILL');
      removeTree(work);
    }
  });

  it('a message still unfinished after --shutdown-timeout is cut off (the MTA keeps it) and no temp file stays', async () => {
    const work = tempDir();
    const spool = path.join(work, 'spool');
    fs.mkdirSync(spool);
    const socketPath = path.join(work, 'm.sock');
    const milter = await startMilter(['-p', `local:${socketPath}`, '-o', spool, '--shutdown-timeout', '0.5']);
    try {
      const busy = await MilterClient.open({ path: socketPath });
      assert.equal(await busy.sendContent(message(101, { body: Buffer.alloc(2 * 1024 * 1024, 0x41) })), null);
      await eventually(() => tempFiles(spool).length === 1, 'temp file of the message in progress');
      milter.proc.kill('SIGTERM');
      await milter.waitForLine(/still open after 0.5s \(1 with a message in progress\)/);
      assert.deepEqual(await milter.exited, { code: 0, signal: null });
      assert.deepEqual(allFiles(spool), []);
    } finally {
      removeTree(work);
    }
  });
});

describe('benno-milter sockets and start-up', () => {
  it('replaces a stale socket file, refuses a live one (exit 69), refuses a non-socket', async () => {
    const { runToEnd, MILTER_BIN } = await import('../helpers/daemon');
    const work = tempDir();
    const spool = path.join(work, 'spool');
    fs.mkdirSync(spool);
    const socketPath = path.join(work, 'm.sock');
    // A socket file nobody listens on: what a crashed instance leaves.
    const { execFileSync } = await import('node:child_process');
    execFileSync('python3', ['-c', `import socket; socket.socket(socket.AF_UNIX).bind(${JSON.stringify(socketPath)})`]);
    assert.ok(fs.statSync(socketPath).isSocket());
    const first = await startMilter(['-p', `local:${socketPath}`, '-o', spool]);
    try {
      const c = await MilterClient.open({ path: socketPath });
      await c.quit();
      const second = await runToEnd(MILTER_BIN, ['-p', `local:${socketPath}`, '-o', spool]);
      assert.equal(second.code, 69);
      assert.match(second.stderr, /^benno-milter: cannot listen on unix:.*m\.sock: another process is listening on .*m\.sock\n?$/);
      const again = await MilterClient.open({ path: socketPath });
      await again.quit();
    } finally {
      await first.stop();
    }
    const plain = path.join(work, 'plain');
    fs.writeFileSync(plain, 'x');
    const r = await runToEnd(MILTER_BIN, ['-p', `local:${plain}`, '-o', spool]);
    assert.equal(r.code, 71);
    assert.match(r.stderr, /exists and is not a socket/);
    assert.equal(fs.readFileSync(plain, 'utf8'), 'x');
    removeTree(work);
  });

  it('listens on TCP (libmilter and Postfix forms) and a busy port is exit 69', async () => {
    const { runToEnd, MILTER_BIN } = await import('../helpers/daemon');
    const work = tempDir();
    const blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
    const port = (blocker.address() as net.AddressInfo).port;
    try {
      const r = await runToEnd(MILTER_BIN, ['-p', `inet:127.0.0.1:${port}`, '-o', work]);
      assert.equal(r.code, 69);
      assert.match(r.stderr, new RegExp(`^benno-milter: cannot listen on inet:${port}@127.0.0.1: .*EADDRINUSE`));
    } finally {
      await new Promise((r) => blocker.close(r));
    }
    const m = await startMilter(['-p', `inet:${port}@127.0.0.1`, '-o', work]);
    try {
      const c = await MilterClient.open({ host: '127.0.0.1', port });
      // On TCP DATA is sent and answered: the answer ACKs the envelope, so the MTA's Nagle does not hold its headers.
      assert.equal(c.protocol & (C.SMFIP_NODATA | C.SMFIP_NR_DATA), 0);
      assert.ok(c.protocol & C.SMFIP_NR_RCPT && c.protocol & C.SMFIP_NR_HDR);
      assert.equal((await c.sendMessage(message(110))).type, 'accept');
      await c.quit();
      assert.equal(spoolFiles(work).length, 1);
    } finally {
      await m.stop();
      removeTree(work);
    }
  });

  it('answers DATA only on loopback TCP: an MTA on another address keeps the one-round-trip pattern', async () => {
    // A documentation address on lo stands in for another host: TCP, but not loopback.
    const address = '198.51.100.7';
    execFileSync('ip', ['addr', 'add', `${address}/32`, 'dev', 'lo']);
    const work = tempDir();
    try {
      const port = await freePort(address);
      const m = await startMilter(['-p', `inet:${port}@${address}`, '-o', work, '--allow', address]);
      try {
        const c = await MilterClient.open({ host: address, port, localAddress: address });
        assert.equal(c.protocol & C.SMFIP_NODATA, C.SMFIP_NODATA);
        assert.equal(c.protocol & C.SMFIP_NR_DATA, C.SMFIP_NR_DATA);
        assert.equal((await c.sendMessage(message(111))).type, 'accept');
        await c.quit();
        assert.equal(spoolFiles(work).length, 1);
      } finally {
        await m.stop();
      }
    } finally {
      execFileSync('ip', ['addr', 'del', `${address}/32`, 'dev', 'lo']);
      removeTree(work);
    }
  });

  it('listens on IPv6 (inet6:PORT@::1)', async () => {
    const work = tempDir();
    const port = await freePort('::1');
    const m = await startMilter(['-p', `inet6:${port}@::1`, '-o', work]);
    try {
      await m.waitForLine(new RegExp(`listening on inet6:${port}@::1`));
      const c = await MilterClient.open({ host: '::1', port });
      assert.equal((await c.sendMessage(message(111))).type, 'accept');
      await c.quit();
      assert.equal(spoolFiles(work).length, 1);
    } finally {
      await m.stop();
      removeTree(work);
    }
  });

  it('removes stale temp files of a crashed instance at start', async () => {
    const work = tempDir();
    const os = await import('node:os');
    const host = os.hostname().replace(/[^A-Za-z0-9-]/g, '_');
    const stale = `.${host}.${4194304 + 7}.3.tmp`;
    fs.writeFileSync(path.join(work, stale), 'half a message');
    const m = await startMilter(['-p', `unix:${path.join(work, 's')}`, '-o', work]);
    try {
      await m.waitForLine(/removed 1 temp file\(s\) left by an earlier process/);
      assert.ok(!fs.existsSync(path.join(work, stale)));
    } finally {
      await m.stop();
      removeTree(work);
    }
  });

  it('tells systemd READY=1 once listening and STOPPING=1 on SIGTERM', async () => {
    const { spawn } = await import('node:child_process');
    const work = tempDir();
    const notify = path.join(work, 'notify');
    // A stand-in for systemd's notification socket.
    const listener = spawn('python3', ['-u', '-c', `
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(${JSON.stringify(notify)})
print("bound", flush=True)
while True:
    print(s.recv(4096).decode().replace("\\n", " "), flush=True)
`]);
    const received: string[] = [];
    const waiters: [RegExp, () => void][] = [];
    listener.stdout.on('data', (d: Buffer) => {
      received.push(...d.toString().trim().split('\n'));
      for (const [re, resolve] of waiters) if (received.some((l) => re.test(l))) resolve();
    });
    const saw = (re: RegExp) => new Promise<void>((resolve) => (received.some((l) => re.test(l)) ? resolve() : waiters.push([re, resolve])));
    try {
      await saw(/^bound$/);
      const m = await startMilter(['-p', `unix:${path.join(work, 's')}`, '-o', work], { NOTIFY_SOCKET: notify });
      await saw(/READY=1/);
      assert.ok(received.some((l) => /READY=1/.test(l) && new RegExp(`MAINPID=${m.pid}`).test(l)), received.join('|'));
      m.proc.kill('SIGTERM');
      await saw(/STOPPING=1/);
      assert.equal((await m.exited).code, 0);
    } finally {
      listener.kill();
      removeTree(work);
    }
  });
});

describe('benno-milter limits', () => {
  it('--max-connections: connections beyond the limit are closed at once, with one warning', async () => {
    const work = tempDir();
    const socketPath = path.join(work, 'm.sock');
    const milter = await startMilter(['-p', `unix:${socketPath}`, '-o', work, '--max-connections', '2']);
    try {
      const a = await MilterClient.open({ path: socketPath });
      const b2 = await MilterClient.open({ path: socketPath });
      // Closed right after accept: the client sees either a reset or an orderly close.
      await MilterClient.connect({ path: socketPath }).then(
        (extra) => new Promise((r) => extra.socket.once('close', r)),
        (err: NodeJS.ErrnoException) => assert.equal(err.code, 'ECONNRESET'),
      );
      await milter.waitForLine(/connection limit of 2 reached: refusing milter connections \(the MTA applies its failed-milter action: Postfix's milter_default_action, Sendmail's F= flag\); raise --max-connections/);
      assert.equal((await a.sendMessage(message(120))).type, 'accept', 'connections within the limit work');
      await a.quit();
      // The daemon frees the place when it sees the close, a moment after the client does.
      let c: MilterClient | undefined;
      for (let tries = 0; !c && tries < 100; tries++) {
        c = await MilterClient.open({ path: socketPath }).catch(() => new Promise<undefined>((r) => setTimeout(() => r(undefined), 20)));
      }
      assert.ok(c, 'a place freed is taken again');
      assert.equal((await c.sendMessage(message(121))).type, 'accept');
      await c.quit();
      await b2.quit();
    } finally {
      await milter.stop();
      removeTree(work);
    }
  });

  it('--max-headers and --max-message-size: 554 at end of message, nothing written, the connection goes on', async () => {
    const work = tempDir();
    const socketPath = path.join(work, 'm.sock');
    const milter = await startMilter(['-p', `unix:${socketPath}`, '-o', work, '--max-headers', '50', '--max-message-size', '100000']);
    try {
      const c = await MilterClient.open({ path: socketPath });
      const many = message(140, { headers: Array.from({ length: 51 }, (_, i) => [`X-H${i}`, ' v'] as [string, string]) });
      assert.deepEqual(await c.sendMessage(many), { type: 'replycode', text: '554 5.3.4 Message refused by the archive: more than 50 header fields' });
      const big = message(141, { body: Buffer.alloc(200_000, 0x61) });
      assert.deepEqual(await c.sendMessage(big), { type: 'replycode', text: '554 5.3.4 Message refused by the archive: larger than 100000 bytes' });
      assert.equal((await c.sendMessage(message(142))).type, 'accept', 'the next message is archived');
      await c.quit();
      await milter.waitForLine(/QID140: not archived, refused: more than 50 header fields/);
      await eventually(() => tempFiles(work).length === 0, 'no temp files');
      assert.equal(spoolFiles(work).length, 1);
    } finally {
      await milter.stop();
      removeTree(work);
    }
  });

  it('--allow: TCP clients outside the list are turned away; a unix socket does not take it', async () => {
    const work = tempDir();
    const port = await freePort();
    const refused = await startMilter(['-p', `inet:${port}@127.0.0.1`, '-o', work, '--allow', '192.0.2.0/24']);
    try {
      // Closed at once: the client sees a close or a reset.
      await MilterClient.connect({ host: '127.0.0.1', port }).then(
        (client) => new Promise((r) => client.socket.once('close', r)),
        () => undefined,
      );
      await refused.waitForLine(/refused milter connection from 127\.0\.0\.1: not in --allow/);
    } finally {
      await refused.stop();
    }
    const allowed = await startMilter(['-p', `inet:${port}@127.0.0.1`, '-o', work, '--allow', '127.0.0.0/8', '--allow', '::1']);
    try {
      const c = await MilterClient.open({ host: '127.0.0.1', port });
      assert.equal((await c.sendMessage(message(150))).type, 'accept');
      await c.quit();
    } finally {
      await allowed.stop();
    }
    const open = await startMilter(['-p', `inet:${port}@0.0.0.0`, '-o', work, '--allow', 'any']);
    await open.waitForLine(/listening on inet:\d+@0\.0\.0\.0 for every client \(--allow any\): anyone who can reach the port can put mail into the archive; name the MTAs with --allow/);
    await open.stop();
    const bad = await runToEnd(MILTER_BIN, ['-p', `unix:${path.join(work, 's')}`, '-o', work, '--allow', '127.0.0.1']);
    assert.equal(bad.code, 64);
    assert.match(bad.stderr, /--allow is for TCP sockets/);
    removeTree(work);
  });

  it('2000 idle connections neither use up descriptors nor stop new sessions', async () => {
    const work = tempDir();
    const socketPath = path.join(work, 'm.sock');
    const milter = await startMilter(['-p', `unix:${socketPath}`, '-o', work, '--max-connections', '3000']);
    const idle: MilterClient[] = [];
    try {
      for (let i = 0; i < 2000; i += 100) {
        idle.push(...(await Promise.all(Array.from({ length: 100 }, () => MilterClient.open({ path: socketPath })))));
      }
      const fresh = await MilterClient.open({ path: socketPath });
      assert.equal((await fresh.sendMessage(message(160))).type, 'accept');
      await fresh.quit();
      const fds = fs.readdirSync(`/proc/${milter.pid}/fd`).length;
      assert.ok(fds > 2000 && fds < 2200, `${fds} descriptors for 2001 connections`);
    } finally {
      idle.forEach((c) => c.destroy());
      await milter.stop();
      removeTree(work);
    }
  });

  it('--timeout: a peer that stalls in the middle of a packet is dropped, its message discarded', async () => {
    const work = tempDir();
    const socketPath = path.join(work, 'm.sock');
    const milter = await startMilter(['-p', `unix:${socketPath}`, '-o', work, '--timeout', '1']);
    try {
      const c = await MilterClient.open({ path: socketPath });
      assert.equal(await c.sendContent(message(130, { body: Buffer.alloc(1024 * 1024, 0x41) })), null);
      const half = encodePacket(C.SMFIC_BODY, Buffer.alloc(1000, 0x42)).subarray(0, 500);
      const closed = new Promise((r) => c.socket.once('close', r));
      await c.send(half);
      await closed;
      await milter.waitForLine(/no data for 1s, closing it/);
      await eventually(() => tempFiles(work).length === 0, 'the temp file of the dropped message is removed');
      assert.deepEqual(spoolFiles(work), []);
    } finally {
      await milter.stop();
      removeTree(work);
    }
  });
});

/** A message in the shape Postfix gives it, with a queue id. */
function hostile(i: number, extra: Partial<TestMessage> = {}): TestMessage {
  return message(i, { macros: { [C.SMFIC_BODYEOB]: { i: `HOSTILE${i}` } }, ...extra });
}

/** The one file in dir (the test clears it before each message). */
function onlyFile(dir: string): Buffer {
  const names = spoolFiles(dir);
  assert.equal(names.length, 1, `one file in ${dir}: ${names.join(', ')}`);
  return fs.readFileSync(path.join(dir, names[0]));
}

describe('benno-milter against hostile input (issue 9)', () => {
  let work: string;
  let socketPath: string;
  let milter: Program;
  before(async () => {
    work = tempDir();
    socketPath = path.join(work, 'm.sock');
    milter = await startMilter(['-p', `unix:${socketPath}`, '-o', work, '--max-recipients', '50', '--negotiation-timeout', '1']);
  });
  after(async () => {
    await milter.stop();
    removeTree(work);
  });
  const clear = () => spoolFiles(work).forEach((n) => fs.unlinkSync(path.join(work, n)));
  const send = async (m: TestMessage) => {
    const c = await MilterClient.open({ path: socketPath });
    try {
      return await c.sendMessage(m);
    } finally {
      await c.quit();
    }
  };

  it('a header carrying an envelope or gateway name is renamed X-Untrusted-..., its value kept; the envelope is the real one', async () => {
    clear();
    const m = hostile(1, {
      headers: [
        ['X-REAL-RCPTTO', ' <ceo@victim.example>'],
        ['x-real-mailfrom', '<boss@victim.example>'],
        ['X-Benno-GW', ' other-tenant'],
        ['X-Note', ' a\rX-REAL-RCPTTO: <cfo@victim.example>'],
        ['Subject', ' hi'],
      ],
    });
    assert.equal((await send(m)).type, 'accept');
    const file = onlyFile(work);
    const env = parseEnvelope(file)!;
    assert.deepEqual(env.recipients.map(String), ['rcpt1@example.org']);
    assert.equal(
      file.toString('latin1', env.messageOffset),
      'X-Untrusted-X-REAL-RCPTTO: <ceo@victim.example>\r\nX-Untrusted-x-real-mailfrom:<boss@victim.example>\r\n' +
        'X-Untrusted-X-Benno-GW: other-tenant\r\nX-Note: a\rX-Untrusted-X-REAL-RCPTTO: <cfo@victim.example>\r\nSubject: hi\r\n\r\nbody of message 1\r\n',
    );
    await milter.waitForLine(/HOSTILE1: archived from=<sender1@example.com> rcpts=1 .* renamed=4 /);
  });

  it('addresses keep their bytes; what could split, hide or reorder a line is written as \\x{HEX}, non-UTF-8 as \\xHH', async () => {
    clear();
    const m = hostile(2, {
      sender: b('<"a> X-REAL-RCPTTO: <e"@x.org>'),
      recipients: [b('<a\r\nX-REAL-RCPTTO: <ceo@victim.example>@x>'), Buffer.from('<r\u2028x\u202e@x>', 'utf8'), b('<\xff@x>'), b('<"a b @ c"@x>')],
    });
    assert.equal((await send(m)).type, 'accept');
    const file = onlyFile(work);
    const head = file.toString('utf8', 0, parseEnvelope(file)!.messageOffset);
    assert.equal(
      head,
      'X-REAL-MAILFROM: <"a> X-REAL-RCPTTO: <e"@x.org>\r\n' +
        'X-REAL-RCPTTO: <a\\x{0D}\\x{0A}X-REAL-RCPTTO: <ceo@victim.example>@x>\r\n' +
        'X-REAL-RCPTTO: <r\\x{2028}x\\x{202E}@x>\r\n' +
        'X-REAL-RCPTTO: <\\xFF@x>\r\n' +
        'X-REAL-RCPTTO: <"a b @ c"@x>\r\n',
    );
    assert.equal(parseEnvelope(file)!.recipients.length, 4);
  });

  it('an address over 900 bytes and more recipients than --max-recipients are refused with 554; the connection goes on', async () => {
    clear();
    const c = await MilterClient.open({ path: socketPath });
    const long = hostile(3, { recipients: [`<${'a'.repeat(901)}@x>`] });
    assert.deepEqual(await c.sendMessage(long), { type: 'replycode', text: '554 5.1.3 Message refused by the archive: an address longer than 900 bytes' });
    const many = hostile(4, { recipients: Array.from({ length: 51 }, (_, i) => `<r${i}@x>`) });
    assert.deepEqual(await c.sendMessage(many), { type: 'replycode', text: '554 5.5.3 Message refused by the archive: more than 50 recipients' });
    assert.equal((await c.sendMessage(hostile(5, { recipients: Array.from({ length: 50 }, (_, i) => `<r${i}@x>`) }))).type, 'accept');
    await c.quit();
    await milter.waitForLine(/HOSTILE4: not archived, refused: more than 50 recipients/);
    assert.equal(spoolFiles(work).length, 1);
  });

  it('a newline in the queue id cannot forge a log line', async () => {
    clear();
    const before = milter.stderr.length;
    const m = message(6, { macros: { [C.SMFIC_BODYEOB]: { i: 'QID6\n<3>FORGED: archiving failed' } } });
    assert.equal((await send(m)).type, 'accept');
    const line = await milter.waitForLine(/archived from=<sender6@example.com>/);
    assert.match(line, /QID6\\x\{0A\}<3>FORGED: archiving failed: archived/);
    assert.ok(!milter.linesSince(before).some((l) => /^<3>|^FORGED/.test(l)));
  });

  it('1 MiB RCPT packets and macros for every stage byte: memory stays bounded, the connection is closed, others go on', async () => {
    const canary = await MilterClient.open({ path: socketPath });
    assert.equal(await canary.sendContent(hostile(7)), null);
    const rssBefore = milter.memory().rss;

    // 300 recipients of 1 MiB each: refused as too long, never stored.
    const flood = await MilterClient.open({ path: socketPath });
    await flood.send(encodeStrings(C.SMFIC_MAIL, ['<a@b>']));
    const rcpt = encodeStrings(C.SMFIC_RCPT, [Buffer.concat([b('<'), Buffer.alloc(1024 * 1024 - 20, 0x61), b('@x>')])]);
    for (let i = 0; i < 300; i++) await flood.send(rcpt);
    await flood.send(encodePacket(C.SMFIC_HEADER, b('Subject\0 x\0')));
    await flood.send(encodePacket(C.SMFIC_EOH));
    await flood.send(encodePacket(C.SMFIC_BODYEOB));
    assert.deepEqual(await flood.reply(), { type: 'replycode', text: '554 5.1.3 Message refused by the archive: an address longer than 900 bytes' });
    const afterRcpts = milter.memory().rss;

    // Macros for a stage byte that is not a stage: the connection is closed at once.
    const stages = await MilterClient.open({ path: socketPath });
    const stagesClosed = new Promise((r) => stages.socket.once('close', r));
    stages.socket.on('error', () => undefined);
    // Not awaiting the writes: the milter closes the connection at the first packet.
    for (let stage = 0; stage < 8; stage++) stages.socket.write(encodePacket(C.SMFIC_MACRO, Buffer.from([stage]), Buffer.alloc(1024 * 1024 - 10, 0x62), b('\0v\0')));
    await stagesClosed;
    await milter.waitForLine(/protocol error: (macros for an unknown stage|more than 65536 bytes of macros)/);

    // Macros within the stages, but too many bytes: closed too.
    const big = await MilterClient.open({ path: socketPath });
    const bigClosed = new Promise((r) => big.socket.once('close', r));
    big.socket.on('error', () => undefined);
    big.socket.write(encodePacket(C.SMFIC_MACRO, Buffer.from([C.SMFIC_MAIL]), b('x\0'), Buffer.alloc(70_000, 0x63), b('\0')));
    await bigClosed;
    await milter.waitForLine(/protocol error: more than 65536 bytes of macros/);

    assert.equal((await canary.endOfMessage(hostile(7))).type, 'accept', 'the canary session is unaffected');
    await canary.quit();
    await flood.quit();
    const mib = (n: number) => (n / 1048576).toFixed(1);
    // Before the bound, 300 stored 1 MiB recipients held 300 MiB.
    assert.ok(afterRcpts - rssBefore < 64 * 1024 * 1024, `RSS ${mib(rssBefore)} → ${mib(afterRcpts)} MiB after 300 MiB of recipients`);
  });

  it('--negotiation-timeout: connections that never negotiate are closed, and a real MTA gets in', { timeout: 30_000 }, async () => {
    const idle = await Promise.all(Array.from({ length: 50 }, () => MilterClient.connect({ path: socketPath })));
    const closed = Promise.all(idle.map((c) => new Promise((r) => c.socket.once('close', r))));
    await closed;
    await milter.waitForLine(/no option negotiation within 1s, closing it/);
    const c = await MilterClient.open({ path: socketPath });
    assert.equal((await c.sendMessage(hostile(8))).type, 'accept');
    await c.quit();
  });
});

describe('benno-milter TCP exposure (issue 9)', () => {
  it('a TCP socket beyond loopback without --allow refuses to start with one line; --allow any starts with a warning', async () => {
    const work = tempDir();
    try {
      const port = await freePort();
      for (const spec of [`inet:${port}@0.0.0.0`, `inet:${port}`, `inet6:${port}@::`]) {
        const r = await runToEnd(MILTER_BIN, ['-p', spec, '-o', work]);
        assert.equal(r.code, 64, r.stderr);
        assert.equal(r.stderr.trim().split('\n').length, 1);
        assert.match(r.stderr, /would take mail from anyone who can reach the port: name the MTAs that may connect with --allow ADDRESS\[\/PREFIX\] \(in MILTERARGS in \/etc\/default\/benno-milter\), or accept that risk with --allow any/);
      }
      const mixed = await runToEnd(MILTER_BIN, ['-p', `inet:${port}@0.0.0.0`, '-o', work, '--allow', 'any', '--allow', '10.0.0.1']);
      assert.equal(mixed.code, 64);
      const loop = await startMilter(['-p', `inet:${port}@127.0.0.1`, '-o', work]);
      await loop.stop();
    } finally {
      removeTree(work);
    }
  });

  it('--max-connections-per-client: one address cannot take every place; the log names it; another address gets in', async () => {
    const work = tempDir();
    const port = await freePort();
    const milter = await startMilter(['-p', `inet:${port}@127.0.0.1`, '-o', work, '--allow', '127.0.0.0/8', '--max-connections-per-client', '5']);
    const held: MilterClient[] = [];
    try {
      for (let i = 0; i < 5; i++) held.push(await MilterClient.open({ host: '127.0.0.1', port }));
      await MilterClient.connect({ host: '127.0.0.1', port }).then(
        (extra) => new Promise((r) => extra.socket.once('close', r)),
        () => undefined,
      );
      await milter.waitForLine(/client 127\.0\.0\.1 has 5 milter connections open: refusing more from it .*raise --max-connections-per-client/);
      // Another MTA (another address) is served; MilterClient connects from 127.0.0.1, so speak raw here.
      const other = await new Promise<net.Socket>((resolve, reject) => {
        const s = net.connect({ host: '127.0.0.1', port, localAddress: '127.0.0.2' }, () => resolve(s));
        s.once('error', reject);
      });
      const optneg = new Promise<Buffer>((resolve) => other.once('data', resolve));
      other.write(encodePacket(C.SMFIC_OPTNEG, Buffer.from([0, 0, 0, 6, 0, 0, 1, 0xff, 0, 0x1f, 0xff, 0xff])));
      assert.equal((await optneg)[4], C.SMFIC_OPTNEG, 'the other address negotiates');
      other.destroy();
      held[0].destroy();
      let again: MilterClient | null = null;
      for (let tries = 0; !again && tries < 100; tries++) {
        again = await MilterClient.open({ host: '127.0.0.1', port }).catch(() => new Promise<null>((r) => setTimeout(() => r(null), 20)));
      }
      assert.ok(again, 'a place freed is taken again');
      assert.equal((await again.sendMessage(message(200))).type, 'accept');
      await again.quit();
    } finally {
      held.forEach((c) => c.destroy());
      await milter.stop();
      removeTree(work);
    }
  });
});

describe('benno-milter --gateway (multi-import, issue 10)', () => {
  it('writes "X-BENNO-GW: NAME" right after the envelope lines; a field of that name in the message is renamed', async () => {
    const work = tempDir();
    const socketPath = path.join(work, 'm.sock');
    const milter = await startMilter(['-p', `unix:${socketPath}`, '-o', work, '--gateway', 'tenant-a.example']);
    try {
      await milter.waitForLine(/started: listening on .*, gateway tenant-a\.example/);
      const c = await MilterClient.open({ path: socketPath });
      const m = hostile(1, { headers: [['X-BENNO-GW', ' other-tenant'], ['Subject', ' hi']] });
      assert.equal((await c.sendMessage(m)).type, 'accept');
      await c.quit();
      const file = onlyFile(work);
      const env = parseEnvelope(file)!;
      assert.deepEqual(env.recipients.map(String), ['rcpt1@example.org'], 'the gateway line ends the envelope block');
      assert.equal(
        file.toString('latin1', env.messageOffset),
        'X-BENNO-GW: tenant-a.example\r\nX-Untrusted-X-BENNO-GW: other-tenant\r\nSubject: hi\r\n\r\nbody of message 1\r\n',
      );
      await milter.waitForLine(/HOSTILE1: archived .* renamed=1 /);
    } finally {
      await milter.stop();
      removeTree(work);
    }
  });
});
