#!/usr/bin/env node
// benno-export2archive: the cron (or timer) entry point. Reads
// /etc/default/benno-milter; without BENNOHOST there is nothing to do.
// With --watch it keeps running and ships each new file as it arrives.

import * as fs from 'node:fs';
import { DefaultFileError, readDefaultFile } from '../ops/default-file';
import { exportRun, exportSettings, runExport } from './export-run';
import { RawExportSettings } from '../export/settings';
import { ExportWatcher } from '../export/watch';
import { runDaemon } from './daemon';
import { LOG_LEVELS, LogLevel, createLogger } from '../ops/log';
import { EX_CONFIG, Fatal } from './sysexits';
import { DEFAULT_SPOOL_DIR } from '../spool/names';
import { commandLine, rejectRepeated, runMain } from './run';

const PROGRAM = 'benno-export2archive';
const DEFAULT_FILE = '/etc/default/benno-milter';

/** Variables of the default file, by the export setting they feed. */
const VARIABLES: Record<keyof RawExportSettings, string> = {
  host: 'BENNOHOST',
  port: 'BENNOPORT',
  starttls: 'BENNOSTARTTLS',
  caFile: 'BENNOCAFILE',
  ehlo: 'BENNOEHLO',
  timeout: 'BENNOTIMEOUT',
  connections: 'BENNOCONNECTIONS',
  user: 'BENNOUSER',
  passwordFile: 'BENNOPASSWORDFILE',
  allowPlainAuth: 'BENNOALLOWPLAINAUTH',
  suffix: 'SUFFIX',
  senderHeader: 'SENDERHEADER',
  recipientHeader: 'RECIPIENTHEADER',
};

const EPILOG = `Variables read from the default file: SPOOLDIR (default ${DEFAULT_SPOOL_DIR}),
BENNOHOST (the archive host; unset: do nothing), BENNOPORT (2500), BENNOSTARTTLS
(require|opportunistic|off), BENNOCAFILE, BENNOEHLO, BENNOUSER and BENNOPASSWORDFILE (AUTH),
BENNOALLOWPLAINAUTH (yes: AUTH without TLS; default no), BENNOCONNECTIONS, BENNOTIMEOUT.
Everything else in the file is left to the milter.

Exit status: as benno-milter2smtp (0 all sent or nothing to do, 75 some deferred or the
archive host down, 65 some refused by the archive host (kept, tried again at every run) or
set aside as .err, 69 the archive host refuses us), 78 a bad setting in the default file.`;

async function main(): Promise<void> {
  const a = commandLine(
    PROGRAM,
    `Usage: ${PROGRAM} [--config FILE] [--watch]\n\nShips the milter's spool to the Benno archive host (benno-smtp, port 2500) when BENNOHOST is set in ${DEFAULT_FILE}. Run from cron every 15 minutes, from the systemd timer, or with --watch as a service.`,
    EPILOG,
  )
    .option('config', { type: 'string', default: DEFAULT_FILE, describe: 'shell-style default file to read' })
    .option('watch', { type: 'boolean', default: false, describe: 'keep running: ship each new file within a second' })
    .option('pidfile', { alias: 'l', type: 'string', describe: 'with --watch: write the process id to this file' })
    .option('log-level', { choices: LOG_LEVELS, default: 'info' as LogLevel, describe: 'least severity logged' })
    .parseSync();
  rejectRepeated(PROGRAM, a, ['config', 'pidfile', 'log-level']);

  let vars: Map<string, string>;
  try {
    vars = readDefaultFile(a.config);
  } catch (err) {
    if (err instanceof DefaultFileError) throw new Fatal(err.message, EX_CONFIG);
    throw err;
  }
  const host = vars.get('BENNOHOST');
  if (!host) return; // no separate archive host: the milter writes straight into Benno's inbox

  const raw = Object.fromEntries(Object.entries(VARIABLES).map(([key, variable]) => [key, vars.get(variable) || undefined])) as unknown as RawExportSettings;
  const settings = exportSettings({ ...raw, host }, (key) => `${VARIABLES[key]} in ${a.config}`, EX_CONFIG);
  const spoolDir = vars.get('SPOOLDIR') || DEFAULT_SPOOL_DIR;
  const log = createLogger({ program: PROGRAM, level: a['log-level'] as LogLevel });
  for (const warning of settings.warnings) log.warn(warning);

  if (!a.watch) {
    process.exitCode = await runExport({ ...settings, paths: [spoolDir], log });
    return;
  }
  let watcher: ExportWatcher | undefined;
  await runDaemon(
    {
      async start() {
        if (!fs.existsSync(spoolDir)) throw new Fatal(`SPOOLDIR ${spoolDir} does not exist`, EX_CONFIG);
        watcher = new ExportWatcher({
          spoolDir,
          suffix: settings.suffix,
          log,
          run: async () => (await exportRun({ ...settings, paths: [spoolDir], log })).summary,
        });
        return `watching ${spoolDir}, shipping to ${settings.host}:${settings.port}`;
      },
      async stop() {
        await watcher?.stop();
      },
    },
    { program: PROGRAM, log, pidFile: a.pidfile },
  );
}

runMain(PROGRAM, main);
