#!/usr/bin/env node
// benno-milter-admin: set Postfix up for benno-milter, check the set-up,
// show the spool's state.

import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DefaultFileError, withDefaultValues } from '../ops/default-file';
import { replaceFileDurably } from '../ops/durable-file';
import { hostAddresses, isThisHost } from '../ops/allowlist';
import { EX_CONFIG, EX_DATAERR, EX_NOINPUT, EX_OK, EX_UNAVAILABLE, EX_USAGE, Fatal } from './sysexits';
import { runAudit } from '../admin/audit';
import { parseTimeArgument } from '../admin/audit-lines';
import { GRACE_MS } from '../admin/audit-matcher';
import { checkLine, checkState, jsonReport, textReport } from '../admin/audit-report';
import { LogSource, LogUnreadable, MAIL_LOG, fileSource, journalSources, rotatedSiblings, systemdRuns } from '../admin/audit-sources';
import { diagnose, gatherFacts } from '../admin/doctor';
import { DEFAULT_FILE, OVERRIDE_FILE, milterSettings } from '../admin/milter-settings';
import { readPostfixConfig } from '../admin/postfix-config';
import {
  MilterMove,
  SetupError,
  planPostfixSetup,
  shellLine,
  univentionAllowNote,
  univentionCommands,
  univentionLocalPlan,
  univentionTcpEndpoint,
} from '../admin/postfix-setup';
import { statusReport } from '../admin/status';
import { commandLine, runMain } from './run';

const PROGRAM = 'benno-milter-admin';

function settingsOrFail(defaultFile: string) {
  try {
    return milterSettings(defaultFile, OVERRIDE_FILE);
  } catch (err) {
    if (err instanceof DefaultFileError) throw new Fatal(err.message, EX_CONFIG);
    throw err;
  }
}

function postfixOrFail(configDir?: string) {
  try {
    return readPostfixConfig(configDir);
  } catch (err) {
    throw new Fatal(`cannot read Postfix's configuration with postconf: ${(err as Error).message.split('\n')[0]}`, EX_UNAVAILABLE);
  }
}

function usageError(message: string): never {
  throw new Fatal(`${message} (try --help)`, EX_USAGE);
}

function parseArguments() {
  return commandLine(PROGRAM, usageText(), commandsText(), { positionals: true })
    .option('dry-run', { type: 'boolean', default: false, describe: 'setup postfix: print the postconf commands, change nothing' })
    .option('service', { type: 'string', array: true, default: [] as string[], describe: 'setup postfix: configure this master.cf service instead of main.cf (repeatable)' })
    .option('keep-tcp', {
      type: 'boolean',
      default: false,
      describe: 'setup: leave a milter on loopback TCP there (by default it moves to its unix socket, which costs Postfix less)',
    })
    .option('apply', { type: 'boolean', default: false, describe: 'setup univention: run the ucr commands (and the move to the unix socket)' })
    .option('port', { type: 'number', default: 22500, describe: 'setup univention: the milter port on HOST' })
    .option('default-file', { type: 'string', default: DEFAULT_FILE, describe: "the milter's default file" })
    .option('postfix-config', { type: 'string', describe: 'Postfix configuration directory (postconf -c)' })
    .option('since', { type: 'string', describe: 'audit: from this time on (2026-11-24, "2026-11-24 10:00", yesterday, today, -24h)' })
    .option('until', { type: 'string', describe: 'audit: up to this time (same forms), not included' })
    .option('journal-file', {
      type: 'string',
      array: true,
      describe: 'audit: read these journal files (journalctl --file; a journal copied from the audited host) instead',
    })
    .option('log', { type: 'string', array: true, describe: `audit: read these log files (.gz too) instead of the journal or ${MAIL_LOG} and its rotated files` })
    .option('json', { type: 'boolean', default: false, describe: 'audit: the report as JSON' })
    .option('check', { type: 'boolean', default: false, describe: 'audit: one line, exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (Nagios, Icinga)' })
    .parseSync();
}

type Args = ReturnType<typeof parseArguments>;

interface Command {
  /** The words that name it on the command line. */
  name: string;
  /** Its operands as the usage line names them. */
  operands?: string;
  /** Its options as the usage line shows them. */
  options?: string;
  /** What it does, as --help prints it, line by line. */
  help: string[];
  /** operands: the words after the name. */
  run(a: Args, operands: string[]): Promise<void>;
}

const COMMANDS: Command[] = [
  {
    name: 'setup postfix',
    options: '[--dry-run] [--service NAME...] [--keep-tcp]',
    help: [
      'add benno-milter to main.cf (smtpd_milters, non_smtpd_milters,',
      'milter_default_action = tempfail), or with --service to the -o options of',
      "those master.cf services; the socket path follows each service's chroot.",
      'A milter on loopback TCP first moves to its unix socket (SOCKET_TYPE, SOCKET',
      'in the default file, then a restart), unless --keep-tcp',
    ],
    run: setupPostfix,
  },
  {
    name: 'setup univention',
    operands: 'HOST',
    options: '[--apply] [--port N] [--keep-tcp]',
    help: [
      'print the six "ucr set" commands of the Benno documentation (--apply runs them),',
      'and the --allow the milter on the Benno host needs for this mail server.',
      'HOST this very host, with benno-milter installed: its unix socket instead of TCP',
    ],
    run: setupUnivention,
  },
  {
    name: 'doctor',
    help: ['check Postfix, the milter and the files between them; name each problem', 'with its fix (exit 1 when there is a problem)'],
    run: doctor,
  },
  {
    name: 'status',
    help: ['files waiting in the spool, and the last export'],
    run: status,
  },
  {
    name: 'audit',
    options: '[--since TIME] [--until TIME] [--log FILE...] [--json | --check]',
    help: [
      'prove from the mail log that every message the MTA (Postfix, Sendmail)',
      'accepted was archived; list each accepted queue id without an archived file',
      '(time, sender, acceptance line), messages archived twice, and those the',
      'milter refused or tempfailed that the MTA accepted all the same. Reads the',
      `journal where systemd runs, else ${MAIL_LOG} and its rotated (.gz) files;`,
      '--log others. Exit 0 complete, 1 not; --check: one line, Nagios codes',
    ],
    run: audit,
  },
];

const nameWords = (c: Command) => c.name.split(' ');

/** What the command is called with, options aside: "setup univention HOST". */
const synopsis = (c: Command) => [c.name, c.operands].filter(Boolean).join(' ');

function usageText(): string {
  return `Usage: ${COMMANDS.map((c) => [PROGRAM, synopsis(c), c.options].filter(Boolean).join(' ')).join('\n       ')}`;
}

/** The help lines are wrapped for a column two spaces after the longest name. */
function commandsText(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length)) + 2;
  const lines = COMMANDS.flatMap((c) => c.help.map((line, i) => `  ${(i === 0 ? c.name : '').padEnd(width)}${line}`));
  return ['Commands:', ...lines].join('\n');
}

/** "a, b or c" */
function either(words: string[]): string {
  return words.length < 2 ? words.join('') : `${words.slice(0, -1).join(', ')} or ${words[words.length - 1]}`;
}

async function setupPostfix(a: Args): Promise<void> {
  const config = postfixOrFail(a['postfix-config']);
  const settings = settingsOrFail(a['default-file']);
  let plan;
  try {
    plan = planPostfixSetup(config, settings, a.service, { keepTcp: a['keep-tcp'], override: fs.existsSync(OVERRIDE_FILE) });
  } catch (err) {
    if (err instanceof SetupError) throw new Fatal(err.message, EX_CONFIG);
    throw err;
  }
  if (plan.move) moveMilter(plan.move, a['default-file'], !a['dry-run']);
  const c = a['postfix-config'] ? ['-c', a['postfix-config']] : [];
  for (const args of plan.commands) {
    process.stdout.write(`${shellLine('postconf', [...c, ...args])}\n`);
    if (!a['dry-run']) execFileSync('postconf', [...c, ...args], { stdio: 'inherit' });
  }
  for (const note of plan.notes) process.stdout.write(`# ${note}\n`);
  if (!a['dry-run'] && spawnSync('postfix', [...c, 'status'], { stdio: 'ignore' }).status === 0) {
    execFileSync('postfix', [...c, 'reload'], { stdio: 'inherit' });
  }
}

/**
 * Moves the milter to its unix socket: the socket's directory (benno:postfix
 * 0750, as the package makes it), the default file, a restart where systemd
 * runs. Postfix is told afterwards; a message in between is answered "try
 * again later" (milter_default_action = tempfail), never lost.
 */
function moveMilter(move: MilterMove, defaultFile: string, apply: boolean): void {
  const dir = path.dirname(move.path);
  const steps: string[][] = [];
  if (!fs.existsSync(dir)) steps.push(['install', '-d', '-o', 'benno', '-g', 'postfix', '-m', '0750', dir]);
  const assignments = [...move.values].map(([k, v]) => `${k}=${v}`);
  process.stdout.write(`# ${defaultFile}: ${assignments.join(' ')}\n`);
  const booted = fs.existsSync('/run/systemd/system');
  if (booted) steps.push(['systemctl', 'try-restart', 'benno-milter']);
  for (const [program, ...args] of steps) process.stdout.write(`${shellLine(program, args)}\n`);
  if (!booted) process.stdout.write('# then restart benno-milter, which reads the default file at its start\n');
  if (!apply) return;
  let text = '';
  try {
    text = fs.readFileSync(defaultFile, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new Fatal(`cannot read ${defaultFile}: ${(err as Error).message}`, EX_CONFIG);
  }
  for (const [program, ...args] of steps.filter(([p]) => p === 'install')) execFileSync(program, args, { stdio: 'inherit' });
  // An administrator's file keeps its mode; a new one is world-readable like the package's.
  replaceFileDurably(defaultFile, Buffer.from(withDefaultValues(text, move.values)), {
    mode: 0o644,
    prepare: (fd, old) => {
      if (old) fs.fchmodSync(fd, old.mode & 0o7777);
    },
  });
  for (const [program, ...args] of steps.filter(([p]) => p === 'systemctl')) execFileSync(program, args, { stdio: 'inherit' });
}

async function setupUnivention(a: Args, [host]: string[]): Promise<void> {
  if (!host) usageError('setup univention needs the Benno host: setup univention HOST');
  let commands: string[][];
  let local = null;
  try {
    // The archive on this very host, with the package's milter (not in a container of its own): the unix socket.
    if (isThisHost(host) && fs.existsSync(a['default-file'])) {
      local = univentionLocalPlan(postfixOrFail(a['postfix-config']), settingsOrFail(a['default-file']), {
        keepTcp: a['keep-tcp'],
        override: fs.existsSync(OVERRIDE_FILE),
      });
      if (local.move) moveMilter(local.move, a['default-file'], a.apply);
      commands = univentionCommands(local.endpoint);
    } else {
      const endpoint = univentionTcpEndpoint(host, a.port);
      commands = univentionCommands(() => endpoint);
    }
  } catch (err) {
    if (err instanceof SetupError) usageError(err.message);
    throw err;
  }
  for (const args of commands) {
    process.stdout.write(`${shellLine('ucr', args)}\n`);
    if (a.apply) execFileSync('ucr', args, { stdio: 'inherit' });
  }
  process.stdout.write(`# then: systemctl restart postfix\n`);
  if (local) {
    for (const note of local.notes) process.stdout.write(`# ${note}\n`);
  } else {
    if (isThisHost(host)) process.stdout.write(`# ${host} is this host, but benno-milter is not installed here (${a['default-file']} is missing; the archive in a container?): TCP it is\n`);
    process.stdout.write(`# ${univentionAllowNote(host, hostAddresses(false))}\n`);
  }
}

async function doctor(a: Args): Promise<void> {
  const settings = settingsOrFail(a['default-file']);
  let config = null;
  try {
    config = readPostfixConfig(a['postfix-config']);
  } catch {
    process.stdout.write('postconf is not available: Postfix is not checked (milter on a separate host?)\n');
  }
  const findings = diagnose(await gatherFacts(config, settings));
  for (const f of findings) process.stdout.write(`${f.level}: ${f.problem}\n  fix: ${f.fix}\n`);
  if (findings.length === 0) process.stdout.write('no problems found\n');
  process.exitCode = findings.some((f) => f.level === 'error') ? 1 : EX_OK;
}

async function status(a: Args): Promise<void> {
  const settings = settingsOrFail(a['default-file']);
  for (const line of statusReport({ dir: settings.spoolDir, suffix: settings.suffix }, settings.vars.get('BENNOHOST'))) process.stdout.write(`${line}\n`);
}

/** Nagios and Icinga plugin exit codes. */
const CHECK_EXIT = { OK: 0, WARNING: 1, CRITICAL: 2, UNKNOWN: 3 } as const;

function timeOption(a: Args, name: 'since' | 'until'): number | null {
  const value = a[name];
  if (value === undefined) return null;
  if (Array.isArray(value)) usageError(`--${name} given more than once`);
  const t = parseTimeArgument(value, Date.now());
  if (t === null) usageError(`--${name} "${value}" is not a time (2026-11-24, "2026-11-24 10:00:00", today, yesterday, -24h)`);
  return t;
}

function auditSources(a: Args, since: number | null, until: number | null): LogSource[] {
  if (a.log && a.log.length > 0) return a.log.map((f) => fileSource([f]));
  const files = a['journal-file'] ?? [];
  // journalctl --file: a journal copied from the audited host, read with the same filters.
  if (files.length > 0 || systemdRuns()) return journalSources(since, until, 2 * GRACE_MS, files);
  return [fileSource(rotatedSiblings(MAIL_LOG))];
}

async function audit(a: Args): Promise<void> {
  if (a.json && a.check) usageError('--json and --check exclude each other');
  const since = timeOption(a, 'since');
  const until = timeOption(a, 'until');
  if (since !== null && until !== null && until <= since) usageError('--until must be after --since');
  try {
    const result = await runAudit(auditSources(a, since, until), since, until);
    if (a.check) {
      process.stdout.write(`${checkLine(result)}\n`);
      process.exitCode = CHECK_EXIT[checkState(result)];
      return;
    }
    if (result.lines === 0) throw new Fatal(`no log lines in ${result.sources.join('; ')}: not a mail log?`, EX_DATAERR);
    process.stdout.write(a.json ? jsonReport(result) : textReport(result));
    process.exitCode = result.missing.count === 0 ? EX_OK : 1;
  } catch (err) {
    if (!(err instanceof LogUnreadable || err instanceof Fatal)) throw err;
    if (a.check) {
      process.stdout.write(`BENNO AUDIT UNKNOWN - ${err.message}\n`);
      process.exitCode = CHECK_EXIT.UNKNOWN;
      return;
    }
    if (err instanceof Fatal) throw err;
    throw new Fatal(err.message, err.reason === 'corrupt' ? EX_DATAERR : err.reason === 'failed' ? EX_UNAVAILABLE : EX_NOINPUT);
  }
}

async function main(): Promise<void> {
  const a = parseArguments();
  const words = a._.map(String);
  const command = COMMANDS.find((c) => nameWords(c).every((w, i) => words[i] === w));
  if (command) return command.run(a, words.slice(nameWords(command).length));
  const [first, second] = words;
  if (!first) usageError(`name a command: ${either([...new Set(COMMANDS.map((c) => nameWords(c)[0]))])}`);
  // A group such as "setup" names its members rather than calling itself unknown.
  const group = COMMANDS.filter((c) => c.name.startsWith(`${first} `));
  if (group.length > 0) usageError(`unknown ${first} "${second ?? ''}": use ${either(group.map(synopsis))}`);
  usageError(`unknown command "${first}"`);
}

runMain(PROGRAM, main);
