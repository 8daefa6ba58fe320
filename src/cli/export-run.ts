// What benno-milter2smtp and benno-export2archive share: their settings
// checked, one export run with a progress bar on a terminal, its record and
// summary line, and the exit code.

import { ExportConfig, ExportSummary, InputError, exportSpool } from '../export/exporter';
import { logSummary, recordStatus } from '../export/record';
import { ExportSettings, RawExportSettings, SettingsError, checkExportSettings } from '../export/settings';
import { progressBar } from './progress';
import { EX_DATAERR, EX_NOINPUT, EX_OK, EX_TEMPFAIL, EX_UNAVAILABLE, Fatal } from './sysexits';

/** checkExportSettings, a bad setting ending the program with exitCode (64 for an option, 78 for the default file). */
export function exportSettings(raw: RawExportSettings, nameOf: (key: keyof RawExportSettings) => string, exitCode: number): ExportSettings {
  try {
    return checkExportSettings(raw, nameOf);
  } catch (err) {
    if (err instanceof SettingsError) throw new Fatal(err.message, exitCode);
    throw err;
  }
}

export type RunConfig = Omit<ExportConfig, 'progress' | 'quietSuccess'>;

/** The server refuses us, before something deferred, before files refused or set aside, before success. */
export function exitCode(s: ExportSummary): number {
  if (s.serverRefused) return EX_UNAVAILABLE;
  if (s.deferred > 0) return EX_TEMPFAIL;
  if (s.refused > 0 || s.failed > 0) return EX_DATAERR;
  return EX_OK;
}

/** Runs one export; returns the exit code. Nothing is printed when there was nothing to send. */
export async function runExport(config: RunConfig): Promise<number> {
  return (await exportRun(config)).code;
}

/** Runs one export; returns the exit code and the summary. */
export async function exportRun(config: RunConfig): Promise<{ code: number; summary: ExportSummary }> {
  const summary = await send(config);
  const code = exitCode(summary);
  recordStatus(config, summary, code);
  logSummary(config, summary);
  return { code, summary };
}

/** On a terminal a bar shows the progress, and the lines of files sent are left to --log-level debug. */
async function send(config: RunConfig): Promise<ExportSummary> {
  const interactive = Boolean(process.stdout.isTTY);
  try {
    return await exportSpool({ ...config, progress: interactive ? progressBar(process.stdout) : undefined, quietSuccess: interactive });
  } catch (err) {
    if (err instanceof InputError) throw new Fatal(err.message, EX_NOINPUT);
    throw err;
  }
}
