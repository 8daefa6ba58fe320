#!/usr/bin/env node
// benno-imapimport: imports every folder of one IMAP mailbox into Benno's
// inbox, once: the mail a mailbox held before the archive existed. No
// accounts database: the credentials come on the command line, and the
// progress is kept in a state file of its own, so that an import that was
// interrupted resumes where it stopped. The engine is benno-imapsync's.

import * as fs from 'node:fs';
import { ConfigError, DEFAULT_PORTS, DEFAULTS, ImapConfig, TlsMode, parseFolderList, readImapConfig } from '../imap/config';
import { FolderStateFile } from '../imap/state-file';
import { StoreError } from '../imap/store';
import { ServerOptions, SyncAccount, SyncError, SyncResult, listFolders, syncAccount } from '../imap/sync';
import { ValueError } from '../ops/config-lines';
import { LOG_LEVELS, LogLevel, Logger } from '../ops/log';
import { gatewayNameProblem } from '../spool/format';
import { suffixProblem } from '../spool/names';
import { SpoolWriter } from '../spool/writer';
import { HostPort, emailsArg, hostArg, openLog, openState, readPassword, stateFilePath, syncExit, usage, withStateLock } from './mailbox-args';
import { folderBars } from './progress';
import { commandLine, rejectRepeated, runMain } from './run';
import { prepareSpool } from './start';
import { EX_CONFIG, EX_IOERR, EX_OK, EX_TEMPFAIL, Fatal } from './sysexits';

const PROGRAM = 'benno-imapimport';

const USAGE = `Usage: ${PROGRAM} -u USER -i HOST[:PORT] [-e ADDR,ADDR...] (-p - | --password-file FILE) [options]
       ${PROGRAM} --list-folders -u USER -i HOST[:PORT] (-p - | --password-file FILE) [options]

Imports every folder of the IMAP mailbox USER on HOST into Benno's inbox, once: the mail it
held before the archive. For the mail that arrives later, benno-imapsync (accounts set up
with benno-imapuser) is the tool.`;

const EPILOG = `What is archived: every folder but those excluded (--exclude, or exclude of the
configuration; default Drafts, Trash, Junk, which also match the folders the server marks
\\Drafts, \\Trash, \\Junk; a folder's subfolders go with it). Each message becomes one file in
the inbox, byte for byte as the server has it, after the envelope lines Benno reads:
X-REAL-MAILFROM from the message's first Return-Path, and one X-REAL-RCPTTO per -e address
(the mailbox owner's addresses; the user name when it is an address and -e is not given).

The server is only read: EXAMINE, never SELECT; BODY.PEEK, so nothing is marked read.

Interrupted (a crash, kill -9, the server gone), it resumes: the state file keeps per folder
the UIDVALIDITY and the highest UID whose file is on disk, and a new run with the same -u
and -i goes on from there. A message fetched twice lands on the same file (its name is the
SHA-256 of its content), so nothing is doubled. Run again after it is done, it imports only
what arrived since. The state file: --state FILE, by default
/var/lib/benno-imap/${PROGRAM}-USER@HOST.state. Two runs for one mailbox do not overlap.

The password: -p - reads it from stdin, --password-file from a file's first line.
-p PASSWORD works but is visible to other local users while the program starts: it warns
and overwrites it in the process list.

-c CONFIG takes inbox, tls, port, cafile, exclude, suffix, timeout and gateway from
imapsync.conf (benno-imapsync's); options given here win.

Exit status: 0 done, 75 not finished (server down, TLS refused, a folder failed: run it
again), 69 the server refused the login, 74 the inbox's disk is full or the state file
cannot be written, 73 the inbox or the state file's directory cannot be used, 78 a bad
configuration, 64 bad usage.

Example:
  ${PROGRAM} -u anna@example.org -i imap.example.org -p - < anna.pw`;

interface Args {
  config?: string;
  user?: string;
  host?: string;
  emails?: string;
  password?: string;
  'password-file'?: string;
  inbox?: string;
  tls?: TlsMode;
  cafile?: string;
  exclude?: string;
  gateway?: string;
  timeout?: number;
  state?: string;
  logfile?: string;
  'log-level'?: LogLevel;
  'list-folders': boolean;
}

function parseArgs(): Args {
  const a = commandLine(PROGRAM, USAGE, EPILOG)
    .option('user', { alias: 'u', type: 'string', describe: 'IMAP user name' })
    .option('host', { alias: 'i', type: 'string', describe: 'IMAP server: HOST, HOST:PORT or [IPv6]:PORT' })
    .option('emails', { alias: 'e', type: 'string', describe: "the mailbox owner's e-mail addresses, comma-separated (the envelope recipients)" })
    .option('password', { alias: 'p', type: 'string', describe: 'IMAP password; "-": read it from stdin' })
    .option('password-file', { type: 'string', describe: 'read the IMAP password from the first line of this file' })
    .option('config', { alias: 'c', type: 'string', describe: 'take the defaults below from this imapsync.conf' })
    .option('inbox', { type: 'string', describe: "Benno's inbox (default: /srv/benno/inbox)" })
    .option('tls', { choices: ['starttls', 'imaps', 'none'], describe: 'starttls (port 143; required), imaps (port 993) or none (clear text: trusted networks only)' })
    .option('cafile', { type: 'string', describe: "CA certificates (PEM) the server's certificate is checked against (default: the system's)" })
    .option('exclude', { type: 'string', describe: 'folders not imported, comma-separated ("": none; default: Drafts, Trash, Junk)' })
    .option('gateway', { type: 'string', describe: "X-BENNO-GW name for Benno's container rules (multi-import)" })
    .option('timeout', { type: 'number', describe: 'seconds the server may stay silent (default: 60)' })
    .option('state', { type: 'string', describe: 'state file, for resuming (default: /var/lib/benno-imap/benno-imapimport-USER@HOST.state)' })
    .option('logfile', { alias: 'f', type: 'string', describe: 'append the log to this file instead of stderr' })
    .option('log-level', { choices: LOG_LEVELS, describe: 'least severity logged (default: info)' })
    .option('list-folders', { type: 'boolean', default: false, describe: 'show which folders would be imported, which are excluded and why; import nothing' })
    .parseSync() as unknown as Args;
  rejectRepeated(PROGRAM, a as unknown as Record<string, unknown>, [
    'config', 'user', 'host', 'emails', 'password', 'password-file', 'inbox', 'tls', 'cafile', 'exclude', 'gateway', 'timeout', 'state', 'logfile', 'log-level',
  ]);
  return a;
}

interface Settings {
  server: ServerOptions;
  account: SyncAccount;
  inbox: string;
  suffix: string;
  exclude: string[];
  logLevel: LogLevel;
  /** Where a wrong inbox is set, for the message that says so. */
  inboxFrom: string;
}

function readConfig(file: string): ImapConfig {
  try {
    return readImapConfig(file);
  } catch (err) {
    if (err instanceof ConfigError) throw new Fatal(err.message, EX_CONFIG);
    throw err;
  }
}

/** The command line over the configuration (when -c is given) over the defaults; every value checked. */
function settings(a: Args, where: HostPort): Settings {
  const config = a.config !== undefined ? readConfig(a.config) : null;
  const base = config ?? DEFAULTS;
  const tls = a.tls ?? base.tls;
  // The configuration's port belongs to its tls; another --tls means that mode's usual port.
  const port = where.port ?? (config?.source.lines.has('port') && a.tls === undefined ? config.port : DEFAULT_PORTS[tls]);
  const cafile = a.cafile ?? base.cafile;
  if (cafile !== undefined) {
    try {
      fs.accessSync(cafile, fs.constants.R_OK);
    } catch (err) {
      const problem = `cannot read the CA file ${cafile} (${(err as NodeJS.ErrnoException).code})`;
      if (a.cafile !== undefined) usage(problem);
      throw new Fatal(`${a.config}: ${problem}`, EX_CONFIG);
    }
  }
  let exclude = base.exclude;
  if (a.exclude !== undefined) {
    try {
      exclude = parseFolderList(a.exclude.trim());
    } catch (err) {
      if (err instanceof ValueError) usage(`bad --exclude "${a.exclude}": ${err.message}`);
      throw err;
    }
  }
  const gateway = a.gateway ?? base.gateway;
  if (gateway !== undefined) {
    const problem = gatewayNameProblem(gateway);
    if (problem) usage(`bad --gateway ${problem}`);
  }
  if (a.timeout !== undefined && !(Number.isInteger(a.timeout) && a.timeout >= 1 && a.timeout <= 3600)) usage('bad --timeout: a whole number of seconds from 1 to 3600');
  const suffixBad = suffixProblem(base.suffix);
  if (suffixBad) throw new Fatal(`${a.config}: bad suffix ${suffixBad}`, EX_CONFIG);
  const user = a.user!;
  const emails = a.emails !== undefined ? emailsArg(a.emails) : user.includes('@') ? emailsArg(user) : usage(`give the addresses of ${user} with -e: the user name is no e-mail address, and imported mail is filed for the mailbox owner's addresses`);
  return {
    server: { host: where.host, port, tls, caFile: cafile, timeoutMs: (a.timeout ?? base.timeout) * 1000 },
    account: { id: 0, user, host: where.spec, emails, gateway: gateway ?? null },
    inbox: a.inbox ?? base.inbox,
    suffix: base.suffix,
    exclude,
    logLevel: a['log-level'] ?? base.logLevel,
    inboxFrom: a.inbox !== undefined || !config ? 'pass --inbox' : `set inbox in ${a.config}, or pass --inbox`,
  };
}

function summary(r: SyncResult): string {
  const imported = r.folders.filter((f) => f.status === 'synced' || f.status === 'unchanged').length;
  return `summary: ${r.account} folders=${imported} excluded=${r.excluded} failed=${r.errors} archived=${r.archived} skipped=${r.skipped} seconds=${(r.ms / 1000).toFixed(1)}`;
}

async function main(): Promise<void> {
  const a = parseArgs();
  // First: a password given with -p leaves the process list now.
  const password = await readPassword(PROGRAM, a);
  if (a.user === undefined || a.user === '') usage('name the mailbox with -u USER');
  if (a.host === undefined) usage('name the server with -i HOST[:PORT]');
  const where = hostArg(a.host);
  if (!password) usage('give the password: -p - (from stdin) or --password-file FILE');
  const s = settings(a, where);
  const mailbox = `${s.account.user}@${where.host}`;
  try {
    if (a['list-folders']) {
      const folders = await listFolders({ server: s.server, account: s.account, password, exclude: s.exclude });
      process.stdout.write(folders.map((f) => (f.excluded ? `excluded  ${f.path}  (${f.excluded})` : `import    ${f.path}`)).join('\n') + '\n');
      return;
    }
    const stateFile = stateFilePath(PROGRAM, a.state, mailbox);
    const { log, end } = openLog(PROGRAM, s.logLevel, a.logfile);
    try {
      process.exitCode = await withStateLock(PROGRAM, stateFile, mailbox, async () => {
        const store = openState(() => new FolderStateFile(stateFile, PROGRAM, mailbox));
        const writer = new SpoolWriter(s.inbox, { suffix: s.suffix });
        try {
          await prepareSpool(writer, { noun: 'inbox', elsewhere: s.inboxFrom }, log);
          return await importMailbox(s, password, store, writer, log, !a.logfile && process.stderr.isTTY);
        } finally {
          writer.close();
        }
      });
    } finally {
      await end();
    }
  } catch (err) {
    if (err instanceof SyncError) throw new Fatal(err.message, syncExit(err));
    throw err;
  } finally {
    password.fill(0);
  }
}

/** The import itself; every outcome is logged, the exit status returned. */
async function importMailbox(
  s: Settings,
  password: Buffer,
  store: FolderStateFile,
  writer: SpoolWriter,
  log: Logger,
  bars: boolean,
): Promise<number> {
  try {
    const result = await syncAccount({ server: s.server, account: s.account, password, store, writer, exclude: s.exclude, log, progress: bars ? folderBars() : undefined });
    log.info(summary(result));
    if (result.errors > 0) {
      log.error(`${result.errors} folder(s) failed; run ${PROGRAM} again to import them (what is archived stays recorded)`);
      return EX_TEMPFAIL;
    }
    return EX_OK;
  } catch (err) {
    if (err instanceof SyncError) {
      log.error(err.message);
      if (err.partial) log.info(summary(err.partial));
      return syncExit(err);
    }
    if (err instanceof StoreError) {
      log.error(`${err.message}; stopped (run again once it can be written: what is archived lands on the same files)`);
      return EX_IOERR;
    }
    throw err;
  }
}

runMain(PROGRAM, main);
