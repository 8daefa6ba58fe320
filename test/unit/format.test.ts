import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  DEFAULT_ENVELOPE_NAMES,
  bareAddress,
  envelopeBlock,
  headerLine,
  isFieldName,
  parseEnvelope,
  toCrlf,
} from '../../src/spool/format';

const b = (s: string) => Buffer.from(s, 'latin1');

describe('spool format: addresses', () => {
  const cases: [string, string][] = [
    ['<a@example.com>', 'a@example.com'],
    ['<>', ''],
    ['', ''], // non_smtpd_milters send the null sender as an empty string
    ['a@example.com', 'a@example.com'], // and other senders without brackets
    [' <a@example.com> ', 'a@example.com'],
    ['<"a b"@example.com>', '"a b"@example.com'],
    ['<@relay.example:a@example.com>', '@relay.example:a@example.com'],
    ['<a\r\nX-Forged: 1@example.com>', 'aX-Forged: 1@example.com'],
  ];
  for (const [input, expected] of cases) {
    it(`${JSON.stringify(input)} → ${JSON.stringify(expected)}`, () => assert.deepEqual(bareAddress(b(input)), b(expected)));
  }

  it('UTF-8 addresses stay bytes', () => {
    const addr = Buffer.from('<jürgen@bücher.example>', 'utf8');
    assert.deepEqual(bareAddress(addr), Buffer.from('jürgen@bücher.example', 'utf8'));
  });
});

describe('spool format: envelope block', () => {
  it('sender line, one line per recipient in order, CRLF', () => {
    const block = envelopeBlock(DEFAULT_ENVELOPE_NAMES, b('<s@example.com>'), [b('<r1@example.org>'), b('<r2@example.org>')]);
    assert.equal(
      block.toString('latin1'),
      'X-REAL-MAILFROM: <s@example.com>\r\nX-REAL-RCPTTO: <r1@example.org>\r\nX-REAL-RCPTTO: <r2@example.org>\r\n',
    );
  });

  it('null sender is <>', () => {
    const block = envelopeBlock(DEFAULT_ENVELOPE_NAMES, b('<>'), [b('<r@example.org>')]);
    assert.match(block.toString('latin1'), /^X-REAL-MAILFROM: <>\r\n/);
  });

  it('configurable names', () => {
    const block = envelopeBlock({ sender: 'X-Env-From', recipient: 'X-Env-To' }, b('a@b'), [b('c@d')]);
    assert.equal(block.toString('latin1'), 'X-Env-From: <a@b>\r\nX-Env-To: <c@d>\r\n');
  });

  it('parses back what it writes, and finds where the message starts', () => {
    const rcpts = Array.from({ length: 100 }, (_, i) => b(`<r${i}@example.org>`));
    const block = envelopeBlock(DEFAULT_ENVELOPE_NAMES, b('<>'), rcpts);
    const file = Buffer.concat([block, b('Subject: x\r\n\r\nbody\r\n')]);
    const parsed = parseEnvelope(file)!;
    assert.deepEqual(parsed.sender, b(''));
    assert.deepEqual(parsed.recipients, rcpts.map(bareAddress));
    assert.equal(parsed.messageOffset, block.length);
  });

  it('a file without envelope lines does not parse', () => {
    assert.equal(parseEnvelope(b('Subject: x\r\n\r\n')), null);
    assert.equal(parseEnvelope(b('X-REAL-MAILFROM: <a@b>\r\nSubject: x\r\n')), null, 'no recipient');
    assert.equal(parseEnvelope(b('X-REAL-RCPTTO: <a@b>\r\n')), null, 'no sender');
  });
});

describe('spool format: headers', () => {
  it('name, colon, value as received, CRLF', () => {
    assert.equal(headerLine(b('Subject'), b(' hi')).toString('latin1'), 'Subject: hi\r\n');
    assert.equal(headerLine(b('X-NoSpace'), b('v')).toString('latin1'), 'X-NoSpace:v\r\n');
    assert.equal(headerLine(b('X-Tab'), b('\tv')).toString('latin1'), 'X-Tab:\tv\r\n');
    assert.equal(headerLine(b('X-Empty'), b('')).toString('latin1'), 'X-Empty:\r\n');
  });

  it('folding with bare LF becomes CRLF, the continuation white space stays', () => {
    assert.equal(headerLine(b('X-Folded'), b(' a\n\tb\n   c')).toString('latin1'), 'X-Folded: a\r\n\tb\r\n   c\r\n');
  });

  it('8-bit and bare CR bytes are untouched', () => {
    const v = Buffer.from([0x20, 0xff, 0xc3, 0x28, 0x0d, 0x41]);
    assert.deepEqual(headerLine(b('X-8bit'), v), Buffer.concat([b('X-8bit:'), v, b('\r\n')]));
  });

  it('toCrlf leaves CRLF alone and returns the same buffer when nothing changes', () => {
    const v = b('a\r\nb');
    assert.equal(toCrlf(v), v);
    assert.equal(toCrlf(b('\na\r\n\n')).toString('latin1'), '\r\na\r\n\r\n');
  });

  it('field names', () => {
    assert.ok(isFieldName('X-REAL-MAILFROM'));
    assert.ok(!isFieldName('X REAL'));
    assert.ok(!isFieldName('X:Y'));
    assert.ok(!isFieldName(''));
  });
});
