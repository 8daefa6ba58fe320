// A throwaway MariaDB for tests: its own data directory, socket and loopback
// port, a database and a password user made at start-up (--init-file), gone
// after stop(). Readiness is the server's own "ready for connections" line,
// then a real login; never a fixed sleep.

import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import mysql from 'mysql2/promise';
import { removeTree, tempDir } from './fs';
import { freePort } from './net';

const MARIADBD = '/usr/sbin/mariadbd';

export interface MariaDb {
  port: number;
  user: string;
  password: string;
  database: string;
  /** mysql://USER@127.0.0.1:PORT/DB, as imapsync.conf would name it. */
  url: string;
  /** A fresh empty database on the same server, the user allowed in it. */
  freshDatabase(): Promise<string>;
  stop(): Promise<void>;
}

function exited(proc: ChildProcess): Promise<void> {
  return new Promise((resolve) => (proc.exitCode !== null || proc.signalCode !== null ? resolve() : proc.once('exit', () => resolve())));
}

export async function startMariaDb(): Promise<MariaDb> {
  if (!fs.existsSync(MARIADBD)) throw new Error(`${MARIADBD} is missing: apt-get install -y mariadb-server (scripts/test-deps)`);
  const dir = tempDir('benno-mariadb-');
  const data = path.join(dir, 'data');
  execFileSync('mariadb-install-db', ['--no-defaults', `--datadir=${data}`, '--user=root', '--skip-test-db', '--auth-root-authentication-method=socket'], {
    stdio: 'pipe',
  });
  const port = await freePort();
  const user = 'benno';
  const password = randomBytes(12).toString('hex');
  const database = 'benno_imap';
  const grant = (db: string) => `GRANT ALL ON \`${db}\`.* TO '${user}'@'127.0.0.1';`;
  const init = path.join(dir, 'init.sql');
  fs.writeFileSync(
    init,
    `CREATE DATABASE ${database};\nCREATE USER '${user}'@'127.0.0.1' IDENTIFIED BY '${password}';\n${grant(database)}\n` +
      // For freshDatabase(): the test user may create its own throwaway databases.
      `GRANT ALL ON \`t\\_%\`.* TO '${user}'@'127.0.0.1';\n`,
  );
  const proc = spawn(
    MARIADBD,
    [
      '--no-defaults',
      `--datadir=${data}`,
      `--port=${port}`,
      `--socket=${path.join(dir, 'sock')}`,
      `--pid-file=${path.join(dir, 'pid')}`,
      '--bind-address=127.0.0.1',
      '--skip-name-resolve',
      `--init-file=${init}`,
      '--user=root',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let log = '';
  const stop = async () => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
    await exited(proc);
    removeTree(dir);
  };
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`MariaDB not ready within 60 s; log:\n${log}`)), 60_000);
      proc.stderr!.on('data', (d: Buffer) => {
        log += d.toString();
        if (/ready for connections/.test(log)) {
          clearTimeout(timer);
          resolve();
        }
      });
      proc.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`mariadbd exited (${code ?? signal}) before it was ready; log:\n${log}`));
      });
    });
    const conn = await mysql.createConnection({ host: '127.0.0.1', port, user, password, database });
    let n = 0;
    return {
      port,
      user,
      password,
      database,
      url: `mysql://${user}@127.0.0.1:${port}/${database}`,
      freshDatabase: async () => {
        const name = `t_${++n}`;
        await conn.query(`CREATE DATABASE ${name}`);
        return `mysql://${user}@127.0.0.1:${port}/${name}`;
      },
      stop: async () => {
        await conn.end();
        await stop();
      },
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
