import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { patchSmtpServer, parseAddressCommand } from '../../src/receiver/smtp-server-patches';

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
  ];
  for (const [command, address] of kept) {
    it(`${command} keeps ${address || '<>'} as sent`, () => {
      const verb = command.toUpperCase().startsWith('MAIL') ? 'mail from' : 'rcpt to';
      const parsed = parseAddressCommand(verb, command);
      assert.ok(parsed);
      assert.equal(parsed.address, address);
    });
  }

  it('parameters: upper-case keys, xtext decoded, flags true', () => {
    const parsed = parseAddressCommand('mail from', 'MAIL FROM:<a@b> SIZE=1000 body=8BITMIME SMTPUTF8 ENVID=a+2Bb');
    assert.ok(parsed);
    assert.deepEqual(parsed.args, { SIZE: '1000', BODY: '8BITMIME', SMTPUTF8: true, ENVID: 'a+b' });
    assert.equal((parseAddressCommand('rcpt to', 'RCPT TO:<a@b>') as { args: unknown }).args, false);
  });

  const refused = [
    ['mail from', 'RCPT TO:<a@b>'],
    ['mail from', 'MAIL FROM:a@b'],
    ['mail from', 'MAIL FROM:<a@b'],
    ['mail from', 'MAIL FROM:<a@b>SIZE=1'],
    ['mail from', 'MAIL FROM:<a\r@b>'],
    ['mail from', 'MAIL FROM:<a\x00@b>'],
    ['mail from', 'MAIL FROM:<a@b> ENVID=x+0D+0Ay'],
  ];
  for (const [verb, command] of refused) {
    it(`refuses ${JSON.stringify(command)}`, () => assert.equal(parseAddressCommand(verb, command), false));
  }

  it("hooks into smtp-server's connection (fails if the pinned version changes its internals)", () => {
    patchSmtpServer();
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    const { SMTPConnection } = require('smtp-server/lib/smtp-connection');
    const parsed = SMTPConnection.prototype._parseAddressCommand.call({}, 'rcpt to', Buffer.from('RCPT TO:<user@xn--bcher-kva.example>'));
    assert.equal(parsed.address, 'user@xn--bcher-kva.example');
  });
});

describe('smtp-server greeting', () => {
  it('comes at once, without the 100 ms early-talker pause', async () => {
    const net = await import('node:net');
    const { SMTPServer } = await import('smtp-server');
    patchSmtpServer();
    const server = new SMTPServer({ logger: false, disableReverseLookup: true, authOptional: true });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.server.address() as import('node:net').AddressInfo).port;
    try {
      const times: number[] = [];
      for (let i = 0; i < 5; i++) {
        const t0 = Date.now();
        await new Promise<void>((resolve, reject) => {
          const s = net.connect(port, '127.0.0.1');
          s.once('data', (d: Buffer) => {
            assert.match(d.toString(), /^220 /);
            times.push(Date.now() - t0);
            s.end('QUIT\r\n');
            resolve();
          });
          s.once('error', reject);
        });
      }
      assert.ok(Math.min(...times) < 50, `greeting after ${times.join(', ')} ms`);
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
    }
  });
});
