import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { AuthUsers, hashPassword } from '../../src/receiver/auth';
import { AUTH_FAILURE_MEMORY_MS, AuthFailures, failureDelay } from '../../src/receiver/auth-failures';

function usersFile(lines: string[]): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'benno-auth-'));
  const file = path.join(dir, 'users');
  fs.writeFileSync(file, lines.join('\n') + '\n');
  return file;
}

describe('AUTH users', () => {
  // Made with the scryptSync of earlier versions: existing files keep working.
  const line = `exporter:${hashPassword('correct horse')}`;

  it('checks passwords without blocking the event loop; unknown users cost a hash too', async () => {
    const users = AuthUsers.read(usersFile(['# comment', line]));
    assert.equal(users.size, 1);
    let ticks = 0;
    const timer = setInterval(() => ticks++, 1);
    const results = await Promise.all([
      users.verify('exporter', 'correct horse', { urgent: true }),
      users.verify('exporter', 'battery staple', { urgent: true }),
      users.verify('nobody', 'correct horse', { urgent: true }),
      ...Array.from({ length: 6 }, () => users.verify('exporter', 'wrong', { urgent: false })),
    ]);
    clearInterval(timer);
    assert.deepEqual(results.slice(0, 3), [true, false, false]);
    assert.ok(ticks > 0, 'the event loop ran while hashing');
  });

  it('urgent checks go before waiting ones; a check whose client left is dropped unhashed', async () => {
    const users = AuthUsers.read(usersFile([line]));
    const order: string[] = [];
    const gone = new AbortController();
    const slow = Array.from({ length: 6 }, (_, i) => users.verify('exporter', `guess ${i}`, { urgent: false }).then(() => order.push(`guess ${i}`)));
    const dropped = users.verify('exporter', 'never hashed', { urgent: false, signal: gone.signal });
    gone.abort();
    await assert.rejects(dropped, { name: 'AbortError' });
    const honest = users.verify('exporter', 'correct horse', { urgent: true }).then((ok) => order.push(`honest ${ok}`));
    await Promise.all([...slow, honest]);
    // It starts as soon as one of the two running checks ends; only those two,
    // and the one that starts alongside it, can finish before it.
    assert.ok(order.indexOf('honest true') <= 3, order.join(', '));
  });

  it('names the line of a malformed entry', () => {
    assert.throws(() => AuthUsers.read(usersFile(['exporter:plaintext'])), /users, line 1: expected "user:\$scrypt\$SALT\$HASH"/);
  });
});

describe('AUTH failures per client address', () => {
  it('delays double from 1 s up to 30 s', () => {
    assert.deepEqual([1, 2, 3, 4, 5, 6, 7, 100].map(failureDelay), [1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
  });

  it('counts per address, forgets 15 minutes after the last failure', () => {
    const f = new AuthFailures();
    assert.equal(f.recent('192.0.2.1', 0), 0);
    assert.deepEqual(f.record('192.0.2.1', 0), { count: 1, delayMs: 1000 });
    assert.deepEqual(f.record('192.0.2.1', 10_000), { count: 2, delayMs: 2000 });
    assert.equal(f.recent('192.0.2.2', 10_000), 0);
    assert.equal(f.recent('192.0.2.1', 10_000 + AUTH_FAILURE_MEMORY_MS), 2);
    assert.equal(f.recent('192.0.2.1', 10_001 + AUTH_FAILURE_MEMORY_MS), 0);
    assert.deepEqual(f.record('192.0.2.1', 20_000 + AUTH_FAILURE_MEMORY_MS), { count: 1, delayMs: 1000 });
  });

  it('remembers a bounded number of addresses', () => {
    const f = new AuthFailures(2);
    f.record('a', 0);
    f.record('b', 1);
    f.record('c', 2);
    assert.deepEqual([f.recent('a', 3), f.recent('b', 3), f.recent('c', 3)], [0, 1, 1]);
  });
});
