// benno-smtp against hostile clients (issue 9): forged envelope fields in a
// message, addresses that alter or disguise themselves, recipient floods,
// idle and crowding connections, password guessing, AUTH before STARTTLS, log
// injection. Each test reproduces the attack against the running program.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runToEnd } from '../helpers/daemon';
import { removeTree, tempDir } from '../helpers/fs';
import { RawSmtp, Reply, plainToken, submit } from '../helpers/raw-smtp-client';
import { freePort } from '../helpers/net';
import { SMTP_BIN, startReceiver } from '../helpers/smtp';
import { parseEnvelope } from '../../src/spool/format';
import { b, u } from '../helpers/bytes';
import { spoolFiles } from '../helpers/spool';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

type Receiver = Awaited<ReturnType<typeof startReceiver>>;

let work: string;
before(() => {
  work = tempDir();
});
after(() => removeTree(work));

/** A fresh inbox and a receiver on a free port with these extra configuration lines. */
async function receiver(name: string, lines: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<{ rx: Receiver; port: number; inbox: string }> {
  const inbox = path.join(work, name);
  fs.mkdirSync(inbox);
  const port = await freePort();
  const rx = await startReceiver(work, [`listen = 127.0.0.1:${port}`, `inbox = ${inbox}`, ...lines], env);
  return { rx, port, inbox };
}

/** The one file in an inbox. */
function stored(inbox: string): Buffer {
  const names = spoolFiles(inbox);
  assert.equal(names.length, 1, names.join(' '));
  return fs.readFileSync(path.join(inbox, names[0]));
}

async function session(port: number, localAddress?: string): Promise<RawSmtp> {
  const { client, greeting } = await RawSmtp.open(port, { localAddress });
  assert.equal(greeting.code, 220, greeting.text);
  assert.equal((await client.command('EHLO client.example')).code, 250);
  return client;
}

async function expectCode(client: RawSmtp, line: string | Buffer, code: number): Promise<Reply> {
  const r = await client.command(line);
  assert.equal(r.code, code, `${typeof line === 'string' ? line : line.toString('latin1')}: ${r.text}`);
  return r;
}

describe('benno-smtp: fields in a message that carry our envelope or gateway names', () => {
  const message = b(
    'X-REAL-RCPTTO: <ceo@victim.example>\r\n' +
      'x-real-mailfrom: <boss@victim.example>\r\n' +
      'X-REAL-RCPTTO : <cfo@victim.example>\r\n' +
      'X-BENNO-GW: x\r\n' +
      'Subject: bare CR\rX-REAL-RCPTTO: <cr@victim.example>\r\n' +
      'X-Note: bare LF\nX-REAL-RCPTTO: <lf@victim.example>\r\n' +
      'X-Env-To: <custom@victim.example>\r\n' +
      'X-Untrusted-X-REAL-RCPTTO: <already@renamed.example>\r\n' +
      'Received: from relay\r\n\tX-REAL-RCPTTO: <folded@victim.example>\r\n' +
      '\r\n' +
      'X-REAL-RCPTTO: <body@victim.example>\r\n' +
      'body\r\n',
  );
  const renamed = (custom: boolean) =>
    b(
      'X-Untrusted-X-REAL-RCPTTO: <ceo@victim.example>\r\n' +
        'X-Untrusted-x-real-mailfrom: <boss@victim.example>\r\n' +
        'X-Untrusted-X-REAL-RCPTTO : <cfo@victim.example>\r\n' +
        'X-Untrusted-X-BENNO-GW: x\r\n' +
        'Subject: bare CR\rX-Untrusted-X-REAL-RCPTTO: <cr@victim.example>\r\n' +
        'X-Note: bare LF\nX-Untrusted-X-REAL-RCPTTO: <lf@victim.example>\r\n' +
        `${custom ? 'X-Untrusted-' : ''}X-Env-To: <custom@victim.example>\r\n` +
        // Already renamed, a folded line and the body: not field names of ours at a line start of the header section.
        'X-Untrusted-X-REAL-RCPTTO: <already@renamed.example>\r\n' +
        'Received: from relay\r\n\tX-REAL-RCPTTO: <folded@victim.example>\r\n' +
        '\r\n' +
        'X-REAL-RCPTTO: <body@victim.example>\r\n' +
        'body\r\n',
    );

  async function deliver(port: number): Promise<void> {
    const c = await session(port);
    await expectCode(c, 'MAIL FROM:<sender@example.com>', 250);
    await expectCode(c, 'RCPT TO:<real@example.org>', 250);
    assert.equal((await c.data(message)).code, 250);
    c.end();
  }

  for (const custom of [false, true]) {
    it(`are renamed X-Untrusted-, values kept; the envelope lines are only the real ones${custom ? ' (custom envelope names)' : ''}`, async () => {
      const names = custom ? { sender: 'X-Env-From', recipient: 'X-Env-To' } : undefined;
      const lines = custom ? ['sender_header = X-Env-From', 'recipient_header = X-Env-To'] : [];
      const { rx, port, inbox } = await receiver(`forged-${custom}`, lines);
      try {
        await deliver(port);
        const file = stored(inbox);
        const env = parseEnvelope(file, names);
        assert.ok(env, file.toString('latin1'));
        assert.deepEqual(env.sender, b('sender@example.com'));
        assert.deepEqual(env.recipients, [b('real@example.org')]);
        assert.deepEqual(file.subarray(env.messageOffset), renamed(custom), file.toString('latin1'));
        await rx.program.waitForLine(new RegExp(`\\.eml: stored from=<sender@example\\.com> rcpts=1 .* renamed=${custom ? 7 : 6} \\(fields carrying our envelope names\\)$`));
        assert.ok(!rx.program.log().includes('victim'), 'no header value in the log');
      } finally {
        await rx.program.stop();
      }
    });
  }

  it('are renamed with envelope_header = false too', async () => {
    const { rx, port, inbox } = await receiver('forged-noenv', ['envelope_header = false']);
    try {
      await deliver(port);
      const file = stored(inbox);
      assert.deepEqual(file, renamed(false));
      assert.equal(parseEnvelope(file), null, 'nothing in it passes for an envelope');
    } finally {
      await rx.program.stop();
    }
  });
});

describe('benno-smtp: addresses are the bytes sent', () => {
  let rx: Receiver;
  let port: number;
  let inbox: string;
  before(async () => ({ rx, port, inbox } = await receiver('addresses')));
  after(() => rx.program.stop());

  const local900 = `${'a'.repeat(900 - '@example.org'.length)}@example.org`;

  it('bytes that are not UTF-8 are stored as \\xHH, never U+FFFD; quoted local parts, 900 bytes and SMTPUTF8 byte for byte', async () => {
    const c = await session(port);
    await expectCode(c, b('MAIL FROM:<s\xff\xfe@example.com>'), 250);
    const rcpts: [Buffer, Buffer][] = [
      [b('r\xc3@example.org'), b('r\\xC3@example.org')],
      [b('"a> X-REAL-RCPTTO: <e"@x.org'), b('"a> X-REAL-RCPTTO: <e"@x.org')],
      [b('"a b@c"@x.org'), b('"a b@c"@x.org')],
      [u('jürgen@bücher.example'), u('jürgen@bücher.example')],
      [b(local900), b(local900)],
      [b('r\xc3@example.org'), b('r\\xC3@example.org')], // duplicates kept, in the client's order
    ];
    for (const [sent] of rcpts) await expectCode(c, Buffer.concat([b('RCPT TO:<'), sent, b('>')]), 250);
    assert.equal((await c.data(b('Subject: bytes\r\n\r\nbody\r\n'))).code, 250);
    const file = stored(inbox);
    assert.ok(!file.includes(u('\ufffd')), 'no replacement character');
    const env = parseEnvelope(file)!;
    assert.deepEqual(env.sender, b('s\\xFF\\xFE@example.com'));
    assert.deepEqual(env.recipients, rcpts.map(([, written]) => written));
    await rx.program.waitForLine(/stored from=<s\\xFF\\xFE@example\.com> rcpts=6 /);
    fs.unlinkSync(path.join(inbox, spoolFiles(inbox)[0]));

    await expectCode(c, u('MAIL FROM:<jörg@exämple.com> SMTPUTF8'), 250);
    await expectCode(c, u('RCPT TO:<jürgen@bücher.example>'), 250);
    assert.equal((await c.data(b('Subject: utf8\r\n\r\nbody\r\n'))).code, 250);
    const utf8 = parseEnvelope(stored(inbox))!;
    assert.deepEqual([utf8.sender, utf8.recipients], [u('jörg@exämple.com'), [u('jürgen@bücher.example')]]);
    fs.unlinkSync(path.join(inbox, spoolFiles(inbox)[0]));
    c.end();
  });

  it('characters that split, hide or reorder an address are refused (501) by name; so is an address over 900 bytes', async () => {
    const c = await session(port);
    const bad: [string, string][] = [
      ['\u202e', 'U+202E'],
      ['\u2028', 'U+2028'],
      ['\u200b', 'U+200B'],
      ['\u0001', 'U+0001'],
      ['\t', 'U+0009'],
      ['\u0085', 'U+0085'],
    ];
    for (const [ch, name] of bad) {
      const r = await expectCode(c, u(`MAIL FROM:<ceo${ch}@example.com>`), 501);
      assert.equal(r.text, `501 5.1.7 Bad sender address syntax: ${name} not allowed`);
    }
    await expectCode(c, 'MAIL FROM:<a@example.com>', 250);
    for (const [ch, name] of bad) {
      const r = await expectCode(c, u(`RCPT TO:<moc.elpmaxe${ch}@evil.example>`), 501);
      assert.equal(r.text, `501 5.1.3 Bad recipient address syntax: ${name} not allowed`);
    }
    const long = await expectCode(c, `RCPT TO:<a${local900}>`, 501);
    assert.equal(long.text, '501 5.1.3 Bad recipient address syntax: an address longer than 900 bytes');
    await expectCode(c, 'RSET', 250);
    await expectCode(c, `MAIL FROM:<a${local900}>`, 501);
    await expectCode(c, 'QUIT', 221);
    assert.deepEqual(spoolFiles(inbox), []);
    // The log names what was refused in its written form, rate-limited per client.
    const refusals = rx.program.stderr.filter((l) => / refused (sender|recipient) </.test(l));
    assert.equal(refusals.length, 1, refusals.join('\n'));
    assert.match(refusals[0], /client 127\.0\.0\.1: refused sender <ceo\\x\{202E\}@example\.com>: U\+202E not allowed$/);
  });
});

describe('benno-smtp: recipient floods', () => {
  it('10,001 recipients: the last gets 452 4.5.3; 10,000 distinct ones take linear time and are all stored, in order', async () => {
    const { rx, port, inbox } = await receiver('ten-thousand');
    try {
      const c = await session(port);
      await expectCode(c, 'MAIL FROM:<bulk@example.com>', 250);
      const addresses = Array.from({ length: 10_001 }, (_, i) => `r${String(i).padStart(5, '0')}@example.org`);
      const t0 = Date.now();
      c.write(addresses.map((a) => `RCPT TO:<${a}>\r\n`).join(''));
      const replies: Reply[] = [];
      for (let i = 0; i < addresses.length; i++) replies.push(await c.reply(120_000));
      const seconds = (Date.now() - t0) / 1000;
      console.log(`10,001 pipelined RCPTs answered in ${seconds.toFixed(2)} s`);
      assert.ok(replies.slice(0, 10_000).every((r) => r.code === 250));
      assert.equal(replies[10_000].text, '452 4.5.3 Too many recipients');
      assert.ok(seconds < 20, `${seconds} s`);
      assert.equal((await c.data(b('Subject: many\r\n\r\nbody\r\n'))).code, 250);
      const env = parseEnvelope(stored(inbox))!;
      assert.deepEqual(env.recipients.map((r) => r.toString('latin1')), addresses.slice(0, 10_000));
      await rx.program.waitForLine(/client 127\.0\.0\.1: refused recipient <r10000@example\.org>: more than 10000 recipients \(max_recipients\)/);
      c.end();
    } finally {
      await rx.program.stop();
    }
  });

  it('30,000 RCPTs of 4 KB: closed with 421 after 1,000 refusals, memory bounded, another client served meanwhile', async () => {
    const { rx, port } = await receiver('flood');
    try {
      const baseline = rx.program.memory().rss;
      let peak = baseline;
      const sampler = setInterval(() => {
        try {
          peak = Math.max(peak, rx.program.memory().rss);
        } catch {
          // the process is gone; the assertions below say so
        }
      }, 50);
      const flooder = await session(port);
      await expectCode(flooder, 'MAIL FROM:<flood@example.com>', 250);
      // 4,000 bytes: smtp-server closes a connection whose line outgrows its 4 KB command buffer.
      const line = b(`RCPT TO:<${'x'.repeat(4000)}@example.org>\r\n`);
      const t0 = Date.now();
      let sent = 0;
      const batch = Buffer.concat(Array.from({ length: 100 }, () => line));
      const flood = (async () => {
        while (sent < 30_000 && !flooder.isClosed && Date.now() - t0 < 60_000) {
          await flooder.writeAll(batch);
          sent += 100;
        }
      })();
      // Meanwhile, a second client.
      await sleep(200);
      const t1 = Date.now();
      const other = await session(port);
      const served = Date.now() - t1;
      other.end();
      await flood;
      await flooder.closed;
      clearInterval(sampler);
      const replies: Reply[] = [];
      for (;;) {
        try {
          replies.push(await flooder.reply(1));
        } catch {
          break;
        }
      }
      const codes = replies.map((r) => r.code);
      console.log(
        `flood: ${sent} RCPTs of 4 KB written in ${((Date.now() - t0) / 1000).toFixed(2)} s, ${codes.length} replies, ` +
          `RSS ${(baseline / 2 ** 20).toFixed(1)} → peak ${(peak / 2 ** 20).toFixed(1)} MiB; second client greeted and EHLO answered in ${served} ms`,
      );
      assert.equal(codes.filter((c) => c === 501).length, 1000);
      assert.equal(replies[replies.length - 1].text, '421 4.7.0 Too many refused addresses, closing connection');
      assert.ok(served < 1000, `second client served after ${served} ms`);
      assert.ok(peak - baseline < 100 * 2 ** 20, `RSS grew by ${((peak - baseline) / 2 ** 20).toFixed(1)} MiB`);
      await rx.program.waitForLine(/client 127\.0\.0\.1: more than 1000 addresses refused in one session; closed with 421/);
      assert.equal(rx.program.proc.exitCode, null, 'still running');
    } finally {
      await rx.program.stop();
    }
  });
});

describe('benno-smtp: idle and crowding connections', () => {
  it('100 clients that say nothing are closed after first_command_timeout; a client that keeps trying is served', async () => {
    const { rx, port } = await receiver('idle', ['first_command_timeout = 1', 'max_connections_per_client = 1000']);
    try {
      const idle = await Promise.all(Array.from({ length: 100 }, () => RawSmtp.open(port)));
      assert.ok(idle.every((i) => i.greeting.code === 220));
      const t0 = Date.now();
      // A talker that spoke at once is not held to the first-command limit.
      const talker = await session(port).catch(() => undefined);
      let served: number | undefined;
      while (served === undefined && Date.now() - t0 < 20_000) {
        const { client, greeting } = await RawSmtp.open(port);
        if (greeting.code === 220 && (await client.command('EHLO client.example')).code === 250) served = Date.now() - t0;
        client.destroy();
        if (served === undefined) await sleep(100);
      }
      const byes = await Promise.all(idle.map((i) => i.client.reply(20_000).catch((e: Error) => ({ text: e.message }) as Reply)));
      await Promise.all(idle.map((i) => i.client.closed));
      const closedAfter = Date.now() - t0;
      console.log(`100 idle clients closed within ${closedAfter} ms; a new client served after ${served} ms`);
      assert.ok(byes.every((r) => /^421 .*Timeout/.test(r.text)), byes.map((r) => r.text).join('\n'));
      assert.ok(served !== undefined && served < 10_000, `served after ${served} ms`);
      if (talker) {
        await sleep(1500);
        assert.equal((await talker.command('NOOP')).code, 250, 'a client that has spoken keeps the normal timeout');
        talker.end();
      }
      await rx.program.waitForLine(/client 127\.0\.0\.1: no command within 1 s of the greeting; closed \(first_command_timeout\)/);
      assert.equal(rx.program.stderr.filter((l) => /first_command_timeout/.test(l)).length, 1, 'one line for 100 closings');
    } finally {
      await rx.program.stop();
    }
  });

  it('beyond max_connections_per_client (default 50): 421 and a log line naming the client; other clients are served', async () => {
    const { rx, port } = await receiver('per-client');
    try {
      const fifty = await Promise.all(Array.from({ length: 50 }, () => RawSmtp.open(port)));
      assert.ok(fifty.every((t) => t.greeting.code === 220));
      const more = await RawSmtp.open(port);
      assert.match(more.greeting.text, /^421 4\.7\.0 \S+ Too many connections from 127\.0\.0\.1, try again later$/);
      await more.client.closed;
      await rx.program.waitForLine(/client 127\.0\.0\.1: more than 50 connections at once; refused with 421; raise max_connections_per_client/);
      const elsewhere = await session(port, '127.0.0.2');
      elsewhere.end();
      // A connection that ends gives its place back.
      fifty[0].client.end();
      await fifty[0].client.closed;
      let again: Reply | undefined;
      for (let i = 0; i < 100 && again?.code !== 220; i++) {
        const next = await RawSmtp.open(port);
        again = next.greeting;
        next.client.destroy();
        if (again.code !== 220) await sleep(50);
      }
      assert.equal(again?.code, 220);
      for (const t of fifty) t.client.destroy();
    } finally {
      await rx.program.stop();
    }
  });
});

describe('benno-smtp: AUTH', () => {
  let users: string;
  let cert: string;
  let key: string;
  before(() => {
    const hash = execFileSync(process.execPath, [SMTP_BIN, '--hash-password'], { input: 'correct horse\n' }).toString().trim();
    users = path.join(work, 'users');
    fs.writeFileSync(users, `exporter:${hash}\n`);
    cert = path.join(work, 'cert.pem');
    key = path.join(work, 'key.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=localhost'], { stdio: 'ignore' });
  });

  const wrong = plainToken('exporter', 'battery staple');
  const right = plainToken('exporter', 'correct horse');

  it('3 failures end the connection (421, no 4th attempt); failures are answered ever later, a success at once', async () => {
    const { rx, port } = await receiver('auth-limits', [`auth_users = ${users}`]);
    try {
      const c = await session(port, '127.0.0.3');
      const times: number[] = [];
      const replies: Reply[] = [];
      for (let i = 0; i < 3; i++) {
        const t = Date.now();
        replies.push(await c.command(`AUTH PLAIN ${wrong}`));
        times.push(Date.now() - t);
      }
      assert.deepEqual(replies.map((r) => r.code), [535, 535, 421]);
      assert.equal(replies[2].text, '421 4.7.0 Too many failed authentication attempts');
      await c.closed;
      console.log(`failures answered after ${times.join(', ')} ms`);
      assert.ok(times[0] >= 950 && times[1] >= 1950 && times[2] >= 3950, times.join(', '));
      // The same address logs in right: no delay.
      const ok = await session(port, '127.0.0.3');
      const t = Date.now();
      await expectCode(ok, `AUTH PLAIN ${right}`, 235);
      const success = Date.now() - t;
      console.log(`a success after those failures answered in ${success} ms`);
      assert.ok(success < 1000, `${success} ms`);
      await expectCode(ok, 'MAIL FROM:<a@example.com>', 250);
      ok.end();
    } finally {
      await rx.program.stop();
    }
  });

  it('20 clients guessing passwords do not hold up a valid login; their warnings are rate-limited', async () => {
    const { rx, port } = await receiver('auth-flood', [`auth_users = ${users}`]);
    let stop = false;
    let attempts = 0;
    const open = new Set<RawSmtp>();
    const attacker = async () => {
      while (!stop) {
        try {
          const c = await session(port);
          open.add(c);
          while (!stop) {
            attempts++;
            if ((await c.command(`AUTH PLAIN ${wrong}`, 60_000)).code !== 535) break;
          }
          c.destroy();
          open.delete(c);
        } catch {
          // closed under us: connect again
        }
      }
    };
    try {
      const attackers = Array.from({ length: 20 }, attacker);
      await sleep(3000);
      const logins: number[] = [];
      for (let i = 0; i < 5; i++) {
        const c = await session(port, '127.0.0.2');
        const t = Date.now();
        await expectCode(c, `AUTH PLAIN ${right}`, 235);
        logins.push(Date.now() - t);
        c.destroy();
        await sleep(300);
      }
      stop = true;
      const warnings = rx.program.stderr.filter((l) => /authentication as exporter failed/.test(l));
      console.log(`valid logins under 20 attackers: ${logins.join(', ')} ms; ${attempts} wrong passwords sent, ${warnings.length} warning line(s)`);
      assert.ok(Math.max(...logins) < 1000, logins.join(', '));
      assert.ok(attempts >= 20, `${attempts}`);
      assert.ok(warnings.length <= 2, warnings.join('\n'));
      // Their answers are up to 30 s away: hang up on them.
      for (const c of open) c.destroy();
      await Promise.all(attackers);
    } finally {
      stop = true;
      for (const c of open) c.destroy();
      await rx.program.stop();
    }
  });

  it('a username made to forge log lines gives one escaped line', async () => {
    const { rx, port } = await receiver('auth-log', [`auth_users = ${users}`], { JOURNAL_STREAM: '8:1234' });
    try {
      const c = await session(port, '127.0.0.4');
      // smtp-server itself refuses control characters in a user name (501 since 3.19.21, 500 before).
      assert.equal((await c.command(`AUTH PLAIN ${plainToken('a\r\n<3>forged: archive lost', 'x')}`)).code, 501);
      assert.equal((await c.command(`AUTH PLAIN ${plainToken('x\u2028<3>FORGED: archive lost\u202ey', 'x')}`)).code, 535);
      c.destroy();
      const line = await rx.program.waitForLine(/authentication as /);
      assert.equal(line, '<4>client 127.0.0.4: authentication as x\\x{2028}<3>FORGED: archive lost\\x{202E}y failed; 1 failure from this address in the last 15 minutes, answered after 1 s');
      await rx.program.stop();
      const log = rx.program.log();
      assert.ok(!/[\u2028\u202e\r]/.test(log), 'nothing unescaped');
      assert.ok(rx.program.stderr.every((l) => /^<[3467]>/.test(l)), rx.program.stderr.join('\n'));
      assert.equal(rx.program.stderr.filter((l) => /forged|FORGED/.test(l)).length, 1);
    } finally {
      await rx.program.stop();
    }
  });

  it('with a certificate: EHLO offers AUTH only after STARTTLS; AUTH in clear gets 538, MAIL before AUTH 530', async () => {
    const { rx, port } = await receiver('auth-tls', [`auth_users = ${users}`, `tls_key = ${key}`, `tls_cert = ${cert}`]);
    try {
      const { client: c } = await RawSmtp.open(port, { localAddress: '127.0.0.5' });
      const before = await c.command('EHLO client.example');
      assert.ok(before.lines.includes('STARTTLS'), before.text);
      assert.ok(!before.lines.some((l) => /^AUTH/i.test(l)), before.text);
      await expectCode(c, `AUTH PLAIN ${right}`, 538);
      await expectCode(c, 'MAIL FROM:<a@example.com>', 530);
      await c.startTls();
      const after = await c.command('EHLO client.example');
      assert.ok(after.lines.includes('AUTH LOGIN PLAIN'), after.text);
      await expectCode(c, 'MAIL FROM:<a@example.com>', 530);
      await expectCode(c, `AUTH PLAIN ${right}`, 235);
      await expectCode(c, 'MAIL FROM:<a@example.com>', 250);
      c.end();
    } finally {
      await rx.program.stop();
    }
  });
});

describe('benno-smtp: X-BENNO-GW (multi-import, issue 10)', () => {
  const store = async (port: number, message: string) => {
    const r = await submit(port, 'a@example.com', ['b@example.org'], b(message));
    assert.equal(r.final.code, 250, r.final.text);
  };
  const ENVELOPE = 'X-REAL-MAILFROM: <a@example.com>\r\nX-REAL-RCPTTO: <b@example.org>\r\n';

  it('gateway = NAME: a message without a gateway line gets one right after the envelope lines; the log names it', async () => {
    const { rx, port, inbox } = await receiver('gw-set', ['gateway = tenant-b']);
    try {
      await store(port, 'Subject: hi\r\nX-BENNO-GW: forged\r\n\r\nbody\r\n');
      assert.equal(stored(inbox).toString('latin1'), `${ENVELOPE}X-BENNO-GW: tenant-b\r\nSubject: hi\r\nX-Untrusted-X-BENNO-GW: forged\r\n\r\nbody\r\n`);
      await rx.program.waitForLine(/stored from=<a@example\.com> rcpts=1 .* gateway=tenant-b renamed=1 /);
    } finally {
      await rx.program.stop();
    }
  });

  it('a trusted client keeps the gateway line its message starts with, with or without gateway = NAME', async () => {
    for (const lines of [['gateway = tenant-b'], []]) {
      const { rx, port, inbox } = await receiver(`gw-keep-${lines.length}`, lines);
      try {
        await store(port, 'X-BENNO-GW: mx1.example\r\nSubject: hi\r\n\r\nbody\r\n');
        assert.equal(stored(inbox).toString('latin1'), `${ENVELOPE}X-BENNO-GW: mx1.example\r\nSubject: hi\r\n\r\nbody\r\n`);
        await rx.program.waitForLine(/stored from=<a@example\.com> rcpts=1 .* gateway=mx1\.example/);
      } finally {
        await rx.program.stop();
      }
    }
  });

  it('a bad gateway name stops benno-smtp at start with the line (exit 78)', async () => {
    const conf = path.join(work, 'gw-bad.conf');
    fs.writeFileSync(conf, 'listen = 127.0.0.1:1\ngateway = a b\n');
    const r = await runToEnd(SMTP_BIN, ['-c', conf, '--check']);
    assert.equal(r.code, 78);
    assert.equal(r.stderr.trim(), `benno-smtp: ${conf}, line 2: bad gateway "a b": is not a gateway name: 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit`);
  });
});
