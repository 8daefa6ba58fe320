// The IMAP sync engine (src/imap/sync.ts) against a real Dovecot and a real
// Cyrus with both hierarchy separators: what lands in the inbox is the
// envelope block and then exactly the server's BODY[]; the server is only
// read (flags and the protocol trace prove it); state makes a second run
// archive only new mail and a no-change run send no FETCH; UIDVALIDITY
// changes, expunges during a run and refused logins and certificates.

import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Logger } from '../../src/ops/log';
import { DEFAULT_ENVELOPE_NAMES, gatewayLine, importedEnvelope } from '../../src/spool/format';
import { SpoolWriter } from '../../src/spool/writer';
import { openStore } from '../../src/imap/open-store';
import { Account, AccountStore } from '../../src/imap/store';
import { chooseFolders, toModifiedUtf7 } from '../../src/imap/folders';
import { SyncError, SyncOptions, SyncResult, syncAccount } from '../../src/imap/sync';
import { removeTree, tempDir } from '../helpers/fs';
import { freePort } from '../helpers/net';
import {
  Cyrus,
  Dovecot,
  ImapServer,
  ImapUser,
  StoredMessage,
  append,
  createFolder,
  createSpecialUseFolder,
  fetchCommands,
  writingCommand,
  nastyMessage,
  readFolder,
  recreateFolder,
  expunge,
  withClient,
} from '../helpers/imap-servers';
import { FailingWriter, readWhole, spoolFiles, tempFiles } from '../helpers/spool';

const users: ImapUser[] = ['alice', 'bob', 'carol', 'dave', 'erin', 'frank', 'gina', 'hank', 'ivan'].map((user) => ({ user, password: `${user} pw "secret"` }));
const [alice] = users;

/** Folders the servers mark with a SPECIAL-USE attribute, under names the exclude list does not carry. */
const SPECIAL_USE = { Spam: '\\Junk', Papierkorb: '\\Trash', Gesendet: '\\Sent' };

const kinds: { name: string; start: (certificate?: 'ca' | 'wrong') => Promise<ImapServer> }[] = [
  { name: 'Dovecot', start: (certificate) => Dovecot.start({ users, certificate, specialUse: SPECIAL_USE }) },
  { name: "Cyrus with '.'", start: (certificate) => Cyrus.start({ users, certificate }) },
  { name: "Cyrus with '/'", start: (certificate) => Cyrus.start({ users, certificate, separator: '/' }) },
];

function capturingLog(): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  const at = (level: string) => (message: string) => lines.push(`${level}: ${message}`);
  return { log: { error: at('error'), warn: at('warn'), info: at('info'), debug: at('debug') } as unknown as Logger, lines };
}

/** What one spool file must hold for a message of the account. */
function expectedFile(account: Account, source: Buffer): Buffer {
  const env = importedEnvelope(DEFAULT_ENVELOPE_NAMES, source, [Buffer.from(account.emails)]);
  assert.ok('block' in env);
  return Buffer.concat([env.block, ...(account.gateway ? [gatewayLine(account.gateway)] : []), source]);
}

function inboxContents(dir: string): Buffer[] {
  assert.deepEqual(tempFiles(dir), [], 'no temp file left');
  return spoolFiles(dir).map((n) => readWhole(dir, n));
}

function sameSet(actual: Buffer[], expected: Buffer[], what: string): void {
  const hex = (l: Buffer[]) => [...new Set(l.map((b) => b.toString('hex')))].sort();
  assert.deepEqual(hex(actual), hex(expected), what);
}

describe('chooseFolders', () => {
  const f = (path: string, delimiter: string, ...flags: string[]) => ({ path, delimiter, flags: new Set(flags) });
  it('matches exclude entries per segment, with either separator, relative to the personal namespace', () => {
    const chosen = chooseFolders(
      [f('INBOX', '.'), f('INBOX.Trash', '.'), f('INBOX.Trash.x', '.'), f('INBOX.Trashy', '.'), f('INBOX.A.B', '.'), f('INBOX.A.Bc', '.'), f('INBOX.Box', '.', '\\Noselect'), f('user.bob.x', '.')],
      ['Trash', 'A/B'],
      'INBOX.',
    );
    assert.deepEqual(Object.fromEntries(chosen.map((c) => [c.path, c.excluded])), {
      INBOX: null,
      'INBOX.Trash': 'excluded by name "Trash"',
      'INBOX.Trash.x': 'inside excluded folder "Trash"',
      'INBOX.Trashy': null,
      'INBOX.A.B': 'excluded by name "A/B"',
      'INBOX.A.Bc': null,
      'INBOX.Box': 'not selectable (\\Noselect)',
      'user.bob.x': 'outside the personal namespace "INBOX."',
    });
  });
  it('keys folders by their modified UTF-7 name', () => {
    assert.equal(toModifiedUtf7('Entwürfe'), 'Entw&APw-rfe');
    assert.equal(toModifiedUtf7('Größe €/A&B'), 'Gr&APYA3w-e &IKw-/A&-B');
    assert.equal(toModifiedUtf7('😀'), '&2D3eAA-');
  });
});

for (const kind of kinds) {
  describe(`IMAP sync against ${kind.name}`, () => {
    let server: ImapServer;
    let work: string;
    let store: AccountStore;
    /** Sessions a test opened while a sync ran (hooks): not the sync's own. */
    const notTheSync = new Set<string>();

    before(async () => {
      server = await kind.start();
      work = tempDir('benno-imapsync-');
      store = openStore(`sqlite:${path.join(work, 'accounts.db')}`);
    });
    after(async () => {
      await store?.close();
      await server?.stop();
      if (work) removeTree(work);
    });

    /** A fresh inbox and the account of user in the store. */
    async function setUp(user: ImapUser, gateway: string | null = null) {
      const inbox = path.join(work, `inbox-${user.user}`);
      fs.mkdirSync(inbox, { recursive: true });
      const { account } = await store.saveAccount({ user: user.user, host: `${server.host}:${server.imapPort}`, container: 'C', emails: `${user.user}@example.test`, gateway });
      return { inbox, account, writer: new SpoolWriter(inbox) };
    }

    /** One sync; returns its result, its log and the server sessions it made, checked for writing commands. */
    async function sync(user: ImapUser, account: Account, writer: SpoolWriter, extra: Partial<SyncOptions> = {}) {
      const seen = new Set(server.sessions(user.user).map((s) => s.file));
      const { log, lines } = capturingLog();
      const result = await syncAccount({
        server: { host: server.host, port: server.imapPort, tls: 'starttls', caFile: server.caFile, timeoutMs: 20_000 },
        account,
        password: Buffer.from(user.password),
        store,
        writer,
        exclude: ['Drafts', 'Trash', 'Junk'],
        log,
        ...extra,
      });
      const sessions = server.sessions(user.user).filter((s) => !seen.has(s.file) && !notTheSync.has(s.file));
      for (const s of sessions) {
        const bad = s.commands.filter(writingCommand);
        assert.deepEqual(bad, [], `${s.file}: the sync sent only reading commands`);
        assert.ok(!s.commands.some((c) => c.includes(user.password)), `${s.file} holds no password`);
      }
      return { result, lines, sessions };
    }

    function folder(result: SyncResult, name: string) {
      const f = result.folders.find((x) => x.folder === name);
      assert.ok(f, `${name} in ${result.folders.map((x) => x.folder).join(', ')}`);
      return f;
    }

    it('archives INBOX byte for byte after the envelope block, leaves flags alone, then archives only new mail, then fetches nothing', async () => {
      const { inbox, account, writer } = await setUp(alice, 'gw-1');
      const messages = [
        nastyMessage(),
        Buffer.from('Return-Path: <bounce@example.test>\r\nFrom: a@example.test\r\nSubject: rp\r\n\r\nbody\r\n'),
        Buffer.from('Return-Path: <>\r\nSubject: null sender\r\n\r\nbounce\r\n'),
        Buffer.from('Subject: short\r\n\r\nno newline at the end'),
      ];
      let before: StoredMessage[] = [];
      await withClient(server, alice, async (c) => {
        await append(c, 'INBOX', messages[0]);
        await append(c, 'INBOX', messages[1], ['\\Flagged']);
        await append(c, 'INBOX', messages[2], ['\\Answered', '$Label1']);
        await append(c, 'INBOX', messages[3]);
        before = await readFolder(c, 'INBOX');
      });
      assert.equal(before.length, 4);

      const first = await sync(alice, account, writer);
      assert.equal(first.result.archived, 4, first.lines.join('\n'));
      assert.deepEqual({ ...folder(first.result, 'INBOX'), ms: 0 }, { folder: 'INBOX', key: 'INBOX', status: 'synced', reason: null, archived: 4, skipped: 0, uidValidityChanged: false, ms: 0 });
      assert.ok(first.lines.some((l) => /^info: alice@127\.0\.0\.1:\d+ folder "INBOX": synced, 4 archived, 0 skipped, \d+ ms$/.test(l)), first.lines.join('\n'));
      sameSet(inboxContents(inbox), before.map((m) => expectedFile(account, m.source)), 'one file per message: envelope, gateway line, BODY[]');
      for (const s of first.sessions) {
        assert.ok(s.commands.some((c) => / EXAMINE /i.test(c)), 'opened with EXAMINE');
        assert.ok(s.commands.some((c) => /BODY\.PEEK\[\]/i.test(c)), 'fetched with BODY.PEEK[]');
      }

      let after: StoredMessage[] = [];
      await withClient(server, alice, async (c) => {
        after = await readFolder(c, 'INBOX');
      });
      assert.deepEqual(after.map((m) => [m.uid, m.flags]), before.map((m) => [m.uid, m.flags]), 'flags as they were; no \\Seen');

      const fresh = Buffer.from('Subject: new\r\n\r\nnew mail\r\n');
      await withClient(server, alice, (c) => append(c, 'INBOX', fresh));
      const second = await sync(alice, account, writer);
      assert.equal(second.result.archived, 1);
      assert.equal(inboxContents(inbox).length, 5);
      assert.ok(inboxContents(inbox).some((b) => b.equals(expectedFile(account, fresh))));
      // Only the new message's body was fetched.
      const bodies = second.sessions.flatMap((s) => s.commands.filter((c) => /BODY\.PEEK\[\]/i.test(c)));
      assert.equal(bodies.length, 1, bodies.join('\n'));
      assert.match(bodies[0], new RegExp(` UID FETCH ${before[3].uid + 1} `));

      const third = await sync(alice, account, writer);
      assert.equal(third.result.archived, 0);
      assert.equal(folder(third.result, 'INBOX').status, 'unchanged');
      assert.ok(third.sessions.length > 0);
      for (const s of third.sessions) {
        assert.deepEqual(fetchCommands(s), [], `no FETCH in a no-change run:\n${s.commands.join('\n')}`);
        assert.ok(!s.commands.some((c) => / (EXAMINE|SELECT) /i.test(c)), `no folder opened:\n${s.commands.join('\n')}`);
      }
      assert.deepEqual((await store.folderStates(account.id)).find((f) => f.folder === 'INBOX')?.lastUid, before[3].uid + 1);
      const records = (await store.archiveRecords(account.id)).messages.filter((r) => r.folder === 'INBOX');
      assert.deepEqual(records.map((r) => [r.uid, r.outcome]), [...before.map((m) => [m.uid, 'archived']), [before[3].uid + 1, 'archived']]);
      assert.deepEqual(records.map((r) => r.file).sort(), spoolFiles(inbox), 'each record names the file its message is in');
    });

    it('archives nested and non-ASCII folders and leaves out excluded ones: by name, as subfolder, by SPECIAL-USE', async () => {
      const carol = users[2];
      const { inbox, account, writer } = await setUp(carol);
      const sep = server.separator;
      const expected: Buffer[] = [];
      const folders: Record<string, string> = {};
      await withClient(server, carol, async (c) => {
        for (const parts of [['Archiv', '2024', 'Q1'], ['Archiv', 'Größe €'], ['Archiv', 'Alt', 'Tief'], ['Entwürfe'], ['Drafts'], ['Trash', 'Alt'], ['Trashy']]) {
          folders[parts.join('/')] = await createFolder(c, parts);
        }
        for (const [name, use] of Object.entries(SPECIAL_USE)) folders[name] = await createSpecialUseFolder(server, c, name, use);
        folders.INBOX = 'INBOX';
        for (const [label, name] of Object.entries(folders)) {
          await append(c, name, Buffer.from(`Subject: in ${label}\r\n\r\nfolder ${label}\r\n`));
        }
        for (const label of ['INBOX', 'Archiv/2024/Q1', 'Archiv/Größe €', 'Entwürfe', 'Trashy', 'Gesendet']) {
          for (const m of await readFolder(c, folders[label])) expected.push(expectedFile(account, m.source));
        }
      });

      const { result, lines } = await sync(carol, account, writer, { exclude: ['Drafts', 'Trash', 'Junk', 'Archiv/Alt'] });
      const status = Object.fromEntries(result.folders.map((f) => [f.folder, f.status === 'excluded' ? f.reason : `${f.status} ${f.archived}`]));
      const p = (...parts: string[]) => parts.join(sep);
      assert.deepEqual(status, {
        INBOX: 'synced 1',
        Archiv: 'synced 0',
        [p('Archiv', '2024')]: 'synced 0',
        [p('Archiv', '2024', 'Q1')]: 'synced 1',
        [p('Archiv', 'Größe €')]: 'synced 1',
        [p('Archiv', 'Alt')]: 'excluded by name "Archiv/Alt"',
        [p('Archiv', 'Alt', 'Tief')]: 'inside excluded folder "Archiv/Alt"',
        'Entwürfe': 'synced 1',
        Drafts: 'excluded by name "Drafts"',
        Trash: 'excluded by name "Trash"',
        [p('Trash', 'Alt')]: 'inside excluded folder "Trash"',
        Trashy: 'synced 1',
        Spam: 'special-use \\Junk matches exclude "Junk"',
        Papierkorb: 'special-use \\Trash matches exclude "Trash"',
        Gesendet: 'synced 1',
      }, lines.join('\n'));
      assert.equal(result.archived, 6);
      assert.equal(result.excluded, 7);
      sameSet(inboxContents(inbox), expected, 'the messages of the synced folders, none of the excluded');
      assert.ok(lines.some((l) => /folder "Archiv.Größe €": synced, 1 archived/.test(l)), 'logged with the decoded name');

      const keys = (await store.folderStates(account.id)).map((f) => f.folder).sort();
      assert.ok(keys.includes('Entw&APw-rfe'), `state keys are modified UTF-7: ${keys.join(', ')}`);
      assert.ok(keys.includes(p('Archiv', 'Gr&APYA3w-e &IKw-')), keys.join(', '));
      assert.deepEqual(keys.filter((k) => /^(Drafts|Trash|Spam|Papierkorb)$|Alt|Trash[./]/.test(k)), [], 'no state for excluded folders');
    });

    it('imports a folder again when its UIDVALIDITY changed, with a warning', async () => {
      const dave = users[3];
      const { inbox, account, writer } = await setUp(dave);
      const msg = (n: number) => Buffer.from(`Subject: ${n}\r\n\r\nmessage ${n}\r\n`);
      const box = await withClient(server, dave, async (c) => {
        const name = await createFolder(c, ['Box']);
        await append(c, name, msg(1));
        await append(c, name, msg(2));
        return name;
      });
      assert.equal(folder((await sync(dave, account, writer)).result, box).archived, 2);
      const old = (await store.folderStates(account.id)).find((f) => f.folder === box)!;

      await withClient(server, dave, async (c) => {
        await recreateFolder(c, box);
        await append(c, box, msg(1));
        await append(c, box, msg(3));
      });
      const { result, lines } = await sync(dave, account, writer);
      const f = folder(result, box);
      assert.equal(f.uidValidityChanged, true);
      assert.equal(f.archived, 2, 'both messages of the new folder fetched again');
      assert.ok(lines.some((l) => new RegExp(`^warn: .*"${box}": UIDVALIDITY changed from ${old.uidValidity} to \\d+`).test(l)), lines.join('\n'));
      assert.equal(inboxContents(inbox).length, 3, 'message 1 again, under the same name as before: 1, 2, 3');
      const now = (await store.folderStates(account.id)).find((x) => x.folder === box)!;
      assert.notEqual(now.uidValidity, old.uidValidity);
      assert.equal(now.lastUid, 2);
    });

    it('skips a message expunged between listing and fetch, and goes on', async () => {
      const erin = users[4];
      const { inbox, account, writer } = await setUp(erin);
      const box = await withClient(server, erin, async (c) => {
        const name = await createFolder(c, ['Exp']);
        for (let n = 1; n <= 3; n++) await append(c, name, Buffer.from(`Subject: ${n}\r\n\r\nexpunged? ${n}\r\n`));
        return name;
      });
      let gone = 0;
      const { result, lines } = await sync(erin, account, writer, {
        // One FETCH per message: the server tells the session of the expunge with the answer to the first (RFC 3501 7.4.1 allows it after a UID command).
        tuning: { batchMessages: 1 },
        hooks: {
          afterListing: async (name, uids) => {
            if (name !== box || gone) return;
            gone = uids[1];
            const seen = new Set(server.sessions(erin.user).map((x) => x.file));
            await withClient(server, erin, (c) => expunge(c, box, gone));
            for (const x of server.sessions(erin.user)) if (!seen.has(x.file)) notTheSync.add(x.file);
          },
        },
      });
      const f = folder(result, box);
      assert.equal(f.status, 'synced');
      assert.deepEqual([f.archived, f.skipped], [2, 1], lines.join('\n'));
      assert.ok(lines.some((l) => new RegExp(`^warn: .*"${box}": UID ${gone} was expunged before it could be fetched; skipped$`).test(l)), lines.join('\n'));
      assert.equal(inboxContents(inbox).length, 2);
      assert.equal((await store.folderStates(account.id)).find((x) => x.folder === box)!.lastUid, 3, 'state moved past the expunged message');
      const record = (await store.archiveRecords(account.id)).messages.find((r) => r.folder === box && r.uid === gone);
      assert.equal(record?.outcome, 'expunged', 'the state passes it with a record that says why');
    });

    it('streams a large message in pieces, byte for byte', async () => {
      const frank = users[5];
      const { inbox, account, writer } = await setUp(frank);
      // 3 MB of 8-bit lines, each different, so that a piece put in the wrong place shows.
      const lines = Array.from({ length: 40_000 }, (_, i) => `${i.toString(36).padStart(8, '0')}${'\xe4\xf6\xfc'.repeat(20)} ${'y'.repeat(14)}\r\n`);
      const big = Buffer.concat([Buffer.from('Subject: big\r\nContent-Type: text/plain; charset=iso-8859-1\r\n\r\n'), Buffer.from(lines.join(''), 'latin1'), nastyMessage()]);
      const source = await withClient(server, frank, async (c) => {
        await append(c, 'INBOX', big);
        await append(c, 'INBOX', nastyMessage());
        return (await readFolder(c, 'INBOX')).map((m) => m.source);
      });
      const { result, sessions } = await sync(frank, account, writer, { tuning: { largeBytes: 1000, chunkBytes: 1024 * 1024 } });
      assert.equal(result.archived, 2);
      sameSet(inboxContents(inbox), source.map((b) => expectedFile(account, b)), 'pieces put together are BODY[]');
      const pieces = sessions.flatMap((s) => s.commands.filter((c) => /BODY\.PEEK\[\]<\d+\.\d+>/i.test(c)));
      assert.equal(pieces.length, Math.ceil(source[0].length / (1024 * 1024)) + 1, pieces.join('\n'));
    });

    it('stops a folder at a message it cannot write, and takes it up there next run; a full disk stops the run', async () => {
      const gina = users[6];
      const { inbox, account } = await setUp(gina);
      const uids = await withClient(server, gina, async (c) => {
        const out: number[] = [];
        for (let n = 1; n <= 3; n++) out.push((await append(c, 'INBOX', Buffer.from(`Subject: ${n}\r\n\r\nwrite ${n}\r\n`))).uid);
        return out;
      });
      const failed = await sync(gina, account, new FailingWriter(inbox, 2, 'EIO'));
      const f = folder(failed.result, 'INBOX');
      assert.equal(f.status, 'failed');
      assert.match(f.reason!, new RegExp(`^UID ${uids[1]} could not be written to the inbox: EIO`));
      assert.equal(failed.result.errors, 1);
      assert.ok(failed.lines.some((l) => /^error: .*"INBOX": failed/.test(l)), failed.lines.join('\n'));
      assert.equal((await store.folderStates(account.id)).find((x) => x.folder === 'INBOX')!.lastUid, uids[0], 'not past the failed message');
      const failedRecord = (await store.archiveRecords(account.id)).messages.find((r) => r.folder === 'INBOX' && r.uid === uids[1]);
      assert.deepEqual([failedRecord?.outcome, failedRecord?.file], ['failed', null]);
      assert.match(failedRecord!.reason!, /could not be written to the inbox: EIO/);

      await withClient(server, gina, (c) => append(c, 'INBOX', Buffer.from('Subject: 4\r\n\r\nwrite 4\r\n')));
      await assert.rejects(sync(gina, account, new FailingWriter(inbox, 1, 'ENOSPC')), (err: unknown) => {
        assert.ok(err instanceof SyncError, String(err));
        assert.equal(err.kind, 'disk-full');
        assert.match(err.message, /^gina@127\.0\.0\.1:\d+: the inbox .* is full \(ENOSPC\)/);
        assert.ok(err.partial, 'what was done comes with it');
        return true;
      });
      assert.equal((await store.folderStates(account.id)).find((x) => x.folder === 'INBOX')!.lastUid, uids[0]);

      const retried = await sync(gina, account, new SpoolWriter(inbox));
      assert.equal(folder(retried.result, 'INBOX').archived, 3, 'the failed message and those after it');
      assert.equal((await store.archiveRecords(account.id)).messages.find((r) => r.folder === 'INBOX' && r.uid === uids[1])?.outcome, 'archived', 'the retry replaced the failure');
      assert.equal(inboxContents(inbox).length, 4);
    });

    it('connects over IMAPS; refuses a certificate the CA did not sign, and a server that is down, with typed errors', async () => {
      const bob = users[1];
      const { account, writer } = await setUp(bob);
      const imaps = await sync(bob, account, writer, { server: { host: server.host, port: server.imapsPort, tls: 'imaps', caFile: server.caFile } });
      assert.equal(folder(imaps.result, 'INBOX').status, 'synced');

      const wrong = await kind.start('wrong');
      try {
        for (const [tls, port] of [['starttls', wrong.imapPort], ['imaps', wrong.imapsPort]] as const) {
          await assert.rejects(sync(bob, account, writer, { server: { host: wrong.host, port, tls, caFile: server.caFile } }), (err: unknown) => {
            assert.ok(err instanceof SyncError, String(err));
            assert.equal(err.kind, 'tls', err.message);
            assert.match(err.message, /^bob@127\.0\.0\.1:\d+: TLS failed: .*(certificate|SELF_SIGNED)/i);
            return true;
          });
        }
      } finally {
        await wrong.stop();
      }
      const down = await freePort();
      await assert.rejects(sync(bob, account, writer, { server: { host: server.host, port: down, tls: 'starttls', caFile: server.caFile } }), (err: unknown) => {
        assert.ok(err instanceof SyncError, String(err));
        assert.equal(err.kind, 'connect', err.message);
        assert.match(err.message, /ECONNREFUSED/);
        return true;
      });
    });

    /** The store, with every save taking 200 ms (sql.js at some 500,000 records), counted per folder. */
    function slowStore(): { saves: Map<string, number>; slow: AccountStore } {
      const saves = new Map<string, number>();
      const slow = Object.create(store) as AccountStore;
      slow.saveFolderStates = async (id, states, records) => {
        for (const st of states) saves.set(st.folder, (saves.get(st.folder) ?? 0) + 1);
        await new Promise((r) => setTimeout(r, 200));
        return store.saveFolderStates(id, states, records);
      };
      return { saves, slow };
    }

    it('spaces its saves by what they cost: a slow database is written far less often than every saveEveryMessages', async () => {
      const hank = users[7];
      const { account, writer } = await setUp(hank);
      const [fast, paced] = await withClient(server, hank, async (c) => {
        const names = [await createFolder(c, ['Unpaced']), await createFolder(c, ['Paced'])];
        for (const name of names) for (let n = 1; n <= 40; n++) await append(c, name, Buffer.from(`Subject: ${n}\r\n\r\npaced ${n}\r\n`));
        return names;
      });
      const { saves, slow } = slowStore();
      const tuning = { saveEveryMessages: 4, batchMessages: 4 };
      const only = (name: string) => ['Drafts', 'Trash', 'Junk', name === fast ? paced : fast];
      await sync(hank, account, writer, { store: slow, tuning: { ...tuning, saveCostFactor: 0 }, exclude: only(fast) });
      await sync(hank, account, writer, { store: slow, tuning, exclude: only(paced) });
      const states = await store.folderStates(account.id);
      const records = (await store.archiveRecords(account.id)).messages;
      for (const name of [fast, paced]) {
        assert.equal(states.find((x) => x.folder === name)?.lastUid, 40, `${name}: all of it saved in the end`);
        assert.equal(records.filter((r) => r.folder === name && r.outcome === 'archived').length, 40, `${name}: every record saved`);
      }
      assert.ok(saves.get(fast)! >= 10, `every 4 messages without pacing: ${saves.get(fast)} saves`);
      assert.ok(saves.get(paced)! <= 4, `paced by 9 × 200 ms: ${saves.get(paced)} saves`);
    });

    it('however slow the saves, the records waiting for one stay bounded: a save at most every 50 × saveEveryMessages', async () => {
      const ivan = users[8];
      const { account, writer } = await setUp(ivan);
      const box = await withClient(server, ivan, async (c) => {
        const name = await createFolder(c, ['Held']);
        for (let n = 1; n <= 120; n++) await append(c, name, Buffer.from(`Subject: ${n}\r\n\r\nheld ${n}\r\n`));
        return name;
      });
      const { saves, slow } = slowStore();
      // Paced by cost alone, nothing would be saved between the first message and the end.
      await sync(ivan, account, writer, { store: slow, tuning: { saveEveryMessages: 1, batchMessages: 10, saveCostFactor: 1_000_000 } });
      assert.ok(saves.get(box)! >= 3, `held records force a save every 50 messages: ${saves.get(box)} saves`);
      assert.equal((await store.folderStates(account.id)).find((x) => x.folder === box)?.lastUid, 120);
      assert.equal((await store.archiveRecords(account.id)).messages.filter((r) => r.folder === box).length, 120);
    });

    it('refuses a wrong password with a typed error naming user@host, never the password', async () => {
      const { account, writer } = await setUp(users[1]);
      await assert.rejects(sync(users[1], account, writer, { password: 'wrong "secret" pw' }), (err: unknown) => {
        assert.ok(err instanceof SyncError, String(err));
        assert.equal(err.kind, 'login', err.message);
        assert.match(err.message, new RegExp(`^bob@127\\.0\\.0\\.1:${server.imapPort}: login refused`));
        assert.ok(!err.message.includes('wrong "secret" pw') && !String(err.stack).includes('wrong "secret" pw'));
        return true;
      });
    });
  });
}
