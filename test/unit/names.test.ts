// The spool directory's names: one module builds and recognises them all.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  EXPORT_STATUS_FILE,
  claimName,
  failedName,
  finalName,
  isFailedName,
  isWaitingName,
  parseClaimName,
  statusTempName,
  suffixProblem,
  tempName,
  tempOwner,
} from '../../src/spool/names';

describe('spool names', () => {
  const owner = { host: 'mx1', pid: 4242 };
  const final = finalName('ab'.repeat(32), '.eml');

  it('a final name waits; no temp, claim, set-aside or status name does', () => {
    assert.ok(isWaitingName(final, '.eml'));
    for (const other of [tempName(owner, 7), claimName(final, owner), failedName(final), EXPORT_STATUS_FILE, statusTempName(9)]) {
      assert.ok(!isWaitingName(other, '.eml'), other);
      assert.ok(!isWaitingName(other, ''), `${other} with an empty suffix`);
    }
    assert.ok(isFailedName(failedName(final)));
    assert.ok(!isFailedName(final));
  });

  it('temp and claim names give back their owner (and the claimed name)', () => {
    assert.deepEqual(tempOwner(tempName(owner, 7)), owner);
    assert.deepEqual(parseClaimName(claimName(final, owner)), { name: final, ...owner });
    assert.equal(tempOwner(final), null);
    assert.equal(parseClaimName(tempName(owner, 7)), null);
  });

  it('a suffix is letters, digits, dot, dash and underscore, and no ending of another state', () => {
    for (const good of ['.eml', '', '.msg', '_x-1']) assert.equal(suffixProblem(good), null, good);
    assert.match(suffixProblem('../x')!, /letters, digits/);
    assert.match(suffixProblem('.tmp')!, /reserved for files being written/);
    assert.match(suffixProblem('x.err')!, /reserved for files set aside/);
    assert.match(suffixProblem('.sending')!, /reserved for files being sent/);
  });
});
