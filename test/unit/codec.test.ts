import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as C from '../../src/milter/constants';
import {
  MilterProtocolError,
  PacketDecoder,
  decodeCommand,
  decodeReply,
  encodeConnect,
  encodeHeader,
  encodeMacros,
  encodeOptneg,
  encodePacket,
  encodeReply,
  encodeStrings,
  splitStrings,
} from '../../src/milter/codec';

function decodeAll(bytes: Buffer, pieces: number[] = [bytes.length]) {
  const d = new PacketDecoder();
  const out = [];
  let off = 0;
  for (const n of pieces) {
    d.push(bytes.subarray(off, off + n));
    off += n;
    for (let p = d.next(); p; p = d.next()) out.push(decodeCommand(p));
  }
  assert.equal(off, bytes.length, 'pieces cover the input');
  assert.equal(d.pending, 0);
  return out;
}

const roundTrips: [string, Buffer, object][] = [
  [
    'O optneg with macro lists',
    encodeOptneg(6, 0x1ff, 0x1fffff, new Map([[C.SMFIM_EOM, 'i {daemon_name}']])),
    { type: 'optneg', version: 6, actions: 0x1ff, protocol: 0x1fffff, macroLists: new Map([[C.SMFIM_EOM, 'i {daemon_name}']]) },
  ],
  [
    'D macros, braces dropped from names',
    encodeMacros(C.SMFIC_MAIL, { i: 'ABC', '{daemon_name}': 'smtpd', '{mail_addr}': 'a@b' }),
    { type: 'macro', stage: C.SMFIC_MAIL, macros: new Map([['i', 'ABC'], ['daemon_name', 'smtpd'], ['mail_addr', 'a@b']]) },
  ],
  ['D empty macro packet', encodeMacros(C.SMFIC_RCPT, {}), { type: 'macro', stage: C.SMFIC_RCPT, macros: new Map() }],
  [
    'C connect inet',
    encodeConnect('mx.example.org', C.SMFIA_INET, 25, '192.0.2.1'),
    { type: 'connect', hostname: Buffer.from('mx.example.org'), family: C.SMFIA_INET, port: 25, address: Buffer.from('192.0.2.1') },
  ],
  [
    'C connect unknown family',
    encodeConnect('unknown', C.SMFIA_UNKNOWN, 0, ''),
    { type: 'connect', hostname: Buffer.from('unknown'), family: C.SMFIA_UNKNOWN, port: 0, address: Buffer.alloc(0) },
  ],
  ['H helo', encodeStrings(C.SMFIC_HELO, ['client.example']), { type: 'helo', name: Buffer.from('client.example') }],
  [
    'M mail with ESMTP args',
    encodeStrings(C.SMFIC_MAIL, ['<a@example.com>', 'SIZE=100', 'BODY=8BITMIME']),
    { type: 'mail', args: [Buffer.from('<a@example.com>'), Buffer.from('SIZE=100'), Buffer.from('BODY=8BITMIME')] },
  ],
  ['M null sender', encodeStrings(C.SMFIC_MAIL, ['<>']), { type: 'mail', args: [Buffer.from('<>')] }],
  ['R rcpt', encodeStrings(C.SMFIC_RCPT, ['<r@example.org>']), { type: 'rcpt', args: [Buffer.from('<r@example.org>')] }],
  ['T data', encodePacket(C.SMFIC_DATA), { type: 'data' }],
  [
    'L header, 8-bit and folded value kept',
    encodeHeader('Subject', Buffer.from(' gr\xfc\xdfe\n\tmore', 'latin1')),
    { type: 'header', name: Buffer.from('Subject'), value: Buffer.from(' gr\xfc\xdfe\n\tmore', 'latin1') },
  ],
  ['L header with empty value', encodeHeader('X-Empty', ''), { type: 'header', name: Buffer.from('X-Empty'), value: Buffer.alloc(0) }],
  ['N eoh', encodePacket(C.SMFIC_EOH), { type: 'eoh' }],
  [
    'B body keeps NUL and CR bytes',
    encodePacket(C.SMFIC_BODY, Buffer.from([0, 13, 10, 46, 13, 10, 255])),
    { type: 'body', chunk: Buffer.from([0, 13, 10, 46, 13, 10, 255]) },
  ],
  ['E eom', encodePacket(C.SMFIC_BODYEOB), { type: 'eom', chunk: Buffer.alloc(0) }],
  ['E eom with final chunk', encodePacket(C.SMFIC_BODYEOB, Buffer.from('x')), { type: 'eom', chunk: Buffer.from('x') }],
  ['A abort', encodePacket(C.SMFIC_ABORT), { type: 'abort' }],
  ['Q quit', encodePacket(C.SMFIC_QUIT), { type: 'quit' }],
  ['K quit, new connection', encodePacket(C.SMFIC_QUIT_NC), { type: 'quit_nc' }],
  ['U unknown SMTP command', encodeStrings(C.SMFIC_UNKNOWN, ['XFOO bar']), { type: 'unknown', command: Buffer.from('XFOO bar') }],
];

describe('codec: every MTA command round-trips', () => {
  for (const [name, bytes, expected] of roundTrips) {
    it(name, () => {
      assert.deepEqual(decodeAll(bytes), [expected]);
    });
  }
});

describe('codec: framing', () => {
  const stream = Buffer.concat(roundTrips.map(([, b]) => b));
  const expected = roundTrips.map(([, , e]) => e);

  it('many packets in one read (coalesced)', () => {
    assert.deepEqual(decodeAll(stream), expected);
  });

  it('one byte per read (split everywhere, also inside the length)', () => {
    assert.deepEqual(decodeAll(stream, Array(stream.length).fill(1)), expected);
  });

  it('random split points', () => {
    for (let round = 0; round < 50; round++) {
      const pieces: number[] = [];
      for (let left = stream.length; left > 0; ) {
        const n = Math.min(left, 1 + Math.floor(Math.random() * 40));
        pieces.push(n);
        left -= n;
      }
      assert.deepEqual(decodeAll(stream, pieces), expected);
    }
  });

  it('a packet inside one read is a view, not a copy', () => {
    const bytes = encodePacket(C.SMFIC_BODY, Buffer.alloc(1000, 0x61));
    const d = new PacketDecoder();
    d.push(bytes);
    const p = d.next()!;
    assert.equal(p.data.buffer, bytes.buffer);
  });

  it('a 65,536-byte body chunk (Postfix maximum) passes', () => {
    const bytes = encodePacket(C.SMFIC_BODY, Buffer.alloc(C.MILTER_CHUNK_SIZE, 0x78));
    const [c] = decodeAll(bytes, [1000, 30000, bytes.length - 31000]);
    assert.equal(c.type, 'body');
    assert.equal(c.type === 'body' && c.chunk.length, C.MILTER_CHUNK_SIZE);
  });

  it('an oversized packet is refused from its length alone, before its data arrives', () => {
    const d = new PacketDecoder(70000);
    const head = Buffer.alloc(5);
    head.writeUInt32BE(70001, 0);
    head[4] = C.SMFIC_BODY;
    d.push(head);
    assert.throws(() => d.next(), MilterProtocolError);
    const d2 = new PacketDecoder();
    const huge = Buffer.from([0xff, 0xff, 0xff, 0xff]);
    d2.push(huge);
    assert.throws(() => d2.next(), /exceeds the limit/);
  });

  it('a zero-length packet is refused', () => {
    const d = new PacketDecoder();
    d.push(Buffer.alloc(4));
    assert.throws(() => d.next(), /length 0/);
  });

  it('an incomplete packet waits for more bytes', () => {
    const d = new PacketDecoder();
    const bytes = encodeHeader('A', 'b');
    d.push(bytes.subarray(0, 3));
    assert.equal(d.next(), null);
    d.push(bytes.subarray(3, bytes.length - 1));
    assert.equal(d.next(), null);
    d.push(bytes.subarray(bytes.length - 1));
    assert.ok(d.next());
  });
});

describe('codec: malformed payloads', () => {
  const bad: [string, Buffer, RegExp][] = [
    ['unknown command byte', encodePacket(0x7a), /unknown command 0x7a/],
    ['optneg too short', encodePacket(C.SMFIC_OPTNEG, Buffer.alloc(8)), /need 12/],
    ['header with one string', encodePacket(C.SMFIC_HEADER, Buffer.from('Subject\0')), /need name and value/],
    ['header with three strings', encodePacket(C.SMFIC_HEADER, Buffer.from('a\0b\0c\0')), /need name and value/],
    ['header not NUL-terminated', encodePacket(C.SMFIC_HEADER, Buffer.from('a\0b')), /not NUL-terminated/],
    ['mail without payload', encodePacket(C.SMFIC_MAIL), /not NUL-terminated/],
    ['rcpt not NUL-terminated', encodePacket(C.SMFIC_RCPT, Buffer.from('<a@b>')), /not NUL-terminated/],
    ['macro without stage', encodePacket(C.SMFIC_MACRO), /no stage/],
    ['connect truncated', encodePacket(C.SMFIC_CONNECT, Buffer.from('host\0')), /truncated/],
    ['connect truncated port', encodePacket(C.SMFIC_CONNECT, Buffer.from('host\x004\x00')), /truncated port/],
  ];
  for (const [name, bytes, re] of bad) {
    it(name, () => {
      assert.throws(() => decodeAll(bytes), (err: Error) => err instanceof MilterProtocolError && re.test(err.message));
    });
  }

  it('splitStrings keeps empty strings', () => {
    assert.deepEqual(splitStrings(Buffer.from('\0a\0\0'), 'x'), [Buffer.from(''), Buffer.from('a'), Buffer.from('')]);
  });
});

describe('codec: replies', () => {
  it('fixed replies are single-byte packets', () => {
    assert.deepEqual(encodeReply({ type: 'continue' }), Buffer.from([0, 0, 0, 1, C.SMFIR_CONTINUE]));
    assert.deepEqual(encodeReply({ type: 'accept' }), Buffer.from([0, 0, 0, 1, C.SMFIR_ACCEPT]));
    assert.deepEqual(encodeReply({ type: 'tempfail' }), Buffer.from([0, 0, 0, 1, C.SMFIR_TEMPFAIL]));
  });

  it('SMFIR_REPLYCODE carries one NUL-terminated line', () => {
    const bytes = encodeReply({ type: 'replycode', text: '451 4.3.0 try later' });
    assert.equal(bytes[4], C.SMFIR_REPLYCODE);
    assert.equal(bytes.subarray(5).toString('latin1'), '451 4.3.0 try later\0');
    const d = new PacketDecoder();
    d.push(bytes);
    assert.deepEqual(decodeReply(d.next()!), { type: 'replycode', text: '451 4.3.0 try later' });
  });

  it('SMFIR_REPLYCODE refuses text that is not a 4xx/5xx line', () => {
    assert.throws(() => encodeReply({ type: 'replycode', text: '250 ok' }));
    assert.throws(() => encodeReply({ type: 'replycode', text: '451 a\r\n451 b' }));
  });

  it('optneg reply decodes macro lists', () => {
    const d = new PacketDecoder();
    d.push(encodeOptneg(6, 0, C.SMFIP_NOCONNECT, new Map([[C.SMFIM_ENVFROM, '{daemon_name}']])));
    const r = decodeReply(d.next()!);
    assert.equal(r.type, 'optneg');
    assert.deepEqual(r.type === 'optneg' && [...r.macroLists], [[C.SMFIM_ENVFROM, '{daemon_name}']]);
  });
});
