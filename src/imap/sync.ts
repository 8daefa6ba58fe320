// benno-imapsync's engine: one account's new mail from its IMAP folders into
// the inbox, read-only on the server, each message durable before the
// folder's stored UID moves past it.
//
// On the wire, per run: LIST (with LIST-STATUS where offered, STATUS per
// folder otherwise); per folder with new mail EXAMINE (never SELECT), a
// listing UID FETCH of UID, RFC822.SIZE and BODY.PEEK[HEADER.FIELDS
// (RETURN-PATH)] in windows up to the UIDNEXT that EXAMINE reported, then
// BODY.PEEK[] per batch of small messages, or in BODY.PEEK[]<offset.length>
// pieces for a large one, so memory stays flat whatever the size. Nothing
// else touches the mailbox: no STORE, EXPUNGE, COPY, MOVE, APPEND, CLOSE.

import * as fs from 'node:fs';
import { ImapFlow, ListResponse, StatusObject } from 'imapflow';
import { Logger } from '../ops/log';
import { DEFAULT_ENVELOPE_NAMES, EnvelopeNames } from '../spool/format';
import { SpoolWriter } from '../spool/writer';
import { ImportEnvelope, addressList } from './envelope';
import { chooseFolders, FolderChoice } from './folders';
import { Account, FolderState, MessageRecord } from './store';

export type TlsMode = 'starttls' | 'imaps' | 'none';

export interface ServerOptions {
  host: string;
  port: number;
  /** starttls: STARTTLS is required, a server without it is refused. */
  tls: TlsMode;
  /** PEM file of the CAs to trust instead of the system's. */
  caFile?: string;
  /** Connect, greeting and inactivity timeout. */
  timeoutMs?: number;
}

export interface SyncTuning {
  /** Messages up to this size are fetched in batches, larger ones in pieces. */
  largeBytes: number;
  /** Bytes of BODY[] per batch, and per piece of a large message. */
  chunkBytes: number;
  /** Most messages per batch FETCH. */
  batchMessages: number;
  /** UIDs per listing FETCH. */
  listWindow: number;
  /** The folder's state is saved after this many messages or milliseconds, whichever comes first. */
  saveEveryMessages: number;
  saveEveryMs: number;
  /**
   * But never sooner after a save than this many times what that save took:
   * saving then costs at most about 1/(1 + saveCostFactor) of the sync.
   */
  saveCostFactor: number;
}

export const DEFAULT_TUNING: SyncTuning = {
  largeBytes: 1024 * 1024,
  chunkBytes: 4 * 1024 * 1024,
  batchMessages: 200,
  listWindow: 2000,
  // With sql.js each save rewrites the whole database file, records
  // included (10 ms at 10,000 records, 31 ms at 100,000): a save per 1,000
  // messages keeps that under 2% of a first sync; the 5 s bound keeps what a
  // crash makes the next run fetch again small.
  saveEveryMessages: 1000,
  saveEveryMs: 5000,
  // A database of a million records takes 0.4 s a save: 1,000 messages
  // apart, the saves would take more time than the sync. Spaced by nine
  // times their cost they take a tenth of it; what a crash makes the next
  // run fetch again grows with the database instead, and lands on the same
  // files (content-hash names).
  saveCostFactor: 9,
};

export interface SyncHooks {
  /** Tests: runs after a folder's listing, before any message of it is fetched. */
  afterListing?(folder: string, uids: number[]): Promise<void>;
}

export type SyncAccount = Pick<Account, 'id' | 'user' | 'host' | 'emails' | 'gateway'>;

/**
 * Where each folder's UIDVALIDITY and highest archived UID are kept: the
 * accounts database for benno-imapsync (AccountStore), a state file of its
 * own for benno-imapimport (state-file.ts). A save must be durable when it
 * resolves; its errors pass through the sync unchanged.
 *
 * With each save come the records of the messages handled since the last
 * one: the file each was written to, or why it failed. The sync hands a
 * record over only once its file is durable, and never saves a state past a
 * listed message without that message's record in the same save, so a store
 * that keeps them (the accounts database) always has a record for every
 * message below the mark; `benno-imapsync --verify` relies on it.
 */
export interface FolderStateStore {
  folderStates(accountId: number): Promise<readonly FolderState[]>;
  /** Stores several folders' state and the message records at once: all or none. */
  saveFolderStates(accountId: number, states: readonly FolderState[], records: readonly MessageRecord[]): Promise<void>;
}

export interface SyncOptions {
  server: ServerOptions;
  account: SyncAccount;
  /** The decrypted password, or the admin's; only ever handed to the login. */
  password: Buffer | string;
  /**
   * Log in as this administrator with password, on the account's user's
   * behalf: SASL PLAIN with the user as authorization identity (a Dovecot
   * master user, a Cyrus admin). A server without AUTH=PLAIN fails the account.
   */
  admin?: string;
  store: FolderStateStore;
  writer: SpoolWriter;
  /** Folder names (relative to the personal namespace); \Drafts, \Trash, \Junk also match by SPECIAL-USE. */
  exclude: readonly string[];
  log: Logger;
  envelopeNames?: EnvelopeNames;
  tuning?: Partial<SyncTuning>;
  hooks?: SyncHooks;
  /** Called as a folder's new messages are archived (a progress bar for a large first sync); total is an upper bound. */
  progress?: (folder: string, done: number, total: number) => void;
}

export type FolderStatus = 'synced' | 'unchanged' | 'excluded' | 'failed';

export interface FolderResult {
  /** Decoded name, for people. */
  folder: string;
  /** The state key (modified UTF-7). */
  key: string;
  status: FolderStatus;
  /** Why it is excluded, or why it failed. */
  reason: string | null;
  archived: number;
  /** Messages expunged between listing and fetch. */
  skipped: number;
  /** The folder was re-imported because its UIDVALIDITY changed. */
  uidValidityChanged: boolean;
  ms: number;
}

export interface SyncResult {
  /** USER@HOST */
  account: string;
  folders: FolderResult[];
  archived: number;
  skipped: number;
  excluded: number;
  /** Folders that failed; the run went on with the others. */
  errors: number;
  ms: number;
}

export type SyncErrorKind =
  /** The account cannot be synced as configured (no address, bad CA file). */
  | 'account'
  /** The server could not be reached, or the connection broke. */
  | 'connect'
  /** TLS failed: certificate refused, no STARTTLS. */
  | 'tls'
  /** The server refused the user name or password, or offers no way for the admin login. */
  | 'login'
  /** The server answered something the sync cannot go on with. */
  | 'protocol'
  /** The inbox's disk is full: the whole run must stop. */
  | 'disk-full'
  /** A message could not be written to the inbox for another reason (benno-pop3 stops there; the IMAP sync fails the folder). */
  | 'write';

/** One account's sync failed. The message names USER@HOST and the reason, never the password. */
export class SyncError extends Error {
  constructor(
    readonly kind: SyncErrorKind,
    readonly account: string,
    reason: string,
    /** What was done before the failure (state is saved up to it). */
    readonly partial?: SyncResult,
    options?: { cause?: unknown },
  ) {
    super(`${account}: ${reason}`, options);
    this.name = 'SyncError';
  }
}

interface Session {
  client: ImapFlow;
  who: string;
  /** The error imapflow emitted on its own (a broken socket), which explains a later failure best. */
  lastError: Error | null;
  secret: string;
  /** The administrator logged in on the user's behalf, if one did. */
  admin?: string;
}

const TLS_CODES = /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ALTNAME|ERR_SSL|ERR_TLS|EPROTO/;
const CONNECT_CODES = /^(ECONNREFUSED|ECONNRESET|EHOSTUNREACH|ENETUNREACH|ENOTFOUND|EAI_AGAIN|ETIMEDOUT|EPIPE|CONNECT_TIMEOUT|GREETING_TIMEOUT|ETIMEOUT|NoConnection|EConnectionClosed)$/;

/** Any failure of the IMAP side as a SyncError, with the password blanked wherever a server might have echoed it. */
function imapError(s: Pick<Session, 'who' | 'secret' | 'lastError' | 'admin'>, err: unknown, partial?: SyncResult): SyncError {
  if (err instanceof SyncError) return err;
  const e = (s.lastError ?? err) as Error & { code?: string; authenticationFailed?: boolean; tlsFailed?: boolean; responseText?: string };
  const first = err as typeof e;
  const detail = [first.responseText ?? first.message ?? String(err), e !== first ? e.message : ''].filter(Boolean).join(': ');
  const clean = (t: string) => (s.secret.length >= 3 ? t.split(s.secret).join('***') : t);
  let kind: SyncErrorKind = 'protocol';
  let reason = detail;
  if (first.authenticationFailed) {
    kind = 'login';
    reason = `${s.admin ? `admin login as ${s.admin} refused` : 'login refused'}: ${first.responseText ?? 'authentication failed'}`;
  } else if (first.tlsFailed || TLS_CODES.test(`${e.code ?? ''}`) || /certificate|STARTTLS|TLS/i.test(e.message ?? '')) {
    kind = 'tls';
    reason = `TLS failed: ${e.code ? `${e.code} ` : ''}${e.message}`;
  } else if (CONNECT_CODES.test(`${e.code ?? ''}`) || CONNECT_CODES.test(`${first.code ?? ''}`)) {
    kind = 'connect';
    reason = `${e.code}: ${e.message}`;
  }
  return new SyncError(kind, s.who, clean(reason), partial, { cause: err });
}

function accountName(account: SyncAccount): string {
  return `${account.user}@${account.host}`;
}

/** The login: the user's own, or an admin's on the user's behalf. */
interface Credential {
  user: string;
  password: Buffer | string;
  admin?: string;
}

async function connect(server: ServerOptions, login: Credential, who: string): Promise<Session> {
  const { user, password, admin } = login;
  const secret = Buffer.isBuffer(password) ? password.toString('utf8') : password;
  let ca: Buffer | undefined;
  if (server.caFile) {
    try {
      ca = fs.readFileSync(server.caFile);
    } catch (err) {
      throw new SyncError('account', who, `CA file ${server.caFile}: ${(err as Error).message}`);
    }
  }
  const timeout = server.timeoutMs ?? 60_000;
  const client = new ImapFlow({
    host: server.host,
    port: server.port,
    secure: server.tls === 'imaps',
    doSTARTTLS: server.tls === 'imaps' ? undefined : server.tls === 'starttls',
    servername: /^[\d.]+$|:/.test(server.host) ? undefined : server.host,
    tls: { rejectUnauthorized: true, ...(ca ? { ca } : {}) },
    // An admin login is SASL PLAIN only: imapflow's fallback, LOGIN, has no authorization identity.
    auth: admin ? { user: admin, pass: secret, authzid: user, loginMethod: 'AUTH=PLAIN' } : { user, pass: secret },
    // imapflow's logger would see the session, LOGIN included; the sync logs what matters itself.
    logger: false,
    disableAutoIdle: true,
    connectionTimeout: timeout,
    greetingTimeout: timeout,
    socketTimeout: timeout,
  });
  const session: Session = { client, who, lastError: null, secret, admin };
  if (admin) requirePlain(client, who);
  // Without a listener an 'error' event would end the process, not this account.
  client.on('error', (err: Error) => {
    session.lastError ??= err;
  });
  try {
    await client.connect();
  } catch (err) {
    client.close();
    throw imapError(session, err);
  }
  return session;
}

/**
 * Makes imapflow check for AUTH=PLAIN just before it logs in (after STARTTLS,
 * with the capabilities the server sent over TLS). Without the check it would
 * send LOGIN as the admin, which opens the admin's own mailbox, not the user's.
 */
function requirePlain(client: ImapFlow, who: string): void {
  const c = client as unknown as { authenticate(): Promise<boolean> };
  const authenticate = c.authenticate.bind(client);
  c.authenticate = async () => {
    if (!client.capabilities.has('AUTH=PLAIN')) {
      throw new SyncError('login', who, 'the server offers no AUTH=PLAIN, which the admin login needs (SASL PLAIN with the user as authorization identity); enable PLAIN there, or log in with the users\' own passwords ("admin_user =" in its [server] section)');
    }
    return authenticate();
  };
}

async function disconnect(s: Session): Promise<void> {
  try {
    await s.client.logout();
  } catch {
    s.client.close();
  }
}

/** The personal namespace's prefix ("INBOX." on Cyrus); imapflow sets it after login without declaring it. */
function personalPrefix(client: ImapFlow): string {
  return (client as unknown as { namespace?: { prefix?: string } }).namespace?.prefix ?? '';
}

function listedFolders(list: ListResponse[]) {
  return list.map((f) => ({ path: f.path, delimiter: f.delimiter ?? '', flags: f.flags }));
}

/**
 * benno_imapauth: whether the server takes this user name and password.
 * Resolves once logged in (and out again); rejects with a SyncError whose
 * kind says why (login, connect, tls).
 */
export async function verifyLogin(server: ServerOptions, user: string, password: string, who: string): Promise<void> {
  await disconnect(await connect(server, { user, password }, who));
}

export type ReadOptions = Pick<SyncOptions, 'server' | 'account' | 'password' | 'admin' | 'exclude'>;

/**
 * A session for work that only reads (--list-folders, --verify): work gets
 * the client and chooses folders as the sync would; any failure comes out
 * as a SyncError with the password blanked.
 */
export async function withReadSession<T>(options: ReadOptions, work: (client: ImapFlow, choose: (list: ListResponse[]) => FolderChoice[]) => Promise<T>): Promise<T> {
  const who = accountName(options.account);
  const s = await connect(options.server, { user: options.account.user, password: options.password, admin: options.admin }, who);
  try {
    return await work(s.client, (list) => chooseFolders(listedFolders(list), options.exclude, personalPrefix(s.client)));
  } catch (err) {
    throw imapError(s, err);
  } finally {
    await disconnect(s);
  }
}

/** For --list-folders: every folder with the reason it is excluded, or null when it would be synced. */
export function listFolders(options: ReadOptions): Promise<FolderChoice[]> {
  return withReadSession(options, async (client, choose) => choose(await client.list()));
}

/**
 * Imports the account's new mail. Resolves with what was done, including
 * folders that failed (the next run retries them); rejects with a SyncError
 * when the account could not be synced at all or the inbox is full, and
 * with the store's error when the state could not be saved.
 */
export async function syncAccount(options: SyncOptions): Promise<SyncResult> {
  const started = Date.now();
  const { account, log } = options;
  const who = accountName(account);
  const envelope = new ImportEnvelope(options.envelopeNames ?? DEFAULT_ENVELOPE_NAMES, addressList(account.emails), account.gateway);
  const problem = envelope.problem();
  if (problem) throw new SyncError('account', who, problem);

  const result: SyncResult = { account: who, folders: [], archived: 0, skipped: 0, excluded: 0, errors: 0, ms: 0 };
  const s = await connect(options.server, { user: account.user, password: options.password, admin: options.admin }, who);
  const ctx: FolderContext = {
    ...options,
    session: s,
    envelope,
    tuning: { ...DEFAULT_TUNING, ...options.tuning },
    expected: 0,
  };
  try {
    const states = new Map((await options.store.folderStates(account.id)).map((st) => [st.folder, st]));
    const list = await s.client.list({ statusQuery: { uidNext: true, uidValidity: true } });
    const byPath = new Map(list.map((f) => [f.path, f]));
    for (const choice of chooseFolders(listedFolders(list), options.exclude, personalPrefix(s.client))) {
      let fr: FolderResult;
      if (choice.excluded) {
        fr = { ...emptyFolder(choice), status: 'excluded', reason: choice.excluded };
      } else {
        fr = await syncFolder(ctx, choice, byPath.get(choice.path)?.status, states.get(choice.key));
        const handled = fr.archived + fr.skipped;
        // The total was an estimate: the last call says where it ended.
        if (handled > 0) options.progress?.(fr.folder, handled, handled);
      }
      result.folders.push(fr);
      result.archived += fr.archived;
      result.skipped += fr.skipped;
      if (fr.status === 'excluded') result.excluded++;
      if (fr.status === 'failed') result.errors++;
      if (fr.status !== 'excluded') {
        const line = `${who} folder "${fr.folder}": ${fr.status}, ${fr.archived} archived, ${fr.skipped} skipped, ${fr.ms} ms`;
        if (fr.status === 'failed') log.error(`${line}: ${fr.reason}`);
        else log.info(line);
      }
    }
  } catch (err) {
    result.ms = Date.now() - started;
    if (err instanceof SyncError && !err.partial) throw new SyncError(err.kind, err.account, err.message.slice(who.length + 2), result, { cause: err.cause });
    if (isStoreError(err)) throw err;
    throw imapError(s, err, result);
  } finally {
    await disconnect(s);
  }
  result.ms = Date.now() - started;
  return result;
}

function isStoreError(err: unknown): boolean {
  return err instanceof Error && err.name === 'StoreError';
}

interface FolderContext extends SyncOptions {
  session: Session;
  envelope: ImportEnvelope;
  tuning: SyncTuning;
  /** New messages the folder being synced may hold, for progress. */
  expected: number;
}

function emptyFolder(choice: FolderChoice): FolderResult {
  return { folder: choice.path, key: choice.key, status: 'synced', reason: null, archived: 0, skipped: 0, uidValidityChanged: false, ms: 0 };
}

/** How many saves' worth of records may wait for a slow database (50,000 at the default: some 11 MB). */
const MAX_DEFERRED_SAVES = 50;

/**
 * A folder's stored state with the records of the messages it passed, saved
 * together when enough has happened since the last save: with sql.js every
 * save rewrites the whole database file, so the records ride along with the
 * state's saves instead of costing one each.
 */
class Progress {
  private savedUid: number;
  private savedAt = Date.now();
  /** How long the last save took. */
  private saveMs = 0;
  private records: MessageRecord[] = [];

  constructor(
    private readonly ctx: FolderContext,
    readonly key: string,
    readonly uidValidity: number,
    public lastUid: number,
    /** A new UIDVALIDITY must be stored even when no message follows. */
    private dirty: boolean,
  ) {
    this.savedUid = lastUid;
  }

  /**
   * The message with this UID is durable in file (null: gone from the
   * server, or, without a uid's message, only expunged UIDs up to it): the
   * next run starts after it.
   */
  async advance(uid: number, file?: string | null): Promise<void> {
    if (uid <= this.lastUid) return;
    if (file !== undefined) this.record(uid, file === null ? { outcome: 'expunged', file: null, reason: 'expunged before it could be fetched' } : { outcome: 'archived', file, reason: null });
    this.lastUid = uid;
    const { saveEveryMessages, saveEveryMs, saveCostFactor } = this.ctx.tuning;
    const since = Date.now() - this.savedAt;
    const due = this.lastUid - this.savedUid >= saveEveryMessages || this.records.length >= saveEveryMessages || since >= saveEveryMs;
    // The records wait in memory: however slow the saves, not more than a bounded number of them.
    const held = this.records.length >= MAX_DEFERRED_SAVES * saveEveryMessages;
    if (due && (since >= saveCostFactor * this.saveMs || held)) await this.save();
  }

  /** The message with this UID could not be archived: recorded, and the state stays below it, so the next run tries again. */
  failed(uid: number, reason: string): void {
    this.record(uid, { outcome: 'failed', file: null, reason });
  }

  private record(uid: number, what: Pick<MessageRecord, 'outcome' | 'file' | 'reason'>): void {
    this.records.push({ folder: this.key, uidValidity: this.uidValidity, uid, ...what });
  }

  async save(): Promise<void> {
    if (this.lastUid === this.savedUid && !this.dirty && this.records.length === 0) return;
    const state: FolderState = { folder: this.key, uidValidity: this.uidValidity, lastUid: this.lastUid };
    const records = this.records;
    const started = Date.now();
    await this.ctx.store.saveFolderStates(this.ctx.account.id, [state], records);
    this.records = this.records.slice(records.length);
    this.savedUid = this.lastUid;
    this.savedAt = Date.now();
    this.saveMs = this.savedAt - started;
    this.dirty = false;
  }
}

/** A message that could not be written; the folder stops before it. */
class WriteFailure extends Error {
  constructor(
    readonly uid: number,
    readonly error: Error & { code?: string },
  ) {
    super(`UID ${uid} could not be written to the inbox: ${error.message}`);
  }
}

interface Listed {
  uid: number;
  size: number;
  /** The Return-Path field(s), or null. */
  returnPath: Buffer | null;
}

async function syncFolder(ctx: FolderContext, choice: FolderChoice, listedStatus: StatusObject | undefined, state: FolderState | undefined): Promise<FolderResult> {
  const t0 = Date.now();
  const fr = emptyFolder(choice);
  const { client } = ctx.session;
  let progress: Progress | null = null;
  try {
    const status = listedStatus && listedStatus.uidValidity !== undefined && listedStatus.uidNext !== undefined
      ? listedStatus
      : await client.status(choice.path, { uidNext: true, uidValidity: true });
    if (state && state.uidValidity === Number(status.uidValidity) && status.uidNext !== undefined && status.uidNext - 1 <= state.lastUid) {
      return { ...fr, status: 'unchanged', ms: Date.now() - t0 };
    }
    const mailbox = await client.mailboxOpen(choice.path, { readOnly: true });
    // EXAMINE's answer is the one the fetches below see; STATUS may be older.
    const uidValidity = Number(mailbox.uidValidity);
    let lastUid = 0;
    if (state && state.uidValidity !== uidValidity) {
      fr.uidValidityChanged = true;
      ctx.log.warn(`${ctx.session.who} folder "${choice.path}": UIDVALIDITY changed from ${state.uidValidity} to ${uidValidity}; importing it again from the start`);
    } else if (state) {
      lastUid = state.lastUid;
    }
    progress = new Progress(ctx, choice.key, uidValidity, lastUid, !state || fr.uidValidityChanged);
    const ceiling = mailbox.uidNext ? mailbox.uidNext - 1 : null;
    // A first sync takes every message; later ones at most the UIDs above the last one.
    ctx.expected = lastUid === 0 || ceiling === null ? mailbox.exists : Math.min(mailbox.exists, ceiling - lastUid);
    for (let from = lastUid + 1; ceiling === null || from <= ceiling; ) {
      const to = ceiling === null ? '*' : Math.min(from + ctx.tuning.listWindow - 1, ceiling);
      const listed = await listMessages(client, `${from}:${to}`, lastUid);
      if (ctx.hooks?.afterListing) await ctx.hooks.afterListing(choice.path, listed.map((m) => m.uid));
      await archiveListed(ctx, choice, listed, progress, fr);
      if (to === '*') break;
      from = to + 1;
    }
    // UIDs below EXAMINE's UIDNEXT that no listing showed were expunged: no reason to open the folder for them again.
    if (ceiling !== null) await progress.advance(ceiling);
    await progress.save();
  } catch (err) {
    if (progress && err instanceof WriteFailure) progress.failed(err.uid, err.message);
    if (progress) await progress.save();
    if (err instanceof WriteFailure) {
      if (err.error.code === 'ENOSPC' || err.error.code === 'EDQUOT') {
        throw new SyncError('disk-full', ctx.session.who, `the inbox ${ctx.writer.dir} is full (${err.error.code}); stopped with state at what is on disk`, undefined, { cause: err.error });
      }
      return { ...fr, status: 'failed', reason: err.message, ms: Date.now() - t0 };
    }
    throw err;
  }
  return { ...fr, status: 'synced', ms: Date.now() - t0 };
}

async function listMessages(client: ImapFlow, range: string, after: number): Promise<Listed[]> {
  const out: Listed[] = [];
  for (const m of await client.fetchAll(range, { uid: true, size: true, headers: ['return-path'] }, { uid: true })) {
    // "n:*" also names the highest UID when it is below n (RFC 3501 6.4.8).
    if (m.uid > after) out.push({ uid: m.uid, size: m.size ?? 0, returnPath: m.headers ?? null });
  }
  return out.sort((a, b) => a.uid - b.uid);
}

async function archiveListed(ctx: FolderContext, choice: FolderChoice, listed: Listed[], progress: Progress, fr: FolderResult): Promise<void> {
  const { largeBytes, chunkBytes, batchMessages } = ctx.tuning;
  for (let i = 0; i < listed.length; ) {
    if (listed[i].size > largeBytes) {
      await settle(ctx, choice, fr, progress, listed[i].uid, await archiveLarge(ctx, listed[i]));
      i++;
      continue;
    }
    const batch: Listed[] = [];
    let bytes = 0;
    while (i < listed.length && listed[i].size <= largeBytes && batch.length < batchMessages && (batch.length === 0 || bytes + listed[i].size <= chunkBytes)) {
      bytes += listed[i].size;
      batch.push(listed[i++]);
    }
    await archiveBatch(ctx, choice, batch, progress, fr);
  }
}

/** One message is done: durable in file, or (null) gone from the server; counted, and the folder's state moves past it. */
async function settle(ctx: FolderContext, choice: FolderChoice, fr: FolderResult, progress: Progress, uid: number, file: string | null): Promise<void> {
  ctx.progress?.(choice.path, fr.archived + fr.skipped + 1, Math.max(ctx.expected, fr.archived + fr.skipped + 1));
  if (file !== null) {
    fr.archived++;
  } else {
    fr.skipped++;
    ctx.log.warn(`${ctx.session.who} folder "${choice.path}": UID ${uid} was expunged before it could be fetched; skipped`);
  }
  await progress.advance(uid, file);
}

function envelopeFor(ctx: FolderContext, m: Listed): Buffer[] {
  return ctx.envelope.lines(m.returnPath, (why) => ctx.log.warn(`${ctx.session.who}: UID ${m.uid}: ${why}`));
}

/**
 * Writes one message's file; the message itself is the chunks that `next`
 * yields until it yields null. Resolves to the file's name once it is
 * durable, or null when the server had no message to give.
 */
async function writeMessage(ctx: FolderContext, m: Listed, body: Buffer | (() => Promise<Buffer | null>)): Promise<string | null> {
  const file = ctx.writer.begin();
  try {
    for (const b of envelopeFor(ctx, m)) file.write(b);
    if (Buffer.isBuffer(body)) {
      file.write(body);
    } else {
      let wrote = false;
      for (let chunk = await body(); chunk !== null; chunk = await body()) {
        wrote = true;
        const wait = file.write(chunk);
        if (wait) await wait;
      }
      if (!wrote) {
        await file.discard();
        return null;
      }
    }
  } catch (err) {
    await file.discard();
    throw err;
  }
  try {
    return (await file.commit()).name;
  } catch (err) {
    throw new WriteFailure(m.uid, err as Error);
  }
}

/** A large message in pieces: BODY.PEEK[]<offset.length>, each written before the next is fetched. */
function archiveLarge(ctx: FolderContext, m: Listed): Promise<string | null> {
  const { client } = ctx.session;
  const size = ctx.tuning.chunkBytes;
  let offset = 0;
  let done = false;
  return writeMessage(ctx, m, async () => {
    if (done) return null;
    const r = await client.fetchOne(String(m.uid), { uid: true, source: { start: offset, maxLength: size } }, { uid: true });
    const chunk = r && r.source;
    if (!chunk) {
      if (offset > 0) throw new Error(`UID ${m.uid} disappeared after ${offset} bytes`);
      return null;
    }
    offset += chunk.length;
    done = chunk.length < size;
    return chunk;
  });
}

/** Small messages: one FETCH for the batch, then every file written and committed at once (one shared directory fsync). */
async function archiveBatch(ctx: FolderContext, choice: FolderChoice, batch: Listed[], progress: Progress, fr: FolderResult): Promise<void> {
  const sources = new Map<number, Buffer>();
  const fetched = await ctx.session.client.fetchAll(uidSet(batch.map((m) => m.uid)), { uid: true, source: true }, { uid: true });
  for (const r of fetched) if (r.source) sources.set(r.uid, r.source);
  const outcomes = await Promise.allSettled(batch.map((m) => {
    const source = sources.get(m.uid);
    return source ? writeMessage(ctx, m, source) : Promise.resolve(null);
  }));
  // In UID order: the stored UID never passes a message that is not on disk.
  for (let k = 0; k < batch.length; k++) {
    const o = outcomes[k];
    if (o.status === 'rejected') throw o.reason;
    await settle(ctx, choice, fr, progress, batch[k].uid, o.value);
  }
}

/** "3:5,9" for [3, 4, 5, 9]: short commands however many UIDs. */
export function uidSet(uids: number[]): string {
  const parts: string[] = [];
  for (let i = 0; i < uids.length; ) {
    let j = i;
    while (j + 1 < uids.length && uids[j + 1] === uids[j] + 1) j++;
    parts.push(j === i ? String(uids[i]) : `${uids[i]}:${uids[j]}`);
    i = j + 1;
  }
  return parts.join(',');
}
