// What benno-imapimport and benno-pop3 share: the command line of a
// one-time import of one mailbox (credentials, addresses, inbox, CA file,
// gateway, timeout, state file, log, -c for imapsync.conf's defaults), its
// checks, each mistake one line, and the run around the import itself: the
// state file's lock, the inbox checked, the outcome logged and turned into
// an exit status.

import * as fs from 'node:fs';
import type { Argv } from 'yargs';
import { ConfigError, DEFAULTS, ImapConfig, readImapConfig } from '../imap/config';
import { StoreError } from '../imap/store';
import { SyncError } from '../imap/sync';
import { LOG_LEVELS, LogLevel, Logger } from '../ops/log';
import { gatewayNameProblem } from '../spool/format';
import { suffixProblem } from '../spool/names';
import { SpoolWriter } from '../spool/writer';
import { HostPort, emailsArg, hostArg, openLog, readPassword, stateFilePath, syncExit, usage, withStateLock } from './mailbox-args';
import { prepareSpool } from './start';
import { EX_CONFIG, EX_IOERR, Fatal } from './sysexits';

export interface ImportArgs {
  config?: string;
  user?: string;
  host?: string;
  emails?: string;
  password?: string;
  'password-file'?: string;
  inbox?: string;
  cafile?: string;
  gateway?: string;
  timeout?: number;
  state?: string;
  logfile?: string;
  'log-level'?: LogLevel;
}

/** The options of ImportArgs, which may each be given once. */
export const IMPORT_OPTIONS = ['config', 'user', 'host', 'emails', 'password', 'password-file', 'inbox', 'cafile', 'gateway', 'timeout', 'state', 'logfile', 'log-level'];

/** Adds the shared options to a program's command line; protocol names the server in the help. */
export function importOptions(y: Argv, program: string, protocol: 'IMAP' | 'POP3', fromConfig: string): Argv {
  return y
    .option('user', { alias: 'u', type: 'string', describe: `${protocol} user name` })
    .option('host', { alias: 'i', type: 'string', describe: `${protocol} server: HOST, HOST:PORT or [IPv6]:PORT` })
    .option('emails', { alias: 'e', type: 'string', describe: "the mailbox owner's e-mail addresses, comma-separated (the envelope recipients)" })
    .option('password', { alias: 'p', type: 'string', describe: `${protocol} password; "-": read it from stdin` })
    .option('password-file', { type: 'string', describe: `read the ${protocol} password from the first line of this file` })
    .option('config', { alias: 'c', type: 'string', describe: `take ${fromConfig} from this imapsync.conf` })
    .option('inbox', { type: 'string', describe: "Benno's inbox (default: /srv/benno/inbox)" })
    .option('cafile', { type: 'string', describe: "CA certificates (PEM) the server's certificate is checked against (default: the system's)" })
    .option('gateway', { type: 'string', describe: "X-BENNO-GW name for Benno's container rules (multi-import)" })
    .option('timeout', { type: 'number', describe: 'seconds the server may stay silent (default: 60)' })
    .option('state', { type: 'string', describe: `state file, for resuming (default: /var/lib/benno-imap/${program}-USER@HOST.state)` })
    .option('logfile', { alias: 'f', type: 'string', describe: 'append the log to this file instead of stderr' })
    .option('log-level', { choices: LOG_LEVELS, describe: 'least severity logged (default: info)' });
}

/** One mailbox to import, as the command line (over -c's file, over the defaults) describes it. */
export interface Mailbox {
  /** Only ever written to the server. */
  password: Buffer;
  user: string;
  where: HostPort;
  /** USER@HOST: whose state the state file is. */
  name: string;
  emails: string;
  gateway: string | null;
  /** imapsync.conf of -c, or null. */
  config: ImapConfig | null;
  /** The CA file and its content, checked readable. */
  ca?: { file: string; pem: Buffer };
  timeoutMs: number;
  inbox: string;
  suffix: string;
  logLevel: LogLevel;
}

function readConfig(file: string): ImapConfig {
  try {
    return readImapConfig(file);
  } catch (err) {
    if (err instanceof ConfigError) throw new Fatal(err.message, EX_CONFIG);
    throw err;
  }
}

/**
 * Reads and checks what every one-time import needs, the password first (a
 * password written out with -p leaves the process list at once).
 */
export async function mailboxArgs(program: string, a: ImportArgs): Promise<Mailbox> {
  const password = await readPassword(program, a);
  if (a.user === undefined || a.user === '') usage('name the mailbox with -u USER');
  if (/[\s\0]/.test(a.user)) usage('bad -u: a user name has no spaces or control characters');
  if (a.host === undefined) usage('name the server with -i HOST[:PORT]');
  const where = hostArg(a.host);
  if (!password) usage('give the password: -p - (from stdin) or --password-file FILE');
  if (password.includes(0x0a) || password.includes(0x0d) || password.includes(0)) usage('the password has a line break or NUL, which cannot be sent');
  if (a.timeout !== undefined && !(Number.isInteger(a.timeout) && a.timeout >= 1 && a.timeout <= 3600)) usage('bad --timeout: a whole number of seconds from 1 to 3600');
  const emails = a.emails !== undefined ? emailsArg(a.emails) : a.user.includes('@') ? emailsArg(a.user) : usage(`give the addresses of ${a.user} with -e: the user name is no e-mail address, and imported mail is filed for the mailbox owner's addresses`);
  const config = a.config !== undefined ? readConfig(a.config) : null;
  const base = config ?? DEFAULTS;
  const gateway = a.gateway ?? base.gateway;
  if (gateway !== undefined) {
    const problem = gatewayNameProblem(gateway);
    if (problem) usage(`bad --gateway ${problem}`);
  }
  const suffix = suffixProblem(base.suffix);
  if (suffix) throw new Fatal(`${a.config}: bad suffix ${suffix}`, EX_CONFIG);
  return {
    password,
    user: a.user,
    where,
    name: `${a.user}@${where.host}`,
    emails,
    gateway: gateway ?? null,
    config,
    ca: caFile(a, base.cafile),
    timeoutMs: (a.timeout ?? base.timeout) * 1000,
    inbox: a.inbox ?? base.inbox,
    suffix: base.suffix,
    logLevel: a['log-level'] ?? base.logLevel,
  };
}

/** The CA file's content; one that cannot be read is a usage error, or a configuration error when it came from there. */
function caFile(a: ImportArgs, fromConfig: string | undefined): Mailbox['ca'] {
  const file = a.cafile ?? fromConfig;
  if (file === undefined) return undefined;
  try {
    return { file, pem: fs.readFileSync(file) };
  } catch (err) {
    const problem = `cannot read the CA file ${file} (${(err as NodeJS.ErrnoException).code})`;
    if (a.cafile !== undefined) usage(problem);
    throw new Fatal(`${a.config}: ${problem}`, EX_CONFIG);
  }
}

export interface ImportContext {
  log: Logger;
  writer: SpoolWriter;
  stateFile: string;
  /** Progress bars: the log goes to a terminal. */
  terminal: boolean;
}

/**
 * The run around an import: the state file's lock (another run for the
 * mailbox is exit 75), the log, the inbox checked and cleaned of temp files
 * a killed run left; then work, whose exit status it returns.
 */
export async function runImport(program: string, m: Mailbox, a: ImportArgs, work: (ctx: ImportContext) => Promise<number>): Promise<number> {
  const stateFile = stateFilePath(program, a.state, m.name);
  const { log, end } = openLog(program, m.logLevel, a.logfile);
  try {
    return await withStateLock(program, stateFile, m.name, async () => {
      const writer = new SpoolWriter(m.inbox, { suffix: m.suffix });
      try {
        const elsewhere = a.inbox !== undefined || !m.config ? 'pass --inbox' : `set inbox in ${a.config}, or pass --inbox`;
        await prepareSpool(writer, { noun: 'inbox', elsewhere }, log);
        return await work({ log, writer, stateFile, terminal: !a.logfile && Boolean(process.stderr.isTTY) });
      } finally {
        writer.close();
      }
    });
  } finally {
    await end();
    m.password.fill(0);
  }
}

/**
 * The exit status of an import that failed, after logging why: the import's
 * own failure (a SyncError) with what was done before it (done), or the
 * state file that could not be written. Anything else is thrown on.
 */
export function importFailure(log: Logger, err: unknown, done: () => void): number {
  if (err instanceof SyncError) {
    log.error(err.message);
    done();
    return syncExit(err);
  }
  if (err instanceof StoreError) {
    log.error(`${err.message}; stopped (run again once it can be written: what is archived lands on the same files)`);
    return EX_IOERR;
  }
  throw err;
}
