#!/usr/bin/env node
// benno-milter2smtp: ship spool files to the archive host over SMTP.

import { exportSettings, runExport } from './export-run';
import { RawExportSettings } from '../export/settings';
import { LOG_LEVELS, LogLevel, createLogger } from '../ops/log';
import { EX_USAGE } from './sysexits';
import { DEFAULT_ENVELOPE_NAMES } from '../spool/format';
import { DEFAULT_SUFFIX } from '../spool/names';
import { commandLine, fail, rejectRepeated, runMain } from './run';

const PROGRAM = 'benno-milter2smtp';

const EPILOG = `Each file's ${DEFAULT_ENVELOPE_NAMES.sender} / ${DEFAULT_ENVELOPE_NAMES.recipient} lines become MAIL FROM and
RCPT TO, the addresses byte for byte; the rest of the file is the message, sent as DATA (a
leading dot doubled, bare LF sent as CRLF, as SMTP requires). A file is removed after the
server's 250 for it. Every other file stays: on a 4xx answer or a lost connection for the next
run; on a 5xx answer, or an address the server cannot take (UTF-8 without SMTPUTF8), with an
error line at every run until the cause is fixed or the file removed. Only a file that is no
spool file (no envelope lines at its start, not a regular file) is renamed to <name>.err. Files
are claimed (renamed .<name>.<host>.<pid>.sending) while being sent, so runs that overlap never
send a file twice; claims of a run that died are put back by the next. The AUTH password is
sent only over TLS, unless --allow-plain-auth.

Exit status: 0 all sent (or nothing to send), 75 some files deferred, the server down
included (they go in the next run), 65 some files refused by the server (kept, tried again)
or set aside as .err, 69 the server refuses us (5xx greeting, AUTH refused or impossible
without TLS), 66 a PATH does not exist or is not a regular file, 64 bad usage.`;

const KEYS: Record<keyof RawExportSettings, string> = {
  host: '--host',
  port: '--port',
  starttls: '--starttls',
  caFile: '--ca-file',
  ehlo: '--ehlo',
  timeout: '--timeout',
  connections: '--connections',
  user: '--user',
  passwordFile: '--password-file',
  allowPlainAuth: '--allow-plain-auth',
  suffix: '--suffix',
  senderHeader: '--sender-header',
  recipientHeader: '--recipient-header',
};

async function main(): Promise<void> {
  const a = commandLine(
    PROGRAM,
    `Usage: ${PROGRAM} --host HOST [--port 2500] [options] PATH...\n\nSends spool files (PATH: spool directories or single files) to the Benno archive host over SMTP, the envelope lines as SMTP envelope.`,
    EPILOG,
    { positionals: true },
  )
    .option('host', { type: 'string', demandOption: true, describe: 'archive host running benno-smtp' })
    .option('port', { type: 'number', default: 2500, describe: 'its SMTP port' })
    .option('starttls', { choices: ['require', 'opportunistic', 'off'], default: 'opportunistic', describe: 'STARTTLS: require it, use it when offered, or never' })
    .option('ca-file', { type: 'string', describe: 'PEM file of CAs to trust for the server certificate (default: the system CAs)' })
    .option('ehlo', { type: 'string', describe: 'name to send in EHLO (default: this host name)' })
    .option('timeout', { type: 'number', default: 60, describe: 'seconds to wait for the server at any step' })
    .option('connections', { type: 'number', default: 4, describe: 'connections used in parallel' })
    .option('user', { type: 'string', describe: 'AUTH user name' })
    .option('password-file', { type: 'string', describe: 'file holding the AUTH password (first line)' })
    .option('allow-plain-auth', { type: 'boolean', default: false, describe: 'send the AUTH password even without TLS (a trusted network only)' })
    .option('suffix', { type: 'string', default: DEFAULT_SUFFIX, describe: 'suffix of spool files in a directory' })
    .option('sender-header', { type: 'string', default: DEFAULT_ENVELOPE_NAMES.sender, describe: 'envelope line for MAIL FROM' })
    .option('recipient-header', { type: 'string', default: DEFAULT_ENVELOPE_NAMES.recipient, describe: 'envelope line for RCPT TO' })
    .option('log-level', { choices: LOG_LEVELS, default: 'info' as LogLevel, describe: 'least severity logged' })
    .parseSync();
  const paths = a._.map(String);
  if (paths.length === 0) fail(PROGRAM, 'no PATH given: name spool directories or files (try --help)', EX_USAGE);
  rejectRepeated(PROGRAM, a, [...Object.values(KEYS).map((flag) => flag.slice(2)), 'log-level']);
  const settings = exportSettings(
    {
      host: a.host,
      port: a.port,
      starttls: a.starttls,
      caFile: a['ca-file'],
      ehlo: a.ehlo,
      timeout: a.timeout,
      connections: a.connections,
      user: a.user,
      passwordFile: a['password-file'],
      allowPlainAuth: a['allow-plain-auth'],
      suffix: a.suffix,
      senderHeader: a['sender-header'],
      recipientHeader: a['recipient-header'],
    },
    (key) => KEYS[key],
    EX_USAGE,
  );
  const log = createLogger({ program: PROGRAM, level: a['log-level'] as LogLevel });
  for (const warning of settings.warnings) log.warn(warning);
  process.exitCode = await runExport({ ...settings, paths, log });
}

runMain(PROGRAM, main);
