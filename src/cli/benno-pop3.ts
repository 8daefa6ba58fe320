#!/usr/bin/env node
// benno-pop3: imports one POP3 mailbox into Benno's inbox, once (Benno's
// documentation names it for existing mail, beside benno-imapimport). The
// UIDLs of the messages on disk are kept in a state file, so that an
// interrupted import resumes without doubling anything; with --delete each
// message is deleted on the server once its file is durable.

import { ImportEnvelope, addressList } from '../imap/envelope';
import { Pop3Tls } from '../pop3/client';
import { Pop3ImportError, Pop3Result, importPop3 } from '../pop3/import';
import { UidlStateFile } from '../pop3/state';
import { DEFAULT_ENVELOPE_NAMES } from '../spool/format';
import { openState } from './mailbox-args';
import { IMPORT_OPTIONS, ImportArgs, importFailure, importOptions, mailboxArgs, runImport } from './one-time-import';
import { progressBar } from './progress';
import { commandLine, rejectRepeated, runMain } from './run';
import { EX_OK } from './sysexits';

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
Without --delete nothing is marked read: messages are fetched with TOP (the whole message,
RFC 1939) where the server offers it, not RETR, which marks them read.

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

interface Args extends ImportArgs {
  tls: Pop3Tls;
  delete: boolean;
}

function parseArgs(): Args {
  const a = importOptions(commandLine(PROGRAM, USAGE, EPILOG), PROGRAM, 'POP3', 'inbox, suffix, cafile, timeout, gateway')
    .option('delete', { type: 'boolean', default: false, describe: 'delete each message on the server once its file is durable in the inbox' })
    .option('tls', { choices: ['starttls', 'pop3s', 'none'], default: 'starttls', describe: 'starttls (port 110), pop3s (port 995) or none (clear text: trusted networks only)' })
    .parseSync() as unknown as Args;
  rejectRepeated(PROGRAM, a as unknown as Record<string, unknown>, [...IMPORT_OPTIONS, 'tls']);
  return a;
}

function summary(r: Pop3Result): string {
  return `summary: ${r.mailbox} mailboxes=1 archived=${r.archived} deleted=${r.deleted} seconds=${(r.ms / 1000).toFixed(1)}`;
}

function mailboxLine(r: Pop3Result): string {
  return `${r.mailbox}: ${r.listed} messages, ${r.archived} archived, ${r.before} archived before, ${r.skipped} skipped, ${r.deleted} deleted, ${r.ms} ms`;
}

async function main(): Promise<void> {
  const a = parseArgs();
  const m = await mailboxArgs(PROGRAM, a);
  const who = `${m.user}@${m.where.spec}`;
  process.exitCode = await runImport(PROGRAM, m, a, async ({ log, writer, stateFile, terminal }) => {
    const state = openState(() => new UidlStateFile(stateFile, PROGRAM, m.name));
    try {
      const result = await importPop3({
        server: { host: m.where.host, port: m.where.port ?? PORTS[a.tls], tls: a.tls, ca: m.ca?.pem, timeoutMs: m.timeoutMs },
        user: m.user,
        password: m.password,
        who,
        envelope: new ImportEnvelope(DEFAULT_ENVELOPE_NAMES, addressList(m.emails), m.gateway),
        writer,
        state,
        deleteArchived: a.delete,
        log,
        progress: terminal ? progressBar(process.stderr, `${who} `) : undefined,
      });
      log.info(mailboxLine(result));
      log.info(summary(result));
      return EX_OK;
    } catch (err) {
      return importFailure(log, err, () => {
        if (err instanceof Pop3ImportError) {
          log.info(mailboxLine(err.done));
          log.info(summary(err.done));
        }
      });
    }
  });
}

runMain(PROGRAM, main);
