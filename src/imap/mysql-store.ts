// The accounts database on MySQL/MariaDB, through mysql2 (pure JavaScript).
// The server does the locking; multi-row changes run in one transaction on
// one pooled connection. Tables are created by init() only (benno-imapuser
// --init-db): the account the programs use need not have the right to.

import mysql from 'mysql2/promise';
import { MYSQL, SCHEMA_VERSION, newerSchema, schemaVersion, upgradeSchema } from './schema';
import { Backend, Param, Row, Session, StoreError, databaseError } from './store';

export interface MysqlTarget {
  user: string;
  host: string;
  port: number;
  database: string;
}

function session(conn: mysql.Pool | mysql.PoolConnection): Session {
  return {
    all: async (sql: string, params: readonly Param[] = []) => {
      const [rows] = await conn.query(sql, [...params]);
      return rows as Row[];
    },
    run: async (sql: string, params: readonly Param[] = []) => {
      const [result] = await conn.query(sql, [...params]);
      return (result as mysql.ResultSetHeader).affectedRows;
    },
  };
}

export class MysqlBackend implements Backend {
  readonly dialect = MYSQL;
  readonly where: string;
  private readonly pool: mysql.Pool;
  private schemaChecked: Promise<void> | null = null;

  constructor(target: MysqlTarget, password: string | undefined) {
    this.where = `database mysql://${target.user}@${target.host}:${target.port}/${target.database}`;
    this.pool = mysql.createPool({
      host: target.host,
      port: target.port,
      user: target.user,
      password,
      database: target.database,
      charset: 'utf8mb4_bin',
      // DATETIME(3) as the text schema.ts stores, never through a local zone.
      dateStrings: true,
      timezone: 'Z',
      connectionLimit: 4,
    });
  }

  private fail(err: unknown): StoreError {
    const code = (err as { code?: string }).code;
    if (code === 'ER_NO_SUCH_TABLE' || code === 'ER_BAD_FIELD_ERROR') {
      return new StoreError('database', `${this.where}: ${(err as Error).message}; create or upgrade the tables with benno-imapuser --init-db`, { cause: err });
    }
    return databaseError(this.where, err);
  }

  async read<T>(work: (s: Session) => Promise<T>): Promise<T> {
    try {
      return await work(session(this.pool));
    } catch (err) {
      throw this.fail(err);
    }
  }

  async write<T>(work: (s: Session) => Promise<T>): Promise<T> {
    try {
      const conn = await this.pool.getConnection();
      try {
        await conn.beginTransaction();
        try {
          const result = await work(session(conn));
          await conn.commit();
          return result;
        } catch (err) {
          await conn.rollback().catch(() => undefined);
          throw err;
        }
      } finally {
        conn.release();
      }
    } catch (err) {
      throw this.fail(err);
    }
  }

  async init(): Promise<void> {
    try {
      await upgradeSchema(session(this.pool), MYSQL);
    } catch (err) {
      throw this.fail(err);
    }
    this.schemaChecked = Promise.resolve();
  }

  /** Once per process: the tables are of this version (only init() changes them here). */
  checkSchema(): Promise<void> {
    this.schemaChecked ??= this.read(async (s) => {
      // Version 1 had no version table.
      const version = await schemaVersion(s).catch((err) => {
        if ((err as { code?: string }).code === 'ER_NO_SUCH_TABLE') return 1;
        throw err;
      });
      if (version === SCHEMA_VERSION) return;
      throw new StoreError(
        'database',
        version !== null && version > SCHEMA_VERSION
          ? `${this.where}: ${newerSchema(version)}`
          : `${this.where}: the tables are of an older version of benno-imap (schema ${version ?? 1}, this one needs ${SCHEMA_VERSION}): upgrade them with benno-imapuser --init-db`,
      );
    }).catch((err) => {
      this.schemaChecked = null;
      throw err;
    });
    return this.schemaChecked;
  }

  async close(): Promise<void> {
    await this.pool.end();
  }

  isMissingParent(err: unknown): boolean {
    const cause = err instanceof StoreError ? err.cause : err;
    return (cause as { code?: string } | undefined)?.code === 'ER_NO_REFERENCED_ROW_2';
  }
}
