// benno-imapsync --verify (issue 14) against a real Dovecot and a real Cyrus,
// with the accounts in an SQLite file and in a real MariaDB: a complete
// mailbox reports nothing but what the exclude list leaves out; a UID whose
// import failed and a record removed from the database are each reported
// with exit 1; the server sees only reading commands and the database is
// not written. A database made by the old schema (no records) is upgraded,
// and the mail archived before the upgrade is not taken for gaps.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import mysql from 'mysql2/promise';
import type { Logger } from '../../src/ops/log';
import { openStore } from '../../src/imap/open-store';
import { syncAccount } from '../../src/imap/sync';
import type { AccountVerification } from '../../src/imap/verify';
import { ROOT, runCli, sha256 } from '../helpers/daemon';
import { removeTree, tempDir } from '../helpers/fs';
import { Cyrus, Dovecot, ImapServer, ImapUser, append, createFolder, fetchCommands, folderStatus, withClient, writingCommand } from '../helpers/imap-servers';
import { MariaDb, startMariaDb } from '../helpers/mariadb';
import { FailingWriter } from '../helpers/spool';

const SYNC = path.join(ROOT, 'dist', 'src', 'cli', 'benno-imapsync.js');
const USER = path.join(ROOT, 'dist', 'src', 'cli', 'benno-imapuser.js');

const users: ImapUser[] = ['vera', 'walt', 'xena'].map((user) => ({ user, password: `${user} pw` }));
const [vera, walt, xena] = users;

const message = (n: number) => Buffer.from(`Return-Path: <s${n}@example.com>\r\nFrom: s${n}@example.com\r\nSubject: verify ${n}\r\n\r\nbody ${n}\r\n`);

type Report = { complete: boolean; totals: Record<string, number>; accounts: (AccountVerification & { error?: string })[] };

/** A configuration, keys and the accounts in dir; database is the `database =` value. */
function setUp(dir: string, server: ImapServer, database: string, extra: string[] = []): string {
  fs.mkdirSync(path.join(dir, 'inbox'), { recursive: true });
  const config = path.join(dir, 'imapsync.conf');
  fs.writeFileSync(
    config,
    ['[imapsync]', `database = ${database}`, `pubkey = ${dir}/key.pub`, `keyfile = ${dir}/key.sec`, `inbox = ${dir}/inbox`, 'tls = starttls', `port = ${server.imapPort}`, `cafile = ${server.caFile}`, 'timeout = 20', ...extra, ''].join('\n'),
  );
  if (!fs.existsSync(path.join(dir, 'key.pub'))) assert.equal(runCli(USER, ['-c', config, '--genkey']).code, 0);
  return config;
}

function addAccount(config: string, u: ImapUser): void {
  const r = runCli(USER, ['-c', config, '-u', u.user, '-i', '127.0.0.1', '-e', `${u.user}@example.org`, '-p', '-'], `${u.password}\n`);
  assert.equal(r.code, 0, r.stderr);
}

function sync(config: string, ...args: string[]): void {
  const r = runCli(SYNC, ['-c', config, '--lock', `${config}.lock`, ...args]);
  assert.equal(r.code, 0, r.stderr);
}

/** --verify --json, and the plain report of the same state. */
function verify(config: string, ...args: string[]): { code: number | null; report: Report; text: string; stderr: string } {
  const json = runCli(SYNC, ['-c', config, '--verify', '--json', ...args]);
  const text = runCli(SYNC, ['-c', config, '--verify', ...args]);
  assert.equal(text.code, json.code, `the same verdict with and without --json: ${text.stderr}`);
  let report: Report;
  try {
    report = JSON.parse(json.stdout) as Report;
  } catch {
    assert.fail(`--json printed no JSON (exit ${json.code}): ${json.stdout}${json.stderr}`);
  }
  return { code: json.code, report, text: text.stdout, stderr: json.stderr };
}

function account(report: Report, user: string) {
  const a = report.accounts.find((x) => x.account.startsWith(`${user}@`));
  assert.ok(a, `${user} in ${report.accounts.map((x) => x.account).join(', ')}`);
  return a;
}

function folderOf(a: AccountVerification, name: RegExp) {
  const f = a.folders.find((x) => name.test(x.folder));
  assert.ok(f, `${name} in ${a.folders.map((x) => x.folder).join(', ')}`);
  return f;
}

function sqlite3(file: string, sql: string): string {
  return execFileSync('sqlite3', [file, sql], { encoding: 'utf8' }).trim();
}

const quiet = { error() {}, warn() {}, info() {}, debug() {} } as unknown as Logger;

const kinds: { name: string; start: () => Promise<ImapServer> }[] = [
  { name: 'Dovecot', start: () => Dovecot.start({ users }) },
  { name: "Cyrus with '/'", start: () => Cyrus.start({ users, separator: '/' }) },
];

for (const kind of kinds) {
  describe(`benno-imapsync --verify against ${kind.name}`, () => {
    let server: ImapServer;
    let work: string;
    let config: string;
    let db: string;

    before(async () => {
      server = await kind.start();
      work = tempDir('benno-verify-');
      db = path.join(work, 'accounts.db');
      config = setUp(work, server, `sqlite:${db}`);
      for (const u of users) addAccount(config, u);
    });
    after(async () => {
      await server?.stop();
      if (work) removeTree(work);
    });

    it('a complete mailbox reports nothing but the excluded folder and its count; only reading commands, the database untouched', async () => {
      await withClient(server, vera, async (c) => {
        for (let n = 1; n <= 3; n++) await append(c, 'INBOX', message(n));
        const projects = await createFolder(c, ['Projekte']);
        for (let n = 4; n <= 5; n++) await append(c, projects, message(n));
        const trash = await createFolder(c, ['Trash']);
        for (let n = 6; n <= 7; n++) await append(c, trash, message(n));
      });
      sync(config, '-u', vera.user);
      const seen = new Set(server.sessions(vera.user).map((s) => s.file));
      const dbBefore = sha256(fs.readFileSync(db));

      const { code, report, text, stderr } = verify(config, '-u', vera.user);
      assert.equal(code, 0, `${text}${stderr}`);
      assert.equal(report.complete, true);
      const a = account(report, vera.user);
      assert.deepEqual(a.gaps, []);
      const inbox = folderOf(a, /^INBOX$/);
      assert.deepEqual([inbox.status, inbox.archived, inbox.mark > 0, inbox.beforeRecords, inbox.pending, inbox.gaps], ['checked', 3, true, 0, 0, 0]);
      assert.equal(folderOf(a, /Projekte$/).archived, 2);
      const trash = folderOf(a, /Trash$/);
      assert.deepEqual([trash.status, trash.messages], ['excluded', 2]);
      assert.match(trash.reason!, /excluded by name "Trash"/);
      assert.equal(a.excludedMessages, 2);
      assert.match(text, /^vera@127\.0\.0\.1: complete$/m);
      assert.match(text, /^ {2}\S*Trash +2 +excluded, never archived: excluded by name "Trash"$/m);
      assert.match(text, /^COMPLETE: 1 account \(0 not verified\), 2 folders, 5 archived with a record, 0 gaps \(0 failed\), 0 waiting for the next sync, 2 in excluded folders$/m);

      assert.equal(sha256(fs.readFileSync(db)), dbBefore, 'the database file was not rewritten');
      const sessions = server.sessions(vera.user).filter((s) => !seen.has(s.file));
      assert.ok(sessions.length >= 2, 'both runs were traced');
      for (const s of sessions) {
        assert.deepEqual(s.commands.filter(writingCommand), [], `${s.file}: only reading commands`);
        assert.deepEqual(fetchCommands(s), [], `${s.file}: no FETCH`);
        assert.ok(s.commands.some((c) => / UID SEARCH UID 1:\d+/i.test(c)), `${s.file}: the UIDs at or below the mark were searched:\n${s.commands.join('\n')}`);
      }
    });

    it('a record removed from the database is reported: exit 1, the UID and what is missing', async () => {
      const [uid] = sqlite3(db, "SELECT m.uid FROM imapuser_message m JOIN imapuser a ON a.id = m.account_id WHERE a.user = 'vera' AND m.folder = 'INBOX' ORDER BY m.uid LIMIT 1 OFFSET 1").split('\n').map(Number);
      assert.ok(uid > 0);
      sqlite3(db, `DELETE FROM imapuser_message WHERE uid = ${uid} AND folder = 'INBOX' AND account_id = (SELECT id FROM imapuser WHERE user = 'vera')`);
      const { code, report, text } = verify(config, '-u', vera.user);
      assert.equal(code, 1, text);
      assert.equal(report.complete, false);
      const a = account(report, vera.user);
      assert.deepEqual(a.gaps.map((g) => [g.folder, g.uid, g.kind, g.onServer]), [['INBOX', uid, 'no-record', true]]);
      assert.equal(folderOf(a, /^INBOX$/).archived, 2);
      assert.match(text, new RegExp(`^ {4}INBOX +UID ${uid} +no record of archiving, yet at or below the mark and on the server$`, 'm'));
      assert.match(text, /^GAPS: .*1 gap \(0 failed\)/m);
    });

    it('a UID whose import failed is reported with its reason (exit 1) until a sync archives it', async () => {
      const uids = await withClient(server, walt, async (c) => {
        const out: number[] = [];
        for (let n = 1; n <= 3; n++) out.push((await append(c, 'INBOX', message(10 + n))).uid);
        return out;
      });
      const store = openStore(`sqlite:${db}`);
      try {
        const [acct] = await store.findAccounts(walt.user);
        const result = await syncAccount({
          server: { host: '127.0.0.1', port: server.imapPort, tls: 'starttls', caFile: server.caFile },
          account: acct,
          password: Buffer.from(walt.password),
          store,
          writer: new FailingWriter(path.join(work, 'inbox'), 2, 'EIO'),
          exclude: ['Trash'],
          log: quiet,
        });
        assert.equal(result.errors, 1, 'the folder failed at the second message');
      } finally {
        await store.close();
      }
      const failed = verify(config, '-u', walt.user);
      assert.equal(failed.code, 1, failed.text);
      const gaps = account(failed.report, walt.user).gaps;
      assert.deepEqual(gaps.map((g) => [g.folder, g.uid, g.kind, g.onServer]), [['INBOX', uids[1], 'failed', true]]);
      assert.match(gaps[0].reason!, /could not be written to the inbox: EIO \(injected\)/);
      assert.equal(folderOf(account(failed.report, walt.user), /^INBOX$/).pending, 2, 'the failed message and the one after it wait for the next sync');
      assert.match(failed.text, new RegExp(`^ {4}INBOX +UID ${uids[1]} +import failed \\(recorded \\S+\\): UID ${uids[1]} could not be written to the inbox: EIO \\(injected\\); on the server: the next sync tries again$`, 'm'));
      assert.match(failed.text, /^GAPS: .*1 gap \(1 failed\)/m);

      sync(config, '-u', walt.user);
      const fixed = verify(config, '-u', walt.user);
      assert.equal(fixed.code, 0, fixed.text);
      assert.equal(folderOf(account(fixed.report, walt.user), /^INBOX$/).archived, 3);
    });

    it('every account at once: the gaps of one make the run exit 1; a refused login is that account not verified (exit 69), one line without the password', async () => {
      const all = verify(config);
      assert.equal(all.code, 1, all.text);
      assert.deepEqual(all.report.accounts.map((a) => [a.account.split('@')[0], a.gaps?.length ?? null]), [['vera', 1], ['walt', 0], ['xena', 0]]);
      addAccount(config, { user: xena.user, password: 'not her password' });
      const refused = verify(config);
      assert.equal(refused.code, 69, refused.text);
      assert.match(account(refused.report, xena.user).error!, /login refused/);
      assert.match(refused.text, /^xena@127\.0\.0\.1: NOT VERIFIED: login refused/m);
      assert.ok(!refused.text.includes('not her password'));
      addAccount(config, xena);
    });
  });
}

/** The tables of schema version 1 (no records, no version table), as the previous release created them. */
function schemaV1(d: 'sqlite' | 'mysql'): string[] {
  const [autoId, time, options] =
    d === 'sqlite' ? ['INTEGER PRIMARY KEY AUTOINCREMENT', 'TEXT', ''] : ['BIGINT PRIMARY KEY AUTO_INCREMENT', 'DATETIME(3)', ' ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin'];
  const owned = 'FOREIGN KEY (account_id) REFERENCES imapuser (id) ON DELETE CASCADE';
  return [
    `CREATE TABLE IF NOT EXISTS imapuser (id ${autoId}, user VARCHAR(255) NOT NULL, host VARCHAR(255) NOT NULL, container VARCHAR(255) NOT NULL, name VARCHAR(255) NOT NULL DEFAULT '', emails TEXT NOT NULL, gateway VARCHAR(255) NULL, password BLOB NULL, created ${time} NOT NULL, updated ${time} NOT NULL, UNIQUE (user, host))${options}`,
    `CREATE TABLE IF NOT EXISTS imapuser_folder (account_id BIGINT NOT NULL, folder VARCHAR(700) NOT NULL, uidvalidity BIGINT NOT NULL, last_uid BIGINT NOT NULL, updated ${time} NOT NULL, PRIMARY KEY (account_id, folder), ${owned})${options}`,
    `CREATE TABLE IF NOT EXISTS imapuser_status (account_id BIGINT NOT NULL PRIMARY KEY, last_run ${time} NOT NULL, archived BIGINT NOT NULL, last_error TEXT NULL, ${owned})${options}`,
  ];
}

describe('a database of the old schema (version 1), with mail archived before records were kept', () => {
  let server: Dovecot;
  let maria: MariaDb;
  let work: string;
  const zoe: ImapUser = { user: 'zoe', password: 'zoe pw' };

  before(async () => {
    server = await Dovecot.start({ users: [zoe] });
    maria = await startMariaDb();
    work = tempDir('benno-verify-v1-');
    await withClient(server, zoe, async (c) => {
      for (let n = 1; n <= 3; n++) await append(c, 'INBOX', message(20 + n));
    });
  });
  after(async () => {
    await server?.stop();
    await maria?.stop();
    if (work) removeTree(work);
  });

  it('SQLite: --verify reads it without writing; the old mail counts as archived before records, the first sync upgrades the file, new mail is checked UID by UID', async () => {
    // The account as benno-imapuser stores it, copied into tables of the old schema with INBOX's mark at its third message.
    const modern = path.join(work, 'modern.db');
    const v1 = path.join(work, 'v1.db');
    addAccount(setUp(path.join(work, 'modern'), server, `sqlite:${modern}`), zoe);
    const { uidValidity, uidNext } = await withClient(server, zoe, (c) => folderStatus(c, 'INBOX'));
    sqlite3(v1, [
      ...schemaV1('sqlite'),
      `ATTACH '${modern}' AS m`,
      'INSERT INTO imapuser SELECT * FROM m.imapuser',
      `INSERT INTO imapuser_folder SELECT id, 'INBOX', ${uidValidity}, ${uidNext - 1}, '2026-01-01 00:00:00.000' FROM imapuser`,
    ].join(';\n'));
    const config = setUp(path.join(work, 'modern'), server, `sqlite:${v1}`);
    const before = sha256(fs.readFileSync(v1));

    const old = verify(config);
    assert.equal(old.code, 0, `${old.text}${old.stderr}`);
    const inbox = folderOf(account(old.report, zoe.user), /^INBOX$/);
    assert.deepEqual([inbox.beforeRecords, inbox.archived, inbox.gaps], [3, 0, 0]);
    assert.match(old.text, /^COMPLETE: .*0 archived with a record, 3 archived before records were kept, 0 gaps/m);
    assert.equal(sha256(fs.readFileSync(v1)), before, '--verify did not upgrade (or write) the file');

    const fresh = await withClient(server, zoe, (c) => append(c, 'INBOX', message(24)));
    sync(config);
    assert.equal(sqlite3(v1, 'SELECT version FROM imapuser_schema'), '2');
    assert.equal(sqlite3(v1, "SELECT legacy_uidvalidity || ' ' || legacy_last_uid FROM imapuser_folder"), `${uidValidity} ${uidNext - 1}`);
    const upgraded = verify(config);
    assert.equal(upgraded.code, 0, upgraded.text);
    assert.deepEqual(
      (({ beforeRecords, archived, gaps }) => ({ beforeRecords, archived, gaps }))(folderOf(account(upgraded.report, zoe.user), /^INBOX$/)),
      { beforeRecords: 3, archived: 1, gaps: 0 },
    );

    sqlite3(v1, `DELETE FROM imapuser_message WHERE uid = ${fresh.uid}`);
    const gap = verify(config);
    assert.equal(gap.code, 1, 'a record lost after the upgrade is a gap, not old mail');
    assert.deepEqual(account(gap.report, zoe.user).gaps.map((g) => [g.uid, g.kind]), [[fresh.uid, 'no-record']]);
  });

  it('MySQL: the sync refuses old tables, naming --init-db (exit 69); --init-db upgrades them; then the MySQL store reports gaps like SQLite', async () => {
    const url = await maria.freshDatabase();
    const conn = await mysql.createConnection({ host: '127.0.0.1', port: maria.port, user: maria.user, password: maria.password, database: url.split('/').pop() });
    try {
      for (const stmt of schemaV1('mysql')) await conn.query(stmt);
      const dir = path.join(work, 'mysql');
      fs.mkdirSync(dir, { recursive: true });
      const secret = path.join(dir, 'db.pw');
      fs.writeFileSync(secret, `${maria.password}\n`, { mode: 0o600 });
      const config = setUp(dir, server, url, [`database_password_file = ${secret}`]);
      addAccount(config, zoe);
      await withClient(server, zoe, (c) => append(c, 'INBOX', message(25)));
      const { uidValidity, uidNext, messages } = await withClient(server, zoe, (c) => folderStatus(c, 'INBOX'));
      // The old version had archived all but the newest message.
      await conn.query("INSERT INTO imapuser_folder SELECT id, 'INBOX', ?, ?, '2026-01-01 00:00:00.000' FROM imapuser", [Number(uidValidity), uidNext - 2]);

      const refused = runCli(SYNC, ['-c', config, '--lock', `${config}.lock`]);
      assert.equal(refused.code, 69, refused.stderr);
      assert.match(refused.stderr, /older version of benno-imap \(schema 1, this one needs 2\): upgrade them with benno-imapuser --init-db/);
      assert.equal(refused.stderr.trim().split('\n').filter((l) => !/ (info|warn): /.test(l)).length, 1, refused.stderr);
      assert.equal(runCli(SYNC, ['-c', config, '--verify']).code, 69);

      const init = runCli(USER, ['-c', config, '--init-db']);
      assert.equal(init.code, 0, init.stderr);
      sync(config);
      const done = verify(config);
      assert.equal(done.code, 0, done.text);
      const inbox = folderOf(account(done.report, zoe.user), /^INBOX$/);
      assert.deepEqual([inbox.beforeRecords, inbox.archived, inbox.gaps], [messages - 1, 1, 0]);

      const [rows] = await conn.query('SELECT uid FROM imapuser_message WHERE folder = ?', ['INBOX']);
      const uid = (rows as { uid: number }[])[0].uid;
      await conn.query('DELETE FROM imapuser_message WHERE uid = ?', [uid]);
      const gap = verify(config);
      assert.equal(gap.code, 1, gap.text);
      assert.deepEqual(account(gap.report, zoe.user).gaps.map((g) => [g.folder, Number(g.uid), g.kind]), [['INBOX', Number(uid), 'no-record']]);
    } finally {
      await conn.end();
    }
  });
});
