import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { describe, it } from 'node:test';
import { createLogger } from '../../src/ops/log';
import { UNSAFE_CHARACTER, isUnsafeCodePoint, printable } from '../../src/ops/text';

function capture(journal: boolean, level: 'info' | 'debug' = 'info') {
  const stream = new PassThrough();
  const lines: string[] = [];
  stream.on('data', (d: Buffer) => lines.push(...d.toString().split('\n').filter(Boolean)));
  return { log: createLogger({ program: 'benno-test', level, journal, stream }), lines };
}

describe('logging', () => {
  it('under the journal: one line per event with its syslog priority', async () => {
    const { log, lines } = capture(true);
    log.error('e');
    log.warn('w');
    log.info('i');
    log.debug('not shown at info');
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(lines, ['<3>e', '<4>w', '<6>i']);
  });

  it('outside systemd: timestamp, program[pid], level', async () => {
    const { log, lines } = capture(false);
    log.info('ABC123: archived');
    await new Promise((r) => setImmediate(r));
    assert.match(lines[0], new RegExp(`^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{3}Z benno-test\\[${process.pid}\\]: info: ABC123: archived$`));
  });

  it('control characters from peers cannot split or forge a line', () => {
    assert.equal(printable('a\r\nFAKE: line\x00\x1b[31m'), 'a\\x{0D}\\x{0A}FAKE: line\\x{00}\\x{1B}[31m');
    assert.equal(printable('jürgen@bücher.example'), 'jürgen@bücher.example');
    assert.equal(printable('a\u0085b\u2028c\u202ed\u009b'), 'a\\x{85}b\\x{2028}c\\x{202E}d\\x{9B}');
  });

  it('the logger escapes every line itself: a value that reaches it unescaped cannot forge one', async () => {
    const { log, lines } = capture(true);
    const queueId = 'ABC\n<3>FORGED: archiving failed\r\nX';
    log.info(`${queueId}: archived`);
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(lines, ['<6>ABC\\x{0A}<3>FORGED: archiving failed\\x{0D}\\x{0A}X: archived']);
  });

  it('the fast check of a code point agrees with the definition, for every code point', () => {
    for (let cp = 0; cp <= 0x10ffff; cp++) {
      if (cp >= 0xd800 && cp <= 0xdfff) continue;
      if (isUnsafeCodePoint(cp) !== UNSAFE_CHARACTER.test(String.fromCodePoint(cp))) assert.fail(`U+${cp.toString(16)}`);
    }
  });
});
