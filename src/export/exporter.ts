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
import { ClaimedFile, EnvelopeRead, FileEnvelope, SpoolReader, fileKind } from '../spool/reader';
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
  const run = new ExportRun(config, collect(config.paths, config.suffix, config.log));
  await run.sendAll();
  return run.summarize(Number(process.hrtime.bigint() - started) / 1e9);
}

/** A file claimed and read, ready to go out. */
interface Ready {
  claimed: ClaimedFile;
  /** With a sender: files without one are refused before they are sent. */
  envelope: FileEnvelope & { sender: Buffer };
}

/** What a sent file's log line tells. */
interface Delivery {
  size: number;
  rcpts: number;
  ms: number;
}

/**
 * One run over a work list, shared by its connections: each takes the next
 * file as it becomes free, so a slow file holds up only its own connection.
 * A server that refuses us or cannot be reached stops them all.
 */
class ExportRun {
  private next = 0;
  private stopped = false;
  private finished = 0;
  private readonly summary: ExportSummary;
  private readonly target: string;

  constructor(
    private readonly config: ExportConfig,
    private readonly items: WorkItem[],
  ) {
    this.target = `${config.host}:${config.port}`;
    this.summary = {
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
  }

  async sendAll(): Promise<void> {
    if (this.items.length === 0) return;
    const workers = Math.max(1, Math.min(this.config.connections, this.items.length));
    await Promise.all(Array.from({ length: workers }, () => this.worker()));
  }

  summarize(seconds: number): ExportSummary {
    const s = this.summary;
    // Files never tried (the server went away) wait for the next run too.
    s.deferred += this.items.length - s.sent - s.deferred - s.refused - s.failed - s.skipped;
    s.seconds = seconds;
    return s;
  }

  private take(): WorkItem | undefined {
    return !this.stopped && this.next < this.items.length ? this.items[this.next++] : undefined;
  }

  private tick(): void {
    this.config.progress?.(++this.finished, this.items.length);
  }

  /** One connection's share of the work. */
  private async worker(): Promise<void> {
    let conn: SmtpConnection | null = null;
    try {
      for (let item = this.take(); item; item = this.take()) {
        const ready = this.prepare(item);
        if (ready) {
          conn = await this.connection(conn, ready.claimed);
          if (!conn) break;
          await this.send(conn, ready);
        }
        this.tick();
      }
    } finally {
      conn?.close();
    }
  }

  /** Claims the file and reads its envelope; null when it does not go out in this run (counted and logged here). */
  private prepare(item: WorkItem): Ready | null {
    const claimed = item.reader.claim(item.name);
    if (!claimed) {
      this.summary.skipped++;
      return null;
    }
    let read: EnvelopeRead;
    try {
      read = claimed.readEnvelope(this.config.names);
    } catch (err) {
      claimed.release();
      this.summary.deferred++;
      this.config.log.error(`${claimed.name}: cannot be read: ${(err as Error).message}; kept for the next run`);
      return null;
    }
    if (!read.ok) {
      this.config.log.error(`${claimed.name}: ${read.why}; renamed to ${claimed.fail()}, not retried`);
      this.summary.failed++;
      return null;
    }
    if (read.envelope.sender === null) {
      // SMTP has no way to say "sender unknown"; <> would claim a bounce.
      const reason = `no ${this.config.names.sender} line (an IMAP import whose envelope sender is not known): SMTP cannot carry it without inventing one`;
      this.refuse(claimed, reason, `${claimed.name}: ${reason}; kept in the spool; point benno-imapsync's inbox at Benno's inbox instead of an export spool`);
      return null;
    }
    return { claimed, envelope: { ...read.envelope, sender: read.envelope.sender } };
  }

  /** The worker's connection, opened anew when the last one went away; null when the server cannot be had, which stops the run. */
  private async connection(conn: SmtpConnection | null, claimed: ClaimedFile): Promise<SmtpConnection | null> {
    if (conn?.usable) return conn;
    conn?.close();
    try {
      return await SmtpConnection.open(this.config);
    } catch (err) {
      claimed.release();
      this.stopped = true;
      this.summary.serverRefused ||= err instanceof ConnectError && err.permanent;
      this.config.log.error(`cannot deliver to ${this.target}: ${(err as Error).message}; files stay in the spool for the next run`);
      return null;
    }
  }

  private async send(conn: SmtpConnection, { claimed, envelope: env }: Ready): Promise<void> {
    const size = env.size - env.messageOffset;
    const t0 = process.hrtime.bigint();
    // Files written by current versions are unchanged by this; older ones get the escapes they lacked.
    const envelope = { from: writtenAddress(env.sender), to: env.recipients.map(writtenAddress), size };
    const outcome = await conn.send(envelope, claimed.stream(env.messageOffset));
    this.settle(claimed, outcome, { size, rcpts: envelope.to.length, ms: Number(process.hrtime.bigint() - t0) / 1e6 });
  }

  /** What the server's answer means for the file and for the run. */
  private settle(claimed: ClaimedFile, outcome: SendOutcome, delivery: Delivery): void {
    // Replies may come in several lines; one log line is easier to read and to grep.
    const response = outcome.response.replace(/\s+/g, ' ').trim();
    switch (outcome.kind) {
      case 'sent':
        return this.sent(claimed, response, delivery);
      case 'deferred':
      case 'lost':
        return this.defer(claimed, response);
      case 'refused':
        return this.refusesUs(claimed, response);
      case 'rejected':
        return this.refuse(claimed, response, `${claimed.name}: refused by ${this.target}: ${response}; ${KEPT}`);
      case 'cannot-carry':
        return this.refuse(claimed, response, `${claimed.name}: cannot be sent to ${this.target}: ${response}; ${KEPT}`);
    }
  }

  private sent(claimed: ClaimedFile, response: string, { size, rcpts, ms }: Delivery): void {
    claimed.done();
    this.summary.sent++;
    this.summary.bytes += size;
    const line = `${claimed.name}: sent to ${this.target} rcpts=${rcpts} size=${size} ms=${ms.toFixed(1)} (${response})`;
    if (this.config.quietSuccess) this.config.log.debug(line);
    else this.config.log.info(line);
  }

  private defer(claimed: ClaimedFile, response: string): void {
    claimed.release();
    this.summary.deferred++;
    this.config.log.warn(`${claimed.name}: deferred by ${this.target}: ${response}; kept for the next run`);
  }

  /** The server will take nothing from us (AUTH refused, say): no use trying the other files. */
  private refusesUs(claimed: ClaimedFile, response: string): void {
    claimed.release();
    this.summary.deferred++;
    this.summary.serverRefused = true;
    this.stopped = true;
    this.config.log.error(`${this.target} refuses us: ${response}; files stay in the spool; check the AUTH settings (--user, --password-file)`);
  }

  /** The file stays and is tried again at every run, named in the summary while there is room. */
  private refuse(claimed: ClaimedFile, reason: string, line: string): void {
    claimed.release();
    this.summary.refused++;
    if (this.summary.refusedFiles.length < MAX_NAMED_REFUSALS) this.summary.refusedFiles.push({ name: claimed.name, reason });
    this.config.log.error(line);
  }
}
