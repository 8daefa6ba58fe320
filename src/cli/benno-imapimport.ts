#!/usr/bin/env node
// benno-imapimport: imports every folder of one IMAP mailbox into Benno's
// inbox, once: the mail a mailbox held before the archive existed. No
// accounts database: the credentials come on the command line, and the
// progress is kept in a state file of its own, so that an import that was
// interrupted resumes where it stopped. The engine is benno-imapsync's.

import { DEFAULT_PORTS, DEFAULTS, TlsMode, parseFolderList } from '../imap/config';
import { FolderStateFile } from '../imap/state-file';
import { ServerOptions, SyncAccount, SyncError, SyncResult, listFolders, syncAccount } from '../imap/sync';
import { ValueError } from '../ops/config-lines';
import { openState, syncExit, usage } from './mailbox-args';
import { IMPORT_OPTIONS, ImportArgs, Mailbox, importFailure, importOptions, mailboxArgs, runImport } from './one-time-import';
import { folderBars } from './progress';
import { commandLine, rejectRepeated, runMain } from './run';
import { EX_OK, EX_TEMPFAIL, Fatal } from './sysexits';

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

interface Args extends ImportArgs {
  tls?: TlsMode;
  exclude?: string;
  'list-folders': boolean;
}

function parseArgs(): Args {
  const a = importOptions(commandLine(PROGRAM, USAGE, EPILOG), PROGRAM, 'IMAP', 'inbox, tls, port, cafile, exclude, suffix, timeout, gateway')
    .option('tls', { choices: ['starttls', 'imaps', 'none'], describe: 'starttls (port 143; required), imaps (port 993) or none (clear text: trusted networks only)' })
    .option('exclude', { type: 'string', describe: 'folders not imported, comma-separated ("": none; default: Drafts, Trash, Junk)' })
    .option('list-folders', { type: 'boolean', default: false, describe: 'show which folders would be imported, which are excluded and why; import nothing' })
    .parseSync() as unknown as Args;
  rejectRepeated(PROGRAM, a as unknown as Record<string, unknown>, [...IMPORT_OPTIONS, 'tls', 'exclude']);
  return a;
}

/** The server and the folders: the command line over -c's file over the defaults. */
function imapSettings(a: Args, m: Mailbox): { server: ServerOptions; account: SyncAccount; exclude: string[] } {
  const base = m.config ?? DEFAULTS;
  const tls = a.tls ?? base.tls;
  // The configuration's port belongs to its tls; another --tls means that mode's usual port.
  const port = m.where.port ?? (m.config?.source.lines.has('port') && a.tls === undefined ? m.config.port : DEFAULT_PORTS[tls]);
  let exclude = base.exclude;
  if (a.exclude !== undefined) {
    try {
      exclude = parseFolderList(a.exclude.trim());
    } catch (err) {
      if (err instanceof ValueError) usage(`bad --exclude "${a.exclude}": ${err.message}`);
      throw err;
    }
  }
  return {
    server: { host: m.where.host, port, tls, caFile: m.ca?.file, timeoutMs: m.timeoutMs },
    account: { id: 0, user: m.user, host: m.where.spec, emails: m.emails, gateway: m.gateway },
    exclude,
  };
}

function summary(r: SyncResult): string {
  const imported = r.folders.filter((f) => f.status === 'synced' || f.status === 'unchanged').length;
  return `summary: ${r.account} folders=${imported} excluded=${r.excluded} failed=${r.errors} archived=${r.archived} skipped=${r.skipped} seconds=${(r.ms / 1000).toFixed(1)}`;
}

async function main(): Promise<void> {
  const a = parseArgs();
  const m = await mailboxArgs(PROGRAM, a);
  const { server, account, exclude } = imapSettings(a, m);
  if (a['list-folders']) {
    try {
      const folders = await listFolders({ server, account, password: m.password, exclude });
      process.stdout.write(folders.map((f) => (f.excluded ? `excluded  ${f.path}  (${f.excluded})` : `import    ${f.path}`)).join('\n') + '\n');
    } catch (err) {
      if (err instanceof SyncError) throw new Fatal(err.message, syncExit(err));
      throw err;
    } finally {
      m.password.fill(0);
    }
    return;
  }
  process.exitCode = await runImport(PROGRAM, m, a, async ({ log, writer, stateFile, terminal }) => {
    const store = openState(() => new FolderStateFile(stateFile, PROGRAM, m.name));
    try {
      const result = await syncAccount({ server, account, password: m.password, store, writer, exclude, log, progress: terminal ? folderBars() : undefined });
      log.info(summary(result));
      if (result.errors === 0) return EX_OK;
      log.error(`${result.errors} folder(s) failed; run ${PROGRAM} again to import them (what is archived stays recorded)`);
      return EX_TEMPFAIL;
    } catch (err) {
      return importFailure(log, err, () => {
        if (err instanceof SyncError && err.partial) log.info(summary(err.partial));
      });
    }
  });
}

runMain(PROGRAM, main);
