// What a finished export run leaves behind: its record in each spool
// directory, for `benno-milter-admin status`, and the summary line.

import * as fs from 'node:fs';
import { writeExportStatus } from '../spool/status';
import { ExportConfig, ExportSummary } from './exporter';

type RunTarget = Pick<ExportConfig, 'paths' | 'host' | 'port' | 'log'>;

/** exitCode is the program's, recorded as it ended the run. */
export function recordStatus(config: RunTarget, s: ExportSummary, exitCode: number): void {
  for (const p of config.paths) {
    try {
      if (!fs.statSync(p).isDirectory()) continue;
      writeExportStatus(p, {
        time: new Date().toISOString(),
        host: `${config.host}:${config.port}`,
        exitCode,
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

/** Nothing when there was nothing to send. */
export function logSummary(config: RunTarget, s: ExportSummary): void {
  if (s.total === 0) return;
  config.log.info(
    `summary: sent=${s.sent} deferred=${s.deferred} refused=${s.refused} failed=${s.failed} skipped=${s.skipped} ` +
      `bytes=${s.bytes} seconds=${s.seconds.toFixed(2)} to ${config.host}:${config.port}`,
  );
}
