// POP3's dot-stuffing undone (src/pop3/client.ts DotDecoder): however the
// TCP stream splits an answer, the message comes out byte for byte and the
// closing ".\r\n" is found, with what follows it left over.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DotDecoder } from '../../src/pop3/client';
import { b } from '../helpers/bytes';

/** What a server sends for a message (RFC 1939 3): every line that starts with "." gets one more; then ".\r\n". */
function stuffed(message: Buffer): Buffer {
  const out: Buffer[] = [];
  for (let pos = 0; pos < message.length; ) {
    const lf = message.indexOf(0x0a, pos);
    const end = lf < 0 ? message.length : lf + 1;
    if (message[pos] === 0x2e) out.push(b('.'));
    out.push(message.subarray(pos, end));
    pos = end;
  }
  return Buffer.concat([...out, b('.\r\n')]);
}

/** Feeds wire to a decoder in the given pieces; returns the message and what came after the end. */
function decode(pieces: Buffer[]): { message: Buffer; rest: Buffer | null } {
  const d = new DotDecoder();
  const out: Buffer[] = [];
  let rest: Buffer | null = null;
  for (const p of pieces) {
    const r = d.push(p);
    out.push(...r.out);
    if (r.rest) {
      rest = Buffer.concat([rest ?? Buffer.alloc(0), r.rest]);
      continue;
    }
    assert.equal(rest, null, 'nothing decoded after the end');
  }
  assert.equal(d.done, rest !== null);
  return { message: Buffer.concat(out), rest };
}

/** Every way to cut wire into three pieces (two cut points), for short wires. */
function* splits(wire: Buffer): Generator<Buffer[]> {
  for (let i = 0; i <= wire.length; i++) {
    for (let j = i; j <= wire.length; j++) yield [wire.subarray(0, i), wire.subarray(i, j), wire.subarray(j)];
  }
}

const tricky: [string, Buffer][] = [
  ['a line that is just "."', b('Subject: x\r\n\r\n.\r\nafter\r\n')],
  ['a line that is ".."', b('Subject: x\r\n\r\n..\r\n')],
  ['lines starting with dots, the first one too', b('.first\r\n...three\r\n. space\r\n')],
  ['". \\r" and ".\\r" not followed by LF', b('x\r\n.\rmid\r\n.\r\r\n')],
  ['an empty message', b('')],
  ['only empty lines', b('\r\n\r\n')],
  ['8-bit bytes and a NUL', Buffer.from([0xff, 0x00, 0x2e, 0x0d, 0x0a, 0x2e, 0x2e, 0x0d, 0x0a])],
  ['a last line of one dot', b('text\r\n.\r\n')],
];

describe('POP3 dot-stuffing (DotDecoder)', () => {
  for (const [what, message] of tricky) {
    it(`${what}: the same bytes however the stream is split, the end found, what follows left over`, () => {
      const wire = Buffer.concat([stuffed(message), b('+OK next answer\r\n')]);
      for (const pieces of splits(wire)) {
        const { message: got, rest } = decode(pieces);
        assert.deepEqual(got, message, `split at ${pieces[0].length}/${pieces[0].length + pieces[1].length}`);
        assert.deepEqual(rest, b('+OK next answer\r\n'));
      }
    });
  }

  it('random messages of dots, CRs and LFs, cut at random: decode(stuff(m)) is m', () => {
    let seed = 12345;
    const random = (n: number) => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) % n);
    const alphabet = [0x2e, 0x2e, 0x0d, 0x0a, 0x41, 0x20];
    for (let round = 0; round < 3000; round++) {
      const body = Buffer.from(Array.from({ length: random(60) }, () => alphabet[random(alphabet.length)]));
      // A server's message always ends with a line end before the closing line.
      const message = Buffer.concat([body, b('\r\n')]);
      const wire = stuffed(message);
      const pieces: Buffer[] = [];
      for (let pos = 0; pos < wire.length; ) {
        const n = 1 + random(8);
        pieces.push(wire.subarray(pos, pos + n));
        pos += n;
      }
      const { message: got, rest } = decode(pieces);
      assert.deepEqual(got, message, JSON.stringify(message.toString('latin1')));
      assert.deepEqual(rest, Buffer.alloc(0));
    }
  });

  it('a dot not doubled (a careless server) is taken as stuffing, as RFC 1939 readers do; ".\\n" alone also ends the answer', () => {
    assert.deepEqual(decode([b('.x\r\n.\r\n')]).message, b('x\r\n'));
    // ".\r" and then no LF: the dot was the stuffing, the CR is the message's, in one chunk or split after the CR.
    assert.deepEqual(decode([b('.\rX\r\n.\r\n')]).message, b('\rX\r\n'));
    assert.deepEqual(decode([b('.\r'), b('X\r\n.\r\n')]).message, b('\rX\r\n'));
    const bare = decode([b('line\n.\n'), b('rest')]);
    assert.deepEqual(bare.message, b('line\n'));
    assert.deepEqual(bare.rest, b('rest'));
  });

  it('the pieces are views of the chunk, not copies', () => {
    const chunk = b('abc\r\n..def\r\n');
    const { out } = new DotDecoder().push(chunk);
    assert.ok(out.every((p) => p.buffer === chunk.buffer));
  });

  it('nothing more is taken once the answer has ended', () => {
    const d = new DotDecoder();
    assert.deepEqual(d.push(b('.\r\n')).out, []);
    assert.deepEqual(d.push(b('.\r\nmore')), { out: [], rest: b('.\r\nmore') });
  });
});
