import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseAddressCommand } from '../../src/receiver/smtp-address';

function parsed(command: string) {
  const verb = command.trim().toUpperCase().startsWith('MAIL') ? 'mail from' : 'rcpt to';
  return parseAddressCommand(verb, command);
}

describe('MAIL/RCPT address parsing for the receiver', () => {
  const kept: [string, string][] = [
    ['MAIL FROM:<a@example.com>', 'a@example.com'],
    ['MAIL FROM:<>', ''],
    ['mail from: <a@example.com>', 'a@example.com'],
    ['RCPT TO:<"a b"@example.org>', '"a b"@example.org'],
    ['RCPT TO:<"a>b"@example.org>', '"a>b"@example.org'],
    ['RCPT TO:<"a\\"b"@example.org>', '"a\\"b"@example.org'],
    ['RCPT TO:<user@xn--bcher-kva.example>', 'user@xn--bcher-kva.example'],
    ['RCPT TO:<jürgen@bücher.example>', 'jürgen@bücher.example'],
    ['RCPT TO:<a..b@example.org>', 'a..b@example.org'],
    ['RCPT TO:<a@[IPv6:2001:db8:0:0::1]>', 'a@[IPv6:2001:db8:0:0::1]'],
    ['RCPT TO:<@relay.example:a@example.org>', '@relay.example:a@example.org'],
    ['RCPT TO:<"a> X-REAL-RCPTTO: <e"@x.org>', '"a> X-REAL-RCPTTO: <e"@x.org'],
    // Which characters an address may hold is the receiver's decision (it names the character).
    ['MAIL FROM:<a\r@b>', 'a\r@b'],
    ['MAIL FROM:<a\x00@b>', 'a\x00@b'],
    ['MAIL FROM:<a\t@b>', 'a\t@b'],
  ];
  for (const [command, address] of kept) {
    it(`${command} keeps ${address || '<>'} as sent`, () => {
      const result = parsed(command);
      assert.ok(result);
      assert.equal(result.address, address);
    });
  }

  it('parameters: upper-case keys, xtext decoded, flags true', () => {
    const result = parseAddressCommand('mail from', 'MAIL FROM:<a@b> SIZE=1000 body=8BITMIME SMTPUTF8 ENVID=a+2Bb');
    assert.ok(result);
    assert.deepEqual(result.args, { SIZE: '1000', BODY: '8BITMIME', SMTPUTF8: true, ENVID: 'a+b' });
    assert.equal((parseAddressCommand('rcpt to', 'RCPT TO:<a@b>') as { args: unknown }).args, false);
  });

  const refused = [
    ['mail from', 'RCPT TO:<a@b>'],
    ['mail from', 'MAIL FROM:a@b'],
    ['mail from', 'MAIL FROM:<a@b'],
    ['mail from', 'MAIL FROM:<a@b>SIZE=1'],
    ['mail from', 'MAIL FROM:<a@b> ENVID=x+0D+0Ay'],
    ['mail from', 'MAIL FROM:<a@b>\xa0SIZE=1'], // latin1's no-break space is not SMTP white space
  ];
  for (const [verb, command] of refused) {
    it(`refuses ${JSON.stringify(command)}`, () => assert.equal(parseAddressCommand(verb, command), false));
  }
});

describe('MAIL/RCPT: quoted local parts with blanks', () => {
  const cases: [string, string, Record<string, string | true> | false][] = [
    ['RCPT TO:<"a  b"@example.org>', '"a  b"@example.org', false],
    ['RCPT TO:<"a\tb"@example.org>', '"a\tb"@example.org', false],
    ['RCPT TO:<" leading and trailing "@example.org>', '" leading and trailing "@example.org', false],
    ['RCPT TO:<"a b"@example.org> NOTIFY=NEVER', '"a b"@example.org', { NOTIFY: 'NEVER' }],
    ['RCPT TO:<"a b=c"@example.org> ORCPT=rfc822;x', '"a b=c"@example.org', { ORCPT: 'rfc822;x' }],
    // An escaped backslash does not escape the quote after it.
    ['RCPT TO:<"a b\\\\"@example.org> NOTIFY=NEVER', '"a b\\\\"@example.org', { NOTIFY: 'NEVER' }],
  ];
  for (const [command, address, args] of cases) {
    it(`${JSON.stringify(command)}: address and parameters split where the quotes end`, () => {
      const result = parsed(command);
      assert.ok(result, command);
      assert.equal(result.address, address);
      assert.deepEqual(result.args, args);
    });
  }

  it('an unterminated quote takes the rest of the line, and the command is malformed', () => {
    assert.equal(parsed('RCPT TO:<"a b@example.org>'), false);
    assert.equal(parsed('RCPT TO:<"a b@example.org> NOTIFY=NEVER'), false);
  });
});

describe('MAIL/RCPT: bytes that are not ASCII', () => {
  it('latin1 characters, one per byte, come back as the same bytes; 0xA0 inside <> is part of the address', () => {
    const bytes = Buffer.from([0x61, 0xa0, 0x62, 0xff, 0xfe, 0x40, 0xc3, 0xa9, 0x2e, 0x80, 0x9f]);
    const result = parsed(`RCPT TO:<${bytes.toString('latin1')}> NOTIFY=NEVER`);
    assert.ok(result);
    assert.deepEqual(Buffer.from(result.address, 'latin1'), bytes);
    assert.deepEqual(result.args, { NOTIFY: 'NEVER' });
  });

  it('a parameter value keeps its bytes too; only control characters refuse it', () => {
    const result = parsed('MAIL FROM:<a@b> ENVID=\xe9\xff+7E');
    assert.ok(result);
    assert.deepEqual(result.args, { ENVID: '\xe9\xff~' });
    assert.equal(parsed('MAIL FROM:<a@b> ENVID=a\x7fb'), false);
    assert.equal(parsed('MAIL FROM:<a@b> ENVID=a+7Fb'), false);
    assert.equal(parsed('MAIL FROM:<a@b> ENVID=a+00b'), false);
  });
});

describe('MAIL/RCPT: parameters', () => {
  it('blanks and tabs between parameters, a value with "=" in it, xtext in either case', () => {
    const result = parsed('MAIL FROM:<a@b>  \tSIZE=1\t\tENVID=x=y+2b+2B  ');
    assert.ok(result);
    assert.deepEqual(result.args, { SIZE: '1', ENVID: 'x=y++' });
  });

  it('"KEY=" is an empty value (smtp-server answers 501 for the keys that need one); "=x" has no key and is skipped', () => {
    const result = parsed('MAIL FROM:<a@b> SIZE= =x BODY=8BITMIME');
    assert.ok(result);
    assert.deepEqual(result.args, { SIZE: '', BODY: '8BITMIME' });
  });

  it('a parameter given twice, in any case, is named in duplicate (smtp-server answers 501 for it)', () => {
    assert.deepEqual(parsed('MAIL FROM:<a@b> SIZE=1 BODY=7BIT size=2'), { address: 'a@b', args: { SIZE: '2', BODY: '7BIT' }, duplicate: 'SIZE' });
    assert.deepEqual(parsed('RCPT TO:<a@b> NOTIFY=NEVER NOTIFY'), { address: 'a@b', args: { NOTIFY: true }, duplicate: 'NOTIFY' });
    assert.equal('duplicate' in (parsed('MAIL FROM:<a@b> SIZE=1 BODY=7BIT') as object), false);
  });

  it('a "+" without two hex digits after it stays as it is', () => {
    const result = parsed('MAIL FROM:<a@b> ENVID=a+b+4');
    assert.ok(result);
    assert.deepEqual(result.args, { ENVID: 'a+b+4' });
  });
});

describe('MAIL/RCPT: malformed commands', () => {
  const malformed: [string, string][] = [
    ['mail from', ''],
    ['mail from', 'MAIL'],
    ['mail from', 'MAIL FROM'],
    ['mail from', 'MAIL FROM:'],
    ['mail from', 'MAIL FROM: '],
    ['mail from', 'MAILFROM:<a@b>'],
    ['mail from', 'MAIL TO:<a@b>'],
    ['mail from', 'MAIL FROM:a@b>'],
    ['mail from', 'MAIL FROM:\t<a@b>'], // only spaces may precede the "<"
    ['mail from', 'MAIL FROM:<a@b>>'],
    ['mail from', 'MAIL FROM:<a@b>x'],
    ['mail from', 'MAIL FROM:<a@b'],
    ['rcpt to', 'RCPT TO:<a@b> NOTIFY=a+0Ab'],
    ['rcpt to', 'RCPT TO:<a@b> NOTIFY=a\rb'],
    ['rcpt to', 'MAIL FROM:<a@b>'],
  ];
  for (const [verb, command] of malformed) {
    it(`${verb}: refuses ${JSON.stringify(command)}`, () => assert.equal(parseAddressCommand(verb, command), false));
  }

  it('verb and blanks: either case, any blanks between the words and before the colon, spaces after it', () => {
    for (const command of ['mail from:<a@b>', 'MAIL  FROM:<a@b>', 'MAIL\tFROM:<a@b>', 'MAIL FROM :<a@b>', 'MAIL FROM:   <a@b>']) {
      const result = parseAddressCommand('mail from', command);
      assert.ok(result, JSON.stringify(command));
      assert.equal(result.address, 'a@b');
    }
  });
});

describe('MAIL/RCPT: the null path <>', () => {
  it('MAIL FROM:<> is the empty address, with or without parameters', () => {
    assert.deepEqual(parsed('MAIL FROM:<>'), { address: '', args: false });
    assert.deepEqual(parsed('MAIL FROM: <> '), { address: '', args: false });
    assert.deepEqual(parsed('MAIL FROM:<> BODY=8BITMIME SIZE=10'), { address: '', args: { BODY: '8BITMIME', SIZE: '10' } });
  });

  it('RCPT TO:<> parses to the empty address (smtp-server then answers 501)', () => {
    assert.deepEqual(parsed('RCPT TO:<>'), { address: '', args: false });
  });

  it('"<>" is not a quoted or bracketed address: <<>> and <""> are what they say', () => {
    assert.equal(parsed('MAIL FROM:<<>>'), false);
    assert.deepEqual(parsed('MAIL FROM:<"">'), { address: '""', args: false });
  });
});
