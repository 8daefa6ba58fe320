// benno_imapauth driven the way Benno's web interface drives it (user name
// and password as two lines on stdin, `echo -e "$USER\n$PASS" | …`), against
// a real Dovecot and a real Cyrus: the answer's lines, the password stored
// for benno-imapsync after a good login and left alone after a bad one, a
// user it does not know, servers down or silent, a configuration that names
// the private key, and the module run as the web server's user.

import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { openStore } from '../../src/imap/open-store';
import { decryptPassword, loadPrivateKey } from '../../src/imap/secret';
import { ROOT, runCli } from '../helpers/daemon';
import { removeTree, tempDir } from '../helpers/fs';
import { Cyrus, Dovecot, ImapUser, append, withClient } from '../helpers/imap-servers';
import { freePort } from '../helpers/net';
import { spoolFiles } from '../helpers/spool';

const cli = runCli;
const AUTH = path.join(ROOT, 'dist', 'src', 'cli', 'benno-imapauth.js');
const USER = path.join(ROOT, 'dist', 'src', 'cli', 'benno-imapuser.js');
const SYNC = path.join(ROOT, 'dist', 'src', 'cli', 'benno-imapsync.js');

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** As Benno calls it: bash's echo -e of "$USER\n$PASS" into the module, no arguments but -c. */
function login(config: string, user: string, password: string, options: { uid?: number; gid?: number } = {}): Promise<Result> {
  const started = Date.now();
  return new Promise((resolve) => {
    const p = spawn('bash', ['--norc', '--noprofile', '-c', 'echo -e "$BENNO_USER\\n$BENNO_PASS" | "$NODE" "$AUTH" -c "$CONFIG"'], {
      // The whole environment: Debian's unpacked Node 18 (scripts/test-node18) needs its LD_LIBRARY_PATH.
      env: { ...process.env, BENNO_USER: user, BENNO_PASS: password, NODE: process.execPath, AUTH, CONFIG: config },
      ...options,
    });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.on('close', (code) => resolve({ code, stdout, stderr, ms: Date.now() - started }));
  });
}

const dovecotUsers: ImapUser[] = [
  { user: 'anna', password: 'anna dovecot pw' },
  { user: 'bob', password: 'bob pw' },
];
const cyrusUsers: ImapUser[] = [{ user: 'anna', password: 'anna cyrus pw' }];

describe('benno_imapauth against a real Dovecot and a real Cyrus', () => {
  let work: string;
  let dovecot: Dovecot;
  let cyrus: Cyrus;
  let authConf: string;
  let syncConf: string;
  let database: string;

  const storedPassword = async (user: string, host: string): Promise<Buffer | null> => {
    const store = openStore(`sqlite:${database}`);
    try {
      const [account] = await store.findAccounts(user, host);
      return account.password;
    } finally {
      await store.close();
    }
  };
  const decrypted = async (user: string, host: string): Promise<string> => {
    const blob = await storedPassword(user, host);
    assert.ok(blob, `a password stored for ${user} on ${host}`);
    return decryptPassword(loadPrivateKey(path.join(work, 'key.sec')), { user, host }, blob).toString('utf8');
  };
  const writeAuthConf = (extra: string[] = []) =>
    fs.writeFileSync(authConf, ['[imapauth]', `database = sqlite:${database}`, `pubkey = ${work}/key.pub`, `cafile = ${dovecot.caFile}`, ...extra, ''].join('\n'));

  before(async () => {
    work = tempDir();
    // The web server's user must reach the configuration, the public key and the database.
    fs.chmodSync(work, 0o755);
    database = path.join(work, 'db', 'accounts.db');
    fs.mkdirSync(path.dirname(database));
    [dovecot, cyrus] = await Promise.all([Dovecot.start({ users: dovecotUsers }), Cyrus.start({ users: cyrusUsers })]);
    authConf = path.join(work, 'imapauth.conf');
    syncConf = path.join(work, 'imapsync.conf');
    fs.mkdirSync(path.join(work, 'inbox'));
    fs.writeFileSync(
      syncConf,
      ['[imapsync]', `database = sqlite:${database}`, `pubkey = ${work}/key.pub`, `keyfile = ${work}/key.sec`, `inbox = ${work}/inbox`, `cafile = ${dovecot.caFile}`, ''].join('\n'),
    );
    writeAuthConf();
    assert.equal(cli(USER, ['-c', syncConf, '--genkey']).code, 0);
    const add = (user: string, host: string, extra: string[]) => {
      const r = cli(USER, ['-c', syncConf, '-u', user, '-i', host, ...extra]);
      assert.equal(r.code, 0, r.stderr);
    };
    // No passwords stored: the users have never logged in.
    add('anna', `127.0.0.1:${dovecot.imapPort}`, ['-C', 'AnnaContainer', '-n', 'Anna Ärmel', '-e', 'anna@example.org,info@example.org']);
    add('anna', `localhost:${cyrus.imapPort}`, ['-C', 'CyrusContainer', '-e', 'anna@cyrus.example.org']);
    add('bob', `127.0.0.1:${dovecot.imapPort}`, ['-e', 'bob@example.org']);
  });
  after(async () => {
    await Promise.all([dovecot?.stop(), cyrus?.stop()]);
    removeTree(work);
  });

  it("a good login answers the account's lines and AUTH OK, and stores the password benno-imapsync then uses", async () => {
    const host = `127.0.0.1:${dovecot.imapPort}`;
    assert.equal(await storedPassword('anna', host), null);
    const r = await login(authConf, 'anna', dovecotUsers[0].password);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, ['ARCHIVE AnnaContainer', 'ROLE USER', 'DISPLAYNAME Anna Ärmel', 'MAIL anna@example.org', 'MAIL info@example.org', 'USERID anna', 'AUTH OK', ''].join('\n'));
    assert.equal(await decrypted('anna', host), dovecotUsers[0].password);
    // The point of storing it: the next sync can log in.
    await withClient(dovecot, dovecotUsers[0], (c) => append(c, 'INBOX', Buffer.from('Return-Path: <x@example.com>\r\nSubject: hello\r\n\r\nhi\r\n')));
    const sync = cli(SYNC, ['-c', syncConf, '--lock', path.join(work, 'lock'), '-u', 'anna', '-i', host]);
    assert.equal(sync.code, 0, sync.stderr);
    assert.equal(spoolFiles(path.join(work, 'inbox')).length, 1);
  });

  it('a wrong password: ERROR ERR_AUTH, the stored password left alone, the failure logged without the password', async () => {
    const host = `127.0.0.1:${dovecot.imapPort}`;
    const before = await storedPassword('anna', host);
    const r = await login(authConf, 'anna', 'not the password');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'ERROR ERR_AUTH\n');
    assert.deepEqual(await storedPassword('anna', host), before);
    assert.match(r.stderr, /anna@127\.0\.0\.1:\d+: login refused/);
    assert.ok(!r.stderr.includes('not the password'));
    const empty = await login(authConf, 'bob', '');
    assert.equal(empty.stdout, 'ERROR ERR_AUTH\n');
  });

  it('a user name on two servers: the server that takes the password answers, with its own account (Cyrus)', async () => {
    const r = await login(authConf, 'anna', cyrusUsers[0].password);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, ['ARCHIVE CyrusContainer', 'ROLE USER', 'DISPLAYNAME anna', 'MAIL anna@cyrus.example.org', 'USERID anna', 'AUTH OK', ''].join('\n'));
    assert.equal(await decrypted('anna', `localhost:${cyrus.imapPort}`), cyrusUsers[0].password);
    // The Dovecot account keeps its own password.
    assert.equal(await decrypted('anna', `127.0.0.1:${dovecot.imapPort}`), dovecotUsers[0].password);
  });

  it('a user it does not know: no output, exit 0, so Benno asks the next module', async () => {
    const r = await login(authConf, 'nobody-here', 'x');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, '');
  });

  it('run as the web server\'s user (www-data) with the database group-writable: the password is stored, the file keeps its group and mode', async () => {
    const www = spawnSync('id', ['-u', 'www-data'], { encoding: 'utf8' });
    const uid = Number(www.stdout.trim());
    const gid = Number(spawnSync('id', ['-g', 'www-data'], { encoding: 'utf8' }).stdout.trim());
    assert.ok(uid > 0, 'www-data exists');
    const dir = path.dirname(database);
    fs.chownSync(dir, 0, gid);
    fs.chmodSync(dir, 0o2770);
    fs.chownSync(database, 0, gid);
    fs.chmodSync(database, 0o660);
    const r = await login(authConf, 'bob', dovecotUsers[1].password, { uid, gid });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /AUTH OK\n$/, r.stderr);
    assert.equal(r.stderr, '');
    assert.equal(await decrypted('bob', `127.0.0.1:${dovecot.imapPort}`), dovecotUsers[1].password);
    const st = fs.statSync(database);
    // The owner becomes www-data (only root may give a file away); group and mode stay, so root and the sync job (in that group) keep their access.
    assert.deepEqual([st.gid, st.mode & 0o777], [gid, 0o660]);
  });

  it('a server that is down, or silent: ERROR ERR_IMAP_UNAVAILABLE within the timeout', async () => {
    const down = await freePort();
    // Accepts and says nothing: the web page must not wait for it.
    const silent = net.createServer(() => undefined);
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const silentPort = (silent.address() as net.AddressInfo).port;
    writeAuthConf(['timeout = 2']);
    try {
      assert.equal(cli(USER, ['-c', syncConf, '-u', 'carl', '-i', `127.0.0.1:${down}`, '-e', 'carl@example.org']).code, 0);
      assert.equal(cli(USER, ['-c', syncConf, '-u', 'dora', '-i', `127.0.0.1:${silentPort}`, '-e', 'dora@example.org']).code, 0);
      const r = await login(authConf, 'carl', 'pw');
      assert.equal(r.stdout, 'ERROR ERR_IMAP_UNAVAILABLE\n');
      assert.match(r.stderr, /carl@127\.0\.0\.1:\d+: ECONNREFUSED/);
      const s = await login(authConf, 'dora', 'pw');
      assert.equal(s.stdout, 'ERROR ERR_IMAP_UNAVAILABLE\n');
      // timeout = 2 in the configuration: the answer within it and its two seconds of grace.
      assert.ok(s.ms < 6000, `answered in ${s.ms} ms`);
      assert.equal(await storedPassword('dora', `127.0.0.1:${silentPort}`), null);
    } finally {
      silent.close();
      writeAuthConf();
    }
  });

  it('a configuration that names the private key, or an unknown key: ERROR ERR_CONFIG, one line naming file and line, exit 78', async () => {
    try {
      writeAuthConf([`keyfile = ${work}/key.sec`]);
      const r = await login(authConf, 'anna', 'x');
      assert.equal(r.code, 78);
      assert.equal(r.stdout, 'ERROR ERR_CONFIG\n');
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.match(r.stderr, /imapauth\.conf, line 5: .*must not name the private key/);
      writeAuthConf(['inbox = /srv/benno/inbox']);
      const u = await login(authConf, 'anna', 'x');
      assert.equal(u.code, 78);
      assert.match(u.stderr, /imapauth\.conf, line 5: .*inbox/);
    } finally {
      writeAuthConf();
    }
  });

  it('an account whose name another tool wrote with a line break in it: ERROR ERR_ACCOUNT, no forged line', async () => {
    execFileSync('sqlite3', [database, "UPDATE imapuser SET name = 'Bob' || char(10) || 'ROLE ADMIN' WHERE user = 'bob'"]);
    const r = await login(authConf, 'bob', dovecotUsers[1].password);
    assert.equal(r.stdout, 'ERROR ERR_ACCOUNT\n');
    assert.match(r.stderr, /bob on 127\.0\.0\.1:\d+: an unsafe character .*benno-imapuser/);
  });

  it('input that is not a user and a password: ERROR ERR_INPUT, exit 65', () => {
    const r = spawnSync(process.execPath, [AUTH, '-c', authConf], { input: Buffer.alloc(100_000, 'a'), encoding: 'utf8' });
    assert.equal(r.status, 65);
    assert.equal(r.stdout, 'ERROR ERR_INPUT\n');
    const nothing = spawnSync(process.execPath, [AUTH, '-c', authConf], { input: '', encoding: 'utf8' });
    assert.equal(nothing.stdout, 'ERROR ERR_INPUT\n');
  });
});
