#!/usr/bin/env node
// benno-pop3: imports one POP3 mailbox into Benno's inbox, once (Benno's
// documentation names it for existing mail, beside benno-imapimport). The
// UIDLs of the messages on disk are kept in a state file, so that an
// interrupted import resumes without doubling anything; with --delete each
// message is deleted on the server once its file is durable.

import * as fs from 'node:fs';
import { ConfigError, DEFAULTS, ImapConfig, readImapConfig } from '../imap/config';
import { ImportEnvelope, addressList } from '../imap/envelope';
import { StoreError } from '../imap/store';
import { SyncError } from '../imap/sync';
import { LOG_LEVELS, LogLevel, Logger } from '../ops/log';
import { Pop3Tls } from '../pop3/client';
import { Pop3ImportError, Pop3ImportOptions, Pop3Result, importPop3 } from '../pop3/import';
import { UidlStateFile } from '../pop3/state';
import { DEFAULT_ENVELOPE_NAMES, gatewayNameProblem } from '../spool/format';
import { SpoolWriter } from '../spool/writer';
import { emailsArg, hostArg, openLog, openState, readPassword, stateFilePath, syncExit, usage, withStateLock } from './mailbox-args';
import { progressBar } from './progress';
import { commandLine, rejectRepeated, runMain } from './run';
import { prepareSpool } from './start';
import { EX_CONFIG, EX_IOERR, EX_OK, Fatal } from './sysexits';

const PROGRAM = 'benno-pop3';
const PORTS: Record<Pop3Tls, number> = { starttls: 110, pop3s: 995, none: 110 };

const USAGE = `Usage: ${PROGRAM} -u USER -i HOST[:PORT] [-e ADDR,ADDR...] (-p - | --password-file FILE) [--delete] [options]

Imports every message of the POP3 mailbox USER on HOST into Benno's inbox, once: the mail it
held before the archive. Leaves the mailbox as it is, unless --delete is given.`;

const EPILOG = `Each message becomes one file in the inbox, as the server sends it (POP3's
dot-stuffing undone, nothing else changed), after the envelope lines Benno reads:
X-REAL-MAILFROM from the message's first Return-Path, and one X-REAL-RCPTTO per -e address
(the mailbox owner's addresses; the user name when it is an address and -e is not given).
POP3 cannot send a message whose last line has no line end: servers add CRLF to it.

Encryption: --tls starttls (port 110, STLS required; the default), pop3s (port 995, TLS from
the first byte), or none (the password in clear text: only on a trusted network). The
server's certificate is checked against the system's CAs, or --cafile.

Interrupted (a crash, kill -9, the server gone), it resumes: the state file keeps the UIDL of
every message whose file is on disk, and a new run with the same -u and -i fetches only the
others. A message fetched twice lands on the same file (its name is the SHA-256 of its
content), so nothing is doubled. The state file: --state FILE, by default
/var/lib/benno-imap/${PROGRAM}-USER@HOST.state. Two runs for one mailbox do not overlap.

--delete: each message is deleted on the server (DELE) only after its file is durable in the
inbox; the server carries the deletions out at the end of the session (QUIT). A run that
breaks off deletes nothing; the next run deletes what the state says is archived.

The password: -p - reads it from stdin, --password-file from a file's first line.
-p PASSWORD works but is visible to other local users while the program starts: it warns
and overwrites it in the process list.

-c CONFIG takes inbox, suffix, cafile, timeout and gateway from imapsync.conf; options
given here win.

Exit status: 0 done, 75 not finished (server down, TLS refused, the mailbox in use: run it
again), 69 the server refused the login, 74 the inbox's disk is full or the state file
cannot be written, 73 the inbox or the state file's directory cannot be used, 78 a bad
configuration, 64 bad usage.

Example:
  ${PROGRAM} -u anna@example.org -i pop.example.org --tls pop3s -p - < anna.pw`;

interface Args {
  config?: string;
  user?: string;
  host?: string;
  emails?: string;
  password?: string;
  'password-file'?: string;
  inbox?: string;
  tls: Pop3Tls;
  cafile?: string;
  gateway?: string;
  timeout?: number;
  state?: string;
  delete: boolean;
  logfile?: string;
  'log-level'?: LogLevel;
}

function parseArgs(): Args {
  const a = commandLine(PROGRAM, USAGE, EPILOG)
    .option('user', { alias: 'u', type: 'string', describe: 'POP3 user name' })
    .option('host', { alias: 'i', type: 'string', describe: 'POP3 server: HOST, HOST:PORT or [IPv6]:PORT' })
    .option('emails', { alias: 'e', type: 'string', describe: "the mailbox owner's e-mail addresses, comma-separated (the envelope recipients)" })
    .option('password', { alias: 'p', type: 'string', describe: 'POP3 password; "-": read it from stdin' })
    .option('password-file', { type: 'string', describe: 'read the POP3 password from the first line of this file' })
    .option('delete', { type: 'boolean', default: false, describe: 'delete each message on the server once its file is durable in the inbox' })
    .option('config', { alias: 'c', type: 'string', describe: 'take inbox, suffix, cafile, timeout, gateway from this imapsync.conf' })
    .option('inbox', { type: 'string', describe: "Benno's inbox (default: /srv/benno/inbox)" })
    .option('tls', { choices: ['starttls', 'pop3s', 'none'], default: 'starttls', describe: 'starttls (port 110), pop3s (port 995) or none (clear text: trusted networks only)' })
    .option('cafile', { type: 'string', describe: "CA certificates (PEM) the server's certificate is checked against (default: the system's)" })
    .option('gateway', { type: 'string', describe: "X-BENNO-GW name for Benno's container rules (multi-import)" })
    .option('timeout', { type: 'number', describe: 'seconds the server may stay silent (default: 60)' })
    .option('state', { type: 'string', describe: 'state file, for resuming (default: /var/lib/benno-imap/benno-pop3-USER@HOST.state)' })
    .option('logfile', { alias: 'f', type: 'string', describe: 'append the log to this file instead of stderr' })
    .option('log-level', { choices: LOG_LEVELS, describe: 'least severity logged (default: info)' })
    .parseSync() as unknown as Args;
  rejectRepeated(PROGRAM, a as unknown as Record<string, unknown>, [
    'config', 'user', 'host', 'emails', 'password', 'password-file', 'inbox', 'tls', 'cafile', 'gateway', 'timeout', 'state', 'logfile', 'log-level',
  ]);
  return a;
}

function readConfig(file: string): ImapConfig {
  try {
    return readImapConfig(file);
  } catch (err) {
    if (err instanceof ConfigError) throw new Fatal(err.message, EX_CONFIG);
    throw err;
  }
}

/** The CA file's bytes; one that cannot be read is a usage error (or a configuration error, when it came from there). */
function caOf(a: Args, config: ImapConfig | null): Buffer | undefined {
  const file = a.cafile ?? config?.cafile;
  if (file === undefined) return undefined;
  try {
    return fs.readFileSync(file);
  } catch (err) {
    const problem = `cannot read the CA file ${file} (${(err as NodeJS.ErrnoException).code})`;
    if (a.cafile !== undefined) usage(problem);
    throw new Fatal(`${a.config}: ${problem}`, EX_CONFIG);
  }
}

function summary(r: Pop3Result): string {
  return `summary: ${r.mailbox} mailboxes=1 archived=${r.archived} deleted=${r.deleted} seconds=${(r.ms / 1000).toFixed(1)}`;
}

function mailboxLine(r: Pop3Result): string {
  return `${r.mailbox}: ${r.listed} messages, ${r.archived} archived, ${r.before} archived before, ${r.skipped} skipped, ${r.deleted} deleted, ${r.ms} ms`;
}

async function main(): Promise<void> {
  const a = parseArgs();
  // First: a password given with -p leaves the process list now.
  const password = await readPassword(PROGRAM, a);
  if (a.user === undefined || a.user === '') usage('name the mailbox with -u USER');
  if (/[\s\0]/.test(a.user)) usage('bad -u: a POP3 user name has no spaces or control characters');
  if (a.host === undefined) usage('name the server with -i HOST[:PORT]');
  const where = hostArg(a.host);
  if (!password) usage('give the password: -p - (from stdin) or --password-file FILE');
  if (password.includes(0x0a) || password.includes(0x0d) || password.includes(0)) usage('the password has a line break or NUL, which POP3 cannot send');
  if (a.timeout !== undefined && !(Number.isInteger(a.timeout) && a.timeout >= 1 && a.timeout <= 3600)) usage('bad --timeout: a whole number of seconds from 1 to 3600');
  const emails = a.emails !== undefined ? emailsArg(a.emails) : a.user.includes('@') ? emailsArg(a.user) : usage(`give the addresses of ${a.user} with -e: the user name is no e-mail address, and imported mail is filed for the mailbox owner's addresses`);
  const config = a.config !== undefined ? readConfig(a.config) : null;
  const base = config ?? DEFAULTS;
  const gateway = a.gateway ?? base.gateway;
  if (gateway !== undefined) {
    const problem = gatewayNameProblem(gateway);
    if (problem) usage(`bad --gateway ${problem}`);
  }
  const mailbox = `${a.user}@${where.host}`;
  const options: Omit<Pop3ImportOptions, 'writer' | 'state' | 'log'> = {
    server: { host: where.host, port: where.port ?? PORTS[a.tls], tls: a.tls, ca: caOf(a, config), timeoutMs: (a.timeout ?? base.timeout) * 1000 },
    user: a.user,
    password,
    who: `${a.user}@${where.spec}`,
    envelope: new ImportEnvelope(DEFAULT_ENVELOPE_NAMES, addressList(emails), gateway ?? null),
    deleteArchived: a.delete,
  };
  const stateFile = stateFilePath(PROGRAM, a.state, mailbox);
  const { log, end } = openLog(PROGRAM, a['log-level'] ?? base.logLevel, a.logfile);
  try {
    process.exitCode = await withStateLock(PROGRAM, stateFile, mailbox, async () => {
      const state = openState(() => new UidlStateFile(stateFile, PROGRAM, mailbox));
      const writer = new SpoolWriter(a.inbox ?? base.inbox, { suffix: base.suffix });
      try {
        await prepareSpool(writer, { noun: 'inbox', elsewhere: a.inbox !== undefined || !config ? 'pass --inbox' : `set inbox in ${a.config}, or pass --inbox` }, log);
        const bar = !a.logfile && process.stderr.isTTY ? progressBar(process.stderr, `${options.who} `) : undefined;
        return await importMailbox({ ...options, writer, state, log, progress: bar });
      } finally {
        writer.close();
      }
    });
  } finally {
    await end();
    password.fill(0);
  }
}

/** The import itself; every outcome is logged, the exit status returned. */
async function importMailbox(options: Pop3ImportOptions): Promise<number> {
  const log: Logger = options.log;
  try {
    const result = await importPop3(options);
    log.info(mailboxLine(result));
    log.info(summary(result));
    return EX_OK;
  } catch (err) {
    if (err instanceof SyncError) {
      log.error(err.message);
      if (err instanceof Pop3ImportError) {
        log.info(mailboxLine(err.done));
        log.info(summary(err.done));
      }
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
