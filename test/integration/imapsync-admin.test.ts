// benno-imapsync with one administrator's login (issue 12, part 4), against a
// real Dovecot (a master user) and a real Cyrus (an admin): an account with
// no stored password, whose user never logged in to the web interface, is
// archived; a stored password is not needed, nor the private key; the
// mailbox is only read; a wrong admin password is each account's login
// failure (exit 69) and in no output; a [server] section wins over the
// global keys; --list-folders works; a server without AUTH=PLAIN is refused
// rather than logged in to with LOGIN as the admin; a bad password file
// stops the run before any connection.

import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseEnvelope } from '../../src/spool/format';
import { ROOT, runCli } from '../helpers/daemon';
import { removeTree, tempDir } from '../helpers/fs';
import { Cyrus, Dovecot, ImapServer, ImapServerOptions, ImapUser, append, readFolder, withClient } from '../helpers/imap-servers';
import { readWhole, spoolFiles } from '../helpers/spool';

const cli = runCli;
const SYNC = path.join(ROOT, 'dist', 'src', 'cli', 'benno-imapsync.js');
const USER = path.join(ROOT, 'dist', 'src', 'cli', 'benno-imapuser.js');

/** dora never logged in (no password stored), emil's stored password is wrong, fritz's is right. */
const [dora, emil, fritz]: ImapUser[] = [
  { user: 'dora', password: 'dora pw' },
  { user: 'emil', password: 'emil pw' },
  { user: 'fritz', password: 'fritz pw' },
];
const admin: ImapUser = { user: 'archiver', password: 'Archiv-Geheim 42' };
const WRONG_ADMIN_PASSWORD = 'falsch-Geheim 17';

const message = (i: number, who: string) => Buffer.from(`Return-Path: <s${i}@example.com>\r\nFrom: s${i}@example.com\r\nTo: ${who}@example.org\r\nSubject: ${i} for ${who}\r\n\r\nbody ${i}\r\n`);

/** A command that changes a mailbox or its flags. */
const WRITING = /^\S+ (UID )?(STORE|EXPUNGE|COPY|MOVE|APPEND|SELECT|CLOSE|CREATE|DELETE|RENAME)\b/i;

const kinds: { name: string; start: (options: ImapServerOptions) => Promise<ImapServer> }[] = [
  { name: 'Dovecot (a master user)', start: (o) => Dovecot.start(o) },
  { name: 'Cyrus (an admin)', start: (o) => Cyrus.start(o) },
];

for (const kind of kinds) {
  describe(`benno-imapsync with one admin login, against a real ${kind.name}`, () => {
    let work: string;
    let server: ImapServer;
    let inbox: string;
    let lock: string;
    let right: string;
    let wrong: string;

    /** A configuration with these extra lines; the private key only when asked for. */
    const config = (name: string, lines: string[], keyfile = false) => {
      const file = path.join(work, `${name}.conf`);
      fs.writeFileSync(
        file,
        [
          '[imapsync]',
          `database = sqlite:${work}/accounts.db`,
          `pubkey = ${work}/key.pub`,
          ...(keyfile ? [`keyfile = ${work}/key.sec`] : []),
          `inbox = ${inbox}`,
          `port = ${server.imapPort}`,
          `cafile = ${server.caFile}`,
          'timeout = 10',
          ...lines,
          '',
        ].join('\n'),
      );
      return file;
    };
    const secretFile = (name: string, content: string, mode = 0o600) => {
      const file = path.join(work, name);
      fs.writeFileSync(file, content, { mode });
      fs.chmodSync(file, mode);
      return file;
    };
    // No stdin: a run that wanted the private key from it would fail (exit 78).
    const sync = (conf: string, extra: string[] = []) => cli(SYNC, ['-c', conf, '--lock', lock, ...extra]);
    const noPassword = (r: { stdout: string; stderr: string }) => {
      for (const pw of [admin.password, WRONG_ADMIN_PASSWORD]) assert.ok(!r.stderr.includes(pw) && !r.stdout.includes(pw), `no admin password in the output:\n${r.stderr}`);
    };
    /** Each file's recipient, after checking that its message is one of that user's (To:), not another mailbox's. */
    const recipients = (names: string[]) =>
      names
        .map((n) => {
          const file = readWhole(inbox, n);
          const to = parseEnvelope(file)!.recipients.map(String).join(',');
          assert.match(file.toString('latin1'), new RegExp(`\r\nTo: ${to}\r\n`), `${n} is from the mailbox of ${to}`);
          return to;
        })
        .sort();

    before(async () => {
      work = tempDir();
      inbox = path.join(work, 'inbox');
      fs.mkdirSync(inbox);
      lock = path.join(work, 'lock');
      server = await kind.start({ users: [dora, emil, fritz], admin });
      right = secretFile('admin.secret', `${admin.password}\n`);
      wrong = secretFile('wrong.secret', `${WRONG_ADMIN_PASSWORD}\n`);
      const setup = config('setup', [], true);
      assert.equal(cli(USER, ['-c', setup, '--genkey']).code, 0);
      for (const [u, stored] of [[dora, null], [emil, 'not emil pw'], [fritz, fritz.password]] as const) {
        const r = cli(USER, ['-c', setup, '-u', u.user, '-i', '127.0.0.1', '-e', `${u.user}@example.org`, ...(stored ? ['-p', '-'] : [])], stored ? `${stored}\n` : '');
        assert.equal(r.code, 0, r.stderr);
      }
      for (const u of [dora, emil, fritz]) {
        await withClient(server, u, async (c) => {
          await append(c, 'INBOX', message(1, u.user), ['\\Seen']);
          await append(c, 'INBOX', message(2, u.user));
          await append(c, 'INBOX', message(3, u.user), ['\\Flagged']);
        });
      }
    });
    after(async () => {
      await server?.stop();
      removeTree(work);
    });

    it('archives an account with no stored password, and one with a wrong one, with the admin login; no private key needed; the mailbox only read', async () => {
      const flagsBefore = await withClient(server, dora, (c) => readFolder(c, 'INBOX'));
      assert.deepEqual(flagsBefore.map((m) => m.flags), [['\\Seen'], [], ['\\Flagged']]);
      const sessionsBefore = server.sessions('dora').length;
      const r = sync(config('admin', ['admin_user = archiver', `admin_password_file = ${right}`]));
      assert.equal(r.code, 0, r.stderr);
      noPassword(r);
      assert.match(r.stderr, /summary: accounts=3 failed=0 archived=9 /);
      const files = spoolFiles(inbox);
      assert.deepEqual(recipients(files), [...Array(3).fill('dora@example.org'), ...Array(3).fill('emil@example.org'), ...Array(3).fill('fritz@example.org')]);
      // Read-only: the sync's sessions as dora sent no command that changes anything, and the flags are as they were.
      const mine = server.sessions('dora').slice(sessionsBefore);
      assert.ok(mine.length >= 1, 'the admin session is traced as dora');
      for (const s of mine) {
        assert.ok(s.commands.some((c) => /^\S+ EXAMINE /i.test(c)), `${s.file}: ${s.commands.join(' | ')}`);
        assert.deepEqual(s.commands.filter((c) => WRITING.test(c)), [], s.file);
      }
      const flagsAfter = await withClient(server, dora, (c) => readFolder(c, 'INBOX'));
      assert.deepEqual(flagsAfter.map((m) => m.flags), flagsBefore.map((m) => m.flags), 'no \\Seen set, no flag changed');
      const status = cli(SYNC, ['-c', config('admin', ['admin_user = archiver', `admin_password_file = ${right}`]), '--status']);
      assert.match(status.stdout, /^dora on 127\.0\.0\.1: last run \S+, archived 3, no error, admin login as archiver$/m);
    });

    it('--list-folders uses the admin login', () => {
      const r = sync(config('admin', ['admin_user = archiver', `admin_password_file = ${right}`]), ['--list-folders', '-u', 'dora', '-i', '127.0.0.1']);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^synced {4}INBOX$/m);
    });

    it('a wrong admin password is each account\'s login failure (exit 69), naming user@host and the admin, never a password', async () => {
      await withClient(server, dora, (c) => append(c, 'INBOX', message(4, 'dora')));
      const before = spoolFiles(inbox).length;
      const r = sync(config('wrong', ['admin_user = archiver', `admin_password_file = ${wrong}`]));
      assert.equal(r.code, 69, r.stderr);
      noPassword(r);
      for (const u of ['dora', 'emil', 'fritz']) assert.match(r.stderr, new RegExp(`error: ${u}@127\\.0\\.0\\.1: admin login as archiver refused`));
      assert.match(r.stderr, /summary: accounts=3 failed=3 archived=0 /);
      assert.equal(spoolFiles(inbox).length, before);
    });

    it('a [server HOST:PORT] section wins over [server HOST], which wins over [imapsync]', async () => {
      const port = server.imapPort;
      const sections = config('sections', [
        'admin_user = archiver',
        `admin_password_file = ${wrong}`,
        '[server 127.0.0.1]',
        'admin_user =',
        `[server 127.0.0.1:${port}]`,
        'admin_user = archiver',
        `admin_password_file = ${right}`,
      ]);
      const r = sync(sections);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /summary: accounts=3 failed=0 archived=1 /, 'dora\'s new message, with the section\'s right password');
      // [server 127.0.0.1] switches the admin login off for this host: the accounts' own passwords count again.
      await withClient(server, fritz, (c) => append(c, 'INBOX', message(5, 'fritz')));
      const off = sync(config('off', ['admin_user = archiver', `admin_password_file = ${right}`, '[server 127.0.0.1]', 'admin_user ='], true));
      assert.equal(off.code, 69, off.stderr);
      noPassword(off);
      assert.match(off.stderr, /error: dora@127\.0\.0\.1: no password stored; /);
      assert.match(off.stderr, /error: emil@127\.0\.0\.1: login refused/);
      assert.doesNotMatch(off.stderr, /admin login as/);
      assert.match(off.stderr, /summary: accounts=3 failed=2 archived=1 /, "fritz's new message, with his own password");
    });

    it('an unusable admin password file stops the run before any connection (exit 78, one line); one its group can read is a warning', () => {
      const sessions = server.sessions('dora').length;
      const check = (file: string, problem: RegExp) => {
        const r = sync(config('bad-file', ['admin_user = archiver', `admin_password_file = ${file}`]));
        assert.equal(r.code, 78, r.stderr);
        assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
        assert.match(r.stderr, problem);
        noPassword(r);
      };
      check(path.join(work, 'missing.secret'), /^benno-imapsync: \S+bad-file\.conf, line 9: admin_password_file \S+missing\.secret: cannot open it \(ENOENT\)\n$/);
      check(secretFile('open.secret', `${admin.password}\n`, 0o644), /line 9: admin_password_file \S+open\.secret: readable by others \(mode 0644\)/);
      check(secretFile('blank.secret', `\n${admin.password}\n`), /line 9: admin_password_file \S+blank\.secret: its first line is empty\n$/);
      assert.equal(server.sessions('dora').length, sessions, 'no session');
      const group = sync(config('group', ['admin_user = archiver', `admin_password_file = ${secretFile('group.secret', `${admin.password}\n`, 0o640)}`]));
      assert.equal(group.code, 0, group.stderr);
      assert.match(group.stderr, /warn: \S+group\.conf, line 9: admin_password_file \S+group\.secret: readable by its group \(mode 0640\)/);
    });
  });
}

describe('benno-imapsync with an admin login, against servers without AUTH=PLAIN', () => {
  let work: string;
  let servers: ImapServer[] = [];
  before(async () => {
    work = tempDir();
    servers = [await Dovecot.start({ users: [dora], admin, mechanisms: ['login'] }), await Cyrus.start({ users: [dora], admin, mechanisms: ['login'] })];
  });
  after(async () => {
    for (const s of servers) await s.stop();
    removeTree(work);
  });

  it('fails the account with that reason (exit 69), never trying another way in as the admin; nothing archived', async () => {
    for (const server of servers) {
      const dir = tempDir();
      try {
        await withClient(server, dora, (c) => append(c, 'INBOX', message(1, 'dora')));
        const secret = path.join(dir, 'admin.secret');
        fs.writeFileSync(secret, `${admin.password}\n`, { mode: 0o600 });
        const conf = path.join(dir, 'imapsync.conf');
        fs.mkdirSync(path.join(dir, 'inbox'));
        const base = ['[imapsync]', `database = sqlite:${dir}/accounts.db`, `pubkey = ${dir}/key.pub`, `inbox = ${dir}/inbox`, `port = ${server.imapPort}`, `cafile = ${server.caFile}`];
        fs.writeFileSync(conf, [...base, 'admin_user = archiver', `admin_password_file = ${secret}`, ''].join('\n'));
        const added = cli(USER, ['-c', conf, '-u', 'dora', '-i', '127.0.0.1', '-e', 'dora@example.org']);
        assert.equal(added.code, 0, added.stderr);
        const r = cli(SYNC, ['-c', conf, '--lock', path.join(dir, 'lock')]);
        assert.equal(r.code, 69, `${server.kind}: ${r.stderr}`);
        assert.match(r.stderr, /error: dora@127\.0\.0\.1: the server offers no AUTH=PLAIN, which the admin login needs/);
        assert.ok(!r.stderr.includes(admin.password));
        assert.deepEqual(spoolFiles(path.join(dir, 'inbox')), []);
      } finally {
        removeTree(dir);
      }
    }
  });
});
