// The IMAP accounts, their folders' sync state and their last run, behind one
// interface for both databases. Everything a query means is here, once;
// a Backend only runs SQL, alone (read) or in a transaction (write).

import { ACCOUNT_TABLE, Dialect, FOLDER_TABLE, LIMITS, MESSAGE_TABLE, STATUS_TABLE, parseSqlTime, sqlTime } from './schema';
import { UNSAFE_CHARACTER, codePointName } from '../ops/text';

export type StoreErrorKind =
  /** The database URL or options are wrong. */
  | 'config'
  /** No account matches. */
  | 'not-found'
  /** A user without a host matches accounts on several hosts. */
  | 'ambiguous'
  /** A value is too long or malformed. */
  | 'invalid'
  /** Another program held the lock for too long. */
  | 'locked'
  /** The database (file, server) failed. */
  | 'database';

/** Every failure of the store. Its message never carries a password or key. */
export class StoreError extends Error {
  constructor(
    readonly kind: StoreErrorKind,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'StoreError';
  }
}

export interface RunStatus {
  lastRun: Date;
  /** Messages archived in that run. */
  archived: number;
  /** Why the run failed, or null when it succeeded. */
  lastError: string | null;
}

export interface Account {
  id: number;
  user: string;
  /** HOST or HOST:PORT, as given. */
  host: string;
  container: string;
  name: string;
  /** The -e addresses, comma-separated, as given. */
  emails: string;
  /** X-BENNO-GW name for Benno's container rules, or null. */
  gateway: string | null;
  /** The encrypted password, or null until one is set. */
  password: Buffer | null;
  created: Date;
  updated: Date;
  /** The last sync run, or null before the first. */
  status: RunStatus | null;
}

/** An account to add or change. On an update, a field left undefined keeps its value. */
export interface AccountInput {
  user: string;
  host: string;
  container: string;
  name?: string;
  emails?: string;
  gateway?: string | null;
  password?: Buffer | null;
}

export interface FolderState {
  /** The name as the server sends it (modified UTF-7). */
  folder: string;
  uidValidity: number;
  /** Highest UID whose message is durable in the inbox; 0 before any. */
  lastUid: number;
}

export interface StoredFolderState extends FolderState {
  updated: Date;
  /**
   * The folder's state when this database began to keep a record per
   * message (schema version 2), or null when it had none then: the UIDs up
   * to it were archived without records.
   */
  legacy: { uidValidity: number; lastUid: number } | null;
}

/**
 * What became of one message of a folder: its file is durable in the inbox
 * ('archived'); it could not be written ('failed': the folder's mark stays
 * below it and the next run tries again); or the server no longer had it
 * when it was fetched ('expunged': the mark passes it).
 */
export type MessageOutcome = 'archived' | 'failed' | 'expunged';

export interface MessageRecord {
  /** The folder's state key (modified UTF-7). */
  folder: string;
  uidValidity: number;
  uid: number;
  outcome: MessageOutcome;
  /** The name written into the inbox when archived, else null. */
  file: string | null;
  /** Why it failed, else null. */
  reason: string | null;
}

export interface StoredMessageRecord extends MessageRecord {
  updated: Date;
}

/** What --verify compares with the server: every folder's state and every message's record of one account. */
export interface ArchiveRecords {
  folders: StoredFolderState[];
  messages: StoredMessageRecord[];
}

export interface AccountStore {
  /** Creates the tables where missing, or upgrades them (SQLite does this on its first write by itself). */
  init(): Promise<void>;
  /** Rejects with a 'database' StoreError naming the fix when the tables are not of this version. */
  checkSchema(): Promise<void>;
  /** Adds the account, or updates the one with the same user and host. */
  saveAccount(input: AccountInput): Promise<{ account: Account; created: boolean }>;
  /** Removes the account with its folder state and run status; false if there was none. */
  deleteAccount(user: string, host: string): Promise<boolean>;
  /** All accounts, ordered by user and host. */
  listAccounts(): Promise<Account[]>;
  /** The accounts of this user (on this host, when given). */
  findAccounts(user: string, host?: string): Promise<Account[]>;
  /**
   * Stores an encrypted password. Without a host the user must exist on
   * exactly one host: 'not-found' or 'ambiguous' otherwise.
   */
  setPassword(user: string, host: string | undefined, encrypted: Buffer): Promise<Account>;
  folderStates(accountId: number): Promise<StoredFolderState[]>;
  /**
   * Stores several folders' state with the records of the messages they
   * pass, in one transaction: all or none. 'not-found' if the account is gone.
   */
  saveFolderStates(accountId: number, states: readonly FolderState[], records?: readonly MessageRecord[]): Promise<void>;
  /** The account's folder states and message records, read at one moment. */
  archiveRecords(accountId: number): Promise<ArchiveRecords>;
  recordRun(accountId: number, status: RunStatus): Promise<void>;
  close(): Promise<void>;
}

export type Row = Record<string, unknown>;
export type Param = string | number | Buffer | null;

/** SQL statements on one connection, in one transaction when writing. */
export interface Session {
  all(sql: string, params?: readonly Param[]): Promise<Row[]>;
  /** Runs a statement; resolves to the number of rows it changed. */
  run(sql: string, params?: readonly Param[]): Promise<number>;
}

export interface Backend {
  readonly dialect: Dialect;
  /** Where the data is, for error messages (never with a password). */
  readonly where: string;
  read<T>(work: (s: Session) => Promise<T>): Promise<T>;
  /** Runs work in one transaction, committed if it resolves, rolled back if it throws. */
  write<T>(work: (s: Session) => Promise<T>): Promise<T>;
  init(): Promise<void>;
  close(): Promise<void>;
  /** Rejects when the tables are older or newer than this program (records need version 2). */
  checkSchema(): Promise<void>;
  /** Whether err means that a foreign key's parent row is missing. */
  isMissingParent(err: unknown): boolean;
}

const SELECT_ACCOUNTS = `SELECT a.id, a.user, a.host, a.container, a.name, a.emails, a.gateway, a.password, a.created, a.updated,
  s.last_run, s.archived, s.last_error
FROM ${ACCOUNT_TABLE} a LEFT JOIN ${STATUS_TABLE} s ON s.account_id = a.id`;
const ORDER = 'ORDER BY a.user, a.host, a.id';

function text(v: unknown): string {
  return typeof v === 'string' ? v : Buffer.isBuffer(v) ? v.toString('utf8') : String(v);
}

function toAccount(r: Row): Account {
  return {
    id: Number(r.id),
    user: text(r.user),
    host: text(r.host),
    container: text(r.container),
    name: text(r.name),
    emails: text(r.emails),
    gateway: r.gateway == null ? null : text(r.gateway),
    password: r.password == null ? null : Buffer.from(r.password as Uint8Array),
    created: parseSqlTime(text(r.created)),
    updated: parseSqlTime(text(r.updated)),
    status:
      r.last_run == null
        ? null
        : { lastRun: parseSqlTime(text(r.last_run)), archived: Number(r.archived), lastError: r.last_error == null ? null : text(r.last_error) },
  };
}

function checkField(field: keyof typeof LIMITS, value: string | null | undefined): void {
  if (value == null) return;
  if (value.length > LIMITS[field]) {
    throw new StoreError('invalid', `${field} is longer than ${LIMITS[field]} characters`);
  }
  // These values end up in lines: the web login's answer to Benno, log lines, benno-imapuser -l.
  const bad = UNSAFE_CHARACTER.exec(value);
  if (bad) throw new StoreError('invalid', `${codePointName(bad[0].codePointAt(0)!)} in the ${field}`);
}

const OUTCOMES: readonly MessageOutcome[] = ['archived', 'failed', 'expunged'];

function toFolderState(r: Row): StoredFolderState {
  return {
    folder: text(r.folder),
    uidValidity: Number(r.uidvalidity),
    lastUid: Number(r.last_uid),
    updated: parseSqlTime(text(r.updated)),
    legacy: r.legacy_uidvalidity == null ? null : { uidValidity: Number(r.legacy_uidvalidity), lastUid: Number(r.legacy_last_uid) },
  };
}

function toMessageRecord(r: Row): StoredMessageRecord {
  const outcome = text(r.outcome) as MessageOutcome;
  // Another program may have written the row: an outcome this one does not know counts as a failure, never as archived.
  return {
    folder: text(r.folder),
    uidValidity: Number(r.uidvalidity),
    uid: Number(r.uid),
    outcome: OUTCOMES.includes(outcome) ? outcome : 'failed',
    file: r.file == null ? null : text(r.file),
    reason: OUTCOMES.includes(outcome) ? (r.reason == null ? null : text(r.reason)) : `unknown outcome "${outcome}"`,
    updated: parseSqlTime(text(r.updated)),
  };
}

/** Rows per INSERT: few statements, and far below either database's limit on parameters. */
const RECORDS_PER_INSERT = 200;

function checkUid(what: string, n: number): void {
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new StoreError('invalid', `${what} ${n} is not an unsigned 32-bit number`);
}

function checkAccount(a: AccountInput): void {
  if (a.user === '' || a.host === '') throw new StoreError('invalid', 'an account needs a user and a host');
  checkField('user', a.user);
  checkField('host', a.host);
  checkField('container', a.container);
  checkField('name', a.name);
  checkField('gateway', a.gateway);
}

/** AccountStore over any Backend: the one place that knows the queries. */
export class SqlAccountStore implements AccountStore {
  constructor(private readonly db: Backend) {}

  init(): Promise<void> {
    return this.db.init();
  }

  checkSchema(): Promise<void> {
    return this.db.checkSchema();
  }

  close(): Promise<void> {
    return this.db.close();
  }

  async saveAccount(input: AccountInput): Promise<{ account: Account; created: boolean }> {
    checkAccount(input);
    const now = sqlTime(new Date());
    const given: [string, Param][] = [['container', input.container]];
    if (input.name !== undefined) given.push(['name', input.name]);
    if (input.emails !== undefined) given.push(['emails', input.emails]);
    if (input.gateway !== undefined) given.push(['gateway', input.gateway]);
    if (input.password !== undefined) given.push(['password', input.password]);
    const fresh = new Map<string, Param>([['name', ''], ['emails', ''], ['gateway', null], ['password', null], ...given, ['created', now], ['updated', now]]);
    const columns = ['user', 'host', ...fresh.keys()];
    const values: Param[] = [input.user, input.host, ...fresh.values()];
    const sql =
      `INSERT INTO ${ACCOUNT_TABLE} (${columns.join(', ')}) VALUES (${columns.map(() => '?').join(', ')}) ` +
      this.db.dialect.upsert(['user', 'host'], [...given.map(([c]) => c), 'updated']);
    return this.db.write(async (s) => {
      const before = await this.selectAccounts(s, input.user, input.host);
      await s.run(sql, values);
      const [account] = await this.selectAccounts(s, input.user, input.host);
      return { account, created: before.length === 0 };
    });
  }

  deleteAccount(user: string, host: string): Promise<boolean> {
    return this.db.write(async (s) => (await s.run(`DELETE FROM ${ACCOUNT_TABLE} WHERE user = ? AND host = ?`, [user, host])) > 0);
  }

  listAccounts(): Promise<Account[]> {
    return this.db.read(async (s) => (await s.all(`${SELECT_ACCOUNTS} ${ORDER}`)).map(toAccount));
  }

  findAccounts(user: string, host?: string): Promise<Account[]> {
    return this.db.read((s) => this.selectAccounts(s, user, host));
  }

  setPassword(user: string, host: string | undefined, encrypted: Buffer): Promise<Account> {
    return this.db.write(async (s) => {
      const found = await this.selectAccounts(s, user, host);
      const who = host === undefined ? user : `${user} on ${host}`;
      if (found.length === 0) throw new StoreError('not-found', `no account ${who} in ${this.db.where}`);
      if (found.length > 1) {
        throw new StoreError('ambiguous', `user ${user} exists on several hosts (${found.map((a) => a.host).join(', ')}); name one with -i`);
      }
      await s.run(`UPDATE ${ACCOUNT_TABLE} SET password = ?, updated = ? WHERE id = ?`, [encrypted, sqlTime(new Date()), found[0].id]);
      return (await this.selectAccounts(s, user, found[0].host))[0];
    });
  }

  async folderStates(accountId: number): Promise<StoredFolderState[]> {
    await this.db.checkSchema();
    return this.db.read((s) => this.selectFolderStates(s, accountId));
  }

  async archiveRecords(accountId: number): Promise<ArchiveRecords> {
    await this.db.checkSchema();
    return this.db.read(async (s) => ({
      folders: await this.selectFolderStates(s, accountId),
      messages: (
        await s.all(`SELECT folder, uidvalidity, uid, outcome, file, reason, updated FROM ${MESSAGE_TABLE} WHERE account_id = ? ORDER BY folder, uidvalidity, uid`, [accountId])
      ).map(toMessageRecord),
    }));
  }

  async saveFolderStates(accountId: number, states: readonly FolderState[], records: readonly MessageRecord[] = []): Promise<void> {
    for (const st of states) {
      checkField('folder', st.folder);
      checkUid('UIDVALIDITY', st.uidValidity);
      checkUid('UID', st.lastUid);
    }
    for (const r of records) {
      checkField('folder', r.folder);
      checkUid('UIDVALIDITY', r.uidValidity);
      checkUid('UID', r.uid);
      if (!OUTCOMES.includes(r.outcome)) throw new StoreError('invalid', `outcome "${r.outcome}" is not one of ${OUTCOMES.join(', ')}`);
      if (r.file !== null && r.file.length > LIMITS.file) throw new StoreError('invalid', `file is longer than ${LIMITS.file} characters`);
    }
    await this.db.checkSchema();
    const { dialect } = this.db;
    const stateSql =
      `INSERT INTO ${FOLDER_TABLE} (account_id, folder, uidvalidity, last_uid, updated) VALUES (?, ?, ?, ?, ?) ` +
      dialect.upsert(['account_id', 'folder'], ['uidvalidity', 'last_uid', 'updated']);
    const recordSql = (rows: number) =>
      `INSERT INTO ${MESSAGE_TABLE} (account_id, folder, uidvalidity, uid, outcome, file, reason, updated) VALUES ${Array(rows).fill('(?, ?, ?, ?, ?, ?, ?, ?)').join(', ')} ` +
      dialect.upsert(['account_id', 'folder', 'uidvalidity', 'uid'], ['outcome', 'file', 'reason', 'updated']);
    const now = sqlTime(new Date());
    await this.forAccount(accountId, async (s) => {
      // Records first: in the one transaction the order does not matter, but it reads as the rule it keeps.
      for (let i = 0; i < records.length; i += RECORDS_PER_INSERT) {
        const chunk = records.slice(i, i + RECORDS_PER_INSERT);
        await s.run(recordSql(chunk.length), chunk.flatMap((r) => [accountId, r.folder, r.uidValidity, r.uid, r.outcome, r.file, r.reason, now]));
      }
      for (const st of states) await s.run(stateSql, [accountId, st.folder, st.uidValidity, st.lastUid, now]);
    });
  }

  private async selectFolderStates(s: Session, accountId: number): Promise<StoredFolderState[]> {
    const rows = await s.all(`SELECT folder, uidvalidity, last_uid, updated, legacy_uidvalidity, legacy_last_uid FROM ${FOLDER_TABLE} WHERE account_id = ? ORDER BY folder`, [accountId]);
    return rows.map(toFolderState);
  }

  async recordRun(accountId: number, status: RunStatus): Promise<void> {
    const sql =
      `INSERT INTO ${STATUS_TABLE} (account_id, last_run, archived, last_error) VALUES (?, ?, ?, ?) ` +
      this.db.dialect.upsert(['account_id'], ['last_run', 'archived', 'last_error']);
    await this.forAccount(accountId, (s) => s.run(sql, [accountId, sqlTime(status.lastRun), status.archived, status.lastError]));
  }

  /** A write for an account that may have been deleted since the caller read it. */
  private async forAccount(accountId: number, work: (s: Session) => Promise<unknown>): Promise<void> {
    try {
      await this.db.write(work);
    } catch (err) {
      if (!this.db.isMissingParent(err)) throw err;
      throw new StoreError('not-found', `account ${accountId} is no longer in ${this.db.where}`, { cause: err });
    }
  }

  private async selectAccounts(s: Session, user: string, host?: string): Promise<Account[]> {
    const rows =
      host === undefined
        ? await s.all(`${SELECT_ACCOUNTS} WHERE a.user = ? ${ORDER}`, [user])
        : await s.all(`${SELECT_ACCOUNTS} WHERE a.user = ? AND a.host = ? ${ORDER}`, [user, host]);
    return rows.map(toAccount);
  }
}

/** A driver's or the file system's failure as a StoreError naming where; StoreErrors pass unchanged. */
export function databaseError(where: string, err: unknown): StoreError {
  if (err instanceof StoreError) return err;
  return new StoreError('database', `${where}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
}
