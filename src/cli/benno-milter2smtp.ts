#!/usr/bin/env node
// benno-milter2smtp: ship spool files to the archive host over SMTP.

import { runExport } from '../export/run';
import { RawExportSettings, checkExportSettings } from '../export/settings';
import { LOG_LEVELS, LogLevel, createLogger } from '../ops/log';
import { EX_USAGE } from '../ops/sysexits';
import { DEFAULT_ENVELOPE_NAMES } from '../spool/format';
import { commandLine, fail, rejectRepeated, runMain } from './run';

const PROGRAM = 'benno-milter2smtp';

const EPILOG = `Each file's ${DEFAULT_ENVELOPE_NAMES.sender} / ${DEFAULT_ENVELOPE_NAMES.recipient} lines become MAIL FROM and
RCPT TO; the rest of the file is the message, sent unchanged. A file is removed after the
server's 250 for it. On a 4xx answer or a lost connection it stays for the next run; on a 5xx
answer, or without valid envelope lines, it is renamed to <name>.err and not retried. Files are
claimed (renamed .<name>.<host>.<pid>.sending) while being sent, so runs that overlap never send
a file twice; claims of a run that died are put back by the next.

Exit status: 0 all sent (or nothing to send), 75 some files deferred, the server down
included (they go in the next run), 65 some files refused (renamed .err), 69 the server
refuses us (5xx greeting, AUTH refused), 66 a PATH does not exist, 64 bad usage.`;

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
    .option('suffix', { type: 'string', default: '.eml', describe: 'suffix of spool files in a directory' })
    .option('sender-header', { type: 'string', default: DEFAULT_ENVELOPE_NAMES.sender, describe: 'envelope line for MAIL FROM' })
    .option('recipient-header', { type: 'string', default: DEFAULT_ENVELOPE_NAMES.recipient, describe: 'envelope line for RCPT TO' })
    .option('log-level', { choices: LOG_LEVELS, default: 'info' as LogLevel, describe: 'least severity logged' })
    .parseSync();
  const paths = a._.map(String);
  if (paths.length === 0) fail(PROGRAM, 'no PATH given: name spool directories or files (try --help)', EX_USAGE);
  rejectRepeated(PROGRAM, a, [...Object.values(KEYS).map((flag) => flag.slice(2)), 'log-level']);
  const settings = checkExportSettings(
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
      suffix: a.suffix,
      senderHeader: a['sender-header'],
      recipientHeader: a['recipient-header'],
    },
    EX_USAGE,
    (key) => KEYS[key],
  );
  const log = createLogger({ program: PROGRAM, level: a['log-level'] as LogLevel });
  process.exitCode = await runExport({ ...settings, paths, log });
}

runMain(PROGRAM, main);
