#!/usr/bin/env node
// benno-export2archive: the cron (or timer) entry point. Reads
// /etc/default/benno-milter; without BENNOHOST there is nothing to do.
// With --watch it keeps running and ships each new file as it arrives.

import * as fs from 'node:fs';
import { DefaultFileError, readDefaultFile } from '../ops/default-file';
import { exportRun, runExport } from '../export/run';
import { ExportSettings, RawExportSettings, checkExportSettings } from '../export/settings';
import { runDaemon } from './daemon';
import { LOG_LEVELS, LogLevel, Logger, createLogger } from '../ops/log';
import { EX_CONFIG, EX_DATAERR, EX_OK, Fatal } from './sysexits';
import { DEFAULT_SPOOL_DIR } from '../spool/names';
import { SpoolReader } from '../spool/reader';
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

/**
 * Watches the spool directory for files arriving (the milter renames each
 * one into place: one inotify event). The watch stays open across export
 * runs, so a file that arrives during a run triggers the next one.
 */
class SpoolWatch {
  private dirty = true;
  private wake?: () => void;
  private readonly watcher: fs.FSWatcher;
  stopped = false;

  constructor(dir: string) {
    this.watcher = fs.watch(dir, () => {
      this.dirty = true;
      // A moment for the files arriving with it.
      setTimeout(() => this.wake?.(), 200);
    });
  }

  /**
   * Resolves when files may have arrived since the last call (true), at the
   * deadline (false), or on stop.
   */
  next(deadline: number): Promise<boolean> {
    if (this.dirty || this.stopped) {
      this.dirty = false;
      return Promise.resolve(true);
    }
    return new Promise((resolve) => {
      const self = this;
      const timer = setTimeout(() => done(false), Math.max(0, deadline - Date.now()));
      function done(woken: boolean) {
        clearTimeout(timer);
        self.wake = undefined;
        self.dirty = false;
        resolve(woken);
      }
      this.wake = () => done(true);
    });
  }

  stop(): void {
    this.stopped = true;
    this.watcher.close();
    this.wake?.();
  }
}

/**
 * The exporter's own renames (claiming a file, putting back one it could not
 * send) wake the watch as a new file would. A wake-up counts only when a file
 * waits that the last run did not leave behind; otherwise a file the archive
 * host keeps refusing would be retried, and logged, as fast as the disk
 * allows. Files left behind are tried again when the wait runs out.
 */
function waitingNames(spoolDir: string, suffix: string): string[] | null {
  try {
    return new SpoolReader(spoolDir, suffix).list().map((e) => e.name);
  } catch {
    return null;
  }
}

function somethingNew(spoolDir: string, suffix: string, leftBehind: Set<string>): boolean {
  const names = waitingNames(spoolDir, suffix);
  return names === null || names.some((name) => !leftBehind.has(name));
}

async function watchLoop(settings: ExportSettings, spoolDir: string, log: Logger, watch: SpoolWatch): Promise<void> {
  let backoff = 0;
  let leftBehind = new Set<string>();
  while (!watch.stopped) {
    const deadline = Date.now() + (backoff || 60_000);
    let woken = await watch.next(deadline);
    while (woken && !watch.stopped && !somethingNew(spoolDir, settings.suffix, leftBehind)) woken = await watch.next(deadline);
    if (watch.stopped) break;
    const run = await exportRun({ ...settings, paths: [spoolDir], log }).catch((err: Error) => {
      log.error(`export failed: ${err.message}`);
      return null;
    });
    const code = run?.code ?? -1;
    const waiting = new Set(waitingNames(spoolDir, settings.suffix) ?? []);
    leftBehind = new Set((run?.summary.handled ?? []).filter((name) => waiting.has(name)));
    // After a failure wait before trying again (30 s, doubling to 5 min), unless new files arrive.
    backoff = code === EX_OK || code === EX_DATAERR ? 0 : Math.min(backoff ? backoff * 2 : 30_000, 300_000);
  }
}

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
  const settings = checkExportSettings({ ...raw, host }, EX_CONFIG, (key) => `${VARIABLES[key]} in ${a.config}`);
  const spoolDir = vars.get('SPOOLDIR') || DEFAULT_SPOOL_DIR;
  const log = createLogger({ program: PROGRAM, level: a['log-level'] as LogLevel });
  for (const warning of settings.warnings) log.warn(warning);

  if (!a.watch) {
    process.exitCode = await runExport({ ...settings, paths: [spoolDir], log });
    return;
  }
  let watch: SpoolWatch | undefined;
  let loop: Promise<void> = Promise.resolve();
  await runDaemon(
    {
      async start() {
        if (!fs.existsSync(spoolDir)) throw new Fatal(`SPOOLDIR ${spoolDir} does not exist`, EX_CONFIG);
        watch = new SpoolWatch(spoolDir);
        loop = watchLoop(settings, spoolDir, log, watch);
        return `watching ${spoolDir}, shipping to ${settings.host}:${settings.port}`;
      },
      async stop() {
        watch?.stop();
        await loop;
      },
    },
    { program: PROGRAM, log, pidFile: a.pidfile },
  );
}

runMain(PROGRAM, main);
