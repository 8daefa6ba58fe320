// The rules of benno-imapsync --doctor on made-up hosts: the packaged layout
// is healthy, and each way it can go wrong is named with its fix.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AUTH_MODULE, ImapDoctorFacts, diagnoseImap } from '../../src/admin/imap-doctor';
import { FileFacts } from '../../src/admin/doctor';
import { parseImapAuthConfig, parseImapConfig } from '../../src/imap/config';
import { Account } from '../../src/imap/store';

const BENNO = { uid: 100, gid: 100, groups: [100, 33] };
const WWW = { uid: 33, gid: 33, groups: [33] };

const file = (uid: number, gid: number, mode: number, directory = false): FileFacts => ({ uid, gid, mode, socket: false, directory });

/** The files as the benno-imap package leaves them. */
function packaged(): Map<string, FileFacts> {
  return new Map([
    ['/etc/benno-imap/benno-imap.pub', file(0, 0, 0o644)],
    ['/etc/benno-imap/benno-imap.sec', file(0, 100, 0o640)],
    ['/var/lib/benno-imap', file(0, 33, 0o2770, true)],
    ['/var/lib/benno-imap/benno-imap.db', file(0, 33, 0o660)],
    ['/etc/benno-imap/imapauth.conf', file(0, 0, 0o644)],
    ['/srv/benno/inbox', file(100, 100, 0o750, true)],
  ]);
}

function account(over: Partial<Account> = {}): Account {
  const now = new Date('2026-11-24T10:00:00Z');
  return {
    id: 1, user: 'anna', host: 'imap.example.org', container: 'C', name: '', emails: 'anna@example.org', gateway: null,
    password: Buffer.from('x'), created: now, updated: now, status: { lastRun: now, archived: 3, lastError: null }, ...over,
  };
}

function facts(over: Partial<ImapDoctorFacts> = {}, files = packaged()): ImapDoctorFacts {
  return {
    sync: parseImapConfig('[imapsync]\nkeyfile = /etc/benno-imap/benno-imap.sec\n', '/etc/benno-imap/imapsync.conf'),
    auth: { file: '/etc/benno-imap/imapauth.conf', config: parseImapAuthConfig('[imapauth]\n', '/etc/benno-imap/imapauth.conf'), error: null },
    benno: BENNO,
    web: WWW,
    stat: (p) => files.get(p) ?? null,
    keysMatch: true,
    webAuthModules: [AUTH_MODULE],
    accounts: [account()],
    schema: null,
    now: new Date('2026-11-24T10:10:00Z'),
    ...over,
  };
}

const problems = (f: ImapDoctorFacts) => diagnoseImap(f).map((x) => `${x.level}: ${x.problem} | ${x.fix}`);

describe('benno-imapsync --doctor', () => {
  it('the packaged layout has no problem', () => {
    assert.deepEqual(problems(facts()), []);
  });

  it('a private key open to everyone, or readable by the web server, or not by benno', () => {
    const open = packaged();
    open.set('/etc/benno-imap/benno-imap.sec', file(0, 100, 0o644));
    const [p1, p2] = problems(facts({}, open));
    assert.match(p1, /^error: the private key .* open to every user \(mode 644\).*\| chgrp benno .*chmod 0640/);
    assert.match(p2, /www-data can read the private key/);
    const rootOnly = packaged();
    rootOnly.set('/etc/benno-imap/benno-imap.sec', file(0, 0, 0o600));
    assert.match(problems(facts({}, rootOnly))[0], /benno-imapsync \(user benno\) cannot read the private key/);
  });

  it('keys that are no pair, and a missing public key', () => {
    assert.match(problems(facts({ keysMatch: false }))[0], /is not the private key of .*benno-imap\.pub/);
    const noPub = packaged();
    noPub.delete('/etc/benno-imap/benno-imap.pub');
    assert.match(problems(facts({}, noPub))[0], /no public key .* \| benno-imapuser --genkey/);
  });

  it('a database the web login (or benno) cannot write, and its directory', () => {
    const rootDb = packaged();
    rootDb.set('/var/lib/benno-imap/benno-imap.db', file(0, 0, 0o640));
    assert.deepEqual(problems(facts({}, rootDb)), [
      'error: benno cannot read and write the database /var/lib/benno-imap/benno-imap.db | chgrp www-data /var/lib/benno-imap/benno-imap.db; chmod 0660 /var/lib/benno-imap/benno-imap.db; adduser benno www-data',
      'error: www-data cannot read and write the database /var/lib/benno-imap/benno-imap.db | chgrp www-data /var/lib/benno-imap/benno-imap.db; chmod 0660 /var/lib/benno-imap/benno-imap.db',
    ]);
    const bennoOutside = facts({ benno: { uid: 100, gid: 100, groups: [100] } });
    assert.ok(problems(bennoOutside).some((p) => /^error: benno cannot create files in \/var\/lib\/benno-imap .*adduser benno www-data/.test(p)));
  });

  it('benno-web without the module in auth.d; a web login that stores elsewhere than the sync reads', () => {
    assert.match(problems(facts({ webAuthModules: [] }))[0], /^warning: benno-web is installed .*\| ln -s \/usr\/lib\/benno-imap\/benno_imapauth \/etc\/benno-web\/auth\.d\/60_benno_imapauth$/);
    assert.deepEqual(problems(facts({ webAuthModules: null })), [], 'no benno-web, no warning');
    const elsewhere = parseImapAuthConfig('[imapauth]\ndatabase = sqlite:/tmp/other.db\n', '/etc/benno-imap/imapauth.conf');
    assert.ok(problems(facts({ auth: { file: '/etc/benno-imap/imapauth.conf', config: elsewhere, error: null } })).some((p) => /the web login stores passwords in sqlite:\/tmp\/other\.db, benno-imapsync reads sqlite:\/var\/lib/.test(p)));
    const broken = problems(facts({ auth: { file: '/etc/benno-imap/imapauth.conf', config: null, error: 'line 3: unknown key' } }));
    assert.match(broken[0], /^error: the web login cannot use its configuration: line 3: unknown key/);
  });

  it('accounts: no password, never synced, last run failed, no run for hours', () => {
    const accounts = [
      account({ user: 'a', password: null, status: null }),
      account({ user: 'b', status: null }),
      account({ user: 'c', status: { lastRun: new Date('2026-11-24T10:00:00Z'), archived: 0, lastError: 'c@imap.example.org: login refused' } }),
      account({ user: 'd', status: { lastRun: new Date('2026-11-23T10:00:00Z'), archived: 0, lastError: null } }),
    ];
    const p = problems(facts({ accounts }));
    assert.match(p[0], /^warning: a on imap\.example\.org has no password stored.*logs in to Benno's web interface once/);
    assert.match(p[1], /^warning: b on imap\.example\.org has never been synced .*benno-imapsync\.timer/);
    assert.match(p[2], /^warning: the last sync of c on imap\.example\.org .* failed: c@imap\.example\.org: login refused/);
    assert.match(p[3], /^warning: d on imap\.example\.org was last synced 24 hours ago/);
    assert.equal(p.length, 4);
    const withAdmin = facts({
      sync: parseImapConfig('[imapsync]\nkeyfile = /etc/benno-imap/benno-imap.sec\nadmin_user = master\nadmin_password_file = /etc/benno-imap/admin.secret\n', '/etc/benno-imap/imapsync.conf'),
      accounts: [account({ password: null })],
    });
    assert.deepEqual(problems(withAdmin), [], 'an admin login needs no stored password');
  });

  it('MySQL tables of an older version: the sync would refuse them; the fix is --init-db', () => {
    const old = 'database mysql://benno@db:3306/imap: the tables are of an older version of benno-imap (schema 1, this one needs 2): upgrade them with benno-imapuser --init-db';
    assert.deepEqual(problems(facts({ schema: old })), [`error: benno-imapsync cannot keep its records: ${old} | benno-imapuser -c /etc/benno-imap/imapsync.conf --init-db`]);
  });
});
