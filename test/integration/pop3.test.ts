// benno-pop3 against a real Dovecot POP3 server (dovecot-pop3d): every
// message archived byte for byte as the server hands it out (dot lines, no
// final newline, 8-bit, a message large enough to be streamed), the mailbox
// left alone without --delete; SIGKILL in the middle and a new run: nothing
// doubled; --delete removes only what is on disk; a wrong password (69),
// the server down (75), a certificate the CA does not vouch for (75); the
// command line.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DEFAULT_ENVELOPE_NAMES, importedEnvelope } from '../../src/spool/format';
import { DEFAULT_SUFFIX, finalName } from '../../src/spool/names';
import { ROOT, argvAfterFirstLine, runCli, sha256 } from '../helpers/daemon';
import { mountTmpfs, removeTree, subdir, tempDir } from '../helpers/fs';
import { Dovecot, ImapUser, append, asCrlf, nastyMessage, readFolder, withClient } from '../helpers/imap-servers';
import { freePort } from '../helpers/net';
import { pop3Messages, withPop3 } from '../helpers/pop3';
import { FailingWriter, killAtFirstNewFile, readWhole, spoolFiles, tempFiles } from '../helpers/spool';
import { ImportEnvelope } from '../../src/imap/envelope';
import { Pop3ImportError, importPop3 } from '../../src/pop3/import';
import { UidlStateFile } from '../../src/pop3/state';
import { SpoolWriter } from '../../src/spool/writer';
import { quietLogger } from '../helpers/log';

const POP3 = path.join(ROOT, 'dist', 'src', 'cli', 'benno-pop3.js');
const cli = (args: string[], input = '') => runCli(POP3, args, input);

const users: ImapUser[] = ['anna', 'bob', 'carl', 'dora'].map((user) => ({ user, password: `${user} pw "x"` }));
const [anna, bob, carl, dora] = users;

const b = (s: string) => Buffer.from(s, 'latin1');
const numbered = (i: number, who: string, filler = Buffer.alloc(0)) =>
  Buffer.concat([b(`Return-Path: <sender${i}@example.com>\r\nFrom: sender${i}@example.com\r\nTo: ${who}@example.org\r\nSubject: message ${i}\r\n\r\nbody ${i}\r\n`), filler, b('\r\n')]);

/** What benno-pop3 must write for a message the server hands out as these bytes. */
function expectedFile(who: ImapUser, retrieved: Buffer): Buffer {
  const env = importedEnvelope(DEFAULT_ENVELOPE_NAMES, retrieved, [Buffer.from(`${who.user}@example.org`)]);
  assert.ok('block' in env);
  return Buffer.concat([env.block, retrieved]);
}

/** The inbox's file names for what the server now holds for who. */
async function expectedNames(server: Dovecot, who: ImapUser): Promise<string[]> {
  return (await pop3Messages(server, who)).map((m) => finalName(sha256(expectedFile(who, m.message)), DEFAULT_SUFFIX)).sort();
}

describe('benno-pop3 against a real Dovecot', () => {
  let work: string;
  let dovecot: Dovecot;
  let wrongCert: Dovecot;
  const originals: Buffer[] = [];

  /** The arguments for a run as who: STLS on Dovecot's port, the user's state file, unless given. */
  const args = (who: ImapUser, inbox: string, o: { port?: number; tls?: string; state?: string; extra?: string[] } = {}) => [
    '-u', who.user, '-e', `${who.user}@example.org`, '-i', `127.0.0.1:${o.port ?? dovecot.pop3Port}`, '-p', '-', '--cafile', dovecot.caFile,
    '--tls', o.tls ?? 'starttls', '--inbox', inbox, '--state', o.state ?? path.join(work, `${who.user}.state`), '--timeout', '10', ...(o.extra ?? []),
  ];
  const inboxOf = (name: string) => subdir(work, name);

  before(async () => {
    work = tempDir();
    [dovecot, wrongCert] = await Promise.all([Dovecot.start({ users, pop3: true }), Dovecot.start({ users, pop3: true, certificate: 'wrong' })]);
    // Every third line of the large one starts with a dot: stuffing in the streamed path too.
    const large = Buffer.concat([b('Return-Path: <big@example.com>\r\nSubject: 3 MB\r\n\r\n'), ...Array.from({ length: 30_000 }, (_, i) => b(`${i % 3 === 0 ? '.' : ''}line ${i} ${'x'.repeat(90)}\r\n`))]);
    originals.push(
      b('Return-Path: <dots@example.com>\r\nSubject: dots\r\n\r\n.\r\n..\r\n...\r\n.x\r\nend\r\n'),
      b('Subject: no final newline\r\n\r\nthe last line has no end'),
      nastyMessage(),
      nastyMessage({ bareLf: true }),
      large,
      ...Array.from({ length: 20 }, (_, i) => numbered(i, 'anna')),
    );
    await withClient(dovecot, anna, async (c) => {
      for (const m of originals) await append(c, 'INBOX', m);
    });
  });
  after(async () => {
    await Promise.all([dovecot?.stop(), wrongCert?.stop()]);
    removeTree(work);
  });

  it('imports every message over STLS, byte for byte as the server hands it out; the mailbox is left as it was', async () => {
    const inbox = inboxOf('anna');
    const r = cli(args(anna, inbox), `${anna.password}\n`);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /info: anna@127\.0\.0\.1:\d+: 25 messages, 25 archived, 0 archived before, 0 skipped, 0 deleted, \d+ ms$/m);
    assert.match(r.stderr, /info: summary: anna@127\.0\.0\.1:\d+ mailboxes=1 archived=25 deleted=0 seconds=/);
    assert.ok(!r.stderr.includes(anna.password));
    // Before the test's own RETRs below, which mark messages read: benno-pop3 fetched with TOP and left them unread.
    await withClient(dovecot, anna, async (c) => {
      for (const m of await readFolder(c, 'INBOX')) assert.deepEqual(m.flags, [], `message ${m.uid} left as it was`);
    });

    const served = await pop3Messages(dovecot, anna);
    assert.equal(served.length, 25, 'nothing deleted');
    const files = spoolFiles(inbox);
    assert.deepEqual(tempFiles(inbox), []);
    assert.deepEqual(files, served.map((m) => finalName(sha256(expectedFile(anna, m.message)), DEFAULT_SUFFIX)).sort());
    for (const n of files) readWhole(inbox, n);
    // What the server hands out, against what was stored: dot lines as they were; a message
    // without a final newline gets CRLF (POP3 cannot send it otherwise); a bare LF becomes CRLF.
    assert.deepEqual(served[0].message, originals[0]);
    assert.deepEqual(served[1].message, Buffer.concat([originals[1], b('\r\n')]));
    assert.deepEqual(served[2].message, Buffer.concat([originals[2], b('\r\n')]));
    assert.deepEqual(served[3].message, Buffer.concat([asCrlf(originals[3]), b('\r\n')]));
    assert.deepEqual(served[4].message, originals[4]);
    // The sender line comes from Return-Path; a message without one has none.
    assert.ok(fs.readFileSync(path.join(inbox, finalName(sha256(expectedFile(anna, served[0].message)), DEFAULT_SUFFIX)), 'latin1').startsWith('X-REAL-MAILFROM: <dots@example.com>\r\nX-REAL-RCPTTO: <anna@example.org>\r\nReturn-Path:'));

    const session = dovecot.pop3Sessions('anna').find((s) => s.commands.includes('TOP 1 2147483647'));
    assert.ok(session, 'a session fetched every message whole with TOP');
    assert.deepEqual(session.commands.filter((c) => /^(DELE|RSET|RETR)/.test(c)), [], 'no DELE without --delete, and no RETR, which marks messages read');
  });

  it('a second run, over POP3S and logging to -f LOGFILE, fetches nothing: the state knows every UIDL', () => {
    const inbox = path.join(work, 'anna');
    const sessions = dovecot.pop3Sessions('anna').length;
    const logfile = path.join(work, 'pop3.log');
    const r = cli(args(anna, inbox, { tls: 'pop3s', port: dovecot.pop3sPort, extra: ['-f', logfile] }), `${anna.password}\n`);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, '', 'the log went to the file');
    const log = fs.readFileSync(logfile, 'utf8');
    assert.match(log, /: 25 messages, 0 archived, 25 archived before, 0 skipped, 0 deleted, \d+ ms$/m);
    assert.match(log, /summary: anna@127\.0\.0\.1:\d+ mailboxes=1 archived=0 deleted=0 /);
    assert.equal(spoolFiles(inbox).length, 25);
    const mine = dovecot.pop3Sessions('anna').slice(sessions);
    assert.ok(mine.length >= 1 && mine.every((s) => !s.commands.some((c) => /^(RETR|TOP)/.test(c))), JSON.stringify(mine));
  });

  it('SIGKILL in the middle of an import, then a new run: every message in the inbox once, nothing half-written', async () => {
    const filler = Buffer.alloc(200 * 1024, 'z');
    await withClient(dovecot, bob, async (c) => {
      for (let i = 0; i < 60; i++) await append(c, 'INBOX', numbered(i, 'bob', filler));
    });
    const inbox = inboxOf('bob');
    await killAtFirstNewFile(POP3, args(bob, inbox), inbox, `${bob.password}\n`);
    const killed = spoolFiles(inbox).length;
    assert.ok(killed > 0 && killed < 60, `killed with ${killed} files`);
    // The state may lag behind the inbox (it is saved every few hundred messages), never run ahead of it.
    const stateFile = path.join(work, 'bob.state');
    const saved: string[] = fs.existsSync(stateFile) ? JSON.parse(fs.readFileSync(stateFile, 'utf8')).state.uidls : [];
    assert.ok(saved.length <= killed, 'the state names no message that is not on disk');
    const r = cli(args(bob, inbox), `${bob.password}\n`);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(tempFiles(inbox), [], 'the killed run left no temp file behind after the next start');
    const files = spoolFiles(inbox);
    for (const n of files) readWhole(inbox, n);
    assert.deepEqual(files, await expectedNames(dovecot, bob), 'each of the 60 messages once');
  });

  it('--delete removes a message only once its file is on disk: a full inbox stops the run with the rest on the server', async () => {
    const filler = Buffer.alloc(100 * 1024, 'q');
    await withClient(dovecot, carl, async (c) => {
      for (let i = 0; i < 30; i++) await append(c, 'INBOX', numbered(i, 'carl', filler));
    });
    const all = await expectedNames(dovecot, carl);
    const small = mountTmpfs(1024);
    try {
      const full = cli(args(carl, small.dir), `${carl.password}\n`);
      assert.equal(full.code, 74, full.stderr);
      assert.match(full.stderr, /the inbox .* is full/);
      const first = spoolFiles(small.dir);
      assert.ok(first.length > 0 && first.length < 30, `some fit: ${first.length}`);
      assert.equal((await pop3Messages(dovecot, carl)).length, 30, 'without --delete nothing is deleted');

      // Still full: what the first run archived is deleted now, nothing else.
      const again = cli(args(carl, small.dir, { extra: ['--delete'] }), `${carl.password}\n`);
      assert.equal(again.code, 74, again.stderr);
      const onDisk = spoolFiles(small.dir);
      for (const n of onDisk) readWhole(small.dir, n);
      const left = await expectedNames(dovecot, carl);
      assert.equal(left.length, 30 - onDisk.length, `${onDisk.length} on disk, ${left.length} left on the server`);
      assert.deepEqual(left.filter((n) => onDisk.includes(n)), [], 'no message on the server is in the inbox yet');
      assert.deepEqual([...left, ...onDisk].sort(), all);
      assert.deepEqual(tempFiles(small.dir), []);

      execFileSync('mount', ['-o', 'remount,size=16m', small.dir]);
      const rest = cli(args(carl, small.dir, { extra: ['--delete'] }), `${carl.password}\n`);
      assert.equal(rest.code, 0, rest.stderr);
      assert.match(rest.stderr, new RegExp(`: ${30 - onDisk.length} messages, ${30 - onDisk.length} archived, 0 archived before, 0 skipped, ${30 - onDisk.length} deleted, `));
      assert.deepEqual(spoolFiles(small.dir), all);
      assert.equal(await withPop3(dovecot, carl, (c) => c.command('STAT')), '+OK 0 0', 'the mailbox is empty');
    } finally {
      small.unmount();
    }
  });

  it('--delete after a failed file in a batch: every file that is on disk is recorded and deleted, only the failed message stays', async () => {
    await withClient(dovecot, dora, async (c) => {
      for (let i = 0; i < 6; i++) await append(c, 'INBOX', numbered(i, 'dora'));
    });
    const all = await expectedNames(dovecot, dora);
    const inbox = inboxOf('dora');
    const quiet = quietLogger();
    const run = (writer: SpoolWriter) =>
      importPop3({
        server: { host: '127.0.0.1', port: dovecot.pop3Port, tls: 'starttls', ca: fs.readFileSync(dovecot.caFile), timeoutMs: 10_000 },
        user: dora.user, password: Buffer.from(dora.password), who: 'dora@test', log: quiet, deleteArchived: true,
        envelope: new ImportEnvelope(DEFAULT_ENVELOPE_NAMES, [Buffer.from('dora@example.org')], null),
        writer, state: new UidlStateFile(path.join(work, 'dora.state'), 'test', 'dora@test'),
      });
    // The second of the six (one batch, committed side by side) fails; the four after it are durable all the same.
    await assert.rejects(run(new FailingWriter(inbox, 2, 'EIO')), (e: unknown) => e instanceof Pop3ImportError && /EIO \(injected\)/.test(e.message));
    const onDisk = spoolFiles(inbox);
    const left = await expectedNames(dovecot, dora);
    assert.equal(onDisk.length, 5);
    assert.equal(left.length, 1, `${onDisk.length} on disk, ${left.length} left on the server: a durable file was neither recorded nor deleted`);
    assert.deepEqual([...left, ...onDisk].sort(), all);
    const rest = await run(new SpoolWriter(inbox));
    assert.equal(rest.archived, 1);
    assert.deepEqual(spoolFiles(inbox), all);
    assert.equal(await withPop3(dovecot, dora, (c) => c.command('STAT')), '+OK 0 0');
  });

  it('a wrong password: exit 69, named with user@host, the password nowhere', () => {
    const r = cli(args(anna, path.join(work, 'anna')), 'not the password\n');
    assert.equal(r.code, 69, r.stderr);
    assert.match(r.stderr, /error: anna@127\.0\.0\.1:\d+: login refused: /);
    assert.ok(!r.stderr.includes('not the password'));
  });

  it('the server down: exit 75', async () => {
    const port = await freePort();
    const r = cli(args(anna, path.join(work, 'anna'), { port }), `${anna.password}\n`);
    assert.equal(r.code, 75, r.stderr);
    assert.match(r.stderr, /error: anna@127\.0\.0\.1:\d+: .*ECONNREFUSED/);
  });

  it('a certificate the CA file does not vouch for is refused, over STLS and POP3S: nothing fetched, exit 75', () => {
    const inbox = inboxOf('wrong-cert');
    for (const [tls, port] of [['starttls', wrongCert.pop3Port], ['pop3s', wrongCert.pop3sPort]] as const) {
      const r = cli(args(anna, inbox, { tls, port, state: path.join(work, 'wrong.state') }), `${anna.password}\n`);
      assert.equal(r.code, 75, `${tls}: ${r.stderr}`);
      assert.match(r.stderr, /TLS failed: .*(certificate|self.signed)/i);
    }
    assert.deepEqual(spoolFiles(inbox), []);
    assert.deepEqual(wrongCert.pop3Sessions('anna'), [], 'no login happened');
  });

  it('a password given with -p warns and is gone from the process list while the program runs', async () => {
    const { line, cmdline } = await argvAfterFirstLine(POP3, (port) => [
      '-u', 'anna', '-e', 'anna@example.org', '-i', `127.0.0.1:${port}`, '-p', 'Visible?Secret', '--tls', 'none', '--inbox', inboxOf('ps'), '--state', path.join(work, 'ps.state'),
    ]);
    assert.match(line, /warning: a password on the command line can be seen/);
    assert.ok(cmdline.length > 0 && !cmdline.includes('Visible?Secret'), JSON.stringify(cmdline));
  });

  it('a state file of another mailbox is refused in one line; so is every usage mistake (exit 64)', () => {
    const state = path.join(work, 'anna.state');
    const other = cli(args(bob, path.join(work, 'anna'), { state }), `${bob.password}\n`);
    assert.equal(other.code, 64, other.stderr);
    assert.equal(other.stderr.trim().split('\n').length, 1, other.stderr);
    assert.match(other.stderr, /^benno-pop3: the state file .* belongs to benno-pop3 for anna@127\.0\.0\.1, not to benno-pop3 for bob@127\.0\.0\.1/);
    const mistakes: [string[], RegExp][] = [
      [['-i', 'localhost', '-p', '-'], /name the mailbox with -u USER/],
      [['-u', 'anna', '-p', '-'], /name the server with -i HOST/],
      [['-u', 'anna', '-i', 'host:99999', '-p', '-'], /bad -i "host:99999"/],
      [['-u', 'anna', '-i', 'localhost'], /give the password/],
      [['-u', 'anna', '-i', 'localhost', '-p', '-', '--password-file', '/x'], /-p and --password-file cannot be combined/],
      [['-u', 'anna', '-i', 'localhost', '-p', '-'], /give the addresses of anna with -e/],
      [['-u', 'anna', '-i', 'localhost', '-p', '-', '-e', 'not an address'], /bad -e/],
      [['-u', 'anna', '-i', 'localhost', '-p', '-', '--tls', 'imaps'], /Invalid values/],
    ];
    for (const [argv, re] of mistakes) {
      const r = cli(argv, 'pw\n');
      assert.equal(r.code, 64, `${argv.join(' ')}: ${r.stderr}`);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.match(r.stderr, re);
    }
  });

  it('--help answers: what it does, --delete, resuming, the state file, exit codes', () => {
    const r = cli(['--help']);
    assert.equal(r.code, 0);
    for (const text of ['Usage: benno-pop3 -u USER -i HOST[:PORT]', '--delete', 'only after its file is durable', 'resumes', '/var/lib/benno-imap/benno-pop3-USER@HOST.state', '69 the server refused the login', '--tls']) {
      assert.ok(r.stdout.includes(text), `--help mentions ${text}`);
    }
  });
});
