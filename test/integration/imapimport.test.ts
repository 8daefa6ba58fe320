// benno-imapimport against a real Dovecot and a real Cyrus: every folder of
// a mailbox but the excluded ones, nested ones included, byte for byte as
// BODY[] hands them out, the server only read; a second run imports only
// what is new; SIGKILL in the middle and a new run: every message once, no
// temp file; the defaults of imapsync.conf (-c); a wrong password (69), the
// server down (75), a state file that is not ours, the command line.

import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DEFAULT_ENVELOPE_NAMES, importedEnvelope } from '../../src/spool/format';
import { DEFAULT_SUFFIX, finalName } from '../../src/spool/names';
import { ROOT, argvAfterFirstLine, runCli, sha256 } from '../helpers/daemon';
import { removeTree, subdir, tempDir } from '../helpers/fs';
import { Cyrus, Dovecot, ImapServer, ImapUser, append, createFolder, nastyMessage, readFolder, withClient } from '../helpers/imap-servers';
import { freePort } from '../helpers/net';
import { killAtFirstNewFile, readWhole, spoolFiles, tempFiles } from '../helpers/spool';

const IMPORT = path.join(ROOT, 'dist', 'src', 'cli', 'benno-imapimport.js');
const cli = (args: string[], input = '') => runCli(IMPORT, args, input);

const users: ImapUser[] = ['anna', 'bob'].map((user) => ({ user, password: `${user} pw "x"` }));
const [anna, bob] = users;

const b = (s: string) => Buffer.from(s, 'latin1');
const numbered = (i: number, who: string, filler = Buffer.alloc(0)) =>
  Buffer.concat([b(`Return-Path: <sender${i}@example.com>\r\nFrom: sender${i}@example.com\r\nTo: ${who}@example.org\r\nSubject: message ${i}\r\n\r\nbody ${i}\r\n`), filler, b('\r\n')]);

/** The file names the inbox must hold for these folders of who: envelope lines, then BODY[]. */
async function expectedNames(server: ImapServer, who: ImapUser, folders: string[]): Promise<string[]> {
  return withClient(server, who, async (c) => {
    const names: string[] = [];
    for (const f of folders) {
      for (const m of await readFolder(c, f)) {
        const env = importedEnvelope(DEFAULT_ENVELOPE_NAMES, m.source, [Buffer.from(`${who.user}@example.org`)]);
        assert.ok('block' in env);
        names.push(finalName(sha256(Buffer.concat([env.block, m.source])), DEFAULT_SUFFIX));
      }
    }
    return names.sort();
  });
}

/** Commands a read-only import must never send (SELECT would reset \Recent, the others change the mailbox). */
const WRITING = /^\S+ (UID )?(SELECT|STORE|EXPUNGE|COPY|MOVE|APPEND|CLOSE|CREATE|DELETE|RENAME)\b/i;

const kinds: { name: string; start: () => Promise<ImapServer> }[] = [
  { name: 'Dovecot', start: () => Dovecot.start({ users }) },
  { name: "Cyrus ('.' separator)", start: () => Cyrus.start({ users }) },
];

for (const kind of kinds) {
  describe(`benno-imapimport against a real ${kind.name}`, () => {
    let work: string;
    let server: ImapServer;
    /** Folder names on this server: imported, and excluded. */
    const folders: Record<string, string> = {};

    const args = (who: ImapUser, inbox: string, extra: string[] = []) => [
      '-u', who.user, '-e', `${who.user}@example.org`, '-i', `127.0.0.1:${server.imapPort}`, '-p', '-', '--cafile', server.caFile,
      '--inbox', inbox, '--state', path.join(work, `${who.user}.state`), '--exclude', 'Drafts, Trash, Junk, Privat', '--timeout', '10', ...extra,
    ];
    const inboxOf = (name: string) => subdir(work, name);

    before(async () => {
      work = tempDir();
      server = await kind.start();
      await withClient(server, anna, async (c) => {
        folders.inbox = 'INBOX';
        folders.archiv = await createFolder(c, ['Archiv']);
        folders.q1 = await createFolder(c, ['Archiv', '2024', 'Q1']);
        folders.drafts = await createFolder(c, ['Drafts']);
        folders.privat = await createFolder(c, ['Privat']);
        folders.privatSub = await createFolder(c, ['Privat', 'Steuer']);
        await append(c, folders.inbox, nastyMessage());
        await append(c, folders.inbox, numbered(1, 'anna'));
        await append(c, folders.archiv, numbered(2, 'anna'));
        await append(c, folders.q1, numbered(3, 'anna'));
        await append(c, folders.q1, b('Subject: dots\r\n\r\n.\r\n..\r\nend'));
        for (const [i, f] of [folders.drafts, folders.privat, folders.privatSub].entries()) await append(c, f, numbered(10 + i, 'anna'));
      });
    });
    after(async () => {
      await server?.stop();
      removeTree(work);
    });

    it('imports every folder but the excluded ones, nested ones included, byte for byte; the server is only read', async () => {
      const inbox = inboxOf('anna');
      const sessions = server.sessions('anna').length;
      const r = cli(args(anna, inbox), `${anna.password}\n`);
      assert.equal(r.code, 0, r.stderr);
      const commands = server.sessions('anna').slice(sessions).flatMap((s) => s.commands);
      for (const [folder, n] of [[folders.inbox, 2], [folders.archiv, 1], [folders.q1, 2]] as const) {
        assert.match(r.stderr, new RegExp(`info: anna@127\\.0\\.0\\.1:\\d+ folder "${folder.replace(/\./g, '\\.')}": synced, ${n} archived, 0 skipped, \\d+ ms`));
      }
      assert.doesNotMatch(r.stderr, /folder "[^"]*(Drafts|Privat)/);
      assert.match(r.stderr, /info: summary: anna@127\.0\.0\.1:\d+ folders=\d+ excluded=\d+ failed=0 archived=5 skipped=0 seconds=/);
      assert.ok(!r.stderr.includes(anna.password));

      const files = spoolFiles(inbox);
      assert.deepEqual(files, await expectedNames(server, anna, [folders.inbox, folders.archiv, folders.q1]));
      for (const n of files) readWhole(inbox, n);
      assert.deepEqual(tempFiles(inbox), []);

      assert.ok(commands.some((c) => /EXAMINE/i.test(c)), 'folders were opened');
      assert.deepEqual(commands.filter((c) => WRITING.test(c)), [], 'nothing but reading');
      await withClient(server, anna, async (c) => {
        for (const f of [folders.inbox, folders.q1]) for (const m of await readFolder(c, f)) assert.ok(!m.flags.includes('\\Seen'), `${f}: no message marked read`);
      });
    });

    it('run again, it imports only what arrived since', async () => {
      const inbox = path.join(work, 'anna');
      const again = cli(args(anna, inbox), `${anna.password}\n`);
      assert.equal(again.code, 0, again.stderr);
      assert.match(again.stderr, /summary: .* archived=0 /);
      await withClient(server, anna, (c) => append(c, folders.q1, numbered(4, 'anna')));
      const more = cli(args(anna, inbox), `${anna.password}\n`);
      assert.equal(more.code, 0, more.stderr);
      assert.match(more.stderr, /summary: .* archived=1 /);
      assert.deepEqual(spoolFiles(inbox), await expectedNames(server, anna, [folders.inbox, folders.archiv, folders.q1]));
    });

    it('SIGKILL in the middle of an import, then a new run: every message in the inbox once, no temp file left', async () => {
      const filler = Buffer.alloc(200 * 1024, 'z');
      let archiv = '';
      await withClient(server, bob, async (c) => {
        archiv = await createFolder(c, ['Archiv']);
        for (let i = 0; i < 30; i++) await append(c, 'INBOX', numbered(i, 'bob', filler));
        for (let i = 30; i < 60; i++) await append(c, archiv, numbered(i, 'bob', filler));
      });
      const inbox = inboxOf('bob');
      await killAtFirstNewFile(IMPORT, args(bob, inbox), inbox, `${bob.password}\n`);
      assert.ok(spoolFiles(inbox).length < 60, 'killed before the end');
      const r = cli(args(bob, inbox), `${bob.password}\n`);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /removed \d+ temp file|summary:/);
      assert.deepEqual(tempFiles(inbox), [], 'the killed run left no temp file behind after the next start');
      const files = spoolFiles(inbox);
      for (const n of files) readWhole(inbox, n);
      assert.equal(files.length, 60);
      assert.deepEqual(files, await expectedNames(server, bob, ['INBOX', archiv]), 'each of the 60 messages once');
      const state = JSON.parse(fs.readFileSync(path.join(work, 'bob.state'), 'utf8'));
      assert.equal(state.program, 'benno-imapimport');
      assert.equal(state.mailbox, 'bob@127.0.0.1');
    });
  });
}

describe('benno-imapimport: configuration, failures, the command line (Dovecot)', () => {
  let work: string;
  let dovecot: Dovecot;
  before(async () => {
    work = tempDir();
    dovecot = await Dovecot.start({ users });
    await withClient(dovecot, anna, async (c) => {
      await append(c, 'INBOX', numbered(1, 'anna'));
      await append(c, await createFolder(c, ['Drafts']), numbered(2, 'anna'));
    });
  });
  after(async () => {
    await dovecot?.stop();
    removeTree(work);
  });

  it('-c imapsync.conf gives inbox, port, cafile and exclude; the command line wins over it', () => {
    const inbox = path.join(work, 'from-config');
    fs.mkdirSync(inbox);
    const config = path.join(work, 'imapsync.conf');
    fs.writeFileSync(config, ['[imapsync]', `inbox = ${inbox}`, `port = ${dovecot.imapPort}`, `cafile = ${dovecot.caFile}`, 'exclude =', 'timeout = 10', ''].join('\n'));
    const state = path.join(work, 'config.state');
    const r = cli(['-c', config, '-u', 'anna', '-e', 'anna@example.org', '-i', '127.0.0.1', '-p', '-', '--state', state], `${anna.password}\n`);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /folder "Drafts": synced, 1 archived/, 'exclude = (empty) in the file: Drafts too');
    assert.equal(spoolFiles(inbox).length, 2);
    const other = path.join(work, 'from-command-line');
    fs.mkdirSync(other);
    const r2 = cli(['-c', config, '-u', 'anna', '-e', 'anna@example.org', '-i', '127.0.0.1', '-p', '-', '--inbox', other, '--exclude', 'Drafts', '--state', path.join(work, 'cl.state')], `${anna.password}\n`);
    assert.equal(r2.code, 0, r2.stderr);
    assert.equal(spoolFiles(other).length, 1);
  });

  it('--list-folders shows what would be imported and what is excluded, and imports nothing', () => {
    const r = cli(['-u', 'anna', '-e', 'anna@example.org', '-i', `127.0.0.1:${dovecot.imapPort}`, '--cafile', dovecot.caFile, '-p', '-', '--list-folders'], `${anna.password}\n`);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^import {4}INBOX$/m);
    assert.match(r.stdout, /^excluded {2}Drafts {2}\(excluded by name "Drafts"\)$/m);
  });

  it('a wrong password: exit 69, named with user@host, the password nowhere', () => {
    const inbox = path.join(work, 'x');
    fs.mkdirSync(inbox, { recursive: true });
    const r = cli(['-u', 'anna', '-e', 'anna@example.org', '-i', `127.0.0.1:${dovecot.imapPort}`, '--cafile', dovecot.caFile, '-p', '-', '--inbox', inbox, '--state', path.join(work, 'x.state')], 'not the password\n');
    assert.equal(r.code, 69, r.stderr);
    assert.match(r.stderr, /error: anna@127\.0\.0\.1:\d+: login refused/);
    assert.ok(!r.stderr.includes('not the password'));
  });

  it('the server down: exit 75; a state file that is not ours: one line, exit 64', async () => {
    const inbox = path.join(work, 'x');
    const down = cli(['-u', 'anna', '-e', 'anna@example.org', '-i', `127.0.0.1:${await freePort()}`, '-p', '-', '--inbox', inbox, '--state', path.join(work, 'x.state')], 'pw\n');
    assert.equal(down.code, 75, down.stderr);
    assert.match(down.stderr, /ECONNREFUSED/);
    const junk = path.join(work, 'junk.state');
    fs.writeFileSync(junk, 'not json\n');
    const r = cli(['-u', 'anna', '-e', 'anna@example.org', '-i', `127.0.0.1:${dovecot.imapPort}`, '--cafile', dovecot.caFile, '-p', '-', '--inbox', inbox, '--state', junk], `${anna.password}\n`);
    assert.equal(r.code, 64, r.stderr);
    assert.equal(r.stderr.trim(), `benno-imapimport: ${junk} is not a state file of benno-imapimport; remove it, or name another with --state`);
  });

  it('a password given with -p warns and is gone from the process list while the program runs', async () => {
    const { line, cmdline } = await argvAfterFirstLine(IMPORT, (port) => [
      '-u', 'anna', '-e', 'anna@example.org', '-i', `127.0.0.1:${port}`, '-p', 'Visible?Secret', '--tls', 'none', '--inbox', work, '--state', path.join(work, 'ps.state'),
    ]);
    assert.match(line, /warning: a password on the command line can be seen/);
    assert.ok(cmdline.length > 0 && !cmdline.includes('Visible?Secret'), JSON.stringify(cmdline));
  });

  it('usage mistakes: one line each, exit 64; --help answers', () => {
    const mistakes: [string[], RegExp][] = [
      [['-i', 'localhost', '-p', '-'], /name the mailbox with -u USER/],
      [['-u', 'anna', '-i', 'localhost'], /give the password/],
      [['-u', 'anna', '-i', 'localhost', '-p', '-'], /give the addresses of anna with -e/],
      [['-u', 'anna@example.org', '-i', 'localhost', '-p', '-', '--exclude', 'a,,b'], /bad --exclude "a,,b": an empty folder name/],
      [['-u', 'anna@example.org', '-i', 'localhost', '-p', '-', '--cafile', '/no/such/ca.pem'], /cannot read the CA file \/no\/such\/ca\.pem \(ENOENT\)/],
      [['-u', 'anna@example.org', '-i', 'localhost', '-p', '-', '--tls', 'pop3s'], /Invalid values: Argument: tls/],
    ];
    for (const [argv, re] of mistakes) {
      const r = cli(argv, 'pw\n');
      assert.equal(r.code, 64, `${argv.join(' ')}: ${r.stderr}`);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.match(r.stderr, re);
    }
    const help = cli(['--help']);
    assert.equal(help.code, 0);
    for (const text of ['Usage: benno-imapimport -u USER -i HOST[:PORT]', 'once', 'EXAMINE', 'resumes', '/var/lib/benno-imap/benno-imapimport-USER@HOST.state', '--exclude', '69 the server refused the login']) {
      assert.ok(help.stdout.includes(text), `--help mentions ${text}`);
    }
  });
});
