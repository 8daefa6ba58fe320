// (k) What benno-imapsync's saves cost on a large SQLite accounts database
//     (sql.js rewrites the whole file on every save): the first sync of one
//     mailbox of N × 10 KB (20,000 by default) from Dovecot into a database
//     that already holds 1,000,000 records of another account, with the
//     saves every 1,000 messages as before, and spaced by nine times their
//     cost (saveCostFactor, the default now); both against the same sync
//     into an empty database. Rounds interleaved; each on a copy of the
//     same filled database.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { Dovecot, ImapUser } from '../test/helpers/imap-servers';
import { spoolFiles } from '../test/helpers/spool';
import { openStore } from '../src/imap/open-store';
import type { AccountStore, MessageRecord } from '../src/imap/store';
import { syncAccount } from '../src/imap/sync';
import { SpoolWriter } from '../src/spool/writer';
import { fillMaildir, tenKb } from './imap';
import { Options, Part, median, spoolBase } from './measure';
import { quietLogger } from '../test/helpers/log';

const USER: ImapUser = { user: 'saves', password: 'saves pw' };
const FILLED = 1_000_000;
const quiet = quietLogger();

/** An accounts database holding `records` records of an account of its own. */
async function filledDatabase(file: string, records: number): Promise<void> {
  const store = openStore(`sqlite:${file}`);
  const { account } = await store.saveAccount({ user: 'filler', host: '192.0.2.1', container: 'C', emails: 'filler@example.org', gateway: null });
  const batch: MessageRecord[] = Array.from({ length: records }, (_, i) => ({
    folder: 'INBOX',
    uidValidity: 1,
    uid: i + 1,
    outcome: 'archived',
    file: `${i.toString(16).padStart(64, '0')}.eml`,
    reason: null,
  }));
  await store.saveFolderStates(account.id, [{ folder: 'INBOX', uidValidity: 1, lastUid: records }], batch);
  await store.close();
}

/** One first sync of USER's mailbox into a copy of database; its seconds and the saves it made. */
async function firstSync(server: Dovecot, dir: string, database: string | null, saveCostFactor: number): Promise<{ seconds: number; saves: number; files: number }> {
  fs.mkdirSync(path.join(dir, 'inbox'), { recursive: true });
  const file = path.join(dir, 'accounts.db');
  if (database) fs.copyFileSync(database, file);
  const store = openStore(`sqlite:${file}`);
  const { account } = await store.saveAccount({ user: USER.user, host: `${server.host}:${server.imapPort}`, container: 'C', emails: 'saves@example.org', gateway: null });
  let saves = 0;
  const counting = Object.create(store) as AccountStore;
  counting.saveFolderStates = (id, states, records) => {
    saves++;
    return store.saveFolderStates(id, states, records);
  };
  const started = process.hrtime.bigint();
  await syncAccount({
    server: { host: server.host, port: server.imapPort, tls: 'starttls', caFile: server.caFile, timeoutMs: 60_000 },
    account,
    password: Buffer.from(USER.password),
    store: counting,
    writer: new SpoolWriter(path.join(dir, 'inbox')),
    exclude: [],
    log: quiet,
    tuning: { saveCostFactor },
  });
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  await store.close();
  return { seconds, saves, files: spoolFiles(path.join(dir, 'inbox')).length };
}

async function run(options: Options): Promise<string[][]> {
  const messages = options.messages ?? 20_000;
  const rounds = options.rounds ?? 2;
  const base = spoolBase();
  const dovecot = await Dovecot.start({ users: [USER] });
  try {
    fillMaildir(dovecot, USER.user, '', tenKb, messages);
    const filled = path.join(base, 'saves-filled.db');
    const t0 = Date.now();
    await filledDatabase(filled, FILLED);
    console.error(`(k) ${FILLED} records written in ${((Date.now() - t0) / 1000).toFixed(1)} s (${(fs.statSync(filled).size / 1e6).toFixed(0)} MB)`);
    const variants = [
      { name: 'empty database', database: null, factor: 9 },
      { name: `${FILLED.toLocaleString('en')} records, a save every 1,000 messages (before)`, database: filled, factor: 0 },
      { name: `${FILLED.toLocaleString('en')} records, saves spaced by 9 × their cost (now)`, database: filled, factor: 9 },
    ];
    const results = variants.map(() => ({ seconds: [] as number[], saves: [] as number[] }));
    for (let round = 1; round <= rounds; round++) {
      for (const [i, v] of variants.entries()) {
        const r = await firstSync(dovecot, path.join(base, `saves-${round}-${i}`), v.database, v.factor);
        if (r.files !== messages) throw new Error(`${v.name}: ${r.files} files for ${messages} messages`);
        results[i].seconds.push(r.seconds);
        results[i].saves.push(r.saves);
        console.error(`(k) round ${round}, ${v.name}: ${r.seconds.toFixed(1)} s, ${r.saves} saves`);
      }
    }
    const empty = median(results[0].seconds);
    return [
      [
        `### (k) First sync of ${messages} × 10 KB into a large SQLite accounts database, ${rounds} rounds interleaved`,
        '',
        '| database, saves | seconds (median) | messages/s | saves | time / empty database |',
        '| --- | ---: | ---: | ---: | ---: |',
        ...variants.map((v, i) => {
          const s = median(results[i].seconds);
          return `| ${v.name} | ${s.toFixed(1)} | ${(messages / s).toFixed(0)} | ${median(results[i].saves)} | ${(s / empty).toFixed(2)} |`;
        }),
        '',
      ],
    ];
  } finally {
    await dovecot.stop();
  }
}

export const imapSavesBench: Part = { key: 'k', run };
