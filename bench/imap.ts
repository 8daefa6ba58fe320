// (i) The IMAP import (issue 11), against a throwaway Dovecot on loopback:
//     - a first sync of one mailbox of N × 10 KB (10,000 by default):
//       benno-imapsync (each message fsynced into the inbox) and mbsync
//       (isync, the tool administrators compare with) pulling the same
//       mailbox into a Maildir with its default fsync, and benno-pop3
//       importing the same mailbox over POP3 (issue 12), rounds interleaved;
//     - a run over 50 accounts × 10 folders with no new mail: seconds, and
//       the FETCH commands Dovecot counted (must be zero);
//     - peak RSS of benno-imapsync and of benno-pop3 importing one 100 MB
//       message.
// The mailboxes are filled by writing Maildir files, which Dovecot indexes
// on first access: appending 10,000 messages over IMAP would take longer
// than what is measured.

import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ROOT, memoryOf } from '../test/helpers/daemon';
import { Dovecot, ImapUser } from '../test/helpers/imap-servers';
import { spoolFiles } from '../test/helpers/spool';
import { Options, Part, median, mib, spoolBase, timeRate, timed } from './measure';

const SYNC = path.join(ROOT, 'dist', 'src', 'cli', 'benno-imapsync.js');
const USER = path.join(ROOT, 'dist', 'src', 'cli', 'benno-imapuser.js');
const POP3 = path.join(ROOT, 'dist', 'src', 'cli', 'benno-pop3.js');

const BENCH: ImapUser = { user: 'bench', password: 'bench pw' };
const BIG: ImapUser = { user: 'big', password: 'big pw' };
const MANY: ImapUser[] = Array.from({ length: 50 }, (_, i) => ({ user: `u${String(i).padStart(2, '0')}`, password: `u${i} pw` }));
const FOLDERS = ['Archiv', 'Projekte', 'Kunden', 'Lieferanten', 'Privat', 'Reisen', 'Rechnungen', 'Team', 'Newsletter'];

export function tenKb(i: number): Buffer {
  const head = `Return-Path: <sender${i}@example.com>\r\nFrom: sender${i}@example.com\r\nTo: bench@example.org\r\nSubject: message ${i}\r\nMessage-ID: <${i}@bench.example>\r\n\r\n`;
  const line = 'Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor.\r\n';
  return Buffer.from(head + line.repeat(Math.ceil((10240 - head.length) / line.length)));
}

/** Puts messages into a user's Maildir folder (INBOX when folder is ''), owned by the user Dovecot runs as. */
export function fillMaildir(server: Dovecot, user: string, folder: string, messages: (i: number) => Buffer, count: number): void {
  const root = path.join(server.dir, 'mail', user, 'Maildir', folder ? `.${folder}` : '');
  for (const sub of ['cur', 'new', 'tmp']) fs.mkdirSync(path.join(root, sub), { recursive: true });
  for (let i = 0; i < count; i++) fs.writeFileSync(path.join(root, 'cur', `${1700000000 + i}.M${i}P1.bench:2,S`), messages(i));
  spawnSync('chown', ['-R', 'nobody:nogroup', path.join(server.dir, 'mail', user)]);
}

function cli(bin: string, args: string[], input = ''): void {
  const r = spawnSync(process.execPath, [bin, ...args], { input, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${path.basename(bin)} ${args.join(' ')}: ${r.stderr}`);
}

/** A fresh benno-imapsync set-up in dir: configuration, keys, the accounts. */
function imapSetup(dir: string, server: Dovecot, accounts: ImapUser[]): string {
  fs.mkdirSync(path.join(dir, 'inbox'), { recursive: true });
  const config = path.join(dir, 'imapsync.conf');
  fs.writeFileSync(
    config,
    [
      '[imapsync]',
      `database = sqlite:${dir}/accounts.db`,
      `pubkey = ${dir}/key.pub`,
      `keyfile = ${dir}/key.sec`,
      `inbox = ${dir}/inbox`,
      `port = ${server.imapPort}`,
      `cafile = ${server.caFile}`,
      'exclude =',
      '',
    ].join('\n'),
  );
  cli(USER, ['-c', config, '--genkey']);
  for (const u of accounts) cli(USER, ['-c', config, '-u', u.user, '-i', '127.0.0.1', '-e', `${u.user}@example.org`, '-p', '-'], `${u.password}\n`);
  return config;
}

async function imapsync(config: string, extra: string[] = []): Promise<number> {
  const r = await timed(SYNC, ['-c', config, '--lock', `${config}.lock`, ...extra]);
  if (r.code !== 0) throw new Error(`benno-imapsync exited ${r.code}: ${r.stderr}`);
  return r.seconds;
}

/** mbsync (isync 1.4) pulling INBOX of user into a fresh Maildir, with its default fsync. */
function mbsync(dir: string, server: Dovecot, user: ImapUser): Promise<number> {
  const maildir = path.join(dir, 'maildir');
  fs.mkdirSync(maildir, { recursive: true });
  const rc = path.join(dir, 'mbsyncrc');
  fs.writeFileSync(
    rc,
    [
      'IMAPAccount bench',
      // The test certificate names localhost and 127.0.0.1; mbsync checks the name it connected to.
      'Host localhost',
      `Port ${server.imapPort}`,
      `User ${user.user}`,
      `Pass "${user.password}"`,
      'SSLType STARTTLS',
      `CertificateFile ${server.caFile}`,
      'AuthMechs LOGIN PLAIN',
      '',
      'IMAPStore remote',
      'Account bench',
      '',
      'MaildirStore local',
      `Path ${maildir}/`,
      `Inbox ${maildir}/INBOX`,
      '',
      'Channel bench',
      'Master :remote:INBOX',
      'Slave :local:INBOX',
      'Create Slave',
      'Sync Pull',
      `SyncState ${dir}/`,
      '',
    ].join('\n'),
  );
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const p = spawn('mbsync', ['-c', rc, '-q', 'bench'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    p.on('close', (code) => (code === 0 ? resolve(Number(process.hrtime.bigint() - started) / 1e9) : reject(new Error(`mbsync exited ${code}: ${stderr}`))));
  });
}

/** Wall seconds and peak RSS (from /proc while it runs) of a benno-imapsync run. */
function measured(config: string, extra: string[] = []): Promise<{ seconds: number; peak: number }> {
  return measuredRun(SYNC, ['-c', config, '--lock', `${config}.lock`, ...extra]);
}

/** benno-pop3 importing user's mailbox from Dovecot (STLS) into a fresh inbox in dir, measured like benno-imapsync. */
function pop3Import(dir: string, server: Dovecot, user: ImapUser): Promise<{ seconds: number; peak: number }> {
  fs.mkdirSync(path.join(dir, 'inbox'), { recursive: true });
  const args = ['-u', user.user, '-e', `${user.user}@example.org`, '-i', `127.0.0.1:${server.pop3Port}`, '--cafile', server.caFile, '-p', '-', '--inbox', path.join(dir, 'inbox'), '--state', path.join(dir, 'pop3.state')];
  return measuredRun(POP3, args, `${user.password}\n`);
}

/** Wall seconds and peak RSS (from /proc while it runs) of one of our programs; it must exit 0. */
function measuredRun(bin: string, args: string[], input = ''): Promise<{ seconds: number; peak: number }> {
  const started = process.hrtime.bigint();
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [bin, ...args], { stdio: ['pipe', 'ignore', 'pipe'] });
    p.stdin.end(input);
    let peak = 0;
    let stderr = '';
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setInterval(() => {
      try {
        peak = Math.max(peak, memoryOf(p.pid!).hwm);
      } catch {
        // exited between two looks
      }
    }, 10);
    p.on('close', (code) => {
      clearInterval(timer);
      if (code === 0) resolve({ seconds: Number(process.hrtime.bigint() - started) / 1e9, peak });
      else reject(new Error(`${path.basename(bin)} exited ${code}: ${stderr}`));
    });
  });
}

async function run(options: Options): Promise<string[][]> {
  const messages = options.messages ?? 10_000;
  const rounds = options.rounds ?? 2;
  const base = spoolBase();
  const dovecot = await Dovecot.start({ users: [BENCH, BIG, ...MANY], pop3: true });
  const out: string[] = [];
  try {
    fillMaildir(dovecot, BENCH.user, '', tenKb, messages);
    const rates: Record<'benno' | 'mbsync' | 'pop3', number[]> = { benno: [], mbsync: [], pop3: [] };
    const peaks: number[] = [];
    for (let round = 1; round <= rounds; round++) {
      const dir = path.join(base, `imap-round-${round}`);
      const config = imapSetup(path.join(dir, 'benno'), dovecot, [BENCH]);
      const run = await measured(config);
      const benno = { rate: messages / run.seconds };
      peaks.push(run.peak);
      if (spoolFiles(path.join(dir, 'benno', 'inbox')).length !== messages) throw new Error('benno-imapsync did not archive every message');
      const mb = await timeRate(messages, () => mbsync(path.join(dir, 'mbsync'), dovecot, BENCH));
      const pop3 = await pop3Import(path.join(dir, 'pop3'), dovecot, BENCH);
      if (spoolFiles(path.join(dir, 'pop3', 'inbox')).length !== messages) throw new Error('benno-pop3 did not archive every message');
      rates.benno.push(benno.rate);
      rates.mbsync.push(mb.rate);
      rates.pop3.push(messages / pop3.seconds);
      console.error(`(i) round ${round}: benno-imapsync ${benno.rate.toFixed(0)}, mbsync ${mb.rate.toFixed(0)}, benno-pop3 ${(messages / pop3.seconds).toFixed(0)} msg/s`);
    }
    out.push(
      `### (i) IMAP first sync and POP3 import: ${messages} × 10 KB from Dovecot on loopback (STARTTLS / STLS), ${rounds} rounds interleaved`,
      '',
      '| importer | messages/s (median) | each round |',
      '| --- | ---: | --- |',
      `| benno-imapsync (fsync per file, into the inbox) | ${median(rates.benno).toFixed(0)} | ${rates.benno.map((r) => r.toFixed(0)).join(', ')} |`,
      `| mbsync (isync, Maildir, default fsync) | ${median(rates.mbsync).toFixed(0)} | ${rates.mbsync.map((r) => r.toFixed(0)).join(', ')} |`,
      `| benno-pop3 (POP3, fsync per file, into the inbox) | ${median(rates.pop3).toFixed(0)} | ${rates.pop3.map((r) => r.toFixed(0)).join(', ')} |`,
      '',
      `benno-imapsync / mbsync, same rounds: **${median(rates.benno.map((r, i) => r / rates.mbsync[i])).toFixed(2)}** (target: at least 1). ` +
        `benno-pop3 / benno-imapsync, same rounds: **${median(rates.pop3.map((r, i) => r / rates.benno[i])).toFixed(2)}**.`,
      '',
    );

    // No new mail: 50 accounts × 10 folders (INBOX and nine more), synced once, then measured.
    for (const u of MANY) {
      fillMaildir(dovecot, u.user, '', tenKb, 2);
      for (const f of FOLDERS) fillMaildir(dovecot, u.user, f, tenKb, 2);
    }
    const manyConfig = imapSetup(path.join(base, 'imap-many'), dovecot, MANY);
    await imapsync(manyConfig);
    // Dovecot logs a session's counts at logout, a moment after the client has gone.
    await dovecot.waitForLogouts(MANY[MANY.length - 1].user, 1);
    const fetchesBefore = dovecot.logouts().reduce((n, l) => n + l.fetchHeaders + l.fetchBodies, 0);
    const logoutsBefore = dovecot.logouts().length;
    const seconds = await imapsync(manyConfig);
    const after = await dovecot.waitForLogouts(MANY[MANY.length - 1].user, 2);
    const fetches = dovecot.logouts().reduce((n, l) => n + l.fetchHeaders + l.fetchBodies, 0) - fetchesBefore;
    out.push(
      '### (i) A run with no new mail: 50 accounts × 10 folders',
      '',
      `${seconds.toFixed(2)} s for the whole run (${(seconds / MANY.length * 1000).toFixed(0)} ms per account), ` +
        `${dovecot.logouts().length - logoutsBefore} sessions, ${fetches} FETCH counted by Dovecot (${after.length} logouts of the last account seen).`,
      '',
    );

    // One 100 MB message: memory stays flat.
    const line = Buffer.from(`${'z'.repeat(98)}\r\n`);
    fillMaildir(dovecot, BIG.user, '', () => Buffer.concat([Buffer.from('Return-Path: <big@example.com>\r\nSubject: 100 MB\r\n\r\n'), Buffer.alloc(100 * 1024 * 1024, line)]), 1);
    const bigConfig = imapSetup(path.join(base, 'imap-big'), dovecot, [BIG]);
    const { peak } = await measured(bigConfig, ['-u', BIG.user]);
    const pop3Big = await pop3Import(path.join(base, 'pop3-big'), dovecot, BIG);
    out.push(
      '### (i) One 100 MB message',
      '',
      `benno-imapsync peak RSS: ${mib(peak)} MiB, against ${mib(Math.max(...peaks))} MiB for the first sync of ${messages} × 10 KB; ` +
        `benno-pop3: ${mib(pop3Big.peak)} MiB.`,
      '',
    );
    console.error(`(i) no-change run ${seconds.toFixed(2)} s, ${fetches} FETCH; 100 MB message peak RSS ${mib(peak)} MiB (IMAP), ${mib(pop3Big.peak)} MiB (POP3)`);
  } finally {
    await dovecot.stop();
  }
  return [out];
}

export const imapBench: Part = { key: 'i', run };
