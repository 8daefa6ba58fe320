#!/usr/bin/env node
// benno-imapsync: imports the new mail of every IMAP account (or one) into
// Benno's inbox, then exits. Run from cron every 15 minutes.

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import { ConfigError, DEFAULT_CONFIG_FILE, ImapConfig, checkConfigFiles, readImapConfig } from '../imap/config';
import { LockTimeout, withFileLock } from '../imap/file-lock';
import { DecryptError, KeyError, decryptPassword, loadPrivateKey, readPrivateKeyStream } from '../imap/secret';
import { Account, AccountStore, StoreError } from '../imap/store';
import { ServerOptions, SyncError, SyncResult, listFolders, syncAccount } from '../imap/sync';
import { LOG_LEVELS, LogLevel, Logger, createLogger, openSyslog } from '../ops/log';
import { SpoolWriter } from '../spool/writer';
import { syncExit, usage } from './mailbox-args';
import { commandLine, rejectRepeated, runMain } from './run';
import { STORE_EXIT, openAccountStore } from './imap-store';
import { folderBars } from './progress';
import { prepareSpool } from './start';
import { EX_CONFIG, EX_DATAERR, EX_IOERR, EX_NOUSER, EX_OK, EX_TEMPFAIL, EX_UNAVAILABLE, Fatal } from './sysexits';

const PROGRAM = 'benno-imapsync';
const DEFAULT_LOCK = '/run/lock/benno-imapsync.lock';

const EPILOG = `Reads the accounts from the database of the configuration (benno-imapuser manages
them), decrypts each password with the private key (keyfile; when keyfile is commented out,
the key is read from stdin: ssh vault cat benno-imap.sec | ${PROGRAM} -c ...), and archives
every message that is new since the last run. The server is only read: EXAMINE, never
SELECT; BODY.PEEK, so no message is marked read.

One run at a time: a run that finds another still going logs "already running" and exits 0.

Exit status: 0 all accounts done, 75 some accounts deferred (server down, TLS, a folder
failed: tried again next run), 69 a server refused the login, 65 an account cannot be synced
as stored (no password, one that cannot be decrypted), 74 the inbox's disk is full (the run
stops; what is on disk is recorded), 78 a bad configuration or key, 64 bad usage.`;

interface Args {
  config: string;
  logfile?: string;
  syslog?: string;
  user?: string;
  host?: string;
  'list-folders': boolean;
  status: boolean;
  lock: string;
  'log-level'?: LogLevel;
}

function parseArgs(): Args {
  const a = commandLine(PROGRAM, `Usage: ${PROGRAM} [-c CONFIG] [-f LOGFILE | --syslog] [-u USER [-i HOST]]\n       ${PROGRAM} --list-folders -u USER -i HOST\n       ${PROGRAM} --status`, EPILOG)
    .option('config', { alias: 'c', type: 'string', default: DEFAULT_CONFIG_FILE, describe: 'configuration file' })
    .option('logfile', { alias: 'f', type: 'string', describe: 'append the log to this file instead of stderr' })
    .option('syslog', { type: 'string', describe: 'log to syslog, facility mail, instead of stderr (socket: /dev/log unless given)' })
    .option('user', { alias: 'u', type: 'string', describe: 'only this user' })
    .option('host', { alias: 'i', type: 'string', describe: 'only on this IMAP server' })
    .option('list-folders', { type: 'boolean', default: false, describe: 'show which folders of USER on HOST are synced, which are excluded and why' })
    .option('status', { type: 'boolean', default: false, describe: 'per account: last run, messages archived, last error' })
    .option('lock', { type: 'string', default: DEFAULT_LOCK, describe: 'lock file that keeps runs from overlapping' })
    .option('log-level', { choices: LOG_LEVELS, describe: 'least severity logged (default: log_level of the configuration)' })
    .parseSync() as unknown as Args;
  rejectRepeated(PROGRAM, a as unknown as Record<string, unknown>, ['config', 'logfile', 'syslog', 'user', 'host', 'lock', 'log-level']);
  if (a.logfile !== undefined && a.syslog !== undefined) usage('-f LOGFILE and --syslog: choose one');
  if (a['list-folders'] && (!a.user || !a.host)) usage('--list-folders needs -u USER and -i HOST');
  if (a.host !== undefined && a.user === undefined) usage('-i HOST needs -u USER');
  if (a.status && (a['list-folders'] || a.user !== undefined)) usage('--status lists every account; it takes no -u, -i or --list-folders');
  return a;
}

/** The private key, before any network traffic: from keyfile, or from stdin when keyfile is commented out. */
async function privateKey(config: ImapConfig): Promise<crypto.KeyObject> {
  return config.keyfile ? loadPrivateKey(config.keyfile) : readPrivateKeyStream(process.stdin);
}

/** Where an account's server is: its own HOST:PORT, or the configuration's port. */
function serverOf(account: Account, config: ImapConfig): ServerOptions {
  const m = /^(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(account.host);
  const host = (m?.[1] ?? account.host).replace(/^\[(.*)\]$/, '$1');
  return { host, port: m?.[2] ? Number(m[2]) : config.port, tls: config.tls, caFile: config.cafile, timeoutMs: config.timeout * 1000 };
}

/** How one account's failure counts for the exit status, worst first. */
const OUTCOME_ORDER = [EX_IOERR, EX_UNAVAILABLE, EX_DATAERR, EX_TEMPFAIL, EX_OK];

function worse(a: number, b: number): number {
  return OUTCOME_ORDER.indexOf(a) <= OUTCOME_ORDER.indexOf(b) ? a : b;
}

interface RunContext {
  /** A bar per folder on a terminal, for a large first sync. */
  progress?: (folder: string, done: number, total: number) => void;
  config: ImapConfig;
  store: AccountStore;
  key: crypto.KeyObject;
  writer: SpoolWriter;
  log: Logger;
}

/** One account: its password, the sync, the record of the run. Returns its exit status. */
async function syncOne(ctx: RunContext, account: Account): Promise<{ code: number; archived: number }> {
  const who = `${account.user}@${account.host}`;
  const finish = async (archived: number, lastError: string | null, code: number) => {
    await ctx.store.recordRun(account.id, { lastRun: new Date(), archived, lastError });
    return { code, archived };
  };
  if (!account.password) {
    ctx.log.error(`${who}: no password stored; set one with benno-imapuser -u ${account.user} -i ${account.host} -p -, or let the user log in to the web interface once`);
    return finish(0, 'no password stored', EX_DATAERR);
  }
  let password: Buffer;
  try {
    password = decryptPassword(ctx.key, account, account.password);
  } catch (err) {
    if (!(err instanceof DecryptError)) throw err;
    ctx.log.error(`${who}: ${err.message}`);
    return finish(0, err.message, EX_DATAERR);
  }
  try {
    const result: SyncResult = await syncAccount({
      server: serverOf(account, ctx.config),
      account,
      password,
      store: ctx.store,
      writer: ctx.writer,
      exclude: ctx.config.exclude,
      log: ctx.log,
      progress: ctx.progress,
    });
    const failed = result.errors > 0 ? `${result.errors} folder(s) failed, tried again next run` : null;
    return finish(result.archived, failed, failed ? EX_TEMPFAIL : EX_OK);
  } catch (err) {
    if (!(err instanceof SyncError)) throw err;
    ctx.log.error(err.message);
    const done = await finish(err.partial?.archived ?? 0, err.message, syncExit(err));
    if (err.kind === 'disk-full') throw err;
    return done;
  } finally {
    password.fill(0);
  }
}

async function syncAll(ctx: RunContext, accounts: Account[]): Promise<number> {
  const started = Date.now();
  let code = EX_OK;
  let archived = 0;
  let failed = 0;
  try {
    for (const account of accounts) {
      const r = await syncOne(ctx, account);
      archived += r.archived;
      if (r.code !== EX_OK) failed++;
      code = worse(code, r.code);
    }
  } catch (err) {
    if (!(err instanceof SyncError && err.kind === 'disk-full')) throw err;
    ctx.log.error(`the inbox ${ctx.writer.dir} is full: the run stops; what is on disk is recorded, the rest comes next run once there is space`);
    code = EX_IOERR;
  }
  ctx.log.info(`summary: accounts=${accounts.length} failed=${failed} archived=${archived} seconds=${((Date.now() - started) / 1000).toFixed(1)}`);
  return code;
}

function statusLines(accounts: Account[]): string {
  if (accounts.length === 0) return '# no accounts';
  return accounts
    .map((a) => {
      const s = a.status;
      const last = s ? `last run ${s.lastRun.toISOString()}, archived ${s.archived}, ${s.lastError ? `error: ${s.lastError}` : 'no error'}` : 'never run';
      return `${a.user} on ${a.host}: ${last}${a.password ? '' : ', no password stored'}`;
    })
    .join('\n');
}

async function main(): Promise<void> {
  const a = parseArgs();
  let config: ImapConfig;
  try {
    config = readImapConfig(a.config);
    checkConfigFiles(config, { privateKey: !a.status, imap: !a.status, database: true });
  } catch (err) {
    if (err instanceof ConfigError) throw new Fatal(err.message, EX_CONFIG);
    throw err;
  }
  const syslog = a.syslog !== undefined ? openSyslog(PROGRAM, a.syslog || undefined) : undefined;
  const stream = a.logfile ? fs.createWriteStream(a.logfile, { flags: 'a', mode: 0o640 }) : syslog?.stream;
  const log = createLogger({ program: PROGRAM, level: a['log-level'] ?? config.logLevel, stream, journal: stream ? Boolean(syslog) : undefined });
  const store = openAccountStore(config);
  try {
    if (a.status) {
      process.stdout.write(`${statusLines(await store.listAccounts())}\n`);
      return;
    }
    const key = await privateKey(config);
    const accounts = a.user === undefined ? await store.listAccounts() : await store.findAccounts(a.user, a.host);
    if (a.user !== undefined && accounts.length === 0) throw new Fatal(`no account ${a.user}${a.host ? ` on ${a.host}` : ''}`, EX_NOUSER);
    if (a['list-folders']) {
      const [account] = accounts;
      if (!account.password) throw new Fatal(`${account.user}@${account.host}: no password stored; set one with benno-imapuser -u ${account.user} -i ${account.host} -p -`, EX_DATAERR);
      const password = decryptPassword(key, account, account.password);
      const folders = await listFolders({ server: serverOf(account, config), account, password, exclude: config.exclude });
      process.stdout.write(folders.map((f) => (f.excluded ? `excluded  ${f.path}  (${f.excluded})` : `synced    ${f.path}`)).join('\n') + '\n');
      return;
    }
    const writer = new SpoolWriter(config.inbox, { suffix: config.suffix });
    try {
      await withFileLock(
        a.lock,
        async () => {
          await prepareSpool(writer, { noun: 'inbox', elsewhere: `set inbox in ${a.config}` }, log);
          const progress = process.stderr.isTTY && !stream ? folderBars() : undefined;
          process.exitCode = await syncAll({ config, store, key, writer, log, progress }, accounts);
        },
        // Long enough to take over the lock of a run that died; a live run is not waited for.
        { timeoutMs: 2000 },
      );
    } catch (err) {
      if (!(err instanceof LockTimeout)) throw err;
      log.info(`already running (${a.lock}); this run does nothing`);
    } finally {
      writer.close();
    }
  } catch (err) {
    if (err instanceof KeyError) throw new Fatal(err.message, EX_CONFIG);
    if (err instanceof DecryptError) throw new Fatal(err.message, EX_DATAERR);
    if (err instanceof SyncError) throw new Fatal(err.message, syncExit(err));
    if (err instanceof StoreError) throw new Fatal(err.message, STORE_EXIT[err.kind]);
    throw err;
  } finally {
    await store.close();
    if (syslog) await syslog.close();
    else stream?.end();
  }
}

runMain(PROGRAM, main);
