#!/usr/bin/env node
// benno-imapsync: imports the new mail of every IMAP account (or one) into
// Benno's inbox, then exits. Run from cron every 15 minutes.

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import { diagnoseImap, gatherImapFacts } from '../admin/imap-doctor';
import { AdminLogin, adminLoginFor, adminLogins } from '../imap/admin-login';
import { ConfigError, DEFAULT_AUTH_CONFIG_FILE, DEFAULT_CONFIG_FILE, ImapConfig, checkConfigFiles, readImapConfig, serverFor } from '../imap/config';
import { LockTimeout, withFileLock } from '../imap/file-lock';
import { DecryptError, KeyError, decryptPassword, loadPrivateKey, readPrivateKeyStream } from '../imap/secret';
import { Account, AccountStore, StoreError } from '../imap/store';
import { SyncError, SyncResult, listFolders, syncAccount } from '../imap/sync';
import { verifyAccount } from '../imap/verify';
import { LOG_LEVELS, LogLevel, Logger } from '../ops/log';
import { SpoolWriter } from '../spool/writer';
import { openLog, syncExit, usage } from './mailbox-args';
import { commandLine, firstLine, rejectRepeated, runMain } from './run';
import { STORE_EXIT, openAccountStore } from './imap-store';
import { folderBars } from './progress';
import { Verified, verifyJson, verifyText } from './verify-report';
import { prepareSpool } from './start';
import { EX_CONFIG, EX_DATAERR, EX_IOERR, EX_NOUSER, EX_OK, EX_TEMPFAIL, EX_UNAVAILABLE, Fatal } from './sysexits';

const PROGRAM = 'benno-imapsync';
const DEFAULT_LOCK = '/run/lock/benno-imapsync.lock';

const EPILOG = `Reads the accounts from the database of the configuration (benno-imapuser manages
them), decrypts each password with the private key (keyfile; when keyfile is commented out,
the key is read from stdin: ssh vault cat benno-imap.sec | ${PROGRAM} -c ...), and archives
every message that is new since the last run. The server is only read: EXAMINE, never
SELECT; BODY.PEEK, so no message is marked read.

With admin_user and admin_password_file in the configuration, for every server or in a
[server HOST] section, the accounts there are synced with that one administrator's login
instead (SASL PLAIN, the account's user as authorization identity: a Dovecot master user,
a Cyrus admin); their stored passwords, and the private key, are then not needed.

One run at a time: a run that finds another still going logs "already running" and exits 0.

--verify proves completeness and changes nothing (EXAMINE, UID SEARCH; the database only
read): per account and folder, every UID at or below the sync's mark that has no record of
the file it was archived in, every UID whose import failed, and the messages in excluded
folders. Exit status 0 complete, 1 gaps; the codes below when an account cannot be checked.

Exit status: 0 all accounts done, 75 some accounts deferred (server down, TLS, a folder
failed: tried again next run), 69 a server refused the login (or offers no AUTH=PLAIN for the
admin login), 65 an account cannot be synced as stored (no password and no admin login, one
that cannot be decrypted), 74 the inbox's disk is full (the run stops; what is on disk is
recorded), 78 a bad configuration or key, 64 bad usage.`;

interface Args {
  config: string;
  logfile?: string;
  syslog?: string;
  user?: string;
  host?: string;
  'list-folders': boolean;
  verify: boolean;
  json: boolean;
  status: boolean;
  doctor: boolean;
  'auth-config': string;
  lock: string;
  'log-level'?: LogLevel;
}

function parseArgs(): Args {
  const a = commandLine(PROGRAM, `Usage: ${PROGRAM} [-c CONFIG] [-f LOGFILE | --syslog] [-u USER [-i HOST]]\n       ${PROGRAM} --list-folders -u USER -i HOST\n       ${PROGRAM} --verify [--json] [-u USER [-i HOST]]\n       ${PROGRAM} --status\n       ${PROGRAM} --doctor`, EPILOG)
    .option('config', { alias: 'c', type: 'string', default: DEFAULT_CONFIG_FILE, describe: 'configuration file' })
    .option('logfile', { alias: 'f', type: 'string', describe: 'append the log to this file instead of stderr' })
    .option('syslog', { type: 'string', describe: 'log to syslog, facility mail, instead of stderr (socket: /dev/log unless given)' })
    .option('user', { alias: 'u', type: 'string', describe: 'only this user' })
    .option('host', { alias: 'i', type: 'string', describe: 'only on this IMAP server' })
    .option('list-folders', { type: 'boolean', default: false, describe: 'show which folders of USER on HOST are synced, which are excluded and why' })
    .option('verify', { type: 'boolean', default: false, describe: 'report every message on the server the archive cannot show, and what the exclude list leaves out; changes nothing' })
    .option('json', { type: 'boolean', default: false, describe: 'with --verify: the report as JSON' })
    .option('status', { type: 'boolean', default: false, describe: 'per account: last run, messages archived, last error' })
    .option('doctor', { type: 'boolean', default: false, describe: 'check keys, database, web login and last runs, and name each problem with its fix' })
    .option('auth-config', { type: 'string', default: DEFAULT_AUTH_CONFIG_FILE, describe: "the web login's configuration, for --doctor" })
    .option('lock', { type: 'string', default: DEFAULT_LOCK, describe: 'lock file that keeps runs from overlapping' })
    .option('log-level', { choices: LOG_LEVELS, describe: 'least severity logged (default: log_level of the configuration)' })
    .parseSync() as unknown as Args;
  rejectRepeated(PROGRAM, a as unknown as Record<string, unknown>, ['config', 'logfile', 'syslog', 'user', 'host', 'lock', 'log-level', 'auth-config']);
  if (a.logfile !== undefined && a.syslog !== undefined) usage('-f LOGFILE and --syslog: choose one');
  if (a['list-folders'] && (!a.user || !a.host)) usage('--list-folders needs -u USER and -i HOST');
  if (a.host !== undefined && a.user === undefined) usage('-i HOST needs -u USER');
  if (a.status && (a['list-folders'] || a.user !== undefined)) usage('--status lists every account; it takes no -u, -i or --list-folders');
  const modes = [a['list-folders'] && '--list-folders', a.verify && '--verify', a.status && '--status', a.doctor && '--doctor'].filter(Boolean);
  if (modes.length > 1) usage(`${modes.join(' and ')}: choose one`);
  if (a.json && !a.verify) usage('--json goes with --verify');
  return a;
}

/**
 * The private key, before any network traffic: from keyfile, or from stdin
 * when keyfile is commented out. null when no account needs one: each has
 * an admin login or no password.
 */
async function privateKey(config: ImapConfig, accounts: Account[]): Promise<crypto.KeyObject | null> {
  if (!accounts.some((a) => a.password && !adminLoginFor(config, a.host))) return null;
  return config.keyfile ? loadPrivateKey(config.keyfile) : readPrivateKeyStream(process.stdin);
}

/** The admin passwords by file, read at start (first line); an empty one is a bad configuration. */
function adminPasswords(config: ImapConfig): Map<string, string> {
  const passwords = new Map<string, string>();
  for (const admin of adminLogins(config)) {
    if (passwords.has(admin.passwordFile)) continue;
    const where = `${config.source.file}, line ${admin.line}: admin_password_file ${admin.passwordFile}`;
    let content: Buffer;
    try {
      content = fs.readFileSync(admin.passwordFile);
    } catch (err) {
      throw new ConfigError(`${where}: cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    }
    const password = firstLine(content).toString('utf8');
    content.fill(0);
    if (password === '') throw new ConfigError(`${where}: its first line is empty`);
    passwords.set(admin.passwordFile, password);
  }
  return passwords;
}

/** How an account logs in: its admin login with that password, or its own decrypted password. */
type Login = { admin: AdminLogin; password: string } | { admin: null; password: Buffer };

/** The login of an account, or why it has none (a DecryptError propagates). */
function loginOf(ctx: Pick<RunContext, 'config' | 'key' | 'adminPasswords'>, account: Account): Login | string {
  const admin = adminLoginFor(ctx.config, account.host);
  if (admin) return { admin, password: ctx.adminPasswords.get(admin.passwordFile)! };
  if (!account.password) return 'no password stored';
  if (!ctx.key) throw new Error('no private key loaded for an account that needs one');
  return { admin: null, password: decryptPassword(ctx.key, account, account.password) };
}

function noPasswordHint(account: Account): string {
  return `set one with benno-imapuser -u ${account.user} -i ${account.host} -p -, let the user log in to the web interface once, or configure an admin login (admin_user in imapsync.conf)`;
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
  /** null when no account needs one. */
  key: crypto.KeyObject | null;
  adminPasswords: Map<string, string>;
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
  let login: Login | string;
  try {
    login = loginOf(ctx, account);
  } catch (err) {
    if (!(err instanceof DecryptError)) throw err;
    ctx.log.error(`${who}: ${err.message}`);
    return finish(0, err.message, EX_DATAERR);
  }
  if (typeof login === 'string') {
    ctx.log.error(`${who}: ${login}; ${noPasswordHint(account)}`);
    return finish(0, login, EX_DATAERR);
  }
  if (login.admin) ctx.log.debug(`${who}: admin login as ${login.admin.user} (${login.admin.section})`);
  try {
    const result: SyncResult = await syncAccount({
      server: serverFor(account.host, ctx.config),
      account,
      password: login.password,
      admin: login.admin?.user,
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
    if (Buffer.isBuffer(login.password)) login.password.fill(0);
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

async function doctor(config: ImapConfig, authFile: string, store: AccountStore): Promise<void> {
  let accounts: Account[] | { error: string } = [];
  let schema: string | null = null;
  try {
    // Opening a missing SQLite file would create it, as root: the doctor only looks.
    if (config.database.kind === 'mysql' || fs.existsSync(config.database.file)) accounts = await store.listAccounts();
  } catch (err) {
    if (!(err instanceof StoreError)) throw err;
    accounts = { error: err.message };
  }
  if (!('error' in accounts)) {
    try {
      await store.checkSchema();
    } catch (err) {
      if (!(err instanceof StoreError)) throw err;
      schema = err.message;
    }
  }
  const findings = diagnoseImap(gatherImapFacts(config, authFile, accounts, schema));
  for (const f of findings) process.stdout.write(`${f.level}: ${f.problem}\n  fix: ${f.fix}\n`);
  if (findings.length === 0) process.stdout.write('no problems found\n');
  process.exitCode = findings.some((f) => f.level === 'error') ? 1 : EX_OK;
}

/** --verify: each account compared with its records; the exit status says whether the archive is complete. */
async function verifyAll(ctx: Pick<RunContext, 'config' | 'key' | 'adminPasswords' | 'store'>, accounts: Account[], json: boolean): Promise<number> {
  const all: Verified[] = [];
  let code = EX_OK;
  for (const account of accounts) {
    const who = `${account.user}@${account.host}`;
    const failed = (error: string, exitCode: number) => {
      all.push({ account: who, error, exitCode });
      code = worse(code, exitCode);
    };
    let login: Login | string;
    try {
      login = loginOf(ctx, account);
    } catch (err) {
      if (!(err instanceof DecryptError)) throw err;
      failed(err.message, EX_DATAERR);
      continue;
    }
    if (typeof login === 'string') {
      failed(`${login}; ${noPasswordHint(account)}`, EX_DATAERR);
      continue;
    }
    try {
      const records = await ctx.store.archiveRecords(account.id);
      const result = await verifyAccount({ server: serverFor(account.host, ctx.config), account, password: login.password, admin: login.admin?.user, exclude: ctx.config.exclude, records });
      all.push({ account: who, result });
    } catch (err) {
      if (!(err instanceof SyncError)) throw err;
      failed(err.message.startsWith(`${who}: `) ? err.message.slice(who.length + 2) : err.message, syncExit(err));
    } finally {
      if (Buffer.isBuffer(login.password)) login.password.fill(0);
    }
  }
  process.stdout.write(json ? verifyJson(all) : verifyText(all));
  // An account that could not be checked outranks gaps: the report is incomplete, and says so.
  if (code !== EX_OK) return code;
  return all.some((v) => 'result' in v && v.result.gaps.length > 0) ? 1 : EX_OK;
}

function statusLines(config: ImapConfig, accounts: Account[]): string {
  if (accounts.length === 0) return '# no accounts';
  return accounts
    .map((a) => {
      const s = a.status;
      const last = s ? `last run ${s.lastRun.toISOString()}, archived ${s.archived}, ${s.lastError ? `error: ${s.lastError}` : 'no error'}` : 'never run';
      const admin = adminLoginFor(config, a.host);
      return `${a.user} on ${a.host}: ${last}${admin ? `, admin login as ${admin.user}` : a.password ? '' : ', no password stored'}`;
    })
    .join('\n');
}

async function main(): Promise<void> {
  const a = parseArgs();
  let config: ImapConfig;
  let warnings: string[];
  let admins = new Map<string, string>();
  try {
    config = readImapConfig(a.config);
    warnings = checkConfigFiles(config, { privateKey: !a.status && !a.doctor, imap: !a.status && !a.doctor, database: true, adminLogin: !a.status && !a.doctor });
    if (!a.status && !a.doctor) admins = adminPasswords(config);
  } catch (err) {
    if (err instanceof ConfigError) throw new Fatal(err.message, EX_CONFIG);
    throw err;
  }
  const { log, end, onStderr } = openLog(PROGRAM, a['log-level'] ?? config.logLevel, a.logfile, a.syslog);
  for (const w of warnings) log.warn(w);
  const store = openAccountStore(config);
  try {
    if (a.status) {
      process.stdout.write(`${statusLines(config, await store.listAccounts())}\n`);
      return;
    }
    if (a.doctor) return await doctor(config, a['auth-config'], store);
    const accounts = a.user === undefined ? await store.listAccounts() : await store.findAccounts(a.user, a.host);
    if (a.user !== undefined && accounts.length === 0) throw new Fatal(`no account ${a.user}${a.host ? ` on ${a.host}` : ''}`, EX_NOUSER);
    const key = await privateKey(config, a['list-folders'] ? accounts.slice(0, 1) : accounts);
    if (a.verify) {
      process.exitCode = await verifyAll({ config, store, key, adminPasswords: admins }, accounts, a.json);
      return;
    }
    if (a['list-folders']) {
      const [account] = accounts;
      const login = loginOf({ config, key, adminPasswords: admins }, account);
      if (typeof login === 'string') throw new Fatal(`${account.user}@${account.host}: ${login}; ${noPasswordHint(account)}`, EX_DATAERR);
      const folders = await listFolders({ server: serverFor(account.host, config), account, password: login.password, admin: login.admin?.user, exclude: config.exclude });
      process.stdout.write(folders.map((f) => (f.excluded ? `excluded  ${f.path}  (${f.excluded})` : `synced    ${f.path}`)).join('\n') + '\n');
      return;
    }
    const writer = new SpoolWriter(config.inbox, { suffix: config.suffix });
    try {
      await withFileLock(
        a.lock,
        async () => {
          await prepareSpool(writer, { noun: 'inbox', elsewhere: `set inbox in ${a.config}` }, log);
          const progress = process.stderr.isTTY && onStderr ? folderBars() : undefined;
          process.exitCode = await syncAll({ config, store, key, adminPasswords: admins, writer, log, progress }, accounts);
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
    await end();
  }
}

runMain(PROGRAM, main);
