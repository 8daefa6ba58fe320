// AUTH users for benno-smtp: a file of "user:$scrypt$SALT$HASH" lines
// (base64), "#" comments allowed. Passwords are never stored in clear;
// `benno-smtp --hash-password` reads one on stdin and prints its line.
//
// Checking a password costs one scrypt (N=16384, r=8: about 20 ms of CPU and
// 16 MB). It runs on libuv's thread pool, never on the event loop, so other
// sessions go on while it runs. At most HASH_CONCURRENCY run at once: the
// pool has four threads, and the spool's writes and syncs need the rest.
// Waiting checks are taken in two queues, "urgent" first: the caller puts a
// client with recent failures in the other one, so that a client guessing
// passwords cannot make an honest client's login wait behind its guesses.

import { randomBytes, scrypt, scryptSync, timingSafeEqual } from 'node:crypto';
import * as fs from 'node:fs';

const KEYLEN = 32;
const PREFIX = '$scrypt$';
/** scrypt computations at once. */
export const HASH_CONCURRENCY = 2;

export function hashPassword(password: string): string {
  const salt = randomBytes(16);
  return `${PREFIX}${salt.toString('base64')}$${scryptSync(password, salt, KEYLEN).toString('base64')}`;
}

interface Job {
  password: string;
  salt: Buffer;
  resolve: (hash: Buffer) => void;
  reject: (err: Error) => void;
}

/** scrypt with the parameters of hashPassword(), HASH_CONCURRENCY at a time, urgent jobs first. */
class HashQueue {
  private running = 0;
  private readonly urgent: Job[] = [];
  private readonly later: Job[] = [];

  /** Rejects with an AbortError, without hashing, when signal aborts before the job starts. */
  hash(password: string, salt: Buffer, urgent: boolean, signal?: AbortSignal): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      const queue = urgent ? this.urgent : this.later;
      const job: Job = { password, salt, resolve, reject };
      if (signal?.aborted) return reject(abortError());
      // A client that went away does not keep its place: the queues hold live sessions only.
      signal?.addEventListener(
        'abort',
        () => {
          const i = queue.indexOf(job);
          if (i < 0) return;
          queue.splice(i, 1);
          reject(abortError());
        },
        { once: true },
      );
      queue.push(job);
      this.next();
    });
  }

  private next(): void {
    while (this.running < HASH_CONCURRENCY) {
      const job = this.urgent.shift() ?? this.later.shift();
      if (!job) return;
      this.running++;
      scrypt(job.password, job.salt, KEYLEN, (err, hash) => {
        this.running--;
        if (err) job.reject(err);
        else job.resolve(hash);
        this.next();
      });
    }
  }
}

function abortError(): Error {
  return Object.assign(new Error('the client went away'), { name: 'AbortError' });
}

export class AuthUsers {
  private readonly queue = new HashQueue();

  private constructor(private readonly users: Map<string, { salt: Buffer; hash: Buffer }>) {}

  /** Reads the users file; throws with file and line on a malformed entry. */
  static read(file: string): AuthUsers {
    const users = new Map<string, { salt: Buffer; hash: Buffer }>();
    fs.readFileSync(file, 'utf8')
      .split(/\r?\n/)
      .forEach((raw, i) => {
        const line = raw.trim();
        if (line === '' || line.startsWith('#')) return;
        const colon = line.indexOf(':');
        const user = line.slice(0, colon);
        const secret = line.slice(colon + 1);
        const m = /^\$scrypt\$([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+)$/.exec(secret);
        if (colon <= 0 || !m) throw new Error(`${file}, line ${i + 1}: expected "user:$scrypt$SALT$HASH" (make one with benno-smtp --hash-password)`);
        users.set(user, { salt: Buffer.from(m[1], 'base64'), hash: Buffer.from(m[2], 'base64') });
      });
    return new AuthUsers(users);
  }

  get size(): number {
    return this.users.size;
  }

  /**
   * Whether the password is the user's. Rejects with an AbortError when
   * signal aborts while the check is still waiting for its turn.
   */
  async verify(user: string, password: string, options: { urgent: boolean; signal?: AbortSignal }): Promise<boolean> {
    const entry = this.users.get(user);
    // Hash even for unknown users, so timing does not tell which users exist.
    const salt = entry?.salt ?? Buffer.alloc(16);
    const hash = await this.queue.hash(password, salt, options.urgent, options.signal);
    return entry !== undefined && entry.hash.length === KEYLEN && timingSafeEqual(hash, entry.hash);
  }
}
