// The pure parts of the accounts database: the database URL, the schema text
// of both dialects, the time format, and who counts as a lock's dead holder.

import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { holderGone } from '../../src/imap/file-lock';
import { parseDatabaseUrl } from '../../src/imap/open-store';
import { MYSQL, SQLITE, parseSqlTime, schemaSql, sqlTime } from '../../src/imap/schema';
import { StoreError } from '../../src/imap/store';
import { ROOT } from '../helpers/daemon';

function configError(url: string, re: RegExp): void {
  assert.throws(
    () => parseDatabaseUrl(url),
    (err: unknown) => err instanceof StoreError && err.kind === 'config' && re.test(err.message),
  );
}

describe('database URL', () => {
  it('sqlite: takes an absolute path', () => {
    assert.deepEqual(parseDatabaseUrl('sqlite:/var/lib/benno-imap/benno-imap.db'), { kind: 'sqlite', file: '/var/lib/benno-imap/benno-imap.db' });
    configError('sqlite:benno-imap.db', /use sqlite:\/absolute\/path/);
  });

  it('mysql: user, host, port (3306 by default), database; IPv6 without brackets', () => {
    assert.deepEqual(parseDatabaseUrl('mysql://benno@db.example/bennoimap'), { kind: 'mysql', user: 'benno', host: 'db.example', port: 3306, database: 'bennoimap' });
    assert.deepEqual(parseDatabaseUrl('mysql://benno@[::1]:3307/b'), { kind: 'mysql', user: 'benno', host: '::1', port: 3307, database: 'b' });
    assert.equal((parseDatabaseUrl('mysql://b%40x@h/d') as { user: string }).user, 'b@x');
  });

  it('refuses a password in the URL without repeating it, and incomplete URLs', () => {
    assert.throws(
      () => parseDatabaseUrl('mysql://benno:S3cr3t@db.example/bennoimap'),
      (err: unknown) => err instanceof StoreError && err.kind === 'config' && /database_password_file/.test(err.message) && !err.message.includes('S3cr3t'),
    );
    configError('mysql://db.example/bennoimap', /USER@HOST/);
    configError('mysql://benno@db.example:3306', /DBNAME/);
    configError('mysql://benno@db.example/a/b', /DBNAME/);
    configError('postgres://benno@db.example/x', /use sqlite:\/path or mysql:/);
    configError('mysql://benno@db.example/x?ssl=1', /DBNAME/);
  });
});

describe('schema', () => {
  it('both dialects have the unique account key and cascade deletes to folder state and run status', () => {
    for (const d of [SQLITE, MYSQL]) {
      const sql = schemaSql(d);
      assert.match(sql, /CREATE TABLE IF NOT EXISTS imapuser \([\s\S]*UNIQUE \(user, host\)/);
      assert.match(sql, /imapuser_folder \([\s\S]*PRIMARY KEY \(account_id, folder\),\s*FOREIGN KEY \(account_id\) REFERENCES imapuser \(id\) ON DELETE CASCADE/);
      assert.match(sql, /imapuser_status \([\s\S]*FOREIGN KEY \(account_id\) REFERENCES imapuser \(id\) ON DELETE CASCADE/);
    }
    assert.match(schemaSql(SQLITE), /id INTEGER PRIMARY KEY AUTOINCREMENT/);
    assert.match(schemaSql(MYSQL), /id BIGINT PRIMARY KEY AUTO_INCREMENT[\s\S]*COLLATE=utf8mb4_bin/);
  });

  it('upserts in each dialect update only the named columns', () => {
    assert.equal(SQLITE.upsert(['a', 'b'], ['c']), 'ON CONFLICT (a, b) DO UPDATE SET c = excluded.c');
    assert.equal(MYSQL.upsert(['a', 'b'], ['c', 'd']), 'ON DUPLICATE KEY UPDATE c = VALUES(c), d = VALUES(d)');
  });

  it('times are UTC text with milliseconds and read back to the same instant', () => {
    const t = new Date('2025-03-30T01:59:59.123Z');
    assert.equal(sqlTime(t), '2025-03-30 01:59:59.123');
    assert.deepEqual(parseSqlTime(sqlTime(t)), t);
    assert.deepEqual(parseSqlTime('2025-03-30 01:59:59'), new Date('2025-03-30T01:59:59Z'));
  });
});

describe('lock holder', () => {
  it('is gone when its pid is not running here, or runs with another start time; never judged on another host', () => {
    const host = os.hostname();
    assert.equal(holderGone(`${process.pid} ${host}`), false, 'alive, start time unknown');
    assert.equal(holderGone(`${process.pid} ${host} 1`), true, 'pid reused by a younger process');
    assert.equal(holderGone(`999999999 ${host} 5`), true, 'no such process');
    assert.equal(holderGone(`999999999 other-${host} 5`), false);
    assert.equal(holderGone(''), false);
  });
});

describe('README', () => {
  it('shows the MySQL tables exactly as --init-db creates them', () => {
    const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
    assert.ok(readme.includes(`\`\`\`sql\n${schemaSql(MYSQL).trimEnd()}\n\`\`\``), 'README.md has the SQL of schemaSql(MYSQL)');
  });
});
