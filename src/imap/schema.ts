// The accounts database, written once for SQLite and MySQL/MariaDB. Where
// the two speak differently (auto-increment keys, time columns, table
// options, upsert) the difference lives in a Dialect and nowhere else; all
// queries use the `?` placeholders both drivers bind.
//
// Times are stored as UTC text 'YYYY-MM-DD HH:MM:SS.sss': SQLite's own date
// format (its date functions and the sqlite3 tool read it) and what MySQL
// takes and, with dateStrings, returns for DATETIME(3), so neither side ever
// converts through a local time zone.

import type { Session } from './store';

export interface Dialect {
  readonly name: 'sqlite' | 'mysql';
  /** The id column of imapuser; ids are never reused, so state saved for a deleted account cannot land on a new one. */
  readonly autoId: string;
  readonly time: string;
  /** After each CREATE TABLE's closing parenthesis. */
  readonly tableOptions: string;
  /**
   * The same for a table read and written only by its primary key: SQLite
   * then stores the rows in the key's B-tree instead of beside a second one
   * (InnoDB always does), which keeps the per-message table, the one that
   * grows, about a fifth smaller.
   */
  readonly keyedTableOptions: string;
  /** A query with one parameter pair (table, column) whose single row has n = 1 when the column exists. */
  readonly columnExists: string;
  /** The clause after INSERT … VALUES (…) that turns it into an update of `columns` when `key` exists. */
  upsert(key: readonly string[], columns: readonly string[]): string;
}

export const SQLITE: Dialect = {
  name: 'sqlite',
  autoId: 'INTEGER PRIMARY KEY AUTOINCREMENT',
  time: 'TEXT',
  tableOptions: '',
  keyedTableOptions: ' WITHOUT ROWID',
  columnExists: 'SELECT COUNT(*) AS n FROM pragma_table_info(?) WHERE name = ?',
  upsert: (key, columns) => `ON CONFLICT (${key.join(', ')}) DO UPDATE SET ${columns.map((c) => `${c} = excluded.${c}`).join(', ')}`,
};

export const MYSQL: Dialect = {
  name: 'mysql',
  autoId: 'BIGINT PRIMARY KEY AUTO_INCREMENT',
  time: 'DATETIME(3)',
  // _bin: user names and folder names compare exactly, as in SQLite; the
  // server's default collation would make 'Archiv' and 'archiv' one key.
  tableOptions: ' ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin',
  keyedTableOptions: ' ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin',
  columnExists: 'SELECT COUNT(*) AS n FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name = ? AND column_name = ?',
  upsert: (_key, columns) => `ON DUPLICATE KEY UPDATE ${columns.map((c) => `${c} = VALUES(${c})`).join(', ')}`,
};

/**
 * Longest values, in characters. SQLite would store anything; MySQL in strict
 * mode refuses longer ones. The store checks them, so both backends refuse
 * the same input with the same error. The unique keys stay within InnoDB's
 * 3072-byte index limit at 4 bytes a character.
 */
export const LIMITS = {
  user: 255,
  host: 255,
  container: 255,
  name: 255,
  gateway: 255,
  folder: 700,
  /** A name in the inbox: 64 hex digits and the suffix. */
  file: 255,
} as const;

export const ACCOUNT_TABLE = 'imapuser';
export const FOLDER_TABLE = 'imapuser_folder';
export const STATUS_TABLE = 'imapuser_status';
export const MESSAGE_TABLE = 'imapuser_message';
export const VERSION_TABLE = 'imapuser_schema';

/**
 * 1: accounts, folder state, run status (no version table).
 * 2: a record per message (MESSAGE_TABLE), and per folder the state it had
 *    when records began (legacy_uidvalidity, legacy_last_uid): the UIDs up
 *    to it were archived by a version that kept no records, which
 *    `benno-imapsync --verify` must not take for gaps.
 */
export const SCHEMA_VERSION = 2;

/** CREATE TABLE statements in dependency order; each is safe to run on an existing database. */
export function schemaStatements(d: Dialect): string[] {
  const owned = `FOREIGN KEY (account_id) REFERENCES ${ACCOUNT_TABLE} (id) ON DELETE CASCADE`;
  // A folder's key, and its messages' with the UIDVALIDITY they belong to.
  const folderColumns = `account_id BIGINT NOT NULL,
  folder VARCHAR(${LIMITS.folder}) NOT NULL,
  uidvalidity BIGINT NOT NULL,`;
  return [
    `CREATE TABLE IF NOT EXISTS ${ACCOUNT_TABLE} (
  id ${d.autoId},
  user VARCHAR(${LIMITS.user}) NOT NULL,
  host VARCHAR(${LIMITS.host}) NOT NULL,
  container VARCHAR(${LIMITS.container}) NOT NULL,
  name VARCHAR(${LIMITS.name}) NOT NULL DEFAULT '',
  emails TEXT NOT NULL,
  gateway VARCHAR(${LIMITS.gateway}) NULL,
  password BLOB NULL,
  created ${d.time} NOT NULL,
  updated ${d.time} NOT NULL,
  UNIQUE (user, host)
)${d.tableOptions}`,
    `CREATE TABLE IF NOT EXISTS ${FOLDER_TABLE} (
  ${folderColumns}
  last_uid BIGINT NOT NULL,
  updated ${d.time} NOT NULL,
  legacy_uidvalidity BIGINT NULL,
  legacy_last_uid BIGINT NULL,
  PRIMARY KEY (account_id, folder),
  ${owned}
)${d.tableOptions}`,
    `CREATE TABLE IF NOT EXISTS ${STATUS_TABLE} (
  account_id BIGINT NOT NULL PRIMARY KEY,
  last_run ${d.time} NOT NULL,
  archived BIGINT NOT NULL,
  last_error TEXT NULL,
  ${owned}
)${d.tableOptions}`,
    `CREATE TABLE IF NOT EXISTS ${MESSAGE_TABLE} (
  ${folderColumns}
  uid BIGINT NOT NULL,
  outcome VARCHAR(16) NOT NULL,
  file VARCHAR(${LIMITS.file}) NULL,
  reason TEXT NULL,
  updated ${d.time} NOT NULL,
  PRIMARY KEY (account_id, folder, uidvalidity, uid),
  ${owned}
)${d.keyedTableOptions}`,
    `CREATE TABLE IF NOT EXISTS ${VERSION_TABLE} (
  version INT NOT NULL
)${d.tableOptions}`,
  ];
}

/** Columns a version-1 database lacks, with their types. */
const ADDED_IN_2: readonly [table: string, column: string, type: string][] = [
  [FOLDER_TABLE, 'legacy_uidvalidity', 'BIGINT NULL'],
  [FOLDER_TABLE, 'legacy_last_uid', 'BIGINT NULL'],
];

/**
 * Brings a database of any earlier version to SCHEMA_VERSION, and creates a
 * new one. Every step may run again: MySQL commits each ALTER TABLE on its
 * own, so a migration cut short is finished by the next --init-db. The
 * version row is written last, and benno-imapsync keeps no records in a
 * database without it (assertSchema), so the legacy marks are those of the
 * moment records began. Throws on a database newer than this program.
 */
export async function upgradeSchema(s: Session, d: Dialect): Promise<void> {
  for (const stmt of schemaStatements(d)) await s.run(stmt);
  const version = await schemaVersion(s);
  if (version !== null && version > SCHEMA_VERSION) throw new Error(newerSchema(version));
  if (version === SCHEMA_VERSION) return;
  for (const [table, column, type] of ADDED_IN_2) {
    const [row] = await s.all(d.columnExists, [table, column]);
    if (Number(row?.n) === 0) await s.run(`ALTER TABLE ${table} ADD COLUMN ${column} ${type}`);
  }
  await s.run(`UPDATE ${FOLDER_TABLE} SET legacy_uidvalidity = uidvalidity, legacy_last_uid = last_uid WHERE legacy_uidvalidity IS NULL`);
  await s.run(`DELETE FROM ${VERSION_TABLE}`);
  await s.run(`INSERT INTO ${VERSION_TABLE} (version) VALUES (?)`, [SCHEMA_VERSION]);
}

/** The stored version; null for a database from before versions were stored. */
export async function schemaVersion(s: Session): Promise<number | null> {
  const rows = await s.all(`SELECT MAX(version) AS v FROM ${VERSION_TABLE}`);
  return rows[0]?.v == null ? null : Number(rows[0].v);
}

export function newerSchema(version: number): string {
  return `the tables are of schema version ${version}, newer than this program's ${SCHEMA_VERSION}: install the benno-imap that made them`;
}

/** The schema as a script, for the README and `benno-imapuser --init-db --print`. */
export function schemaSql(d: Dialect): string {
  return schemaStatements(d)
    .map((s) => `${s};\n`)
    .join('\n');
}

/** A Date as the text both databases store. */
export function sqlTime(date: Date): string {
  return date.toISOString().replace('T', ' ').slice(0, 23);
}

/** The text sqlTime writes (or MySQL returns without milliseconds) as a Date. */
export function parseSqlTime(text: string): Date {
  return new Date(`${text.replace(' ', 'T')}Z`);
}
