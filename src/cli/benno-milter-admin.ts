#!/usr/bin/env node
// benno-milter-admin: set Postfix up for benno-milter, check the set-up,
// show the spool's state.

import { execFileSync, spawnSync } from 'node:child_process';
import * as os from 'node:os';
import { DefaultFileError } from '../ops/default-file';
import { EX_CONFIG, EX_OK, EX_UNAVAILABLE, EX_USAGE, Fatal } from './sysexits';
import { diagnose, gatherFacts } from '../admin/doctor';
import { DEFAULT_FILE, OVERRIDE_FILE, milterSettings } from '../admin/milter-settings';
import { readPostfixConfig } from '../admin/postfix-config';
import { SetupError, planPostfixSetup, shellLine, univentionAllowNote, univentionCommands } from '../admin/postfix-setup';
import { statusReport } from '../admin/status';
import { commandLine, runMain } from './run';

const PROGRAM = 'benno-milter-admin';

const EPILOG = `Commands:
  setup postfix     add benno-milter to main.cf (smtpd_milters, non_smtpd_milters,
                    milter_default_action = tempfail), or with --service to the -o options of
                    those master.cf services; the socket path follows each service's chroot
  setup univention  print the six "ucr set" commands of the Benno documentation (--apply runs them),
                    and the --allow the milter on the Benno host needs for this mail server
  doctor            check Postfix, the milter and the files between them; name each problem
                    with its fix (exit 1 when there is a problem)
  status            files waiting in the spool, and the last export`;

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

async function main(): Promise<void> {
  const a = commandLine(
    PROGRAM,
    `Usage: ${PROGRAM} setup postfix [--dry-run] [--service NAME...]\n       ${PROGRAM} setup univention HOST [--apply]\n       ${PROGRAM} doctor\n       ${PROGRAM} status`,
    EPILOG,
    { positionals: true },
  )
    .option('dry-run', { type: 'boolean', default: false, describe: 'setup postfix: print the postconf commands, change nothing' })
    .option('service', { type: 'string', array: true, default: [] as string[], describe: 'setup postfix: configure this master.cf service instead of main.cf (repeatable)' })
    .option('apply', { type: 'boolean', default: false, describe: 'setup univention: run the ucr commands' })
    .option('port', { type: 'number', default: 22500, describe: 'setup univention: the milter port on HOST' })
    .option('default-file', { type: 'string', default: DEFAULT_FILE, describe: "the milter's default file" })
    .option('postfix-config', { type: 'string', describe: 'Postfix configuration directory (postconf -c)' })
    .parseSync();
  const [command, what, host] = a._.map(String);
  const usage = (m: string): never => {
    throw new Fatal(`${m} (try --help)`, EX_USAGE);
  };

  if (command === 'setup' && what === 'postfix') {
    const config = postfixOrFail(a['postfix-config']);
    const settings = settingsOrFail(a['default-file']);
    let plan;
    try {
      plan = planPostfixSetup(config, settings, a.service);
    } catch (err) {
      if (err instanceof SetupError) throw new Fatal(err.message, EX_CONFIG);
      throw err;
    }
    const c = a['postfix-config'] ? ['-c', a['postfix-config']] : [];
    for (const args of plan.commands) {
      process.stdout.write(`${shellLine('postconf', [...c, ...args])}\n`);
      if (!a['dry-run']) execFileSync('postconf', [...c, ...args], { stdio: 'inherit' });
    }
    for (const note of plan.notes) process.stdout.write(`# ${note}\n`);
    if (!a['dry-run'] && spawnSync('postfix', [...c, 'status'], { stdio: 'ignore' }).status === 0) {
      execFileSync('postfix', [...c, 'reload'], { stdio: 'inherit' });
    }
    return;
  }
  if (command === 'setup' && what === 'univention') {
    if (!host) usage('setup univention needs the Benno host: setup univention HOST');
    let commands: string[][];
    try {
      commands = univentionCommands(host, a.port);
    } catch (err) {
      if (err instanceof SetupError) return usage(err.message);
      throw err;
    }
    for (const args of commands) {
      process.stdout.write(`${shellLine('ucr', args)}\n`);
      if (a.apply) execFileSync('ucr', args, { stdio: 'inherit' });
    }
    process.stdout.write(`# then: systemctl restart postfix\n`);
    const addresses = Object.values(os.networkInterfaces())
      .flat()
      .filter((i) => i && !i.internal && !/^fe80:/i.test(i.address))
      .map((i) => i!.address);
    process.stdout.write(`# ${univentionAllowNote(host, addresses)}\n`);
    return;
  }
  if (command === 'setup') usage(`unknown setup "${what ?? ''}": use setup postfix or setup univention HOST`);
  if (command === 'doctor') {
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
    return;
  }
  if (command === 'status') {
    const settings = settingsOrFail(a['default-file']);
    for (const line of statusReport({ dir: settings.spoolDir, suffix: settings.suffix }, settings.vars.get('BENNOHOST'))) process.stdout.write(`${line}\n`);
    return;
  }
  usage(command ? `unknown command "${command}"` : 'name a command: setup, doctor or status');
}

runMain(PROGRAM, main);
