// The real IMAP servers the IMAP import is tested against (issue 11): proves
// that the helper's Dovecot and Cyrus (both hierarchy separators) do what the
// import tests rely on — TLS with the test CA only, exact bytes back from
// BODY.PEEK[] without \Seen, nested and UTF-7 folders, a new UIDVALIDITY
// after delete and recreate, and a per-session trace that tells whether a
// client sent a FETCH. Needs root and the servers (scripts/test-deps); a
// missing server fails here, it is never skipped.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  Cyrus,
  Dovecot,
  ImapServer,
  ImapUser,
  append,
  asCrlf,
  connect,
  createFolder,
  expunge,
  fetchCommands,
  folderStatus,
  nastyMessage,
  readFolder,
  recreateFolder,
  testCa,
  withClient,
} from '../helpers/imap-servers';

const alice: ImapUser = { user: 'alice', password: 'alice secret' };
const bob: ImapUser = { user: 'bob', password: 'b0b"pw' };
const users = [alice, bob];

const kinds: { name: string; start: (certificate?: 'ca' | 'wrong', others?: ImapUser[]) => Promise<ImapServer> }[] = [
  { name: 'Dovecot', start: (certificate, others) => Dovecot.start({ users: others ?? users, certificate }) },
  { name: "Cyrus with '.'", start: (certificate, others) => Cyrus.start({ users: others ?? users, certificate }) },
  { name: "Cyrus with '/'", start: (certificate, others) => Cyrus.start({ users: others ?? users, certificate, separator: '/' }) },
];

function secured(client: unknown): boolean {
  // Set by imapflow once TLS is up (after STARTTLS too); not in its type declarations.
  return (client as { secureConnection?: boolean }).secureConnection === true;
}

for (const kind of kinds) {
  describe(`real IMAP server: ${kind.name}`, () => {
    let server: ImapServer;

    before(async () => {
      server = await kind.start();
    });
    after(async () => {
      await server?.stop();
    });

    it('logs in over STARTTLS and over IMAPS with the test CA', async () => {
      for (const tls of ['starttls', 'imaps'] as const) {
        await withClient(server, alice, async (c) => {
          assert.ok(secured(c), `${tls}: TLS is up`);
          assert.equal((await folderStatus(c, 'INBOX')).messages, 0);
        }, { tls });
      }
    });

    it("each user's mailbox is their own, though their INBOXes are made in the same second", async () => {
      // Cyrus makes a mailbox's unique id with rand(); see defaultpartition in the helper.
      const fresh = ['carl', 'dana', 'emma'].map((user) => ({ user, password: `${user} pw` }));
      const other = await kind.start('ca', fresh);
      try {
        await Promise.all(fresh.map((u) => withClient(other, u, (c) => append(c, 'INBOX', Buffer.from(`Subject: for ${u.user}\r\n\r\nx\r\n`)))));
        for (const u of fresh) {
          const mine = await withClient(other, u, (c) => readFolder(c, 'INBOX'));
          assert.deepEqual(mine.map((m) => m.source.toString()), [`Subject: for ${u.user}\r\n\r\nx\r\n`], u.user);
        }
      } finally {
        await other.stop();
      }
    });

    it('refuses a server certificate the CA did not sign, and only for that reason', async () => {
      const wrong = await kind.start('wrong');
      try {
        for (const tls of ['starttls', 'imaps'] as const) {
          await assert.rejects(connect(wrong, alice, { tls }), (err: Error & { code?: string }) => {
            assert.match(`${err.code} ${err.message}`, /SELF_SIGNED|self[- ]signed|certificate/i);
            return true;
          });
          // The same server, trusted explicitly: the refusal above was the certificate's.
          await withClient(wrong, alice, async (c) => assert.ok(secured(c)), { tls, caFile: testCa().wrongCertFile });
        }
      } finally {
        await wrong.stop();
      }
    });

    it('returns an APPENDed nasty message byte for byte from BODY.PEEK[], flags kept, \\Seen unset', async () => {
      await withClient(server, alice, async (c) => {
        const folder = await createFolder(c, ['Nasty']);
        const plain = await append(c, folder, nastyMessage());
        const flagged = await append(c, folder, nastyMessage(), ['\\Flagged', '$Label1']);
        const read = await readFolder(c, folder);
        assert.deepEqual(read.map((m) => m.uid), [plain.uid, flagged.uid]);
        for (const m of read) assert.ok(m.source.equals(nastyMessage()), `UID ${m.uid}: bytes differ`);
        assert.deepEqual(read.map((m) => m.flags), [[], ['$Label1', '\\Flagged']]);
        // Reading twice: the first read set no \Seen either.
        assert.deepEqual((await readFolder(c, folder)).map((m) => m.flags), [[], ['$Label1', '\\Flagged']]);

        // A bare LF never comes back as one: what the import sees from these servers.
        const bare = nastyMessage({ bareLf: true });
        if (server.kind === 'cyrus') {
          await assert.rejects(append(c, folder, bare), /bare newlines/);
        } else {
          const { uid } = await append(c, folder, bare);
          const back = (await readFolder(c, folder)).find((m) => m.uid === uid)!;
          assert.ok(back.source.equals(asCrlf(bare)), 'Dovecot returns the bare LF as CRLF and nothing else changed');
        }
      });
    });

    it('lists nested and non-ASCII folders, which travel as modified UTF-7', async () => {
      await withClient(server, alice, async (c) => {
        const created = [
          await createFolder(c, ['Entwürfe']),
          await createFolder(c, ['Archiv', '2024', 'Q1']),
          await createFolder(c, ['Archiv', 'Größe €']),
        ];
        const sep = server.separator;
        assert.deepEqual(created, ['Entwürfe', `Archiv${sep}2024${sep}Q1`, `Archiv${sep}Größe €`]);
        const listed = await c.list();
        for (const name of [...created, 'Archiv', `Archiv${sep}2024`]) {
          const entry = listed.find((f) => f.path === name);
          assert.ok(entry, `${name} is listed: ${listed.map((f) => f.path).join(', ')}`);
          assert.equal(entry.delimiter, sep);
        }
      });
      const sent = server.sessions(alice.user).flatMap((s) => s.commands);
      assert.ok(sent.some((l) => / CREATE "?Entw&APw-rfe"?$/.test(l)), 'CREATE named the folder in modified UTF-7');
      assert.ok(sent.some((l) => /Gr&APYA3w-e &IKw-/.test(l)), '…with ö, ß and € too');
    });

    it('gives a deleted and recreated folder a new UIDVALIDITY, UIDs from 1 again; expunges one message', async () => {
      await withClient(server, alice, async (c) => {
        const folder = await createFolder(c, ['Recreated']);
        const first = await append(c, folder, Buffer.from('Subject: 1\r\n\r\none\r\n'));
        await append(c, folder, Buffer.from('Subject: 2\r\n\r\ntwo\r\n'));
        const before = await folderStatus(c, folder);
        assert.equal(before.uidValidity, first.uidValidity);

        await expunge(c, folder, first.uid);
        assert.deepEqual((await readFolder(c, folder)).map((m) => m.source.toString()), ['Subject: 2\r\n\r\ntwo\r\n']);

        await recreateFolder(c, folder);
        const again = await append(c, folder, Buffer.from('Subject: 3\r\n\r\nthree\r\n'));
        assert.notEqual(again.uidValidity, before.uidValidity);
        assert.equal(again.uid, 1);
        assert.equal((await folderStatus(c, folder)).messages, 1);
      });
    });

    it("shows in its per-session trace whether a client FETCHed, and never the password", async () => {
      await withClient(server, bob, async (c) => {
        const folder = await createFolder(c, ['Traced']);
        await append(c, folder, Buffer.from('Subject: t\r\n\r\ntraced\r\n'));
        assert.equal((await readFolder(c, folder)).length, 1);
      });
      // A session as a no-change sync would have it: STATUS and EXAMINE, nothing opened.
      await withClient(server, bob, async (c) => {
        const folder = (await c.list()).find((f) => f.path.endsWith('Traced'))!.path;
        assert.equal((await folderStatus(c, folder)).messages, 1);
        await c.mailboxOpen(folder, { readOnly: true });
        await c.mailboxClose();
      });

      const sessions = server.sessions(bob.user);
      assert.equal(sessions.length, 2, sessions.map((s) => s.file).join(', '));
      const [fetching, quiet] = sessions;
      assert.ok(fetchCommands(fetching).length > 0, `the first session fetched:\n${fetching.commands.join('\n')}`);
      assert.ok(quiet.commands.some((l) => / STATUS /.test(l)) && quiet.commands.some((l) => / EXAMINE /.test(l)));
      assert.deepEqual(fetchCommands(quiet), [], `the STATUS/EXAMINE session sent no FETCH:\n${quiet.commands.join('\n')}`);
      for (const s of sessions) assert.ok(!s.commands.some((l) => l.includes(bob.password)), `${s.file} holds no password`);

      if (server instanceof Dovecot) {
        const [first, second] = await server.waitForLogouts(bob.user, 2);
        assert.ok(first.fetchBodies > 0, first.line);
        assert.equal(second.fetchHeaders + second.fetchBodies, 0, second.line);
      }
    });
  });
}
