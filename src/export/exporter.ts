// Spool → SMTP. Each file's envelope block becomes MAIL FROM / RCPT TO, the
// rest goes out as the message. A file is removed only after the 250 for its
// DATA. Every file that is a spool file stays until it is sent: a 4xx or a
// lost connection puts it back for the next run, and so does a refusal by the
// archive host (5xx) or an address the host cannot be given, with an error
// line at every run until someone fixes the cause: a message Postfix accepted
// must reach the archive, never be set aside quietly. Only what is no spool
// file (no envelope block at its start, not a regular file) is renamed .err.
// Files are claimed (renamed) before sending, so overlapping runs never send
// the same file twice, and a crashed run's claims are put back by the next.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { Logger } from '../ops/log';
import { EnvelopeNames, writtenAddress } from '../spool/format';
import { isDotName } from '../spool/names';
import type { RefusedFile } from '../spool/status';
import { ClaimedFile, SpoolReader, fileKind } from '../spool/reader';
import { ConnectError, SendOutcome, SenderOptions, SmtpConnection } from './smtp-client';

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

/** How many refused files a summary names. */
export const MAX_NAMED_REFUSALS = 20;

export interface ExportSummary {
  total: number;
  sent: number;
  /** Left for a later run: 4xx, lost connection, or not tried because the server went away. */
  deferred: number;
  /** Refused by the archive host (5xx) or not sendable to it as they are: kept, tried again at every run. */
  refused: number;
  /** The first MAX_NAMED_REFUSALS of them. */
  refusedFiles: RefusedFile[];
  /** Not spool files: renamed to .err. */
  failed: number;
  /** Taken by another exporter running at the same time. */
  skipped: number;
  bytes: number;
  seconds: number;
  /** The server refuses us (5xx greeting, 530, AUTH refused, TLS required but missing): retrying will not help until someone acts. */
  serverRefused: boolean;
  /** Every file name this run claimed or tried to: their coming and going in the directory is our own doing. */
  handled: string[];
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
  const skipped = (dir: string) => (name: string, what: string) =>
    log.warn(`${path.join(dir, name)}: ${what}, not a regular file; skipped, never sent or followed; remove it`);
  for (const p of paths) {
    let st: fs.Stats;
    try {
      st = fs.lstatSync(p);
      if (st.isSymbolicLink()) {
        // A directory named by the administrator may be a link to one; a file may not.
        const target = fs.statSync(p);
        if (target.isDirectory()) st = target;
      }
    } catch (err) {
      throw new InputError(`${p}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file or directory' : (err as Error).message}`);
    }
    if (st.isDirectory()) {
      const reader = readerFor(p);
      for (const e of reader.list(skipped(reader.dir))) items.push({ reader, name: e.name });
    } else if (st.isFile()) {
      const name = path.basename(p);
      if (isDotName(name)) throw new InputError(`${p}: a temp or claimed file, not a spool file`);
      items.push({ reader: readerFor(path.dirname(p)), name });
    } else {
      throw new InputError(`${p}: not a regular file (${fileKind(st)})`);
    }
  }
  return items;
}

const KEPT = 'kept in the spool and tried again at every run; fix the cause on the archive host (max_size, max_recipients, SMTPUTF8) or remove the file by hand';

export async function exportSpool(config: ExportConfig): Promise<ExportSummary> {
  const started = process.hrtime.bigint();
  const { log } = config;
  const items = collect(config.paths, config.suffix, log);
  const summary: ExportSummary = {
    total: items.length,
    sent: 0,
    deferred: 0,
    refused: 0,
    refusedFiles: [],
    failed: 0,
    skipped: 0,
    bytes: 0,
    seconds: 0,
    serverRefused: false,
    handled: items.map((i) => i.name),
  };
  const target = `${config.host}:${config.port}`;
  let next = 0;
  let stop = false;
  let finished = 0;
  const tick = () => config.progress?.(++finished, items.length);

  const refuse = (claimed: ClaimedFile, reason: string, line: string) => {
    claimed.release();
    summary.refused++;
    if (summary.refusedFiles.length < MAX_NAMED_REFUSALS) summary.refusedFiles.push({ name: claimed.name, reason });
    log.error(line);
  };

  const finish = (claimed: ClaimedFile, outcome: SendOutcome, size: number, rcpts: number, ms: number) => {
    const name = claimed.name;
    // Replies may come in several lines; one log line is easier to read and to grep.
    const response = outcome.response.replace(/\s+/g, ' ').trim();
    switch (outcome.kind) {
      case 'sent': {
        claimed.done();
        summary.sent++;
        summary.bytes += size;
        const line = `${name}: sent to ${target} rcpts=${rcpts} size=${size} ms=${ms.toFixed(1)} (${response})`;
        if (config.quietSuccess) log.debug(line);
        else log.info(line);
        return;
      }
      case 'deferred':
      case 'lost':
        claimed.release();
        summary.deferred++;
        log.warn(`${name}: deferred by ${target}: ${response}; kept for the next run`);
        return;
      case 'refused':
        claimed.release();
        summary.deferred++;
        summary.serverRefused = true;
        stop = true;
        log.error(`${target} refuses us: ${response}; files stay in the spool; check the AUTH settings (--user, --password-file)`);
        return;
      case 'rejected':
        refuse(claimed, response, `${name}: refused by ${target}: ${response}; ${KEPT}`);
        return;
      case 'cannot-carry':
        refuse(claimed, response, `${name}: cannot be sent to ${target}: ${response}; ${KEPT}`);
        return;
    }
  };

  const worker = async () => {
    let conn: SmtpConnection | null = null;
    try {
      while (!stop && next < items.length) {
        const item = items[next++];
        const claimed = item.reader.claim(item.name);
        if (!claimed) {
          summary.skipped++;
          tick();
          continue;
        }
        let read: ReturnType<ClaimedFile['readEnvelope']>;
        try {
          read = claimed.readEnvelope(config.names);
        } catch (err) {
          claimed.release();
          summary.deferred++;
          log.error(`${claimed.name}: cannot be read: ${(err as Error).message}; kept for the next run`);
          tick();
          continue;
        }
        if (!read.ok) {
          log.error(`${claimed.name}: ${read.why}; renamed to ${claimed.fail()}, not retried`);
          summary.failed++;
          tick();
          continue;
        }
        const env = read.envelope;
        if (!conn || !conn.usable) {
          conn?.close();
          conn = null;
          try {
            conn = await SmtpConnection.open(config);
          } catch (err) {
            claimed.release();
            stop = true;
            summary.serverRefused ||= err instanceof ConnectError && err.permanent;
            log.error(`cannot deliver to ${target}: ${(err as Error).message}; files stay in the spool for the next run`);
            break;
          }
        }
        const size = env.size - env.messageOffset;
        const t0 = process.hrtime.bigint();
        // Files written by current versions are unchanged by this; older ones get the escapes they lacked.
        const envelope = { from: writtenAddress(env.sender), to: env.recipients.map(writtenAddress), size };
        const outcome = await conn.send(envelope, claimed.stream(env.messageOffset));
        finish(claimed, outcome, size, envelope.to.length, Number(process.hrtime.bigint() - t0) / 1e6);
        tick();
      }
    } finally {
      conn?.close();
    }
  };

  if (items.length > 0) {
    await Promise.all(Array.from({ length: Math.max(1, Math.min(config.connections, items.length)) }, worker));
  }
  // Files never tried (the server went away) wait for the next run too.
  summary.deferred += items.length - summary.sent - summary.deferred - summary.refused - summary.failed - summary.skipped;
  summary.seconds = Number(process.hrtime.bigint() - started) / 1e9;
  return summary;
}
