// The exporter's SMTP client: the message as DATA carries it, against a plain
// whole-buffer reference under random chunk cuts; the reply parser with
// replies split across and combined in chunks; and the connection against a
// raw SMTP recorder (timeouts, refusals, STARTTLS injection, cut files).

import assert from 'node:assert/strict';
import * as net from 'node:net';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { ConnectError, SenderOptions, SmtpConnection } from '../../src/export/smtp-client';
import { DataEncoder, ProtocolError, ReplyParser, replyText } from '../../src/export/smtp-codec';
import { RawSmtpServer } from '../helpers/raw-smtp-server';
import { b } from '../helpers/bytes';

/** RFC 5321 4.5.2 the obvious way: one byte at a time over the whole message. */
function reference(message: Buffer): Buffer {
  const out: number[] = [];
  let prev = 0x0a;
  for (const c of message) {
    if (prev === 0x0a && c === 0x2e) out.push(0x2e);
    if (c === 0x0a && prev !== 0x0d) out.push(0x0d);
    out.push(c);
    prev = c;
  }
  if (prev !== 0x0a) out.push(0x0d, 0x0a);
  out.push(0x2e, 0x0d, 0x0a);
  return Buffer.from(out);
}

function encode(message: Buffer, cuts: number[]): Buffer {
  const enc = new DataEncoder();
  const parts: Buffer[] = [];
  let from = 0;
  for (const cut of [...cuts, message.length]) {
    parts.push(enc.push(message.subarray(from, cut)));
    from = cut;
  }
  parts.push(enc.end());
  return Buffer.concat(parts);
}

/** A small deterministic generator, so that a failure can be replayed. */
function random(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
}

describe('DATA encoding', () => {
  it('doubles a leading dot, turns bare LF into CRLF, keeps bare CR, ends with CRLF . CRLF', () => {
    const cases: [string, string][] = [
      ['a\r\nb\r\n', 'a\r\nb\r\n.\r\n'],
      ['.\r\n..x\r\n.y', '..\r\n...x\r\n..y\r\n.\r\n'],
      ['a\nb\n', 'a\r\nb\r\n.\r\n'],
      ['no final line end', 'no final line end\r\n.\r\n'],
      ['bare\rCR\r.dot\r\n', 'bare\rCR\r.dot\r\n.\r\n'],
      ['ends with CR\r', 'ends with CR\r\r\n.\r\n'],
      ['\n.', '\r\n..\r\n.\r\n'],
      ['', '.\r\n'],
    ];
    for (const [input, wire] of cases) assert.equal(encode(b(input), []).toString('latin1'), wire, JSON.stringify(input));
  });

  it('returns a chunk that needs no change as it is, without copying', () => {
    const enc = new DataEncoder();
    const chunk = b('Subject: x\r\n\r\nbody\r\n');
    assert.equal(enc.push(chunk), chunk);
  });

  it('matches the reference under random chunk cuts, CR/LF/dot pairs split across chunks included', () => {
    const next = random(9);
    const alphabet = b('\r\n.ab');
    for (let round = 0; round < 3000; round++) {
      const length = Math.floor(next() * 60);
      const message = Buffer.from(Array.from({ length }, () => alphabet[Math.floor(next() * alphabet.length)]));
      const cuts = Array.from({ length: Math.floor(next() * 6) }, () => Math.floor(next() * (length + 1))).sort((x, y) => x - y);
      assert.deepEqual(encode(message, cuts), reference(message), `message ${JSON.stringify(message.toString('latin1'))}, cuts ${cuts}`);
    }
  });

  it('matches the reference at every single cut of a mixed message', () => {
    const message = b('.a\r\n.\r\nb\n.c\r\r\n..\n\r.\r\nend.');
    for (let cut = 0; cut <= message.length; cut++) assert.deepEqual(encode(message, [cut]), reference(message), `cut at ${cut}`);
    assert.deepEqual(encode(message, Array.from({ length: message.length }, (_, i) => i)), reference(message), 'one byte a chunk');
  });
});

describe('reply parser', () => {
  it('reads single and multi-line replies', () => {
    const p = new ReplyParser();
    const replies = p.push(b('220 mx.example ESMTP\r\n250-mx.example\r\n250-PIPELINING\r\n250 SIZE 1024\r\n'));
    assert.deepEqual(replies, [
      { code: 220, lines: ['mx.example ESMTP'] },
      { code: 250, lines: ['mx.example', 'PIPELINING', 'SIZE 1024'] },
    ]);
    assert.equal(replyText(replies[1]), '250 mx.example PIPELINING SIZE 1024');
    assert.deepEqual(p.push(b('250\r\n')), [{ code: 250, lines: [''] }], 'a bare code ends a reply');
  });

  it('gives the same replies however the bytes are cut, and several replies of one chunk in order', () => {
    const wire = b('250-first\r\n250 second\r\n354 go ahead\r\n550-5.1.1 no\r\n550 5.1.1 such user\r\n221 bye\r\n');
    const whole = new ReplyParser().push(wire);
    assert.equal(whole.length, 4);
    for (let cut = 0; cut <= wire.length; cut++) {
      const p = new ReplyParser();
      assert.deepEqual([...p.push(wire.subarray(0, cut)), ...p.push(wire.subarray(cut))], whole, `cut at ${cut}`);
      assert.equal(p.pending, false);
    }
    const bytewise = new ReplyParser();
    const got = [...wire].flatMap((c) => bytewise.push(Buffer.from([c])));
    assert.deepEqual(got, whole);
  });

  it('says when part of a reply is waiting', () => {
    const p = new ReplyParser();
    assert.deepEqual(p.push(b('250-a\r\n')), []);
    assert.equal(p.pending, true);
    assert.deepEqual(p.push(b('250 b\r\n')), [{ code: 250, lines: ['a', 'b'] }]);
    assert.equal(p.pending, false);
  });

  it('refuses what is no SMTP reply', () => {
    assert.throws(() => new ReplyParser().push(b('HTTP/1.1 400 Bad Request\r\n')), ProtocolError);
    assert.throws(() => new ReplyParser().push(b('250-a\r\n550 b\r\n')), /different codes/);
    assert.throws(() => new ReplyParser().push(Buffer.alloc(20_000, 0x41)), /longer than/);
  });

  it('reads any byte as latin1: a reply never fails to decode', () => {
    assert.deepEqual(new ReplyParser().push(Buffer.from([0x32, 0x35, 0x30, 0x20, 0xff, 0xfe, 0x0d, 0x0a])), [{ code: 250, lines: ['\xff\xfe'] }]);
  });
});

describe('SMTP connection', () => {
  let server: RawSmtpServer;
  before(async () => {
    server = new RawSmtpServer();
    await server.listen();
  });
  after(() => server.close());
  const options = (extra: Partial<SenderOptions> = {}): SenderOptions => ({ host: '127.0.0.1', port: server.port, starttls: 'opportunistic', timeoutMs: 5000, ...extra });
  const envelope = (message: Buffer, to = ['b@x.org']) => ({ from: b('a@x.org'), to: to.map(b), size: message.length });
  const refusedOpen = async (o: SenderOptions) => {
    try {
      await SmtpConnection.open(o);
    } catch (err) {
      assert.ok(err instanceof ConnectError, String(err));
      return err;
    }
    throw new Error('open() succeeded');
  };

  it('a server that says nothing: no answer within the timeout, not permanent', async () => {
    const silent = net.createServer(() => undefined);
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    try {
      const err = await refusedOpen(options({ port: (silent.address() as net.AddressInfo).port, timeoutMs: 300 }));
      assert.equal(err.message, 'no answer within 0.3 s');
      assert.equal(err.permanent, false);
    } finally {
      silent.close();
    }
  });

  it('a 5xx greeting, and STARTTLS required but not offered: permanent', async () => {
    server.clear();
    server.greeting = '554 5.7.1 Client not allowed';
    try {
      const err = await refusedOpen(options());
      assert.match(err.message, /^554 5\.7\.1 Client not allowed; the server refuses this client: check its allowed_clients$/);
      assert.equal(err.permanent, true);
    } finally {
      server.greeting = '220 raw.example ESMTP recorder';
    }
    const tls = await refusedOpen(options({ starttls: 'require' }));
    assert.equal(tls.permanent, true);
    assert.match(tls.message, /offers no STARTTLS, and STARTTLS is required/);
  });

  it('bytes after the 220 to STARTTLS (an injection) end the connection before TLS', async () => {
    server.clear();
    server.extensions = ['PIPELINING', 'STARTTLS'];
    server.reply = (c) => (c.toString() === 'STARTTLS' ? '220 2.0.0 Ready to start TLS\r\n250 injected' : undefined);
    const err = await refusedOpen(options());
    assert.match(err.message, /sent more after its 220 to STARTTLS/);
    assert.deepEqual(server.commandText().slice(-1), ['STARTTLS'], 'nothing sent after it');
  });

  it('a refused STARTTLS is no reason to go on in clear', async () => {
    server.clear();
    server.extensions = ['STARTTLS'];
    server.reply = (c) => (c.toString() === 'STARTTLS' ? '454 4.7.0 TLS not available' : undefined);
    const err = await refusedOpen(options());
    assert.equal(err.message, 'STARTTLS: 454 4.7.0 TLS not available');
    assert.ok(!server.commandText().some((c) => c.startsWith('MAIL')));
  });

  it('a 421 to a RCPT: deferred, and the connection is not used again', async () => {
    server.clear();
    server.reply = (c) => (c.toString() === 'RCPT TO:<b@x.org>' ? '421 4.3.0 closing' : undefined);
    const conn = await SmtpConnection.open(options());
    const message = b('Subject: x\r\n\r\nbody\r\n');
    const outcome = await conn.send(envelope(message), Readable.from([message]));
    assert.deepEqual(outcome, { kind: 'deferred', response: '421 4.3.0 closing (RCPT TO:<b@x.org>)' });
    assert.equal(conn.usable, false);
    assert.ok(!server.commandText().includes('DATA'));
    conn.close();
  });

  it('a file that cannot be read in the middle of DATA: lost, and the server never gets the end of the data', async () => {
    server.clear();
    const conn = await SmtpConnection.open(options());
    const failing = new Readable({
      read() {
        this.push(b('Subject: cut\r\n\r\nfirst part\r\n'));
        setImmediate(() => this.destroy(new Error('EIO: i/o error, read')));
      },
    });
    const outcome = await conn.send(envelope(b('x'.repeat(100))), failing);
    assert.equal(outcome.kind, 'lost');
    assert.match(outcome.response, /^reading the file failed: EIO/);
    assert.equal(conn.usable, false);
    await server.idle();
    assert.deepEqual(server.messages, []);
    assert.ok(!server.commandText().includes('.'), 'no final dot');
  });

  it('a large message goes at the pace the socket takes it and arrives whole; the connection carries the next', async () => {
    server.clear();
    const conn = await SmtpConnection.open(options());
    const line = `${'y'.repeat(998)}\r\n`;
    const big = Buffer.from(`Subject: big\r\n\r\n${line.repeat(8000)}`);
    const chunks = Array.from({ length: Math.ceil(big.length / 65536) }, (_, i) => big.subarray(i * 65536, (i + 1) * 65536));
    assert.equal((await conn.send(envelope(big), Readable.from(chunks))).kind, 'sent');
    const small = b('Subject: small\r\n\r\nbody\r\n');
    assert.equal((await conn.send(envelope(small), Readable.from([small]))).kind, 'sent');
    conn.close();
    assert.equal(server.messages.length, 2);
    assert.ok(server.messages[0].data.equals(big));
    assert.ok(server.messages[1].data.equals(small));
  });
});
