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

function bad(url: string, why: string): StoreError {
  return new StoreError('config', `database ${url}: ${why}; expected sqlite:/PATH/FILE.db or mysql://USER@HOST[:PORT]/DBNAME`);
}

export function parseDatabaseUrl(url: string): DatabaseUrl {
  if (url.startsWith('sqlite:')) {
    const file = url.slice('sqlite:'.length);
    if (!path.isAbsolute(file)) throw bad(url, 'the SQLite file must be an absolute path');
    return { kind: 'sqlite', file };
  }
  if (!url.startsWith('mysql://')) throw bad(url, 'unknown kind of database');
  // Checked before URL parsing, so that no message can repeat a password.
  const authority = url.slice('mysql://'.length).split('/')[0];
  const at = authority.lastIndexOf('@');
  if (at >= 0 && authority.slice(0, at).includes(':')) {
    throw new StoreError('config', 'the database URL must not contain a password; put it in database_password_file');
  }
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw bad(url, 'not a URL');
  }
  const database = decodeURIComponent(u.pathname.replace(/^\//, ''));
  if (!u.username) throw bad(url, 'no user');
  if (!u.hostname) throw bad(url, 'no host');
  if (!database || database.includes('/')) throw bad(url, 'no database name');
  if (u.search || u.hash) throw bad(url, 'unexpected ? or #');
  return {
    kind: 'mysql',
    user: decodeURIComponent(u.username),
    // URL keeps an IPv6 address in brackets; the socket wants it bare.
    host: u.hostname.replace(/^\[(.*)\]$/, '$1'),
    port: u.port ? Number(u.port) : MYSQL_PORT,
    database,
  };
}

/** Opens the store a database URL names. Nothing connects or touches a file before the first call. */
export function openStore(url: string, options: StoreOptions = {}): AccountStore {
  const target = parseDatabaseUrl(url);
  return new SqlAccountStore(target.kind === 'sqlite' ? new SqliteBackend(target.file, options) : new MysqlBackend(target, options.password));
}
