// benno-pop3's client (src/pop3/client.ts) against servers that misbehave,
// played by a socket server of the test's own: a line without end, silence,
// clear text slipped in after STLS, listings and messages beyond their
// bounds, a connection that breaks in a message, and a large message read
// by a slow sink, which must pause the socket instead of filling memory.

import assert from 'node:assert/strict';
import * as net from 'node:net';
import { after, describe, it } from 'node:test';
import * as path from 'node:path';
import { ImportEnvelope } from '../../src/imap/envelope';
import { Pop3Error, Pop3ServerOptions, Pop3Session } from '../../src/pop3/client';
import { Pop3ImportError, importPop3 } from '../../src/pop3/import';
import { UidlStateFile } from '../../src/pop3/state';
import { DEFAULT_ENVELOPE_NAMES } from '../../src/spool/format';
import { SpoolWriter } from '../../src/spool/writer';
import { eventually } from '../helpers/daemon';
import { removeTree, tempDir } from '../helpers/fs';
import { quietLogger } from '../helpers/log';

type Script = (socket: net.Socket, line: (handler: (line: string) => void) => void) => void;

const servers: net.Server[] = [];
after(() => servers.forEach((s) => s.close()));

/** A server on a loopback port that plays script for every connection. */
async function fake(script: Script): Promise<Pop3ServerOptions & { sockets: net.Socket[]; received: string[] }> {
  const sockets: net.Socket[] = [];
  const received: string[] = [];
  const server = net.createServer((socket) => {
    sockets.push(socket);
    socket.on('error', () => undefined);
    let partial = '';
    const handlers: ((line: string) => void)[] = [];
    socket.on('data', (d: Buffer) => {
      const lines = (partial + d.toString('latin1')).split('\r\n');
      partial = lines.pop()!;
      for (const l of lines) {
        received.push(l);
        handlers.forEach((h) => h(l));
      }
    });
    script(socket, (h) => handlers.push(h));
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { host: '127.0.0.1', port: (server.address() as net.AddressInfo).port, tls: 'none', timeoutMs: 5000, sockets, received };
}

/** A polite server up to the login, then answers from the table (a function for RETR). */
function pop3(answers: Record<string, string | ((socket: net.Socket) => void)>): Script {
  return (socket, line) => {
    socket.write('+OK ready\r\n');
    line((l) => {
      const verb = l.split(' ')[0];
      const a = answers[l] ?? answers[verb] ?? { CAPA: '-ERR no CAPA\r\n', USER: '+OK\r\n', PASS: '+OK\r\n', QUIT: '+OK bye\r\n' }[verb] ?? '-ERR unknown\r\n';
      if (typeof a === 'function') a(socket);
      else socket.write(a);
    });
  };
}

async function rejection(p: Promise<unknown>): Promise<Pop3Error> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof Pop3Error, String(err));
    return err;
  }
  assert.fail('no error');
}

describe('POP3 client against a hostile server', () => {
  it('a greeting without end is refused at the line bound, not read on', async () => {
    const o = await fake((socket) => socket.write(Buffer.alloc(100_000, 'x')));
    const err = await rejection(Pop3Session.open(o));
    assert.equal(err.kind, 'protocol');
    assert.match(err.message, /longer than 8192 bytes/);
  });

  it('a server that says nothing: a timeout, within the time given', async () => {
    const o = await fake(() => undefined);
    const started = Date.now();
    const err = await rejection(Pop3Session.open({ ...o, timeoutMs: 300 }));
    assert.equal(err.kind, 'timeout');
    assert.ok(Date.now() - started < 5000);
  });

  it('clear text sent along with the answer to STLS is refused, before any TLS', async () => {
    const o = await fake(pop3({ STLS: '+OK begin TLS\r\n+OK injected, would pass for encrypted\r\n' }));
    const err = await rejection(Pop3Session.open({ ...o, tls: 'starttls' }));
    assert.equal(err.kind, 'protocol');
    assert.match(err.message, /sent more after its answer to STLS/);
  });

  it('a server that refuses STLS is a TLS failure: nothing goes out in clear text', async () => {
    const o = await fake(pop3({ STLS: '-ERR no TLS here\r\n' }));
    const err = await rejection(Pop3Session.open({ ...o, tls: 'starttls' }));
    assert.equal(err.kind, 'tls');
    assert.match(err.message, /refused STLS/);
    assert.deepEqual(o.received, ['STLS']);
  });

  it('a listing beyond its bound, and a message beyond the size it may have', async () => {
    const uidl = `+OK\r\n${Array.from({ length: 1000 }, (_, i) => `${i + 1} uid${i}`).join('\r\n')}\r\n.\r\n`;
    const o = await fake(pop3({ UIDL: uidl, 'RETR 1': `+OK\r\n${'y'.repeat(5000)}\r\n.\r\n` }));
    const s = await Pop3Session.open(o, { lineBytes: 8192, listingBytes: 1000, bufferBytes: 1 << 20 });
    try {
      await s.login('u', Buffer.from('p'));
      const err = await rejection(s.listing('UIDL'));
      assert.equal(err.kind, 'protocol');
      assert.match(err.message, /listing longer than 1000 bytes/);
    } finally {
      s.close();
    }
    const s2 = await Pop3Session.open(o);
    try {
      await s2.login('u', Buffer.from('p'));
      s2.request('RETR 1');
      await s2.answer('RETR 1');
      const err = await rejection(s2.message(() => undefined, 1000, 'message 1'));
      assert.match(err.message, /past 1000 bytes/);
    } finally {
      s2.close();
    }
  });

  it('a connection that breaks inside a message is an error, not a short message', async () => {
    const o = await fake(pop3({ RETR: (socket) => socket.end('+OK\r\nhalf a mess') }));
    const s = await Pop3Session.open(o);
    try {
      await s.login('u', Buffer.from('p'));
      s.request('RETR 1');
      await s.answer('RETR 1');
      const err = await rejection(s.message(() => undefined, 1 << 20, 'message 1'));
      assert.equal(err.kind, 'connect');
      assert.match(err.message, /closed the connection/);
    } finally {
      s.close();
    }
  });

  it('-ERR to PASS carries its response code; the password never appears in an error', async () => {
    const o = await fake(pop3({ PASS: '-ERR [IN-USE] mailbox locked\r\n' }));
    const s = await Pop3Session.open(o);
    try {
      const err = await rejection(s.login('u', Buffer.from('s3cret')));
      assert.equal(err.kind, 'refused');
      assert.equal(err.responseCode, 'IN-USE');
      assert.ok(!err.message.includes('s3cret'));
    } finally {
      s.close();
    }
  });

  it('a 64 MiB message read by a slow sink: the socket is paused, at most about bufferBytes wait in memory', async () => {
    const size = 64 * 1024 * 1024;
    const line = Buffer.from(`${'z'.repeat(1022)}\r\n`);
    const o = await fake(pop3({ RETR: (socket) => socket.end(Buffer.concat([Buffer.from('+OK\r\n'), Buffer.alloc(size, line), Buffer.from('.\r\n')])) }));
    const limit = 1024 * 1024;
    const s = await Pop3Session.open(o, { lineBytes: 8192, listingBytes: 1 << 20, bufferBytes: limit });
    try {
      await s.login('u', Buffer.from('p'));
      s.request('RETR 1');
      await s.answer('RETR 1');
      let release!: () => void;
      const gate = new Promise<void>((resolve) => (release = resolve));
      let received = 0;
      const done = s.message(async (piece) => {
        received += piece.length;
        await gate;
      }, 2 * size, 'message 1');
      // Read ahead until the reader's bound, then no further: the rest waits at the server,
      // whose buffer stops shrinking (a client that read on would empty it).
      const server = o.sockets[o.sockets.length - 1];
      let last = -1;
      let still = 0;
      await eventually(() => {
        still = server.writableLength > 0 && server.writableLength === last ? still + 1 : 0;
        last = server.writableLength;
        return still >= 3;
      }, 'the transfer stalls while the sink does not take more');
      assert.ok(s.buffered >= limit && s.buffered <= limit + 256 * 1024, `${s.buffered} bytes wait in the client`);
      assert.ok(server.writableLength > size / 2, `the server still holds ${server.writableLength} bytes: the client stopped reading`);
      release();
      assert.equal(await done, size);
      assert.equal(received, size);
    } finally {
      s.close();
    }
  });

  it('a login refused for good is a login failure (exit 69); one put off ([IN-USE], [SYS/TEMP]) is temporary (75)', async () => {
    const dir = tempDir();
    try {
      const quiet = quietLogger();
      const outcome = async (pass: string) => {
        const o = await fake(pop3({ PASS: pass }));
        try {
          await importPop3({
            server: o, user: 'u', password: Buffer.from('pw'), who: 'u@test', log: quiet, deleteArchived: false,
            envelope: new ImportEnvelope(DEFAULT_ENVELOPE_NAMES, [Buffer.from('u@example.org')], null),
            writer: new SpoolWriter(dir), state: new UidlStateFile(path.join(dir, 'state'), 'test', 'u@test'),
          });
        } catch (err) {
          assert.ok(err instanceof Pop3ImportError, String(err));
          return { kind: err.kind, message: err.message };
        }
        assert.fail('the import went through');
      };
      assert.deepEqual(await outcome('-ERR [AUTH] invalid credentials\r\n'), { kind: 'login', message: 'u@test: login refused: PASS: [AUTH] invalid credentials' });
      assert.deepEqual(await outcome('-ERR wrong\r\n'), { kind: 'login', message: 'u@test: login refused: PASS: wrong' });
      for (const code of ['IN-USE', 'SYS/TEMP', 'LOGIN-DELAY']) {
        const r = await outcome(`-ERR [${code}] not now\r\n`);
        assert.equal(r.kind, 'protocol', code);
        assert.match(r.message, /login put off by the server/);
      }
    } finally {
      removeTree(dir);
    }
  });
});
