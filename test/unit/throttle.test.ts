import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { LogThrottle, heldBackNote } from '../../src/ops/throttle';

describe('log throttle', () => {
  it('one line per key per interval; the next one says how many were held back', () => {
    const t = new LogThrottle(60_000);
    assert.equal(t.admit('a', 0), 0);
    assert.equal(t.admit('a', 1_000), null);
    assert.equal(t.admit('a', 59_999), null);
    assert.equal(t.admit('b', 2_000), 0, 'other keys have their own budget');
    assert.equal(t.admit('a', 60_000), 2);
    assert.equal(t.admit('a', 60_001), null);
    assert.equal(t.admit('a', 130_000), 1);
    assert.equal(heldBackNote(0), '');
    assert.equal(heldBackNote(1), ' (1 similar line not logged since the last one)');
    assert.equal(heldBackNote(5), ' (5 similar lines not logged since the last one)');
  });

  it('remembers a bounded number of keys, forgetting the least recently logged', () => {
    const t = new LogThrottle(60_000, 2);
    t.admit('a', 0);
    t.admit('b', 0);
    t.admit('c', 0); // forgets a
    assert.equal(t.admit('a', 1), 0, 'a was forgotten: its line comes at once');
    assert.equal(t.admit('c', 1), null);
  });
});
