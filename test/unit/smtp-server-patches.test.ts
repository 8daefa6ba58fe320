import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as net from 'node:net';
import { describe, it } from 'node:test';
import { SMTPServer, SMTPServerOptions } from 'smtp-server';
import {
  CLOSING_GRACE_MS,
  HOOKED_METHODS,
  PINNED_SMTP_SERVER,
  PatchOptions,
  UPSTREAM_SHA256,
  patchSmtpServer,
  smtpServerPatched,
  upstreamSources,
} from '../../src/receiver/smtp-server-patches';
import { RawSmtp, plainToken } from '../helpers/raw-smtp-client';

/** A patched smtp-server on a free loopback port, for the duration of fn. */
async function withServer(options: SMTPServerOptions & PatchOptions, fn: (port: number) => Promise<void>): Promise<void> {
  patchSmtpServer();
  const server = new SMTPServer({ logger: false, disableReverseLookup: true, hideENHANCEDSTATUSCODES: false, ...options });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    await fn((server.server.address() as net.AddressInfo).port);
  } finally {
    await new Promise<void>((r) => server.close(() => r()));
  }
}

describe('smtp-server: the upstream code the patches were written for', () => {
  it(`every hooked SMTPConnection method is the one of smtp-server ${PINNED_SMTP_SERVER} (fails when an upgrade changes one)`, () => {
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    const installed: string = require('smtp-server/package.json').version;
    const sources = upstreamSources();
    const changed = HOOKED_METHODS.flatMap((method) => {
      const sha256 = createHash('sha256').update(sources[method]).digest('hex');
      return sha256 === UPSTREAM_SHA256[method]
        ? []
        : [
            `SMTPConnection#${method} of smtp-server ${installed} is not the one the patches were written for (${PINNED_SMTP_SERVER}): ` +
              `review src/receiver/smtp-server-patches.ts against the new upstream code, so that no upstream fix is dropped, then record sha256 ${sha256} in UPSTREAM_SHA256`,
          ];
    });
    assert.deepEqual(changed, [], `\n${changed.join('\n')}`);
  });

  it('patching keeps the upstream sources for that comparison, and replaces the methods it patches', () => {
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    const { SMTPConnection } = require('smtp-server/lib/smtp-connection');
    const before = upstreamSources();
    patchSmtpServer();
    patchSmtpServer();
    assert.equal(smtpServerPatched(), true);
    assert.deepEqual(upstreamSources(), before);
    for (const method of ['_parseAddressCommand', 'init', 'handler_EHLO', 'send']) {
      assert.notEqual(Function.prototype.toString.call(SMTPConnection.prototype[method]), before[method as keyof typeof before], method);
    }
  });
});

describe('smtp-server: MAIL/RCPT addresses', () => {
  it("hooks into smtp-server's connection (fails if the pinned version changes its internals)", () => {
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    const { SMTPConnection } = require('smtp-server/lib/smtp-connection');
    for (const method of HOOKED_METHODS) assert.equal(typeof SMTPConnection.prototype[method], 'function', `SMTPConnection#${method}`);
    patchSmtpServer();
    const parsed = SMTPConnection.prototype._parseAddressCommand.call({}, 'rcpt to', Buffer.from('RCPT TO:<user@xn--bcher-kva.example>'));
    assert.equal(parsed.address, 'user@xn--bcher-kva.example');
  });

  it('the address holds the bytes sent, one character per byte: UTF-8 and bytes that are not UTF-8 alike', () => {
    patchSmtpServer();
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    const { SMTPConnection } = require('smtp-server/lib/smtp-connection');
    for (const bytes of [Buffer.from('jürgen@bücher.example', 'utf8'), Buffer.from([0x61, 0xff, 0xfe, 0x40, 0x62, 0xc3])]) {
      const command = Buffer.concat([Buffer.from('RCPT TO:<'), bytes, Buffer.from('> NOTIFY=NEVER')]);
      const parsed = SMTPConnection.prototype._parseAddressCommand.call({}, 'rcpt to', command);
      assert.deepEqual(Buffer.from(parsed.address, 'latin1'), bytes);
      assert.deepEqual(parsed.args, { NOTIFY: 'NEVER' });
    }
  });
});

describe('smtp-server: ESMTP parameters through the replaced parser', () => {
  it("smtp-server's own checks still see them: a parameter given twice, or without the value it needs, gets 501", () =>
    withServer({ authOptional: true, disabledCommands: ['AUTH', 'STARTTLS'] }, async (port) => {
      const { client } = await RawSmtp.open(port);
      try {
        await client.command('EHLO client.example');
        assert.equal((await client.command('MAIL FROM:<a@example.com> SIZE=10 size=20')).text, '501 5.5.4 Error: duplicate SIZE parameter');
        assert.equal((await client.command('MAIL FROM:<a@example.com> SIZE')).text, '501 5.5.4 Error: SIZE parameter requires a value');
        assert.equal((await client.command('MAIL FROM:<a@example.com> SIZE=10 BODY=8BITMIME')).code, 250);
        assert.equal((await client.command('RCPT TO:<b@example.org> NOTIFY=NEVER NOTIFY=NEVER')).text, '501 5.5.4 Error: duplicate NOTIFY parameter');
        assert.equal((await client.command('RCPT TO:<b@example.org> ORCPT=')).text, '501 5.5.4 Error: ORCPT parameter requires a value');
        assert.equal((await client.command('RCPT TO:<b@example.org> NOTIFY=NEVER')).code, 250);
      } finally {
        client.destroy();
      }
    }));
});

describe('smtp-server: AUTH only where it would be taken', () => {
  // smtp-server's built-in certificate serves STARTTLS here (logger: false keeps its warning quiet).
  const options = { authOptional: false, onAuth: (_a: unknown, _s: unknown, cb: (e: null, r: { user: string }) => void) => cb(null, { user: 'u' }) } as SMTPServerOptions;

  it('with STARTTLS: EHLO lists no AUTH before STARTTLS and AUTH after it; AUTH in clear gets 538, MAIL before AUTH 530', () =>
    withServer(options, async (port) => {
      const { client } = await RawSmtp.open(port);
      try {
        const before = await client.command('EHLO client.example');
        assert.equal(before.code, 250);
        assert.ok(before.lines.includes('STARTTLS'), before.text);
        assert.ok(!before.lines.some((l) => /^AUTH\b/.test(l)), before.text);
        assert.equal((await client.command(`AUTH PLAIN ${plainToken('u', 'p')}`)).code, 538);
        assert.equal((await client.command('MAIL FROM:<a@example.com>')).code, 530);
        await client.startTls();
        const after = await client.command('EHLO client.example');
        assert.ok(after.lines.includes('AUTH LOGIN PLAIN'), after.text);
        assert.ok(!after.lines.includes('STARTTLS'), after.text);
        assert.equal((await client.command('MAIL FROM:<a@example.com>')).code, 530);
        assert.equal((await client.command(`AUTH PLAIN ${plainToken('u', 'p')}`)).code, 235);
        assert.equal((await client.command('MAIL FROM:<a@example.com>')).code, 250);
      } finally {
        client.destroy();
      }
    }));

  it('without STARTTLS (AUTH in clear allowed): EHLO lists AUTH', () =>
    withServer({ ...options, disabledCommands: ['STARTTLS'], allowInsecureAuth: true }, async (port) => {
      const { client } = await RawSmtp.open(port);
      try {
        const ehlo = await client.command('EHLO client.example');
        assert.ok(ehlo.lines.includes('AUTH LOGIN PLAIN'), ehlo.text);
        assert.equal((await client.command('MAIL FROM:<a@example.com>')).code, 530);
      } finally {
        client.destroy();
      }
    }));
});

describe('smtp-server: replies', () => {
  it('a reply text with its own enhanced status code keeps it; others get smtp-server\'s', () =>
    withServer(
      {
        authOptional: true,
        disabledCommands: ['AUTH', 'STARTTLS'],
        onRcptTo: (address, _session, cb) =>
          cb(address.address.startsWith('full') ? Object.assign(new Error('4.5.3 Too many recipients'), { responseCode: 452 }) : Object.assign(new Error('no'), { responseCode: 550 })),
      },
      async (port) => {
        const { client } = await RawSmtp.open(port);
        try {
          await client.command('EHLO client.example');
          await client.command('MAIL FROM:<a@example.com>');
          assert.equal((await client.command('RCPT TO:<full@example.org>')).text, '452 4.5.3 Too many recipients');
          assert.equal((await client.command('RCPT TO:<other@example.org>')).text, '550 5.1.1 no');
        } finally {
          client.destroy();
        }
      },
    ));
});

describe('smtp-server: closing', () => {
  it('after a 421 no pipelined command runs', async () => {
    let checks = 0;
    await withServer(
      {
        authOptional: false,
        allowInsecureAuth: true,
        disabledCommands: ['STARTTLS'],
        onAuth: (_auth, _session, cb) => {
          checks++;
          cb(Object.assign(new Error('4.7.0 Too many failed authentication attempts'), { responseCode: 421 }));
        },
      },
      async (port) => {
        const { client } = await RawSmtp.open(port);
        await client.command('EHLO client.example');
        const guess = `AUTH PLAIN ${plainToken('u', 'guess')}\r\n`;
        client.write(guess.repeat(5));
        assert.equal((await client.reply()).text, '421 4.7.0 Too many failed authentication attempts');
        await client.closed;
      },
    );
    assert.equal(checks, 1);
  });

  it('after QUIT no pipelined command runs, and the client that hangs up is gone at once', async () => {
    let mails = 0;
    await withServer({ authOptional: true, disabledCommands: ['AUTH', 'STARTTLS'], onMailFrom: (_a, _s, cb) => (mails++, cb()) }, async (port) => {
      const { client } = await RawSmtp.open(port);
      await client.command('EHLO client.example');
      client.write('QUIT\r\nMAIL FROM:<a@example.com>\r\nNOOP\r\n');
      assert.equal((await client.reply()).code, 221);
      const t0 = Date.now();
      client.end();
      await client.closed;
      assert.ok(Date.now() - t0 < 1000, `closed after ${Date.now() - t0} ms`);
      assert.equal(client.received, 3, 'greeting, EHLO, QUIT: nothing after the 221');
    });
    assert.equal(mails, 0);
  });

  it('a client that does not hang up after a 421 is disconnected after CLOSING_GRACE_MS', async () => {
    await withServer(
      { authOptional: true, disabledCommands: ['AUTH', 'STARTTLS'], onConnect: (_s, cb) => cb(Object.assign(new Error('4.7.0 Go away'), { responseCode: 421 })) },
      async (port) => {
        const socket = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
        const t0 = Date.now();
        let text = '';
        socket.on('data', (d: Buffer) => (text += d.toString()));
        socket.on('end', () => undefined); // keep our side open
        socket.on('error', () => undefined);
        // Keep talking: a write to a socket the server has destroyed is reset, and that ends ours.
        const talk = setInterval(() => socket.write('NOOP\r\n'), 250);
        await new Promise<void>((resolve) => socket.once('close', () => resolve()));
        clearInterval(talk);
        const waited = Date.now() - t0;
        assert.equal(text, '421 4.7.0 Go away\r\n');
        assert.ok(waited >= CLOSING_GRACE_MS - 500 && waited < CLOSING_GRACE_MS + 5000, `closed after ${waited} ms`);
      },
    );
  });
});

describe('smtp-server: first command', () => {
  it('a client that says nothing gets 421 after firstCommandTimeout; one that has spoken gets socketTimeout', () => {
    const timedOut: string[] = [];
    return withServer(
      { authOptional: true, disabledCommands: ['AUTH', 'STARTTLS'], socketTimeout: 60_000, firstCommandTimeout: 300, onFirstCommandTimeout: (s) => timedOut.push(s.remoteAddress) },
      async (port) => {
        const idle = await RawSmtp.open(port);
        const talker = await RawSmtp.open(port);
        const t0 = Date.now();
        assert.equal((await talker.client.command('EHLO client.example')).code, 250);
        const bye = await idle.client.reply(10_000);
        assert.match(bye.text, /^421 .*Timeout/);
        await idle.client.closed;
        const waited = Date.now() - t0;
        assert.ok(waited >= 250 && waited < 5000, `closed after ${waited} ms`);
        assert.deepEqual(timedOut, ['127.0.0.1']);
        // The talker has been quiet for longer than the first-command limit by now, and is still served.
        await new Promise((r) => setTimeout(r, 600));
        assert.equal((await talker.client.command('NOOP')).code, 250);
        talker.client.destroy();
        // A byte now and then, never a line end: still the first-command limit.
        const trickler = await RawSmtp.open(port);
        const t1 = Date.now();
        const drip = setInterval(() => trickler.client.write('E'), 50);
        const cut = await trickler.client.reply(10_000);
        clearInterval(drip);
        assert.match(cut.text, /^421 .*Timeout/);
        assert.ok(Date.now() - t1 < 5000, `cut after ${Date.now() - t1} ms`);
        trickler.client.destroy();
      },
    );
  });
});

describe('smtp-server greeting', () => {
  it('comes at once, without the 100 ms early-talker pause', async () => {
    const { SMTPServer } = await import('smtp-server');
    patchSmtpServer();
    const server = new SMTPServer({ logger: false, disableReverseLookup: true, authOptional: true });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.server.address() as import('node:net').AddressInfo).port;
    try {
      const times: number[] = [];
      for (let i = 0; i < 5; i++) {
        const t0 = Date.now();
        const { client, greeting } = await RawSmtp.open(port);
        assert.equal(greeting.code, 220);
        times.push(Date.now() - t0);
        client.write('QUIT\r\n');
        client.end();
      }
      assert.ok(Math.min(...times) < 50, `greeting after ${times.join(', ')} ms`);
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
    }
  });
});
