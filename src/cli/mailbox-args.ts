// What the mailbox programs (benno-imapuser, benno-imapsync,
// benno-imapimport, benno-pop3) read alike from their command lines: a
// password that must not stay visible, a HOST[:PORT], the -e addresses; and
// how an import's failure ends the program.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { LockTimeout, withFileLock } from '../imap/file-lock';
import { StateFileError, defaultStateFile } from '../imap/state-file';
import type { SyncError } from '../imap/sync';
import { createLogger, Logger, LogLevel, openSyslog } from '../ops/log';
import { unsafeCharacter } from '../spool/format';
import { firstLine, readStdin } from './run';
import { EX_CANTCREAT, EX_DATAERR, EX_IOERR, EX_TEMPFAIL, EX_UNAVAILABLE, EX_USAGE, Fatal } from './sysexits';

/** One line on stderr, exit 64, with the hint every usage error carries. */
export function usage(message: string): never {
  throw new Fatal(`${message} (try --help)`, EX_USAGE);
}

export interface PasswordArgs {
  password?: string;
  'password-file'?: string;
}

/**
 * The password -p PASSWORD, -p - (stdin) or --password-file FILE points to,
 * or null when none is given. A password written out on the command line
 * is overwritten in the process's argv at once (ps would show it) and
 * answered with a warning.
 */
export async function readPassword(program: string, a: PasswordArgs): Promise<Buffer | null> {
  // process.title writes over the memory argv lives in, which is what ps and /proc/PID/cmdline show.
  if (a.password !== undefined && a.password !== '-') process.title = program;
  if (a.password !== undefined && a['password-file'] !== undefined) usage('-p and --password-file cannot be combined');
  let password: Buffer;
  if (a['password-file'] !== undefined) {
    try {
      password = firstLine(fs.readFileSync(a['password-file']));
    } catch (err) {
      throw new Fatal(`cannot read the password file ${a['password-file']}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, EX_USAGE);
    }
  } else if (a.password === '-') {
    password = firstLine(await readStdin());
  } else if (a.password !== undefined) {
    process.stderr.write(`${program}: warning: a password on the command line can be seen by other local users (ps, shell history); use -p - or --password-file\n`);
    password = Buffer.from(a.password, 'utf8');
  } else {
    return null;
  }
  if (password.length === 0) usage('the password is empty');
  return password;
}

export interface HostPort {
  /** As given: HOST, HOST:PORT or [IPv6]:PORT. */
  spec: string;
  /** The name or address alone. */
  host: string;
  port?: number;
}

/** -i HOST, HOST:PORT or [IPv6]:PORT; anything else is a usage error. */
export function hostArg(spec: string): HostPort {
  const m = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::(\d+))?$/.exec(spec);
  if (!m || (m[2] !== undefined && (Number(m[2]) < 1 || Number(m[2]) > 65535))) usage(`bad -i "${spec}": use HOST, HOST:PORT or [IPv6]:PORT`);
  return { spec, host: m[1].replace(/^\[(.*)\]$/, '$1'), ...(m[2] !== undefined ? { port: Number(m[2]) } : {}) };
}

/** The -e list, each address checked as an envelope address is (no character that could split or hide a line). */
export function emailsArg(emails: string): string {
  const list = emails.split(',').map((s) => s.trim());
  for (const e of list) {
    const bad = unsafeCharacter(Buffer.from(e, 'utf8'));
    if (e === '' || !e.includes('@') || /[\s<>]/.test(e) || bad) usage(`bad -e "${emails}": ${bad ? `${bad} in an address` : 'give e-mail addresses separated by commas'}`);
  }
  return list.join(',');
}

/** The exit status of an import that failed this way. */
export function syncExit(err: SyncError): number {
  switch (err.kind) {
    case 'login':
      return EX_UNAVAILABLE;
    case 'account':
      return EX_DATAERR;
    case 'disk-full':
      return EX_IOERR;
    default:
      return EX_TEMPFAIL;
  }
}

/**
 * The log on stderr, or appended to -f LOGFILE (opened here, so that a
 * file that cannot be written is one line and exit 73, not a crash later).
 * end() resolves once every line is in the file.
 */
/**
 * The log: appended to logfile, sent to syslog (facility mail) through the
 * socket given (undefined: none; '': /dev/log), or on stderr. end() returns
 * once every line is out, so a program may exit right after.
 */
export function openLog(program: string, level: LogLevel, logfile?: string, syslogSocket?: string): { log: Logger; end: () => Promise<void>; onStderr: boolean } {
  if (syslogSocket !== undefined) {
    const sink = openSyslog(program, syslogSocket || undefined);
    return { log: createLogger({ program, level, stream: sink.stream, journal: true }), end: sink.close, onStderr: false };
  }
  if (!logfile) return { log: createLogger({ program, level }), end: async () => undefined, onStderr: true };
  let fd: number;
  try {
    fd = fs.openSync(logfile, 'a', 0o640);
  } catch (err) {
    throw new Fatal(`cannot open the log file ${logfile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, EX_CANTCREAT);
  }
  const stream = fs.createWriteStream('', { fd });
  return {
    log: createLogger({ program, level, stream, journal: false }),
    end: () => new Promise<void>((resolve) => stream.end(resolve)),
    onStderr: false,
  };
}

/** The state file of a one-time import: --state FILE, or the program's default one for the mailbox (its directory made when missing). */
export function stateFilePath(program: string, given: string | undefined, mailbox: string): string {
  if (given !== undefined) {
    if (given === '') usage('--state needs a file name');
    return path.resolve(given);
  }
  const file = defaultStateFile(program, mailbox);
  try {
    fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o750 });
  } catch (err) {
    throw new Fatal(`cannot create ${path.dirname(file)} for the state file (${(err as NodeJS.ErrnoException).code}); create it, or name a state file with --state`, EX_CANTCREAT);
  }
  return file;
}

/** Reads a state file; one that is not ours, or for another mailbox, is a usage error, one that cannot be read exit 74. */
export function openState<T>(open: () => T): T {
  try {
    return open();
  } catch (err) {
    if (err instanceof StateFileError) throw new Fatal(err.message, err.problem === 'io' ? EX_IOERR : EX_USAGE);
    throw err;
  }
}

/**
 * Runs work while holding STATEFILE.lock, so that two runs never import one
 * mailbox into one state at once: the second is one line and exit 75.
 */
export async function withStateLock<T>(program: string, stateFile: string, mailbox: string, work: () => Promise<T>): Promise<T> {
  const lock = `${stateFile}.lock`;
  let holding = false;
  try {
    return await withFileLock(
      lock,
      () => {
        holding = true;
        return work();
      },
      // Long enough to take over the lock of a run that was killed; a live run is not waited for.
      { timeoutMs: 2000 },
    );
  } catch (err) {
    if (holding) throw err;
    if (err instanceof LockTimeout) throw new Fatal(`another ${program} is importing ${mailbox} (${err.message})`, EX_TEMPFAIL);
    throw new Fatal(`cannot take the lock ${lock}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, EX_CANTCREAT);
  }
}
