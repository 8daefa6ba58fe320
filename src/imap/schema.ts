// The accounts database, written once for SQLite and MySQL/MariaDB. Where
// the two speak differently (auto-increment keys, time columns, table
// options, upsert) the difference lives in a Dialect and nowhere else; all
// queries use the `?` placeholders both drivers bind.
//
// Times are stored as UTC text 'YYYY-MM-DD HH:MM:SS.sss': SQLite's own date
// format (its date functions and the sqlite3 tool read it) and what MySQL
// takes and, with dateStrings, returns for DATETIME(3), so neither side ever
// converts through a local time zone.

export interface Dialect {
  readonly name: 'sqlite' | 'mysql';
  /** The id column of imapuser; ids are never reused, so state saved for a deleted account cannot land on a new one. */
  readonly autoId: string;
  readonly time: string;
  /** After each CREATE TABLE's closing parenthesis. */
  readonly tableOptions: string;
  /** The clause after INSERT … VALUES (…) that turns it into an update of `columns` when `key` exists. */
  upsert(key: readonly string[], columns: readonly string[]): string;
}

export const SQLITE: Dialect = {
  name: 'sqlite',
  autoId: 'INTEGER PRIMARY KEY AUTOINCREMENT',
  time: 'TEXT',
  tableOptions: '',
  upsert: (key, columns) => `ON CONFLICT (${key.join(', ')}) DO UPDATE SET ${columns.map((c) => `${c} = excluded.${c}`).join(', ')}`,
};

export const MYSQL: Dialect = {
  name: 'mysql',
  autoId: 'BIGINT PRIMARY KEY AUTO_INCREMENT',
  time: 'DATETIME(3)',
  // _bin: user names and folder names compare exactly, as in SQLite; the
  // server's default collation would make 'Archiv' and 'archiv' one key.
  tableOptions: ' ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin',
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
} as const;

export const ACCOUNT_TABLE = 'imapuser';
export const FOLDER_TABLE = 'imapuser_folder';
export const STATUS_TABLE = 'imapuser_status';

/** CREATE TABLE statements in dependency order; each is safe to run on an existing database. */
export function schemaStatements(d: Dialect): string[] {
  const owned = `FOREIGN KEY (account_id) REFERENCES ${ACCOUNT_TABLE} (id) ON DELETE CASCADE`;
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
  account_id BIGINT NOT NULL,
  folder VARCHAR(${LIMITS.folder}) NOT NULL,
  uidvalidity BIGINT NOT NULL,
  last_uid BIGINT NOT NULL,
  updated ${d.time} NOT NULL,
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
  ];
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
