// What benno-milter2smtp and benno-export2archive share: one export run with
// a progress bar on a terminal, the summary line, and the exit code.

import { EX_DATAERR, EX_NOINPUT, EX_OK, EX_TEMPFAIL, EX_UNAVAILABLE, Fatal } from '../cli/sysexits';
import * as fs from 'node:fs';
import { writeExportStatus } from '../spool/status';
import { ExportConfig, ExportSummary, InputError, exportSpool } from './exporter';

/** Below this many files a progress bar is noise. */
const PROGRESS_FROM = 100;

function progressBar(stream: NodeJS.WriteStream): (done: number, total: number) => void {
  let last = 0;
  return (done, total) => {
    const now = Date.now();
    if (done < total && now - last < 100) return;
    last = now;
    const width = 30;
    const filled = Math.round((done / total) * width);
    stream.write(`\r[${'='.repeat(filled)}${' '.repeat(width - filled)}] ${done}/${total}`);
    if (done === total) stream.write('\n');
  };
}

/** The server refuses us, before something deferred, before files refused or set aside, before success. */
export function exitCode(s: ExportSummary): number {
  if (s.serverRefused) return EX_UNAVAILABLE;
  if (s.deferred > 0) return EX_TEMPFAIL;
  if (s.refused > 0 || s.failed > 0) return EX_DATAERR;
  return EX_OK;
}

/** Runs one export; returns the exit code. Nothing is printed when there was nothing to send. */
export async function runExport(config: Omit<ExportConfig, 'progress' | 'quietSuccess'>): Promise<number> {
  return (await exportRun(config)).code;
}

/** Runs one export; returns the exit code and the summary. */
export async function exportRun(config: Omit<ExportConfig, 'progress' | 'quietSuccess'>): Promise<{ code: number; summary: ExportSummary }> {
  const interactive = Boolean(process.stdout.isTTY);
  let bar: ((done: number, total: number) => void) | undefined;
  let summary: ExportSummary;
  try {
    summary = await exportSpool({
      ...config,
      progress: (done, total) => {
        if (!interactive || total < PROGRESS_FROM) return;
        bar ??= progressBar(process.stdout);
        bar(done, total);
      },
      quietSuccess: interactive,
    });
  } catch (err) {
    if (err instanceof InputError) throw new Fatal(err.message, EX_NOINPUT);
    throw err;
  }
  const code = exitCode(summary);
  recordStatus(config, summary, code);
  if (summary.total > 0) {
    config.log.info(
      `summary: sent=${summary.sent} deferred=${summary.deferred} refused=${summary.refused} failed=${summary.failed} skipped=${summary.skipped} ` +
        `bytes=${summary.bytes} seconds=${summary.seconds.toFixed(2)} to ${config.host}:${config.port}`,
    );
  }
  return { code, summary };
}

/** Leaves the run's result in each spool directory, for `benno-milter-admin status`. */
function recordStatus(config: Omit<ExportConfig, 'progress' | 'quietSuccess'>, s: ExportSummary, code: number): void {
  for (const p of config.paths) {
    try {
      if (!fs.statSync(p).isDirectory()) continue;
      writeExportStatus(p, {
        time: new Date().toISOString(),
        host: `${config.host}:${config.port}`,
        exitCode: code,
        sent: s.sent,
        deferred: s.deferred,
        refused: s.refused,
        refusedFiles: s.refusedFiles,
        failed: s.failed,
        seconds: s.seconds,
      });
    } catch (err) {
      config.log.debug(`cannot record the export status in ${p}: ${(err as Error).message}`);
    }
  }
}
