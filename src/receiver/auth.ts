// AUTH users for benno-smtp: a file of "user:$scrypt$SALT$HASH" lines
// (base64), "#" comments allowed. Passwords are never stored in clear;
// `benno-smtp --hash-password` reads one on stdin and prints its line.

import { randomBytes, scryptSync, timingSafeEqual } from 'node:crypto';
import * as fs from 'node:fs';

const KEYLEN = 32;
const PREFIX = '$scrypt$';

export function hashPassword(password: string): string {
  const salt = randomBytes(16);
  return `${PREFIX}${salt.toString('base64')}$${scryptSync(password, salt, KEYLEN).toString('base64')}`;
}

export class AuthUsers {
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

  verify(user: string, password: string): boolean {
    const entry = this.users.get(user);
    // Hash even for unknown users, so timing does not tell which users exist.
    const salt = entry?.salt ?? Buffer.alloc(16);
    const hash = scryptSync(password, salt, KEYLEN);
    return entry !== undefined && entry.hash.length === KEYLEN && timingSafeEqual(hash, entry.hash);
  }
}
