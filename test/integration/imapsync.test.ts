// benno-imapsync as cron runs it, against a real Dovecot: accounts added
// with benno-imapuser, one of three with a wrong password, the private key
// from keyfile or from stdin, a key of the wrong kind, a run that finds
// another one going, SIGKILL in the middle of a sync (on both servers), the
// server down, syslog.

import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { withFileLock } from '../../src/imap/file-lock';
import { parseEnvelope } from '../../src/spool/format';
import { ROOT, runCli, runCliAsync } from '../helpers/daemon';
import { mountTmpfs, removeTree, tempDir } from '../helpers/fs';
import { Cyrus, Dovecot, ImapUser, append, withClient } from '../helpers/imap-servers';
import { killAtFirstNewFile, readWhole, spoolFiles, tempFiles } from '../helpers/spool';

const cli = runCli;
const SYNC = path.join(ROOT, 'dist', 'src', 'cli', 'benno-imapsync.js');
const USER = path.join(ROOT, 'dist', 'src', 'cli', 'benno-imapuser.js');

const users: ImapUser[] = [
  { user: 'anna', password: 'anna pw' },
  { user: 'bob', password: 'bob pw' },
  { user: 'carl', password: 'carl pw' },
];

const message = (i: number, who: string) =>
  Buffer.from(`Return-Path: <sender${i}@example.com>\r\nFrom: sender${i}@example.com\r\nTo: ${who}@example.org\r\nSubject: message ${i} for ${who}\r\n\r\nbody ${i}\r\n`);

/**
 * Sixty new messages for one user; benno-imapsync is SIGKILLed once the first
 * of them is on disk, and a new run must leave each of them in the inbox once,
 * whole, with no temp file left behind.
 */
async function killMidSyncThenRerun(server: Dovecot | Cyrus, who: ImapUser, run: { config: string; inbox: string; lock: string }): Promise<void> {
  const { config, inbox, lock } = run;
  const before = spoolFiles(inbox).length;
  const big = Buffer.alloc(200 * 1024, 'x');
  await withClient(server, who, async (c) => {
    for (let i = 100; i < 160; i++) await append(c, 'INBOX', Buffer.concat([message(i, who.user), big, Buffer.from('\r\n')]));
  });
  await killAtFirstNewFile(SYNC, ['-c', config, '--lock', lock, '-u', who.user], inbox);
  const r = cli(SYNC, ['-c', config, '--lock', lock, '-u', who.user]);
  assert.equal(r.code, 0, r.stderr);
  const files = spoolFiles(inbox);
  assert.equal(files.length, before + 60, 'each of the 60 messages once');
  for (const n of files) readWhole(inbox, n);
  assert.deepEqual(tempFiles(inbox), [], 'the killed run left no temp file behind after the next start');
}

describe('benno-imapsync against a real Dovecot', () => {
  let work: string;
  let dovecot: Dovecot;
  let config: string;
  let inbox: string;
  let lock: string;

  /** The configuration, with the private key in keyfile or (stdin) not. */
  const writeConfig = (keyfile: boolean) =>
    fs.writeFileSync(
      config,
      [
        '[imapsync]',
        `database = sqlite:${work}/accounts.db`,
        `pubkey = ${work}/key.pub`,
        keyfile ? `keyfile = ${work}/key.sec` : '; keyfile commented out: the key comes on stdin',
        `inbox = ${inbox}`,
        'tls = starttls',
        `port = ${dovecot.imapPort}`,
        `cafile = ${dovecot.caFile}`,
        'timeout = 10',
        '',
      ].join('\n'),
    );
  const sync = (extra: string[] = [], input = '') => cli(SYNC, ['-c', config, '--lock', lock, ...extra], input);

  before(async () => {
    work = tempDir();
    inbox = path.join(work, 'inbox');
    fs.mkdirSync(inbox);
    lock = path.join(work, 'sync.lock');
    config = path.join(work, 'imapsync.conf');
    dovecot = await Dovecot.start({ users });
    writeConfig(true);
    assert.equal(cli(USER, ['-c', config, '--genkey']).code, 0);
    for (const u of users) {
      const password = u.user === 'carl' ? 'wrong password' : u.password;
      const r = cli(USER, ['-c', config, '-u', u.user, '-i', '127.0.0.1', '-e', `${u.user}@example.org`, '-p', '-'], `${password}\n`);
      assert.equal(r.code, 0, r.stderr);
    }
    for (const u of users) await withClient(dovecot, u, async (c) => {
      for (let i = 1; i <= 3; i++) await append(c, 'INBOX', message(i, u.user));
    });
  });
  after(async () => {
    await dovecot?.stop();
    removeTree(work);
  });

  it('archives every account it can; the one with a wrong password is logged with user@host, no password, exit 69', () => {
    const r = sync();
    assert.equal(r.code, 69, r.stderr);
    assert.match(r.stderr, /error: carl@127\.0\.0\.1: /);
    assert.ok(!r.stderr.includes('wrong password') && !r.stderr.includes('anna pw'), 'no password in the log');
    assert.match(r.stderr, /info: summary: accounts=3 failed=1 archived=6 /);
    const files = spoolFiles(inbox);
    assert.equal(files.length, 6);
    const owners = files.map((n) => parseEnvelope(readWhole(inbox, n))!.recipients.map(String)[0]).sort();
    assert.deepEqual(owners, ['anna@example.org', 'anna@example.org', 'anna@example.org', 'bob@example.org', 'bob@example.org', 'bob@example.org']);
    const status = cli(SYNC, ['-c', config, '--status']);
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, /^anna on 127\.0\.0\.1: last run \S+, archived 3, no error$/m);
    assert.match(status.stdout, /^carl on 127\.0\.0\.1: last run \S+, archived 0, error: carl@127\.0\.0\.1: /m);
  });

  it('a second run archives only what is new; the right password makes carl go through', async () => {
    await withClient(dovecot, users[0], (c) => append(c, 'INBOX', message(4, 'anna')));
    assert.equal(cli(USER, ['-c', config, '-u', 'carl', '-i', '127.0.0.1', '-p', '-'], 'carl pw\n').code, 0);
    const r = sync();
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /summary: accounts=3 failed=0 archived=4 /);
    assert.equal(spoolFiles(inbox).length, 10);
  });

  it('--syslog sends every line to syslog, facility mail, tagged with the program and its pid; nothing on stderr', async () => {
    await withClient(dovecot, users[1], (c) => append(c, 'INBOX', message(5, 'bob')));
    const socket = path.join(work, 'log.sock');
    // A syslog socket of our own: a unix datagram server, one datagram per line on stdout.
    const server = spawn('python3', ['-c', [
      'import socket, sys',
      's = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)',
      `s.bind(${JSON.stringify(socket)})`,
      'print("ready", flush=True)',
      'while True:',
      '    print(s.recv(65536).decode("utf-8", "replace"), flush=True)',
    ].join('\n')], { stdio: ['ignore', 'pipe', 'inherit'] });
    let received = '';
    server.stdout.on('data', (d) => (received += d));
    try {
      await new Promise<void>((resolve) => server.stdout.once('data', () => resolve()));
      const r = await runCliAsync(SYNC, ['-c', config, '--lock', lock, '--syslog', socket]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stderr, '');
      // The summary is the run's last line; when the program has exited, logger(1) has sent it.
      const lines = received.split('\n').filter((l) => l.startsWith('<'));
      // <22> is facility mail (2) × 8 + info (6).
      const summary = lines.find((l) => l.includes('summary: accounts=3 failed=0 archived=1 '));
      assert.ok(summary, received);
      assert.match(summary, new RegExp(`^<22>.* benno-imapsync\\[${r.pid}\\]: summary: `));
      assert.ok(lines.some((l) => /^<22>.*bob@127\.0\.0\.1.*INBOX/.test(l)), received);
    } finally {
      server.kill();
    }
    const both = cli(SYNC, ['-c', config, '-f', path.join(work, 'x.log'), '--syslog']);
    assert.equal(both.code, 64);
    assert.match(both.stderr, /^benno-imapsync: -f LOGFILE and --syslog: choose one/);
    const nowhere = cli(SYNC, ['-c', config, '--lock', lock, '-f', path.join(work, 'no-such-dir', 'x.log')]);
    assert.equal(nowhere.code, 73, nowhere.stderr);
    assert.equal(nowhere.stderr.trim().split('\n').length, 1, nowhere.stderr);
    assert.match(nowhere.stderr, /^benno-imapsync: cannot open the log file .*x\.log: ENOENT/);
  });

  it('the private key from stdin when keyfile is commented out; a key of the wrong kind is one line, exit 78', () => {
    writeConfig(false);
    try {
      const key = fs.readFileSync(path.join(work, 'key.sec'), 'utf8');
      const r = sync([], key);
      assert.equal(r.code, 0, r.stderr);
      const rsa = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
      const wrong = sync([], rsa);
      assert.equal(wrong.code, 78, wrong.stderr);
      assert.equal(wrong.stderr.trim().split('\n').length, 1, wrong.stderr);
      assert.match(wrong.stderr, /^benno-imapsync: the key on stdin .*X25519/);
      assert.ok(!wrong.stderr.includes('PRIVATE KEY'));
    } finally {
      writeConfig(true);
    }
  });

  it('a run that finds another one going logs "already running" and exits 0', async () => {
    await withFileLock(lock, async () => {
      const r = await runCliAsync(SYNC, ['-c', config, '--lock', lock]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /already running/);
      assert.doesNotMatch(r.stderr, /summary:/);
    });
  });

  it('SIGKILL in the middle of a sync, then a new run: every message in the inbox once, nothing half-written', () =>
    killMidSyncThenRerun(dovecot, users[1], { config, inbox, lock }));

  it('an inbox on a full disk stops the run (exit 74) with whole files only; once there is room, the next run brings the rest', async () => {
    const carl = users[2];
    await withClient(dovecot, carl, async (c) => {
      for (let i = 200; i < 230; i++) await append(c, 'INBOX', Buffer.concat([message(i, 'carl'), Buffer.alloc(100 * 1024, 'y'), Buffer.from('\r\n')]));
    });
    const small = mountTmpfs(1024);
    try {
      const fullConfig = path.join(work, 'full.conf');
      fs.writeFileSync(fullConfig, fs.readFileSync(config, 'utf8').replace(`inbox = ${inbox}`, `inbox = ${small.dir}`));
      const r = cli(SYNC, ['-c', fullConfig, '--lock', lock, '-u', 'carl']);
      assert.equal(r.code, 74, r.stderr);
      assert.match(r.stderr, /the inbox .* is full: the run stops/);
      const first = spoolFiles(small.dir);
      assert.ok(first.length > 0 && first.length < 33, `some files fit: ${first.length}`);
      for (const n of first) readWhole(small.dir, n);
      assert.deepEqual(tempFiles(small.dir), [], 'no temp file left');
      execFileSync('mount', ['-o', 'remount,size=16m', small.dir]);
      const again = cli(SYNC, ['-c', fullConfig, '--lock', lock, '-u', 'carl']);
      assert.equal(again.code, 0, again.stderr);
      const all = spoolFiles(small.dir);
      assert.ok(all.length >= 30, `every new message of carl is archived: ${all.length}`);
      for (const n of all) readWhole(small.dir, n);
      assert.ok(first.every((n) => all.includes(n)));
    } finally {
      small.unmount();
    }
  });

  it('on a terminal, a large sync draws a progress bar per folder, ending on its own line', async () => {
    await withClient(dovecot, users[0], async (c) => {
      for (let i = 300; i < 450; i++) await append(c, 'INBOX', message(i, 'anna'));
    });
    const command = [process.execPath, SYNC, '-c', config, '--lock', lock, '-u', 'anna'].map((w) => `'${w}'`).join(' ');
    // script(1) gives the program a terminal; its output is what the terminal showed.
    const r = spawnSync('script', ['-q', '-e', '-c', command, '/dev/null'], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stdout);
    assert.match(r.stdout, /\rINBOX \[=+\] 150\/150\r?\n/);
    assert.match(r.stdout, /\r?\n[^\r\n]*folder "INBOX": synced, 150 archived/);
  });

  it('--list-folders shows what would be synced and what is excluded, and why', async () => {
    await withClient(dovecot, users[0], async (c) => {
      await c.mailboxCreate('Drafts');
      await c.mailboxCreate('Projekte');
    });
    const r = sync(['--list-folders', '-u', 'anna', '-i', '127.0.0.1']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^synced {4}INBOX$/m);
    assert.match(r.stdout, /^synced {4}Projekte$/m);
    assert.match(r.stdout, /^excluded {2}Drafts {2}\(.+\)$/m);
  });

  it('the server down: the accounts are deferred, exit 75', async () => {
    await dovecot.stop();
    const r = sync();
    assert.equal(r.code, 75, r.stderr);
    assert.match(r.stderr, /summary: accounts=3 failed=3 archived=0 /);
  });
});

describe('benno-imapsync against a real Cyrus, and a server certificate not from the CA', () => {
  let work: string;
  let cyrus: Cyrus;
  let wrongCert: Cyrus;
  before(async () => {
    work = tempDir();
    cyrus = await Cyrus.start({ users, separator: '/' });
    wrongCert = await Cyrus.start({ users, certificate: 'wrong' });
  });
  after(async () => {
    await cyrus?.stop();
    await wrongCert?.stop();
    removeTree(work);
  });

  /** A configuration for one server, the accounts added, anna with a wrong password. */
  const setUp = (name: string, server: Cyrus, fresh = true) => {
    const dir = path.join(work, name);
    const inbox = path.join(dir, 'inbox');
    if (!fresh) return { config: path.join(dir, 'imapsync.conf'), inbox, lock: path.join(dir, 'lock') };
    fs.mkdirSync(inbox, { recursive: true });
    const config = path.join(dir, 'imapsync.conf');
    fs.writeFileSync(
      config,
      ['[imapsync]', `database = sqlite:${dir}/accounts.db`, `pubkey = ${dir}/key.pub`, `keyfile = ${dir}/key.sec`, `inbox = ${dir}/inbox`, `port = ${server.imapPort}`, `cafile = ${server.caFile}`, ''].join('\n'),
    );
    assert.equal(cli(USER, ['-c', config, '--genkey']).code, 0);
    for (const u of users) {
      const r = cli(USER, ['-c', config, '-u', u.user, '-i', '127.0.0.1', '-e', `${u.user}@example.org`, '-p', '-'], `${u.user === 'anna' ? 'wrong' : u.password}\n`);
      assert.equal(r.code, 0, r.stderr);
    }
    return { config, inbox, lock: path.join(dir, 'lock') };
  };

  it("archives Cyrus mailboxes; a wrong password is that account's failure only (exit 69)", async () => {
    const { config, inbox, lock } = setUp('cyrus', cyrus);
    for (const u of users) await withClient(cyrus, u, (c) => append(c, 'INBOX', message(1, u.user)));
    const r = cli(SYNC, ['-c', config, '--lock', lock]);
    assert.equal(r.code, 69, r.stderr);
    assert.match(r.stderr, /error: anna@127\.0\.0\.1: /);
    assert.match(r.stderr, /summary: accounts=3 failed=1 archived=2 /);
    assert.equal(spoolFiles(inbox).length, 2);
  });

  it('SIGKILL in the middle of a Cyrus sync, then a new run: every message in the inbox once, nothing half-written', async () => {
    const { config, inbox, lock } = setUp('cyrus', cyrus, false);
    await killMidSyncThenRerun(cyrus, users[1], { config, inbox, lock });
  });

  it('a certificate the CA file does not vouch for is refused: nothing fetched, the accounts deferred (exit 75)', () => {
    const { config, inbox, lock } = setUp('wrong-cert', wrongCert);
    const r = cli(SYNC, ['-c', config, '--lock', lock]);
    assert.equal(r.code, 75, r.stderr);
    assert.match(r.stderr, /error: bob@127\.0\.0\.1: .*(certificate|TLS)/i);
    assert.deepEqual(spoolFiles(inbox), []);
  });
});
