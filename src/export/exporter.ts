// Spool → SMTP. Each file's envelope lines become MAIL FROM / RCPT TO, the
// rest goes out byte for byte. A file is removed only after the 250 for its
// DATA; a 4xx or a lost connection puts it back for the next run; a 5xx or a
// file without valid envelope lines is renamed to .err and never retried.
// Files are claimed (renamed) before sending, so overlapping runs never send
// the same file twice, and a crashed run's claims are put back by the next.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { Logger, printable } from '../ops/log';
import { EnvelopeNames } from '../spool/format';
import { ClaimedFile, SpoolReader } from '../spool/reader';
import { ConnectError, SendOutcome, SenderOptions, SmtpSender } from './smtp-sender';

export interface ExportConfig extends SenderOptions {
  /** Spool directories and single files. */
  paths: string[];
  suffix: string;
  names: EnvelopeNames;
  /** Connections used in parallel. */
  connections: number;
  log: Logger;
  /** Called as files finish, for a progress display. */
  progress?: (finished: number, total: number) => void;
  /** Log each sent file at debug instead of info (a progress display shows them). */
  quietSuccess?: boolean;
}

export interface ExportSummary {
  total: number;
  sent: number;
  /** Left for a later run: 4xx, lost connection, or not tried because the server went away. */
  deferred: number;
  /** Renamed to .err. */
  failed: number;
  /** Taken by another exporter running at the same time. */
  skipped: number;
  bytes: number;
  seconds: number;
  /** The server refused us for good (5xx greeting, AUTH refused): retrying will not help until someone acts. */
  refused: boolean;
}

export class InputError extends Error {
  override name = 'InputError';
}

interface WorkItem {
  reader: SpoolReader;
  name: string;
}

/** The files to send: every waiting file of each directory, and single files as given. */
export function collect(paths: string[], suffix: string, log: Logger): WorkItem[] {
  const items: WorkItem[] = [];
  const readers = new Map<string, SpoolReader>();
  const readerFor = (dir: string) => {
    const key = path.resolve(dir);
    let r = readers.get(key);
    if (!r) {
      r = new SpoolReader(key, suffix);
      readers.set(key, r);
      const back = r.recoverStale();
      if (back.length > 0) log.warn(`${key}: put back ${back.length} file(s) claimed by an exporter that died; they are sent now`);
    }
    return r;
  };
  for (const p of paths) {
    let st: fs.Stats;
    try {
      st = fs.statSync(p);
    } catch (err) {
      throw new InputError(`${p}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file or directory' : (err as Error).message}`);
    }
    if (st.isDirectory()) {
      const reader = readerFor(p);
      for (const e of reader.list()) items.push({ reader, name: e.name });
    } else if (st.isFile()) {
      const name = path.basename(p);
      if (name.startsWith('.')) throw new InputError(`${p}: a temp or claimed file, not a spool file`);
      items.push({ reader: readerFor(path.dirname(p)), name });
    } else {
      throw new InputError(`${p}: not a file or directory`);
    }
  }
  return items;
}

/** An address SMTP can carry unchanged: valid UTF-8, no CR, LF, NUL, < or >. */
function smtpAddress(bytes: Buffer): string | null {
  const text = bytes.toString('utf8');
  if (!Buffer.from(text, 'utf8').equals(bytes) || /[\r\n\0<>]/.test(text)) return null;
  return text;
}

export async function exportSpool(config: ExportConfig): Promise<ExportSummary> {
  const started = process.hrtime.bigint();
  const { log } = config;
  const items = collect(config.paths, config.suffix, log);
  const summary: ExportSummary = { total: items.length, sent: 0, deferred: 0, failed: 0, skipped: 0, bytes: 0, seconds: 0, refused: false };
  const target = `${config.host}:${config.port}`;
  let next = 0;
  let stop = false;
  let finished = 0;
  const tick = () => config.progress?.(++finished, items.length);

  const finish = (claimed: ClaimedFile, outcome: SendOutcome, size: number, rcpts: number, ms: number) => {
    const name = claimed.name;
    switch (outcome.kind) {
      case 'sent':
        claimed.done();
        summary.sent++;
        summary.bytes += size;
        {
          const line = `${name}: sent to ${target} rcpts=${rcpts} size=${size} ms=${ms.toFixed(1)} (${printable(outcome.response)})`;
          if (config.quietSuccess) log.debug(line);
          else log.info(line);
        }
        return;
      case 'deferred':
      case 'lost':
        claimed.release();
        summary.deferred++;
        log.warn(`${name}: deferred by ${target}: ${printable(outcome.response)}; kept for the next run`);
        return;
      case 'refused':
        claimed.release();
        summary.deferred++;
        summary.refused = true;
        stop = true;
        log.error(`${target} refuses us: ${printable(outcome.response)}; files stay in the spool; check the AUTH settings (--user, --password-file)`);
        return;
      case 'rejected':
        log.error(`${name}: rejected by ${target}: ${printable(outcome.response)}; renamed to ${claimed.fail()}, not retried; look at the message and send it again by hand`);
        summary.failed++;
        return;
      case 'partial':
        log.error(
          `${name}: ${target} refused recipient(s) ${outcome.rejected.map(printable).join(', ')} and took the message for the others; ` +
            `renamed to ${claimed.fail()} so that the missing recipients can be looked into`,
        );
        summary.failed++;
        return;
    }
  };

  const worker = async () => {
    let sender: SmtpSender | null = null;
    try {
      while (!stop && next < items.length) {
        const item = items[next++];
        const claimed = item.reader.claim(item.name);
        if (!claimed) {
          summary.skipped++;
          tick();
          continue;
        }
        const env = claimed.readEnvelope(config.names);
        const from = env && smtpAddress(env.sender);
        const to = env?.recipients.map(smtpAddress);
        if (!env || from === null || !to || to.some((t) => t === null)) {
          const why = env ? 'an envelope address SMTP cannot carry' : `no valid ${config.names.sender}/${config.names.recipient} lines at its start`;
          log.error(`${claimed.name}: ${why}; renamed to ${claimed.fail()}, not retried`);
          summary.failed++;
          tick();
          continue;
        }
        if (!sender || !sender.usable) {
          sender?.close();
          sender = null;
          try {
            sender = await SmtpSender.open(config);
          } catch (err) {
            claimed.release();
            stop = true;
            const refused = err instanceof ConnectError && err.permanent;
            summary.refused ||= refused;
            log.error(
              `cannot deliver to ${target}: ${(err as Error).message}; files stay in the spool for the next run` +
                (refused ? '; the server refuses us: check its allowed_clients and AUTH settings' : ''),
            );
            break;
          }
        }
        const size = env.size - env.messageOffset;
        const t0 = process.hrtime.bigint();
        const outcome = await sender.send({ from: from!, to: to as string[], size }, claimed.stream(env.messageOffset));
        finish(claimed, outcome, size, to.length, Number(process.hrtime.bigint() - t0) / 1e6);
        tick();
      }
    } finally {
      sender?.close();
    }
  };

  if (items.length > 0) {
    await Promise.all(Array.from({ length: Math.max(1, Math.min(config.connections, items.length)) }, worker));
  }
  // Files never tried (the server went away) wait for the next run too.
  summary.deferred += items.length - summary.sent - summary.deferred - summary.failed - summary.skipped;
  summary.seconds = Number(process.hrtime.bigint() - started) / 1e9;
  return summary;
}

