// The accounts database as an SQLite file, through sql.js (SQLite compiled to
// WebAssembly: no native module, so the package stays Architecture: all).
// sql.js holds a database in memory, not on disk, so this backend does what
// SQLite's own locking and journal would do, for a whole file at a time:
//
// - a read loads the file as it is now; the file is only ever replaced by
//   rename, so a reader sees one complete version and needs no lock;
// - a write takes FILE.lock (file-lock.ts), loads the file under it (the
//   last writer's change is never lost), runs its statements in a
//   transaction, writes the whole database to FILE.tmp, fsyncs it, renames it
//   over FILE and fsyncs the directory. A crash at any point leaves the old
//   or the new file; FILE.tmp belongs to the lock holder and is replaced by
//   the next one.
//
// The file keeps its mode, owner and group across writes: benno-imapuser
// (root), the web login (the web server's user) and benno-imapsync all write
// it, and each must still be able to read what the others wrote.

import * as fs from 'node:fs';
import initSqlJs from 'sql.js';
import { replaceFileDurably } from '../ops/durable-file';
import { LockTimeout, withFileLock } from './file-lock';
import { SQLITE, upgradeSchema } from './schema';
import { Backend, Param, Row, Session, StoreError, databaseError } from './store';

export interface SqliteOptions {
  /** Mode of a new database file; default 0640 (it holds encrypted passwords). */
  fileMode?: number;
  /** How long a write waits for another program's; default 30 s. */
  lockTimeoutMs?: number;
}

let engine: Promise<initSqlJs.SqlJsStatic> | undefined;

function errno(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException).code;
}

function readIfExists(file: string): Buffer | null {
  try {
    return fs.readFileSync(file);
  } catch (err) {
    if (errno(err) === 'ENOENT') return null;
    throw err;
  }
}

function session(db: initSqlJs.Database): Session {
  return {
    all: async (sql: string, params: readonly Param[] = []) => {
      const stmt = db.prepare(sql);
      try {
        stmt.bind([...params]);
        const rows: Row[] = [];
        while (stmt.step()) rows.push(stmt.getAsObject());
        return rows;
      } finally {
        stmt.free();
      }
    },
    run: async (sql: string, params: readonly Param[] = []) => {
      db.run(sql, [...params]);
      return db.getRowsModified();
    },
  };
}

/** Gives the new file the old one's owner and group, so that the other writers can still read it. */
function keepOwner(fd: number, old: fs.Stats, file: string): void {
  if (old.uid === process.geteuid?.() && old.gid === process.getegid?.()) return;
  try {
    fs.fchownSync(fd, old.uid, old.gid);
  } catch (err) {
    if (errno(err) !== 'EPERM') throw err;
    // Not root: we may still keep the group, which is what lets the other
    // writers read the file.
    try {
      fs.fchownSync(fd, -1, old.gid);
    } catch (err2) {
      if (errno(err2) !== 'EPERM') throw err2;
      throw new StoreError('database', `cannot keep the group ${old.gid} of ${file}: this user is not in it`, { cause: err2 });
    }
  }
}

/** Replaces file by bytes durably, with the old file's owner, group and mode (a new one gets newMode). */
function replaceFile(file: string, bytes: Uint8Array, newMode: number): void {
  replaceFileDurably(file, bytes, {
    prepare: (fd, old) => {
      if (old) keepOwner(fd, old, file);
      // After the chown, which clears set-id bits; not through the umask.
      fs.fchmodSync(fd, old ? old.mode & 0o7777 : newMode);
    },
  });
}

export class SqliteBackend implements Backend {
  readonly dialect = SQLITE;
  readonly where: string;

  constructor(
    private readonly file: string,
    private readonly options: SqliteOptions = {},
  ) {
    this.where = `database ${file}`;
  }

  /**
   * The file (or an empty database when it does not exist yet), with the
   * tables of this version in place: an older file is upgraded in memory on
   * every load, and on disk by the first write.
   */
  private async load(): Promise<initSqlJs.Database> {
    engine ??= initSqlJs();
    const db = new (await engine).Database(readIfExists(this.file));
    try {
      // Per connection, and not inside a transaction: without it SQLite ignores ON DELETE CASCADE.
      db.run('PRAGMA foreign_keys = ON');
      await upgradeSchema(session(db), SQLITE);
      return db;
    } catch (err) {
      db.close();
      throw err;
    }
  }

  async read<T>(work: (s: Session) => Promise<T>): Promise<T> {
    try {
      const db = await this.load();
      try {
        return await work(session(db));
      } finally {
        db.close();
      }
    } catch (err) {
      throw databaseError(this.where, err);
    }
  }

  async write<T>(work: (s: Session) => Promise<T>): Promise<T> {
    try {
      return await withFileLock(`${this.file}.lock`, () => this.writeLocked(work), { timeoutMs: this.options.lockTimeoutMs });
    } catch (err) {
      if (err instanceof LockTimeout) {
        throw new StoreError('locked', `${this.where}: a write waited too long: ${err.message}`, { cause: err });
      }
      throw databaseError(this.where, err);
    }
  }

  private async writeLocked<T>(work: (s: Session) => Promise<T>): Promise<T> {
    const db = await this.load();
    try {
      db.run('BEGIN IMMEDIATE');
      let result: T;
      try {
        result = await work(session(db));
        db.run('COMMIT');
      } catch (err) {
        db.run('ROLLBACK');
        throw err;
      }
      replaceFile(this.file, db.export(), this.options.fileMode ?? 0o640);
      return result;
    } finally {
      db.close();
    }
  }

  async init(): Promise<void> {
    await this.write(async () => undefined);
  }

  async close(): Promise<void> {
    // Nothing stays open between calls.
  }

  async checkSchema(): Promise<void> {
    // load() upgrades every file it reads.
  }

  isMissingParent(err: unknown): boolean {
    const cause = err instanceof StoreError ? err.cause : err;
    return cause instanceof Error && /FOREIGN KEY constraint failed/.test(cause.message);
  }
}
