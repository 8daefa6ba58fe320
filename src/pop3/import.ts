// benno-pop3's engine: one POP3 mailbox into the inbox, once, each message
// durable before its UIDL is recorded, and, with deleteArchived, deleted on
// the server only after that.
//
// On the wire: the greeting, STLS (or TLS from the start), CAPA, USER/PASS,
// UIDL and LIST; then the message for each UIDL not in the state, small
// ones in batches (pipelined where CAPA says PIPELINING) whose files
// are committed together (one shared directory fsync), a large one alone and
// streamed to its file as it arrives; DELE per archived message only with
// deleteArchived; QUIT, which makes the DELEs take effect (RFC 1939 6). A
// run that breaks off never sends QUIT: the server then deletes nothing,
// and the next run, which finds the UIDLs in the state, deletes them.
//
// Without deleteArchived the mailbox must stay as it was, but servers mark
// a message read when RETR hands it out (Dovecot sets \Seen). So where CAPA
// offers TOP, a message is fetched with TOP n and more lines than any
// message has, which RFC 1939 7 defines as the entire message, and which
// leaves it unread; RETR only where there is no TOP, or with deleteArchived.

import { Logger } from '../ops/log';
import { SpoolFile, SpoolWriter } from '../spool/writer';
import { ImportEnvelope } from '../imap/envelope';
import { DEFAULT_TUNING, SyncError, SyncErrorKind, SyncTuning } from '../imap/sync';
import { DEFAULT_LIMITS, Pop3Error, Pop3Limits, Pop3ServerOptions, Pop3Session, serverText } from './client';
import { UidlStateFile, isUidl } from './state';

/**
 * As for IMAP: messages LIST announces larger than largeBytes are fetched
 * alone and streamed, smaller ones in batches of at most chunkBytes (as
 * announced) and batchMessages; the state is saved after saveEveryMessages
 * new messages or saveEveryMs, whichever comes first.
 */
export type Pop3Tuning = Pick<SyncTuning, 'largeBytes' | 'chunkBytes' | 'batchMessages' | 'saveEveryMessages' | 'saveEveryMs'>;

/** How far the message may run past its LIST size before the server is taken for a liar. */
const SLACK = (size: number) => 2 * size + 64 * 1024;
/** TOP's line count that means "all of it": more lines than a message can have, and still a 32-bit number for any server. */
const ALL_LINES = 2147483647;
/** Bytes of a message's start searched for its Return-Path before the envelope is written. */
const HEAD_BYTES = 256 * 1024;

export interface Pop3ImportOptions {
  server: Pop3ServerOptions;
  user: string;
  /** Only ever written to the server's socket. */
  password: Buffer;
  /** USER@HOST, as logs and errors name the mailbox. */
  who: string;
  envelope: ImportEnvelope;
  writer: SpoolWriter;
  state: UidlStateFile;
  /** DELE each message once its file is durable. */
  deleteArchived: boolean;
  log: Logger;
  tuning?: Partial<Pop3Tuning>;
  limits?: Pop3Limits;
  /** Called as messages are archived (a progress bar on a terminal). */
  progress?: (done: number, total: number) => void;
}

export interface Pop3Result {
  /** USER@HOST */
  mailbox: string;
  /** Messages on the server. */
  listed: number;
  archived: number;
  /** Messages found in the state: archived by an earlier run. */
  before: number;
  /** Messages the server would not hand out (deleted meanwhile by another session); tried again next run. */
  skipped: number;
  /** Messages deleted on the server (the DELEs QUIT committed). */
  deleted: number;
  ms: number;
}

/** The import failed; done says what was archived before (the state holds it). */
export class Pop3ImportError extends SyncError {
  constructor(
    kind: SyncErrorKind,
    who: string,
    reason: string,
    readonly done: Pop3Result,
    options?: { cause?: unknown },
  ) {
    super(kind, who, reason, undefined, options);
    this.name = 'Pop3ImportError';
  }
}

interface Listed {
  n: number;
  uidl: string;
  size: number;
}

/** A message that could not be written; the run stops before it. */
class WriteFailure extends Error {
  constructor(
    text: string,
    readonly error: Error & { code?: string },
  ) {
    super(text);
  }
}

/** -ERR answers to PASS that mean "not now" rather than "not you" (RFC 2449 8, RFC 3206). */
const TEMPORARY_CODES = new Set(['IN-USE', 'LOGIN-DELAY', 'SYS/TEMP']);

/** A failure as SyncError's kinds, which the command line turns into exit codes. */
function kindOf(err: unknown, loggingIn: boolean): SyncErrorKind {
  if (err instanceof WriteFailure) return err.error.code === 'ENOSPC' || err.error.code === 'EDQUOT' ? 'disk-full' : 'write';
  if (!(err instanceof Pop3Error)) return 'protocol';
  switch (err.kind) {
    case 'refused':
      return loggingIn && !TEMPORARY_CODES.has(err.responseCode ?? '') ? 'login' : 'protocol';
    case 'tls':
      return 'tls';
    case 'protocol':
      return 'protocol';
    default:
      return 'connect';
  }
}

class Run {
  readonly tuning: Pop3Tuning;
  readonly result: Pop3Result;
  /** UIDLs durable in the inbox and still on the server. */
  readonly archived = new Set<string>();
  private unsaved = 0;
  private savedAt = Date.now();
  private session: Pop3Session | null = null;
  private loggingIn = false;
  private readonly started = Date.now();
  /** Messages to fetch this run, for progress. */
  private todo = 0;
  /** The command that fetches message n: TOP (leaves it unread) or RETR. */
  private fetch = (n: number) => `RETR ${n}`;

  constructor(private readonly o: Pop3ImportOptions) {
    this.tuning = { ...DEFAULT_TUNING, ...o.tuning };
    this.result = { mailbox: o.who, listed: 0, archived: 0, before: 0, skipped: 0, deleted: 0, ms: 0 };
  }

  async run(): Promise<Pop3Result> {
    const problem = this.o.envelope.problem();
    if (problem) throw this.failure('account', problem);
    try {
      this.session = await Pop3Session.open(this.o.server, this.o.limits ?? DEFAULT_LIMITS);
      this.loggingIn = true;
      await this.session.login(this.o.user, this.o.password);
      this.loggingIn = false;
      if (!this.o.deleteArchived && this.session.capabilities.has('TOP')) this.fetch = (n) => `TOP ${n} ${ALL_LINES}`;
      const listed = await this.list(this.session);
      this.result.listed = listed.length;
      const onServer = new Set(listed.map((m) => m.uidl));
      for (const uidl of this.o.state.saved) if (onServer.has(uidl)) this.archived.add(uidl);
      const before = listed.filter((m) => this.archived.has(m.uidl));
      this.result.before = before.length;
      if (this.o.deleteArchived) await this.deleteAll(before);
      const todo = listed.filter((m) => !this.archived.has(m.uidl));
      this.todo = todo.length;
      await this.archiveAll(todo);
      // Also drops UIDLs no longer on the server.
      this.save();
      await this.quit();
    } catch (err) {
      // What is on disk is recorded before the run gives up.
      if (!isStoreError(err)) this.saveQuietly();
      await this.endAfter(err);
      if (err instanceof SyncError || isStoreError(err)) throw err;
      throw this.failure(kindOf(err, this.loggingIn), this.reason(err), err);
    }
    this.result.ms = Date.now() - this.started;
    return this.result;
  }

  /**
   * Ends the session after a failure. When our side failed (the inbox, the
   * state file) the session is still in step: QUIT lets the DELEs of the
   * messages on disk take effect. After a failure of the server or the
   * network it is dropped, and the server deletes nothing.
   */
  private async endAfter(err: unknown): Promise<void> {
    const s = this.session;
    if (!s) return;
    if (err instanceof WriteFailure || isStoreError(err)) {
      try {
        await s.quit();
        return;
      } catch (quitError) {
        this.o.log.warn(`${this.o.who}: QUIT after the failure: ${(quitError as Error).message}`);
      }
    }
    s.close();
    this.result.deleted = 0;
  }

  private failure(kind: SyncErrorKind, reason: string, cause?: unknown): Pop3ImportError {
    this.result.ms = Date.now() - this.started;
    return new Pop3ImportError(kind, this.o.who, reason, this.result, { cause });
  }

  /** Why, in one line, with the password blanked wherever a server might have echoed it. */
  private reason(err: unknown): string {
    let text: string;
    if (err instanceof Pop3Error && err.kind === 'refused' && this.loggingIn) {
      text = `${kindOf(err, true) === 'login' ? 'login refused' : 'login put off by the server, try again later'}: ${err.message}`;
    } else if (err instanceof WriteFailure && kindOf(err, false) === 'disk-full') {
      text = `the inbox ${this.o.writer.dir} is full (${err.error.code}); stopped with the state at what is on disk`;
    } else {
      text = err instanceof Error ? err.message : String(err);
    }
    const secret = this.o.password.toString('latin1');
    return secret.length >= 3 ? text.split(secret).join('***') : text;
  }

  private async list(s: Pop3Session): Promise<Listed[]> {
    let uidls: Map<number, string>;
    try {
      uidls = await s.listing('UIDL');
    } catch (err) {
      if (err instanceof Pop3Error && err.kind === 'refused') {
        throw new Pop3Error('protocol', `the server has no UIDL (${err.message}): without it, what was archived cannot be told from what was not`);
      }
      throw err;
    }
    const sizes = await s.listing('LIST');
    const seen = new Set<string>();
    const out: Listed[] = [];
    for (const [n, uidl] of [...uidls].sort((a, b) => a[0] - b[0])) {
      if (!isUidl(uidl)) throw new Pop3Error('protocol', `UIDL: message ${n} has no valid unique id: ${serverText(uidl)}`);
      if (seen.has(uidl)) throw new Pop3Error('protocol', `UIDL: ${serverText(uidl)} names two messages`);
      seen.add(uidl);
      const size = Number(sizes.get(n));
      if (!Number.isSafeInteger(size) || size < 0) throw new Pop3Error('protocol', `LIST gives no size for message ${n}`);
      out.push({ n, uidl, size });
    }
    return out;
  }

  private async archiveAll(todo: Listed[]): Promise<void> {
    const { largeBytes, chunkBytes, batchMessages } = this.tuning;
    for (let i = 0; i < todo.length; ) {
      const batch: Listed[] = [todo[i++]];
      let bytes = batch[0].size;
      if (batch[0].size <= largeBytes) {
        while (i < todo.length && todo[i].size <= largeBytes && batch.length < batchMessages && bytes + todo[i].size <= chunkBytes) {
          bytes += todo[i].size;
          batch.push(todo[i++]);
        }
      }
      await this.archiveBatch(batch);
    }
  }

  /**
   * RETR (or TOP) for each message of the batch (all sent at once with PIPELINING),
   * each read into its file; then the files committed together; then each
   * whose file is durable recorded (and DELEd), past a failed one too.
   */
  private async archiveBatch(batch: Listed[]): Promise<void> {
    const s = this.session!;
    const pipelined = s.capabilities.has('PIPELINING');
    if (pipelined) for (const m of batch) s.request(this.fetch(m.n));
    const files: (SpoolFile | null)[] = [];
    try {
      for (const m of batch) {
        if (!pipelined) s.request(this.fetch(m.n));
        files.push(await this.retrieve(s, m));
      }
    } catch (err) {
      await Promise.all(files.map((f) => f?.discard()));
      throw err;
    }
    const outcomes = await Promise.allSettled(files.map((f) => (f ? f.commit() : Promise.resolve(null))));
    const durable: Listed[] = [];
    let failed: WriteFailure | null = null;
    // The state is a set of UIDLs, not a mark: every file that is durable is recorded (and DELEd),
    // also after a failed one, which the next run fetches again. Commits run side by side, so on a
    // filling disk a later message may fit where an earlier one did not.
    for (let k = 0; k < batch.length; k++) {
      const o = outcomes[k];
      if (o.status === 'rejected') {
        failed ??= new WriteFailure(`message ${batch[k].n} (UIDL ${batch[k].uidl}) could not be written to the inbox: ${(o.reason as Error).message}`, o.reason as Error);
      } else if (o.value === null) {
        this.result.skipped++;
      } else {
        this.archived.add(batch[k].uidl);
        this.result.archived++;
        this.unsaved++;
        durable.push(batch[k]);
        this.o.progress?.(this.result.archived + this.result.skipped, this.todo);
      }
    }
    if (this.unsaved >= this.tuning.saveEveryMessages || Date.now() - this.savedAt >= this.tuning.saveEveryMs) this.save();
    if (this.o.deleteArchived) await this.deleteAll(durable);
    if (failed) throw failed;
  }

  /** One message into a file, not committed yet; null when the server refuses it (deleted meanwhile by another session). */
  private async retrieve(s: Pop3Session, m: Listed): Promise<SpoolFile | null> {
    const what = `message ${m.n} (UIDL ${m.uidl})`;
    try {
      await s.answer(this.fetch(m.n));
    } catch (err) {
      if (!(err instanceof Pop3Error && err.kind === 'refused')) throw err;
      this.o.log.warn(`${this.o.who}: ${what}: the server does not hand it out (${err.message}); skipped, tried again next run`);
      return null;
    }
    const file = this.o.writer.begin();
    // The envelope comes first in the file but needs the Return-Path: the
    // message's start is held back until its header section has ended.
    let head: Buffer | null = Buffer.alloc(0);
    const flushHead = () => {
      const lines = this.o.envelope.lines(head, (why) => this.o.log.warn(`${this.o.who}: ${what}: ${why}`));
      for (const b of lines) file.write(b);
      const wait = file.write(head!);
      head = null;
      return wait;
    };
    try {
      await s.message(
        (piece) => {
          if (head === null) return file.write(piece);
          head = head.length === 0 ? piece : Buffer.concat([head, piece]);
          if (head.length >= HEAD_BYTES || headerEnded(head)) return flushHead();
          return undefined;
        },
        SLACK(m.size),
        what,
      );
      if (head !== null) await flushHead();
    } catch (err) {
      await file.discard();
      throw err;
    }
    return file;
  }

  /** DELE for these messages (pipelined where the server allows); counted once QUIT commits them. */
  private async deleteAll(messages: Listed[]): Promise<void> {
    const s = this.session!;
    const pipelined = s.capabilities.has('PIPELINING');
    if (pipelined) for (const m of messages) s.request(`DELE ${m.n}`);
    for (const m of messages) {
      if (!pipelined) s.request(`DELE ${m.n}`);
      try {
        await s.answer(`DELE ${m.n}`);
        this.result.deleted++;
      } catch (err) {
        if (!(err instanceof Pop3Error && err.kind === 'refused')) throw err;
        this.o.log.warn(`${this.o.who}: message ${m.n} (UIDL ${m.uidl}) is archived but the server would not delete it (${err.message}); tried again next run`);
      }
    }
  }

  private async quit(): Promise<void> {
    const s = this.session!;
    try {
      await s.quit();
    } catch (err) {
      if (this.result.deleted === 0) {
        this.o.log.warn(`${this.o.who}: QUIT: ${err instanceof Error ? err.message : String(err)}`);
        return;
      }
      // RFC 1939 6: the deletions take effect only with the +OK to QUIT.
      throw new Pop3Error('protocol', `QUIT failed, so the server may not have deleted the archived messages (${err instanceof Error ? err.message : String(err)}); the next run deletes them`);
    }
  }

  private save(): void {
    this.o.state.save(this.archived);
    this.unsaved = 0;
    this.savedAt = Date.now();
  }

  private saveQuietly(): void {
    try {
      if (this.unsaved > 0) this.save();
    } catch (err) {
      this.o.log.error(`${this.o.who}: ${(err as Error).message}`);
    }
  }
}

function isStoreError(err: unknown): boolean {
  return err instanceof Error && err.name === 'StoreError';
}

/** Whether the header section is complete in head: an empty line seen (or head starts with one). */
function headerEnded(head: Buffer): boolean {
  return head[0] === 0x0a || (head[0] === 0x0d && head[1] === 0x0a) || head.includes('\n\r\n') || head.includes('\n\n');
}

/**
 * Imports the mailbox once. Resolves with what was done; rejects with a
 * Pop3ImportError (a SyncError, with what was done before) when the run
 * stops, and with the state file's StoreError when the state cannot be
 * saved.
 */
export function importPop3(options: Pop3ImportOptions): Promise<Pop3Result> {
  return new Run(options).run();
}
