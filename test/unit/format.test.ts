import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  DEFAULT_ENVELOPE_NAMES,
  EnvelopeBuilder,
  GatewayGate,
  HeaderGuard,
  MAX_ADDRESS_OCTETS,
  ReservedNames,
  MAX_ENVELOPE_OCTETS,
  bareAddress,
  envelopeBlock,
  envelopeNamesProblem,
  gatewayLine,
  gatewayNameProblem,
  headerLine,
  importedEnvelope,
  isFieldName,
  parseEnvelope,
  reservedNames,
  toCrlf,
  unsafeCharacter,
  writtenAddress,
} from '../../src/spool/format';
import { b } from '../helpers/bytes';

describe('spool format: addresses', () => {
  const cases: [string, string][] = [
    ['<a@example.com>', 'a@example.com'],
    ['<>', ''],
    ['', ''], // non_smtpd_milters send the null sender as an empty string
    ['a@example.com', 'a@example.com'], // and other senders without brackets
    [' <a@example.com> ', 'a@example.com'],
    ['<"a b"@example.com>', '"a b"@example.com'],
    ['<@relay.example:a@example.com>', '@relay.example:a@example.com'],
    ['<a\r\nX-Forged: 1@example.com>', 'a\r\nX-Forged: 1@example.com'], // kept here; writtenAddress() escapes
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
    assert.deepEqual(parsed.recipients, rcpts.map((r) => writtenAddress(bareAddress(r))));
    assert.equal(parsed.messageOffset, block.length);
  });

  it('a file without envelope lines does not parse', () => {
    assert.equal(parseEnvelope(b('Subject: x\r\n\r\n')), null);
    assert.equal(parseEnvelope(b('X-REAL-MAILFROM: <a@b>\r\nSubject: x\r\n')), null, 'no recipient');
    // Issue 11: recipient lines without a sender line are an import's block (rule 4), no longer "no envelope".
    assert.equal(parseEnvelope(b('X-REAL-RCPTTO: <a@b>\r\n'))?.sender, null, 'no sender');
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
    assert.ok(isFieldName('X'.repeat(64)));
    assert.ok(!isFieldName('X'.repeat(65)), 'an envelope line must stay within 998 octets');
  });

  it('envelope names that would defeat the guard are refused', () => {
    assert.equal(envelopeNamesProblem(DEFAULT_ENVELOPE_NAMES), null);
    assert.match(envelopeNamesProblem({ sender: 'X-A', recipient: 'x-a' })!, /must differ/);
    assert.match(envelopeNamesProblem({ sender: 'x-benno-gw', recipient: 'X-B' })!, /gateway/);
    assert.match(envelopeNamesProblem({ sender: 'X-Untrusted-A', recipient: 'X-B' })!, /prefix/);
  });
});

describe('spool format: envelope addresses as written', () => {
  const w = (bytes: Buffer) => writtenAddress(bytes).toString('latin1');
  it('ordinary addresses are written as they are, without a copy', () => {
    for (const a of ['a@example.org', '"a> X-REAL-RCPTTO: <e"@x.org', '"a b @ c"@x.org', '', 'a@[IPv6:::1]']) {
      const buf = b(a);
      assert.equal(writtenAddress(buf), buf, a);
    }
    const utf8 = Buffer.from('jürgen@bücher.example', 'utf8');
    assert.equal(writtenAddress(utf8), utf8);
  });

  it('every character that could end a line, hide or reorder text is written as \\x{HEX}', () => {
    assert.equal(w(b('a\r\nX-REAL-RCPTTO: <x@y>')), 'a\\x{0D}\\x{0A}X-REAL-RCPTTO: <x@y>');
    assert.equal(w(b('a\x00\x01\t\x0b\x0c\x1c\x7fb')), 'a\\x{00}\\x{01}\\x{09}\\x{0B}\\x{0C}\\x{1C}\\x{7F}b');
    const u = (s: string) => writtenAddress(Buffer.from(s, 'utf8')).toString('utf8');
    assert.equal(u('a\u0085b@x'), 'a\\x{85}b@x', 'NEL');
    assert.equal(u('a\u2028b\u2029c@x'), 'a\\x{2028}b\\x{2029}c@x');
    assert.equal(u('a\u200bb\u2060c\ufeffd@x'), 'a\\x{200B}b\\x{2060}c\\x{FEFF}d@x');
    assert.equal(u('moc.\u202eevil@x'), 'moc.\\x{202E}evil@x');
    assert.equal(u('\u2066\u2069\u200e\u200f\u061c@x'), '\\x{2066}\\x{2069}\\x{200E}\\x{200F}\\x{61C}@x');
  });

  it('bytes that are not UTF-8 are written as \\xHH, distinct from characters', () => {
    assert.equal(w(b('a\xffb\x85@x')), 'a\\xFFb\\x85@x');
    assert.equal(w(b('\xc3\x28@x')), '\\xC3(@x', 'a lead byte without its continuation');
    assert.equal(w(b('\xed\xa0\x80@x')), '\\xED\\xA0\\x80@x', 'a UTF-16 surrogate is not UTF-8');
    assert.equal(w(b('\xf4\x90\x80\x80@x')), '\\xF4\\x90\\x80\\x80@x', 'above U+10FFFF');
    assert.equal(w(b('\xc0\xaf@x')), '\\xC0\\xAF@x', 'overlong');
  });

  it('the written form is valid UTF-8 without unsafe characters, and writing it again changes nothing', () => {
    const samples = [b('a\xff\x00\r\n\x85'), Buffer.from('\u2028\u202e\u0085x', 'utf8'), b('plain@x')];
    for (let i = 0; i < 500; i++) samples.push(Buffer.from(Array.from({ length: 12 }, () => Math.floor(Math.random() * 256))));
    for (const s of samples) {
      const once = writtenAddress(s);
      assert.equal(Buffer.from(once.toString('utf8'), 'utf8').equals(once), true, `valid UTF-8: ${s.toString('hex')}`);
      assert.equal(unsafeCharacter(once), null);
      assert.ok(!once.includes(0x0d) && !once.includes(0x0a));
      assert.ok(writtenAddress(once).equals(once), `idempotent: ${s.toString('hex')}`);
    }
  });

  it('unsafeCharacter names the first character benno-smtp refuses', () => {
    assert.equal(unsafeCharacter(b('a@x')), null);
    assert.equal(unsafeCharacter(b('a\xff@x')), null, 'not UTF-8: written as \\xHH instead');
    assert.equal(unsafeCharacter(Buffer.from('a\u202eb\u2028@x', 'utf8')), 'U+202E');
    assert.equal(unsafeCharacter(b('a\x01@x')), 'U+0001');
  });

  it('an envelope line cannot be split by anything in an address', () => {
    const block = envelopeBlock(DEFAULT_ENVELOPE_NAMES, b('<a\r\nX-REAL-RCPTTO: <ceo@victim.example>>'), [b('<r\n@x>')]);
    assert.equal(block.toString('latin1').split('\r\n').length, 3);
    const parsed = parseEnvelope(Buffer.concat([block, b('Subject: x\r\n')]))!;
    assert.equal(parsed.recipients.length, 1);
  });
});

describe('spool format: EnvelopeBuilder', () => {
  it('builds the same block as envelopeBlock', () => {
    const e = new EnvelopeBuilder(DEFAULT_ENVELOPE_NAMES, 10);
    assert.equal(e.setSender(b('s@x')), null);
    assert.equal(e.addRecipient(b('r1@x')), null);
    assert.equal(e.addRecipient(Buffer.from('r\u2028@x', 'utf8')), null);
    const block = e.block();
    assert.deepEqual(block, envelopeBlock(DEFAULT_ENVELOPE_NAMES, b('s@x'), [b('r1@x'), Buffer.from('r\u2028@x', 'utf8')]));
    assert.equal(e.bytes, block.length);
  });

  it('refuses an address longer than the bound, as written', () => {
    const e = new EnvelopeBuilder(DEFAULT_ENVELOPE_NAMES, 10);
    assert.equal(e.addRecipient(b('a'.repeat(MAX_ADDRESS_OCTETS))), null);
    assert.equal(e.addRecipient(b('a'.repeat(MAX_ADDRESS_OCTETS + 1)))?.kind, 'address-too-long');
    assert.equal(e.addRecipient(b('\xff'.repeat(MAX_ADDRESS_OCTETS / 2)))?.kind, 'address-too-long', '450 bytes become 1800 as written');
    assert.equal(e.setSender(b('a'.repeat(MAX_ADDRESS_OCTETS + 1)))?.kind, 'address-too-long');
    const line = e.block().toString('latin1').split('\r\n')[1];
    assert.ok(line.length <= 998, 'an envelope line stays within RFC 5322\'s limit');
  });

  it('refuses recipients beyond the count and the envelope size', () => {
    const e = new EnvelopeBuilder(DEFAULT_ENVELOPE_NAMES, 3);
    for (let i = 0; i < 3; i++) assert.equal(e.addRecipient(b(`r${i}@x`)), null);
    assert.equal(e.addRecipient(b('r4@x'))?.kind, 'too-many-recipients');
    assert.equal(e.recipientCount, 3);
    const big = new EnvelopeBuilder(DEFAULT_ENVELOPE_NAMES, 1_000_000);
    let problem = null;
    for (let i = 0; !problem; i++) problem = big.addRecipient(b(`${'r'.repeat(800)}${i}@x`));
    assert.equal(problem.kind, 'envelope-too-large');
    assert.ok(big.bytes <= MAX_ENVELOPE_OCTETS);
  });

  it('keeps copies, not views of the buffers it was given', () => {
    const packet = Buffer.alloc(65536, 0x61);
    const e = new EnvelopeBuilder(DEFAULT_ENVELOPE_NAMES, 10);
    e.addRecipient(packet.subarray(0, 10));
    packet.fill(0x62);
    assert.match(e.block().toString('latin1'), /<aaaaaaaaaa>/);
  });
});

describe('spool format: strict envelope reading', () => {
  it('only the exact names of the block, in their case; a look-alike ends the block', () => {
    const file = b('X-REAL-MAILFROM: <s@x>\r\nX-REAL-RCPTTO: <r@x>\r\nx-real-rcptto: <ceo@victim>\r\nX-REAL-RCPTTO : <b@x>\r\n\r\n');
    const env = parseEnvelope(file)!;
    assert.deepEqual(env.recipients.map(String), ['r@x']);
    assert.equal(file.toString('latin1', env.messageOffset).startsWith('x-real-rcptto'), true);
  });

  it('addresses with ">" in a quoted local part parse back whole', () => {
    const block = envelopeBlock(DEFAULT_ENVELOPE_NAMES, b('<"a> X-REAL-RCPTTO: <e"@x.org>'), [b('<"<>"@x>')]);
    const env = parseEnvelope(Buffer.concat([block, b('S: x\r\n')]))!;
    assert.equal(env.sender!.toString('latin1'), '"a> X-REAL-RCPTTO: <e"@x.org');
    assert.equal(env.recipients[0].toString('latin1'), '"<>"@x');
  });

  it('lines not in the exact form end the block', () => {
    assert.equal(parseEnvelope(b('X-REAL-MAILFROM:<s@x>\r\nX-REAL-RCPTTO: <r@x>\r\n')), null, 'no space');
    assert.equal(parseEnvelope(b('X-REAL-MAILFROM: <s@x> \r\nX-REAL-RCPTTO: <r@x>\r\n')), null, 'trailing blank');
    assert.equal(parseEnvelope(b('X-REAL-MAILFROM: <s@x>\nX-REAL-RCPTTO: <r@x>\r\n')), null, 'bare LF');
  });
});

/** The guard's rule on a whole buffer, written the simple way. */
function reference(input: Buffer, reserved: ReservedNames, endAtEmptyLine: boolean): Buffer {
  const names = reserved.bytes.map((n) => n.toString('latin1'));
  const s = input.toString('latin1');
  let end = s.length;
  if (endAtEmptyLine) {
    if (s.startsWith('\r\n')) end = 0;
    else {
      const e = s.indexOf('\r\n\r\n');
      if (e >= 0) end = e + 2;
    }
  }
  const starts: number[] = [0];
  for (let i = 0; i < s.length; i++) {
    if (s[i] === '\n') starts.push(i + 1);
    else if (s[i] === '\r' && s[i + 1] !== '\n') starts.push(i + 1);
  }
  let out = '';
  let last = 0;
  for (const p of starts) {
    if (p >= end || (endAtEmptyLine && p === end)) continue;
    const rest = s.slice(p, p + 80).toLowerCase();
    if (names.some((n) => rest.startsWith(n) && /^[: \t]/.test(rest.slice(n.length)))) {
      out += s.slice(last, p) + 'X-Untrusted-';
      last = p;
    }
  }
  return Buffer.from(out + s.slice(last), 'latin1');
}

function guarded(input: Buffer, names: ReservedNames, endAtEmptyLine: boolean, cuts: number[]): Buffer {
  const g = new HeaderGuard(names, endAtEmptyLine);
  const parts: Buffer[] = [];
  let from = 0;
  for (const c of [...cuts, input.length]) {
    parts.push(g.push(input.subarray(from, c)));
    from = c;
  }
  parts.push(g.end());
  return Buffer.concat(parts);
}

describe('spool format: HeaderGuard', () => {
  const names = reservedNames(DEFAULT_ENVELOPE_NAMES);

  it('renames our fields in any case and spacing, keeps their values, and stops at the empty line', () => {
    const input = b(
      'Subject: hi\r\nX-REAL-RCPTTO: <ceo@victim.example>\r\nx-real-mailfrom:<a@b>\r\nX-REAL-RCPTTO\t : <c@d>\r\n' +
        'X-Benno-GW: tenant\r\nX-REAL-RCPTTOx: not ours\r\n\r\nX-REAL-RCPTTO: <in the body>\r\n',
    );
    const out = guarded(input, names, true, []).toString('latin1');
    assert.equal(
      out,
      'Subject: hi\r\nX-Untrusted-X-REAL-RCPTTO: <ceo@victim.example>\r\nX-Untrusted-x-real-mailfrom:<a@b>\r\nX-Untrusted-X-REAL-RCPTTO\t : <c@d>\r\n' +
        'X-Untrusted-X-Benno-GW: tenant\r\nX-REAL-RCPTTOx: not ours\r\n\r\nX-REAL-RCPTTO: <in the body>\r\n',
    );
  });

  it('a line start after a bare CR or a bare LF counts (some readers break lines there)', () => {
    const out = guarded(b('X-A: a\rX-REAL-RCPTTO: <x>\r\nX-B: b\nX-REAL-RCPTTO: <y>\r\n\r\n'), names, true, []).toString('latin1');
    assert.equal(out, 'X-A: a\rX-Untrusted-X-REAL-RCPTTO: <x>\r\nX-B: b\nX-Untrusted-X-REAL-RCPTTO: <y>\r\n\r\n');
  });

  it('a message without forged fields passes unchanged and uncopied', () => {
    const input = b('Subject: x\r\nFrom: a@b\r\n\r\nbody\r\n');
    const g = new HeaderGuard(names, true);
    const out = g.push(input);
    assert.equal(out, input);
    assert.equal(g.done, true);
    assert.equal(g.renamed, 0);
    const body = b('more body');
    assert.equal(g.push(body), body);
  });

  it('without an empty line (the milter feeds header lines) it guards until end()', () => {
    const g = new HeaderGuard(names, false);
    const lines = ['Subject: a\r\n', '\r\n', 'X-REAL-RCPTTO: <x>\r\n'].map((l) => g.push(b(l)).toString('latin1'));
    assert.deepEqual(lines, ['Subject: a\r\n', '\r\n', 'X-Untrusted-X-REAL-RCPTTO: <x>\r\n']);
    assert.equal(g.renamed, 1);
  });

  it('gives the same bytes as the whole-buffer rule however the input is cut (10,000 random cases)', () => {
    const pieces = ['X-REAL-RCPTTO', 'x-real-mailfrom', 'X-BENNO-GW', 'X-REAL', ':', ' ', '\t', '\r', '\n', '\r\n', 'a', 'Subject: s', '<r@x>', '\r\n\r\n'];
    for (let n = 0; n < 10_000; n++) {
      const text = Array.from({ length: 1 + Math.floor(Math.random() * 14) }, () => pieces[Math.floor(Math.random() * pieces.length)]).join('');
      const input = b(text);
      const endAtEmptyLine = n % 2 === 0;
      const cuts = Array.from({ length: Math.floor(Math.random() * 4) }, () => Math.floor(Math.random() * (input.length + 1))).sort((x, y) => x - y);
      const want = reference(input, names, endAtEmptyLine);
      const got = guarded(input, names, endAtEmptyLine, cuts);
      assert.equal(got.toString('latin1'), want.toString('latin1'), `${JSON.stringify(text)} cut at ${cuts} (endAtEmptyLine=${endAtEmptyLine})`);
    }
  });
});

describe('spool format: the gateway line (multi-import)', () => {
  const names = reservedNames(DEFAULT_ENVELOPE_NAMES);
  /** The gate's output for input cut at each offset in turn, all of them required to agree. */
  const gated = (input: Buffer, fallback: string | null) => {
    const outs = new Set<string>();
    let gateway: string | null = null;
    let renamed = 0;
    for (let cut = 0; cut <= input.length; cut++) {
      const guard = new HeaderGuard(names, true);
      const gate = new GatewayGate(guard, fallback);
      const out = Buffer.concat([gate.push(input.subarray(0, cut)), gate.push(input.subarray(cut)), gate.end()]);
      outs.add(out.toString('latin1'));
      gateway = gate.gateway === null ? null : gate.gateway.toString('latin1');
      renamed = guard.renamed;
    }
    assert.equal(outs.size, 1, 'the same bytes wherever the input is cut');
    return { out: [...outs][0], gateway, renamed };
  };

  it('names are one token of letters, digits, dot, dash and underscore', () => {
    for (const good of ['mx1', 'tenant-a.example.org', 'A_1']) assert.equal(gatewayNameProblem(good), null, good);
    for (const bad of ['', '-x', 'a b', 'a:b', 'ä', 'x'.repeat(65), 'a\r\nX-REAL-RCPTTO: <x>']) assert.match(gatewayNameProblem(bad)!, /is not a gateway name/, bad);
    assert.equal(gatewayLine('mx1').toString('latin1'), 'X-BENNO-GW: mx1\r\n');
  });

  it('a trusted client keeps the gateway line it starts with; a later one is renamed', () => {
    const r = gated(b('X-BENNO-GW: mx1\r\nSubject: hi\r\nx-benno-gw: forged\r\n\r\nX-BENNO-GW: body\r\n'), 'fallback');
    assert.equal(r.out, 'X-BENNO-GW: mx1\r\nSubject: hi\r\nX-Untrusted-x-benno-gw: forged\r\n\r\nX-BENNO-GW: body\r\n');
    assert.equal(r.gateway, 'mx1');
    assert.equal(r.renamed, 1);
  });

  it('a message without a gateway line gets the configured one first, or none', () => {
    const input = b('Subject: hi\r\n\r\nbody\r\n');
    assert.deepEqual(gated(input, 'tenant-a'), { out: 'X-BENNO-GW: tenant-a\r\nSubject: hi\r\n\r\nbody\r\n', gateway: 'tenant-a', renamed: 0 });
    assert.deepEqual(gated(input, null), { out: 'Subject: hi\r\n\r\nbody\r\n', gateway: null, renamed: 0 });
    assert.equal(gated(b('\r\nbody only\r\n'), 'gw').out, 'X-BENNO-GW: gw\r\n\r\nbody only\r\n');
  });

  it('a first line that only looks like one is renamed, and the configured one goes first', () => {
    const spaced = gated(b('X-BENNO-GW : mx1\r\nSubject: hi\r\n\r\n'), 'gw');
    assert.equal(spaced.out, 'X-BENNO-GW: gw\r\nX-Untrusted-X-BENNO-GW : mx1\r\nSubject: hi\r\n\r\n');
    const long = `X-BENNO-GW: ${'x'.repeat(1000)}\r\n\r\n`;
    assert.equal(gated(b(long), null).out, `X-Untrusted-${long}`);
    assert.equal(gated(b('X-BENNO-G'), null).out, 'X-BENNO-G');
  });
});

describe('spool format: the envelope of an imported message (rule 4)', () => {
  const addresses = [b('owner@example.org'), b('alias@example.org')];
  const block = (header: string | null) => {
    const r = importedEnvelope(DEFAULT_ENVELOPE_NAMES, header === null ? null : b(header), addresses);
    assert.ok('block' in r);
    return r.block.toString('latin1');
  };
  const RCPTS = 'X-REAL-RCPTTO: <owner@example.org>\r\nX-REAL-RCPTTO: <alias@example.org>\r\n';

  it("the sender is the first Return-Path's address, <> included; the recipients are the account's addresses", () => {
    assert.equal(block('Return-Path: <a@example.com>\r\nReturn-Path: <older@example.com>\r\nSubject: x\r\n\r\n'), `X-REAL-MAILFROM: <a@example.com>\r\n${RCPTS}`);
    assert.equal(block('Received: x\r\nreturn-path:\r\n <folded@example.com>\r\n\r\n'), `X-REAL-MAILFROM: <folded@example.com>\r\n${RCPTS}`);
    assert.equal(block('Return-Path: <>\n\n'), `X-REAL-MAILFROM: <>\r\n${RCPTS}`);
  });

  it('no Return-Path, a malformed one, or one in the body: no sender line, nothing guessed', () => {
    for (const header of [null, 'From: author@example.com\r\nSubject: sent copy\r\n\r\n', 'Return-Path: a@example.com\r\n\r\n', 'Subject: x\r\n\r\nReturn-Path: <body@example.com>\r\n']) {
      assert.equal(block(header), RCPTS, String(header));
    }
  });

  it('a block without a sender line parses back; a file with no envelope line still does not', () => {
    const file = Buffer.concat([b(block(null)), b('Subject: x\r\n\r\nbody\r\n')]);
    const env = parseEnvelope(file)!;
    assert.equal(env.sender, null);
    assert.deepEqual(env.recipients.map(String), ['owner@example.org', 'alias@example.org']);
    assert.equal(file.toString('latin1', env.messageOffset), 'Subject: x\r\n\r\nbody\r\n');
    assert.equal(parseEnvelope(b('Subject: x\r\n\r\nbody\r\n')), null);
    assert.equal(parseEnvelope(b('X-REAL-MAILFROM: <a@b>\r\nSubject: x\r\n\r\n')), null, 'a sender without recipients');
  });

  it('addresses are written by the same rules as the MTA envelope, and an account needs one', () => {
    const r = importedEnvelope(DEFAULT_ENVELOPE_NAMES, b('Return-Path: <a\x1bb@x>\r\n'), [Buffer.from('jürgen@bücher.example', 'utf8')]);
    assert.ok('block' in r);
    assert.equal(r.block.toString('utf8'), 'X-REAL-MAILFROM: <a\\x{1B}b@x>\r\nX-REAL-RCPTTO: <jürgen@bücher.example>\r\n');
    assert.throws(() => importedEnvelope(DEFAULT_ENVELOPE_NAMES, null, []), RangeError);
    const long = importedEnvelope(DEFAULT_ENVELOPE_NAMES, b(`Return-Path: <${'x'.repeat(1000)}@x>\r\n`), addresses);
    assert.ok('kind' in long && long.kind === 'address-too-long');
  });
});
