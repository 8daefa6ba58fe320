// The accounts database (src/imap/): one behavioural suite run against an
// SQLite file and against a real MariaDB started for the test, then what only
// the SQLite file must do: be a file the sqlite3 tool reads, keep its mode
// and owner, serialise writers of several processes and survive SIGKILL.

import assert from 'node:assert/strict';
import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import { openStore } from '../../src/imap/open-store';
import { AccountStore, StoreError } from '../../src/imap/store';
import { ROOT } from '../helpers/daemon';
import { removeTree, tempDir } from '../helpers/fs';
import { MariaDb, startMariaDb } from '../helpers/mariadb';

const OPEN_STORE_JS = path.join(ROOT, 'dist', 'src', 'imap', 'open-store.js');

const ALL_BYTES = Buffer.from(Array.from({ length: 512 }, (_, i) => i % 256).reverse());

async function rejectsWith(p: Promise<unknown>, kind: StoreError['kind'], re?: RegExp): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof StoreError, `a StoreError, not ${String(err)}`);
    assert.equal(err.kind, kind, err.message);
    if (re) assert.match(err.message, re);
    return true;
  });
}

/** The behaviour both backends share. fresh() gives a store on an empty, initialised database. */
function storeBehaviour(fresh: () => Promise<AccountStore>): void {
  let store: AccountStore | undefined;
  const open = async () => {
    store = await fresh();
    return store;
  };
  afterEach(async () => {
    await store?.close();
    store = undefined;
  });

  it('adds an account and reads back every field; a second save of (user, host) updates it in place', async () => {
    const s = await open();
    assert.deepEqual(await s.listAccounts(), []);
    const first = await s.saveAccount({ user: 'benno@lw-systems.net', host: 'imap.lw-systems.net', container: 'BennoContainer', name: 'Benno LWsystems', emails: 'benno@lw-systems.net,info@lw-systems.net' });
    assert.equal(first.created, true);
    assert.deepEqual(
      { ...first.account, created: undefined, updated: undefined },
      { id: first.account.id, user: 'benno@lw-systems.net', host: 'imap.lw-systems.net', container: 'BennoContainer', name: 'Benno LWsystems', emails: 'benno@lw-systems.net,info@lw-systems.net', gateway: null, password: null, status: null, created: undefined, updated: undefined },
    );
    assert.ok(Math.abs(first.account.created.getTime() - Date.now()) < 60_000, 'created is now, in UTC');

    const second = await s.saveAccount({ user: 'benno@lw-systems.net', host: 'imap.lw-systems.net', container: 'Other', gateway: 'gw1', password: Buffer.from('secret-cipher') });
    assert.equal(second.created, false);
    assert.equal(second.account.id, first.account.id);
    assert.equal(second.account.container, 'Other');
    assert.equal(second.account.name, 'Benno LWsystems', 'a field not given is kept');
    assert.equal(second.account.gateway, 'gw1');
    assert.deepEqual(second.account.password, Buffer.from('secret-cipher'));
    assert.ok(second.account.updated >= first.account.updated);
    assert.deepEqual(second.account.created, first.account.created);

    const cleared = await s.saveAccount({ user: 'benno@lw-systems.net', host: 'imap.lw-systems.net', container: 'Other', gateway: null });
    assert.equal(cleared.account.gateway, null);
    assert.deepEqual(await s.listAccounts(), [cleared.account]);
  });

  it('one user on two hosts is two accounts; a password without a host is refused as ambiguous', async () => {
    const s = await open();
    await s.saveAccount({ user: 'anna', host: 'imap.b.example:993', container: 'C' });
    await s.saveAccount({ user: 'anna', host: 'imap.a.example', container: 'C' });
    await s.saveAccount({ user: 'bert', host: 'imap.a.example', container: 'C' });
    assert.deepEqual(
      (await s.listAccounts()).map((a) => `${a.user}@${a.host}`),
      ['anna@imap.a.example', 'anna@imap.b.example:993', 'bert@imap.a.example'],
    );
    assert.equal((await s.findAccounts('anna')).length, 2);
    assert.deepEqual((await s.findAccounts('anna', 'imap.b.example:993')).map((a) => a.host), ['imap.b.example:993']);
    assert.deepEqual(await s.findAccounts('anna', 'imap.c.example'), []);

    await rejectsWith(s.setPassword('anna', undefined, Buffer.from('x')), 'ambiguous', /imap\.a\.example, imap\.b\.example:993/);
    await rejectsWith(s.setPassword('carl', undefined, Buffer.from('x')), 'not-found');
    await rejectsWith(s.setPassword('anna', 'imap.c.example', Buffer.from('x')), 'not-found');
    const anna = await s.setPassword('anna', 'imap.b.example:993', Buffer.from('p1'));
    assert.equal(anna.host, 'imap.b.example:993');
    const bert = await s.setPassword('bert', undefined, Buffer.from('p2'));
    assert.deepEqual(bert.password, Buffer.from('p2'));
    assert.deepEqual(
      (await s.listAccounts()).map((a) => a.password?.toString() ?? null),
      [null, 'p1', 'p2'],
    );
  });

  it('deletes by user and host only, with its folder state and run status', async () => {
    const s = await open();
    const a = (await s.saveAccount({ user: 'u', host: 'h1', container: 'C' })).account;
    const b = (await s.saveAccount({ user: 'u', host: 'h2', container: 'C' })).account;
    await s.saveFolderStates(a.id, [{ folder: 'INBOX', uidValidity: 1, lastUid: 5 }]);
    await s.saveFolderStates(b.id, [{ folder: 'INBOX', uidValidity: 2, lastUid: 9 }]);
    await s.recordRun(a.id, { lastRun: new Date(), archived: 5, lastError: null });

    assert.equal(await s.deleteAccount('u', 'h3'), false);
    assert.equal(await s.deleteAccount('u', 'h1'), true);
    assert.equal(await s.deleteAccount('u', 'h1'), false);
    assert.deepEqual((await s.listAccounts()).map((x) => x.host), ['h2']);
    assert.deepEqual(await s.folderStates(a.id), []);
    assert.equal((await s.folderStates(b.id)).length, 1, 'the other account keeps its state');

    // Added again: a new account, nothing of the old one's state.
    const again = (await s.saveAccount({ user: 'u', host: 'h1', container: 'C' })).account;
    assert.notEqual(again.id, a.id);
    assert.equal(again.status, null);
    assert.deepEqual(await s.folderStates(again.id), []);
    await rejectsWith(s.saveFolderStates(a.id, [{ folder: 'INBOX', uidValidity: 1, lastUid: 6 }]), 'not-found');
    await rejectsWith(s.recordRun(a.id, { lastRun: new Date(), archived: 1, lastError: null }), 'not-found');
  });

  it('keeps each folder state exactly as given, per account and per folder name (case, UTF-7, 32-bit extremes)', async () => {
    const s = await open();
    const a = (await s.saveAccount({ user: 'u', host: 'h', container: 'C' })).account;
    const b = (await s.saveAccount({ user: 'v', host: 'h', container: 'C' })).account;
    const states = [
      { folder: 'INBOX', uidValidity: 1, lastUid: 0 },
      { folder: 'Archiv', uidValidity: 4294967295, lastUid: 4294967295 },
      { folder: 'archiv', uidValidity: 7, lastUid: 3 },
      { folder: 'Entw&APw-rfe/&ZeVnLIqe-', uidValidity: 1700000000, lastUid: 12 },
      { folder: 'INBOX.Sub.Deep', uidValidity: 5, lastUid: 2 },
    ];
    await s.saveFolderStates(a.id, states);
    await s.saveFolderStates(b.id, [{ folder: 'INBOX', uidValidity: 99, lastUid: 98 }]);
    const strip = (x: { folder: string; uidValidity: number; lastUid: number }) => ({ folder: x.folder, uidValidity: x.uidValidity, lastUid: x.lastUid });
    const byName = (x: { folder: string }, y: { folder: string }) => (x.folder < y.folder ? -1 : 1);
    assert.deepEqual((await s.folderStates(a.id)).map(strip), [...states].sort(byName));

    await s.saveFolderStates(a.id, [{ folder: 'archiv', uidValidity: 8, lastUid: 1 }]);
    const after = await s.folderStates(a.id);
    assert.deepEqual(after.find((x) => x.folder === 'archiv')!.uidValidity, 8);
    assert.deepEqual(after.find((x) => x.folder === 'Archiv')!.uidValidity, 4294967295);
    assert.deepEqual((await s.folderStates(b.id)).map(strip), [{ folder: 'INBOX', uidValidity: 99, lastUid: 98 }]);

    await rejectsWith(s.saveFolderStates(a.id, [{ folder: 'INBOX', uidValidity: 1, lastUid: 2 ** 32 }]), 'invalid');
    await rejectsWith(s.saveFolderStates(a.id, [{ folder: 'x'.repeat(701), uidValidity: 1, lastUid: 1 }]), 'invalid');
    assert.equal((await s.folderStates(a.id)).find((x) => x.folder === 'INBOX')!.lastUid, 0, 'a refused batch changed nothing');
  });

  it('keeps a record per message with the folder state, in one transaction; a later outcome replaces an earlier one', async () => {
    const s = await open();
    const a = (await s.saveAccount({ user: 'u', host: 'h', container: 'C' })).account;
    const name = `${'ab'.repeat(32)}.eml`;
    await s.saveFolderStates(a.id, [{ folder: 'INBOX', uidValidity: 7, lastUid: 2 }], [
      { folder: 'INBOX', uidValidity: 7, uid: 1, outcome: 'archived', file: name, reason: null },
      { folder: 'INBOX', uidValidity: 7, uid: 2, outcome: 'expunged', file: null, reason: 'gone' },
      { folder: 'INBOX', uidValidity: 7, uid: 3, outcome: 'failed', file: null, reason: 'EIO' },
    ]);
    const strip = (r: { uid: number; outcome: string; file: string | null; reason: string | null }) => [r.uid, r.outcome, r.file, r.reason];
    let got = await s.archiveRecords(a.id);
    assert.deepEqual(got.messages.map(strip), [[1, 'archived', name, null], [2, 'expunged', null, 'gone'], [3, 'failed', null, 'EIO']]);
    assert.deepEqual(got.folders.map((f) => [f.folder, f.lastUid, f.legacy]), [['INBOX', 2, null]], 'a folder first saved with records has no legacy mark');
    await s.saveFolderStates(a.id, [{ folder: 'INBOX', uidValidity: 7, lastUid: 3 }], [{ folder: 'INBOX', uidValidity: 7, uid: 3, outcome: 'archived', file: name, reason: null }]);
    got = await s.archiveRecords(a.id);
    assert.deepEqual(got.messages.map(strip)[2], [3, 'archived', name, null]);
    // More rows than one INSERT carries.
    const many = Array.from({ length: 450 }, (_, i) => ({ folder: 'Big', uidValidity: 1, uid: i + 1, outcome: 'archived' as const, file: name, reason: null }));
    await s.saveFolderStates(a.id, [{ folder: 'Big', uidValidity: 1, lastUid: 450 }], many);
    assert.equal((await s.archiveRecords(a.id)).messages.filter((r) => r.folder === 'Big').length, 450);
    await rejectsWith(s.saveFolderStates(a.id, [{ folder: 'INBOX', uidValidity: 7, lastUid: 9 }], [{ folder: 'INBOX', uidValidity: 7, uid: 9, outcome: 'archived', file: 'x'.repeat(256), reason: null }]), 'invalid');
    assert.equal((await s.folderStates(a.id)).find((f) => f.folder === 'INBOX')!.lastUid, 3, 'a refused record keeps the state back too');
    assert.equal(await s.deleteAccount('u', 'h'), true);
    assert.deepEqual((await s.archiveRecords(a.id)).messages, [], 'deleted with the account');
  });

  it('records the last run per account: time, count, error or null', async () => {
    const s = await open();
    const a = (await s.saveAccount({ user: 'u', host: 'h', container: 'C' })).account;
    const b = (await s.saveAccount({ user: 'v', host: 'h', container: 'C' })).account;
    const t1 = new Date('2025-01-02T03:04:05.678Z');
    await s.recordRun(a.id, { lastRun: t1, archived: 42, lastError: null });
    await s.recordRun(b.id, { lastRun: t1, archived: 0, lastError: 'LOGIN failed: Authentication failed. – ü' });
    const t2 = new Date('2025-01-02T03:19:05.001Z');
    await s.recordRun(a.id, { lastRun: t2, archived: 3, lastError: 'connect ECONNREFUSED' });
    const [ra, rb] = await s.listAccounts();
    assert.deepEqual(ra.status, { lastRun: t2, archived: 3, lastError: 'connect ECONNREFUSED' });
    assert.deepEqual(rb.status, { lastRun: t1, archived: 0, lastError: 'LOGIN failed: Authentication failed. – ü' });
    await s.recordRun(a.id, { lastRun: t2, archived: 0, lastError: null });
    assert.equal((await s.findAccounts('u', 'h'))[0].status!.lastError, null);
  });

  it('keeps unicode and case exactly; user names differing in case are different accounts', async () => {
    const s = await open();
    const name = 'Zoë Ångström 山田 🐧';
    await s.saveAccount({ user: 'jürgen@bücher.example', host: 'imap.bücher.example', container: 'Containér', name, emails: 'jürgen@bücher.example,ΖΩΗ@example.org' });
    await s.saveAccount({ user: 'Benno', host: 'h', container: 'C' });
    await s.saveAccount({ user: 'benno', host: 'h', container: 'C' });
    const [j] = await s.findAccounts('jürgen@bücher.example', 'imap.bücher.example');
    assert.equal(j.name, name);
    assert.equal(j.container, 'Containér');
    assert.equal(j.emails, 'jürgen@bücher.example,ΖΩΗ@example.org');
    assert.equal((await s.listAccounts()).length, 3);
    assert.deepEqual((await s.findAccounts('benno')).map((a) => a.user), ['benno']);
  });

  it('stores binary passwords with every byte value unchanged, and a value too long is refused', async () => {
    const s = await open();
    await s.saveAccount({ user: 'u', host: 'h', container: 'C', password: ALL_BYTES });
    assert.deepEqual((await s.findAccounts('u'))[0].password, ALL_BYTES);
    const zeros = Buffer.alloc(300);
    await s.setPassword('u', 'h', zeros);
    assert.deepEqual((await s.listAccounts())[0].password, zeros);
    await rejectsWith(s.saveAccount({ user: 'u'.repeat(256), host: 'h', container: 'C' }), 'invalid', /user is longer than 255/);
    await rejectsWith(s.saveAccount({ user: '', host: 'h', container: 'C' }), 'invalid');
    // The web login prints these as lines of its answer: a line break would forge one ("ROLE ADMIN").
    await rejectsWith(s.saveAccount({ user: 'u', host: 'h', container: 'C', name: 'Anna\nROLE ADMIN' }), 'invalid', /U\+000A in the name/);
    await rejectsWith(s.saveAccount({ user: 'u\u2028x', host: 'h', container: 'C' }), 'invalid', /U\+2028 in the user/);
  });
}

describe('account store on an SQLite file', () => {
  let dir: string;
  let n = 0;
  before(() => {
    dir = tempDir('benno-imapdb-');
  });
  after(() => removeTree(dir));
  storeBehaviour(async () => openStore(`sqlite:${path.join(dir, `behaviour-${++n}.db`)}`));
});

describe('account store on MariaDB', () => {
  let db: MariaDb;
  before(async () => {
    db = await startMariaDb();
  });
  after(() => db?.stop());
  storeBehaviour(async () => {
    const store = openStore(await db.freshDatabase(), { password: db.password });
    await store.init();
    return store;
  });

  it('refuses to work on tables nobody created, naming --init-db; init() twice is harmless', async () => {
    const store = openStore(await db.freshDatabase(), { password: db.password });
    try {
      await rejectsWith(store.listAccounts(), 'database', /--init-db/);
      await store.init();
      await store.init();
      assert.deepEqual(await store.listAccounts(), []);
    } finally {
      await store.close();
    }
  });

  it('a wrong password is a database error that does not repeat it', async () => {
    const store = openStore(db.url, { password: 'wrong-Pa55word' });
    try {
      await assert.rejects(store.listAccounts(), (err: unknown) => {
        assert.ok(err instanceof StoreError && err.kind === 'database', String(err));
        assert.match(err.message, /Access denied/);
        assert.doesNotMatch(err.message, /wrong-Pa55word/);
        return true;
      });
    } finally {
      await store.close();
    }
  });
});

/** A node process that opens the store on file and runs body (JavaScript, with `store` and `n` in scope). */
function storeProcess(file: string, body: string): ChildProcess {
  const script = `const { openStore } = require(${JSON.stringify(OPEN_STORE_JS)});
const store = openStore(${JSON.stringify(`sqlite:${file}`)});
(async () => { ${body} })().catch((err) => { console.error(err); process.exitCode = 1; });`;
  return spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
}

function exitCode(proc: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => proc.once('exit', (code) => resolve(code)));
}

function sqlite3(file: string, sql: string): string {
  return execFileSync('sqlite3', [file, sql], { encoding: 'utf8' }).trim();
}

describe('the SQLite file', () => {
  let dir: string;
  let n = 0;
  const fresh = () => path.join(dir, `f${++n}.db`);
  before(() => {
    dir = tempDir('benno-imapdb-');
  });
  after(() => removeTree(dir));

  it('is a real SQLite database: the sqlite3 tool reads the rows and finds it intact', async () => {
    const file = fresh();
    const store = openStore(`sqlite:${file}`);
    await store.saveAccount({ user: 'jürgen', host: 'imap.example:143', container: 'C' });
    await store.saveAccount({ user: 'anna', host: 'imap.example', container: 'C', password: ALL_BYTES });
    assert.equal(sqlite3(file, 'select user, host from imapuser order by user'), 'anna|imap.example\njürgen|imap.example:143');
    assert.equal(sqlite3(file, "select hex(password) from imapuser where user = 'anna'"), ALL_BYTES.toString('hex').toUpperCase());
    assert.equal(sqlite3(file, 'pragma integrity_check'), 'ok');
    // And what the tool writes, the store reads.
    sqlite3(file, "update imapuser set container = 'FromTool' where user = 'anna'");
    assert.equal((await store.findAccounts('anna'))[0].container, 'FromTool');
  });

  it('a missing file reads as empty and is not created by reading; the first write creates it with mode 0640 whatever the umask', async () => {
    const file = fresh();
    const store = openStore(`sqlite:${file}`);
    assert.deepEqual(await store.listAccounts(), []);
    assert.deepEqual(await store.findAccounts('u'), []);
    assert.equal(fs.existsSync(file), false);
    const umask = process.umask(0);
    try {
      await store.saveAccount({ user: 'u', host: 'h', container: 'C' });
    } finally {
      process.umask(umask);
    }
    assert.equal(fs.statSync(file).mode & 0o7777, 0o640);
    const other = fresh();
    process.umask(0o077);
    try {
      await openStore(`sqlite:${other}`).init();
    } finally {
      process.umask(umask);
    }
    assert.equal(fs.statSync(other).mode & 0o7777, 0o640);
    assert.deepEqual(sqlite3(other, '.tables').split(/\s+/).sort(), ['imapuser', 'imapuser_folder', 'imapuser_message', 'imapuser_schema', 'imapuser_status']);
    assert.equal(sqlite3(other, 'SELECT version FROM imapuser_schema'), '2');
    assert.deepEqual(fs.readdirSync(dir).filter((f) => /\.(lock|tmp)$/.test(f)), [], 'no lock or temp file stays behind');
  });

  it('a write keeps the file mode, owner and group another program gave it', async () => {
    if (process.getuid?.() !== 0) throw new Error('this test needs root (it chowns a file); run the tests as root, as CI does');
    const file = fresh();
    const store = openStore(`sqlite:${file}`);
    await store.init();
    fs.chownSync(file, 4321, 4322);
    fs.chmodSync(file, 0o660);
    await store.saveAccount({ user: 'u', host: 'h', container: 'C' });
    const st = fs.statSync(file);
    assert.deepEqual([st.uid, st.gid, st.mode & 0o7777], [4321, 4322, 0o660]);
    assert.equal((await store.listAccounts()).length, 1);
  });

  it('two processes writing at once lose no update', async () => {
    const file = fresh();
    const per = 40;
    const writer = (tag: string) =>
      storeProcess(file, `for (let i = 0; i < ${per}; i++) await store.saveAccount({ user: '${tag}' + i, host: 'h', container: 'C' });
        const [a] = await store.findAccounts('shared', 'h');
        for (let i = 0; i < ${per}; i++) await store.saveFolderStates(a.id, [{ folder: '${tag}' + i, uidValidity: 1, lastUid: i }]);`);
    const shared = await openStore(`sqlite:${file}`).saveAccount({ user: 'shared', host: 'h', container: 'C' });
    const procs = [writer('a'), writer('b')];
    assert.deepEqual(await Promise.all(procs.map(exitCode)), [0, 0]);
    const store = openStore(`sqlite:${file}`);
    assert.equal((await store.listAccounts()).length, 2 * per + 1);
    assert.equal((await store.folderStates(shared.account.id)).length, 2 * per);
    assert.equal(sqlite3(file, 'pragma integrity_check'), 'ok');
  });

  it('a write waits for a live holder of the lock and gives up with a "locked" error naming it', async () => {
    const file = fresh();
    fs.writeFileSync(`${file}.lock`, `${process.pid} ${os.hostname()}\n`);
    const store = openStore(`sqlite:${file}`, { lockTimeoutMs: 300 });
    await rejectsWith(store.saveAccount({ user: 'u', host: 'h', container: 'C' }), 'locked', new RegExp(`held by ${process.pid} `));
    // Another host's lock is never judged stale, even with a pid that does not exist here.
    fs.writeFileSync(`${file}.lock`, `999999999 not-${os.hostname()} 1\n`);
    await rejectsWith(store.saveAccount({ user: 'u', host: 'h', container: 'C' }), 'locked');
    // A dead holder whose takeover is guarded by another host's break lock: still a timeout, not a spin.
    fs.writeFileSync(`${file}.lock`, `999999999 ${os.hostname()} 1\n`);
    fs.writeFileSync(`${file}.lock.break`, `999999999 not-${os.hostname()} 1\n`);
    await rejectsWith(store.saveAccount({ user: 'u', host: 'h', container: 'C' }), 'locked');
    fs.unlinkSync(`${file}.lock.break`);
    await store.saveAccount({ user: 'u', host: 'h', container: 'C' });
    assert.equal(fs.existsSync(`${file}.lock`), false);
  });

  it('takes over the lock of a process that is gone, or whose pid now belongs to another process', async () => {
    const file = fresh();
    const store = openStore(`sqlite:${file}`, { lockTimeoutMs: 2000 });
    const dead = spawn(process.execPath, ['-e', '']);
    await exitCode(dead);
    fs.writeFileSync(`${file}.lock`, `${dead.pid} ${os.hostname()} 123\n`);
    fs.writeFileSync(`${file}.tmp`, 'half a database');
    await store.saveAccount({ user: 'u1', host: 'h', container: 'C' });
    // Our own pid with another start time: the pid was reused.
    fs.writeFileSync(`${file}.lock`, `${process.pid} ${os.hostname()} 1\n`);
    await store.saveAccount({ user: 'u2', host: 'h', container: 'C' });
    assert.deepEqual((await store.listAccounts()).map((a) => a.user), ['u1', 'u2']);
    assert.equal(fs.existsSync(`${file}.lock`), false);
    assert.equal(fs.existsSync(`${file}.tmp`), false);
  });

  it('SIGKILL in the middle of writes leaves the old or the new file, and the next writer goes on', async () => {
    const file = fresh();
    await openStore(`sqlite:${file}`).init();
    for (let round = 1; round <= 4; round++) {
      const proc = storeProcess(file, `for (let i = 0; ; i++) { await store.saveAccount({ user: 'r${round}-' + i, host: 'h', container: 'C', password: Buffer.alloc(4000, i) }); console.log(i); }`);
      // Killed after a different number of completed writes each round, mid-way through the next.
      await new Promise<void>((resolve) => {
        let lines = 0;
        proc.stdout!.on('data', (d: Buffer) => {
          lines += d.toString().split('\n').length - 1;
          if (lines >= round * 3) resolve();
        });
      });
      proc.kill('SIGKILL');
      await exitCode(proc);
      assert.equal(sqlite3(file, 'pragma integrity_check'), 'ok', `round ${round}`);
      const store = openStore(`sqlite:${file}`, { lockTimeoutMs: 5000 });
      const users = (await store.listAccounts()).map((a) => a.user).filter((u) => u.startsWith(`r${round}-`));
      assert.ok(users.length >= round * 3, `round ${round}: ${users.length} accounts survived`);
      await store.saveAccount({ user: `after${round}`, host: 'h', container: 'C' });
    }
    assert.equal(sqlite3(file, "select count(*) from imapuser where user like 'after%'"), '4');
  });
});
