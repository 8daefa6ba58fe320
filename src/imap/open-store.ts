// The `database =` setting of imapsync.conf to an AccountStore:
//   sqlite:/var/lib/benno-imap/benno-imap.db
//   mysql://USER@HOST[:PORT]/DBNAME
// A MySQL password never comes in the URL (it would end up in logs, error
// messages and `ps`): the caller reads database_password_file and passes it.

import * as path from 'node:path';
import { MysqlBackend, MysqlTarget } from './mysql-store';
import { SqliteBackend, SqliteOptions } from './sqlite-store';
import { AccountStore, SqlAccountStore, StoreError } from './store';

export type DatabaseUrl = { kind: 'sqlite'; file: string } | ({ kind: 'mysql' } & MysqlTarget);

export interface StoreOptions extends SqliteOptions {
  /** The MySQL user's password, read by the caller; ignored for SQLite. */
  password?: string;
}

const MYSQL_PORT = 3306;

/** A database setting that cannot be used; mayQuote: the setting holds no password and may be repeated in the message. */
export class DatabaseUrlError extends StoreError {
  constructor(
    why: string,
    readonly mayQuote: boolean,
  ) {
    super('config', why);
  }
}

/**
 * The one reading of a database setting: sqlite:/absolute/path or
 * mysql://USER@HOST[:PORT]/DBNAME. A password in the URL is refused before
 * anything else, and no message that could hold one quotes the URL.
 */
export function parseDatabaseUrl(v: string): DatabaseUrl {
  if (v.startsWith('sqlite:')) {
    const file = v.slice('sqlite:'.length);
    if (!file.startsWith('/') || file.startsWith('//')) throw new DatabaseUrlError('use sqlite:/absolute/path', true);
    return { kind: 'sqlite', file: path.normalize(file) };
  }
  if (!v.startsWith('mysql://')) throw new DatabaseUrlError('use sqlite:/path or mysql://USER@HOST[:PORT]/DBNAME', true);
  if (/^mysql:\/\/[^@/]*:[^@/]*@/.test(v)) throw new DatabaseUrlError('no password in the URL: put it in database_password_file', false);
  const m = /^mysql:\/\/([^@/]+)@(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::(\d+))?\/([A-Za-z0-9_$]+)$/.exec(v);
  if (!m) throw new DatabaseUrlError('use mysql://USER@HOST[:PORT]/DBNAME (DBNAME: letters, digits, _ and $)', false);
  let user: string;
  try {
    user = decodeURIComponent(m[1]);
  } catch {
    throw new DatabaseUrlError('the user name has a bad %-escape', false);
  }
  const port = m[3] === undefined ? MYSQL_PORT : Number(m[3]);
  if (port < 1 || port > 65535) throw new DatabaseUrlError(`port ${m[3]} is not 1-65535`, true);
  // The socket wants an IPv6 address without its brackets.
  return { kind: 'mysql', user, host: m[2].replace(/^\[(.*)\]$/, '$1'), port, database: m[4] };
}

/** Opens the store a database URL names. Nothing connects or touches a file before the first call. */
export function openStore(url: string | DatabaseUrl, options: StoreOptions = {}): AccountStore {
  const target = typeof url === 'string' ? parseDatabaseUrl(url) : url;
  return new SqlAccountStore(target.kind === 'sqlite' ? new SqliteBackend(target.file, options) : new MysqlBackend(target, options.password));
}
