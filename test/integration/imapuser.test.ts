// benno-imapuser as an administrator uses it, on an SQLite file and on a
// real MariaDB: keys, add, update, password change, list (pasted back),
// delete, and one clear line with a sysexits code for each mistake.

import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { withFileLock } from '../../src/imap/file-lock';
import { openStore } from '../../src/imap/open-store';
import { decryptPassword, loadPrivateKey } from '../../src/imap/secret';
import { ROOT } from '../helpers/daemon';
import { removeTree, tempDir } from '../helpers/fs';
import { MariaDb, startMariaDb } from '../helpers/mariadb';

const BIN = path.join(ROOT, 'dist', 'src', 'cli', 'benno-imapuser.js');

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

function imapuser(config: string, args: string[], input?: string): Result {
  const r = spawnSync(process.execPath, [BIN, '-c', config, ...args], { input: input ?? '', encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A configuration in dir; database: its database line. */
function configIn(dir: string, database: string, extra = ''): string {
  const file = path.join(dir, 'imapsync.conf');
  fs.writeFileSync(file, `[imapsync]\n${database}\npubkey = ${dir}/benno-imap.pub\nkeyfile = ${dir}/benno-imap.sec\ncontainer = Firma\n${extra}`);
  return file;
}

function ok(r: Result): string {
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.trim();
}

/** The round trip every database must pass. */
function accountRoundTrip(setUp: () => Promise<{ dir: string; config: string; url: string; dbPassword?: string }>): void {
  let dir: string;
  let config: string;
  let url: string;
  let dbPassword: string | undefined;
  before(async () => ({ dir, config, url, dbPassword } = await setUp()));

  const stored = async (user: string, host: string) => {
    const store = openStore(url, { password: dbPassword });
    try {
      const [account] = await store.findAccounts(user, host);
      return account;
    } finally {
      await store.close();
    }
  };

  it('--genkey writes the pair (public 0644, private 0600) and never over an existing one (exit 73)', () => {
    assert.match(ok(imapuser(config, ['--genkey'])), /^wrote the public key .*benno-imap\.pub and the private key .*benno-imap\.sec$/);
    assert.equal(fs.statSync(path.join(dir, 'benno-imap.pub')).mode & 0o777, 0o644);
    assert.equal(fs.statSync(path.join(dir, 'benno-imap.sec')).mode & 0o777, 0o600);
    const before = fs.readFileSync(path.join(dir, 'benno-imap.sec'));
    const again = imapuser(config, ['--genkey']);
    assert.equal(again.code, 73);
    assert.match(again.stderr, /^benno-imapuser: .*benno-imap\.pub already exists; a key is never overwritten/);
    assert.deepEqual(fs.readFileSync(path.join(dir, 'benno-imap.sec')), before);
  });

  it('adds an account with the password from stdin, encrypted for that user and host only; defaults from the configuration', async () => {
    assert.equal(ok(imapuser(config, ['-u', 'anna@example.org', '-i', 'imap.example.org', '-n', 'Anna Ärger', '-p', '-'], 'Pass wört\n')), 'added anna@example.org on imap.example.org, password stored');
    const account = await stored('anna@example.org', 'imap.example.org');
    assert.equal(account.container, 'Firma');
    assert.equal(account.emails, 'anna@example.org', 'the user name is the address when -e is not given');
    assert.equal(account.name, 'Anna Ärger');
    const key = loadPrivateKey(path.join(dir, 'benno-imap.sec'));
    assert.equal(decryptPassword(key, { user: 'anna@example.org', host: 'imap.example.org' }, account.password!).toString('utf8'), 'Pass wört');
    assert.throws(() => decryptPassword(key, { user: 'anna@example.org', host: 'other.example.org' }, account.password!));
    assert.ok(!account.password!.includes(Buffer.from('Pass wört')), 'not stored in clear');
  });

  it('updates keep what is not given; -p PASSWORD warns; --password-file reads the first line', async () => {
    const warned = imapuser(config, ['-u', 'anna@example.org', '-i', 'imap.example.org', '-e', 'anna@example.org,info@example.org', '-p', 'on the line']);
    assert.equal(ok(warned), 'updated anna@example.org on imap.example.org, password stored');
    assert.match(warned.stderr, /^benno-imapuser: warning: a password on the command line can be seen by other local users \(ps, shell history\); use -p - or --password-file\n$/);
    const file = path.join(dir, 'pw');
    fs.writeFileSync(file, 'from the file\nsecond line\n', { mode: 0o600 });
    assert.equal(ok(imapuser(config, ['-u', 'anna@example.org', '--password-file', file])), 'password of anna@example.org on imap.example.org changed');
    const account = await stored('anna@example.org', 'imap.example.org');
    assert.equal(account.name, 'Anna Ärger');
    assert.equal(account.emails, 'anna@example.org,info@example.org');
    const key = loadPrivateKey(path.join(dir, 'benno-imap.sec'));
    assert.equal(decryptPassword(key, account, account.password!).toString(), 'from the file');
  });

  it('-l prints command lines that, pasted back, give the same accounts', async () => {
    ok(imapuser(config, ['-u', 'bob', '-i', 'imap2.example.org:993', '-C', 'Other', '-e', 'bob@example.org', '--gateway', 'mx1']));
    ok(imapuser(config, ['-u', 'anna@example.org', '-i', 'imap2.example.org', '-n', "O'Neil"]));
    const listed = ok(imapuser(config, ['-l']));
    assert.deepEqual(listed.split('\n'), [
      "benno-imapuser -u anna@example.org -i imap.example.org -C Firma -n 'Anna Ärger' -e anna@example.org,info@example.org",
      `benno-imapuser -u anna@example.org -i imap2.example.org -C Firma -n 'O'\\''Neil' -e anna@example.org   # no password yet`,
      'benno-imapuser -u bob -i imap2.example.org:993 -C Other -e bob@example.org --gateway mx1   # no password yet',
    ]);
    for (const [u, i] of [['anna@example.org', 'imap.example.org'], ['anna@example.org', 'imap2.example.org'], ['bob', 'imap2.example.org:993']]) {
      assert.equal(ok(imapuser(config, ['-D', '-u', u, '-i', i])), `deleted ${u} on ${i}`);
    }
    assert.equal(ok(imapuser(config, ['-l'])), '# no accounts');
    for (const line of listed.split('\n')) {
      const r = spawnSync('sh', ['-c', `${line.replace(/^benno-imapuser/, `"${process.execPath}" "${BIN}" -c "${config}"`)}`], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
    }
    assert.equal(ok(imapuser(config, ['-l'])), listed.replace(/^(.*imap\.example\.org .*)$/m, '$1   # no password yet'));
  });

  it('mistakes: one line, a sysexits code, the password never in it', () => {
    const cases: [string[], number, RegExp][] = [
      [['-D', '-u', 'bob'], 64, /^benno-imapuser: -D needs -u USER and -i HOST: a user name may exist on several servers \(try --help\)$/],
      [['-D', '-u', 'nobody', '-i', 'imap.example.org'], 67, /^benno-imapuser: no account nobody on imap\.example\.org$/],
      [['-u', 'anna@example.org', '-p', 'S3cret!'], 64, /^benno-imapuser: anna@example\.org has accounts on imap\.example\.org, imap2\.example\.org: name one with -i$/],
      [['-u', 'carl', '-i', 'imap.example.org'], 64, /^benno-imapuser: give the addresses of carl with -e/],
      [['-u', 'carl', '-i', 'bad host', '-e', 'c@x.org'], 64, /^benno-imapuser: bad -i "bad host"/],
      [['-u', 'carl', '-i', 'h', '-e', 'c@x.org,'], 64, /^benno-imapuser: bad -e "c@x\.org,"/],
      [['-u', 'carl', '-i', 'h', '-e', 'c\u202e@x.org'], 64, /^benno-imapuser: bad -e .*U\+202E/],
      [['-u', 'carl', '-i', 'h', '-e', 'c@x.org', '-C', '../etc'], 64, /^benno-imapuser: bad -C "\.\.\/etc"/],
      [['-l', '--genkey'], 64, /^benno-imapuser: -l and --genkey cannot be combined/],
    ];
    for (const [args, code, re] of cases) {
      const r = imapuser(config, args);
      assert.equal(r.code, code, `${args.join(' ')}: ${r.stderr}`);
      const lines = r.stderr.trim().split('\n').filter((l) => !/warning: a password on the command line/.test(l));
      assert.equal(lines.length, 1, r.stderr);
      assert.match(lines[0], re);
      assert.ok(!r.stderr.includes('S3cret!'));
    }
  });

  it('-p PASSWORD does not stay in the process list while the program runs', async () => {
    if (!url.startsWith('sqlite:')) return; // the lock file below is the SQLite store's
    const db = url.slice('sqlite:'.length);
    // Holding the database's lock keeps benno-imapuser waiting, long enough to look at it.
    await withFileLock(`${db}.lock`, async () => {
      const p = spawn(process.execPath, [BIN, '-c', config, '-u', 'erin@example.org', '-i', 'imap.example.org', '-p', 'Visible?Secret'], { stdio: ['ignore', 'pipe', 'pipe'] });
      const exited = new Promise((resolve) => p.on('close', resolve));
      let seen = '';
      // Until the warning is printed, the arguments may still be there.
      await new Promise<void>((resolve) => p.stderr.once('data', () => resolve()));
      for (let i = 0; i < 20; i++) {
        seen += fs.readFileSync(`/proc/${p.pid}/cmdline`, 'latin1');
        await new Promise((r) => setTimeout(r, 10));
      }
      p.kill();
      await exited;
      assert.ok(seen.length > 0);
      assert.ok(!seen.includes('Visible?Secret'), `cmdline: ${JSON.stringify(seen.slice(0, 200))}`);
    });
  });

  it('a configuration naming a missing public key: exit 78 before the database is touched', () => {
    fs.renameSync(path.join(dir, 'benno-imap.pub'), path.join(dir, 'moved.pub'));
    try {
      const r = imapuser(config, ['-u', 'dora@example.org', '-i', 'imap.example.org', '-p', '-'], 'pw\n');
      assert.equal(r.code, 78, r.stderr);
      assert.match(r.stderr, /benno-imap\.pub/);
    } finally {
      fs.renameSync(path.join(dir, 'moved.pub'), path.join(dir, 'benno-imap.pub'));
    }
  });
}

describe('benno-imapuser on an SQLite file', () => {
  const dir = tempDir();
  after(() => removeTree(dir));
  accountRoundTrip(async () => {
    const url = `sqlite:${dir}/benno-imap.db`;
    return { dir, config: configIn(dir, `database = ${url}`), url };
  });
});

describe('benno-imapuser on MariaDB', () => {
  const dir = tempDir();
  let db: MariaDb;
  after(async () => {
    await db?.stop();
    removeTree(dir);
  });
  accountRoundTrip(async () => {
    db = await startMariaDb();
    const url = await db.freshDatabase();
    fs.writeFileSync(path.join(dir, 'mysql.secret'), `${db.password}\n`, { mode: 0o600 });
    const config = configIn(dir, `database = ${url}`, `database_password_file = ${dir}/mysql.secret\n`);
    const missing = imapuser(config, ['-l']);
    assert.equal(missing.code, 69, 'no tables yet');
    assert.match(missing.stderr, /--init-db/);
    assert.equal(ok(imapuser(config, ['--init-db'])), 'tables ready in the mysql database');
    return { dir, config, url, dbPassword: db.password };
  });
});
