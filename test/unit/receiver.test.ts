// The Receiver as a library, in this process: it needs a patched smtp-server,
// stores through the writer it is handed, counts its connections for
// max_clients and shuts down with smtp-server's closeTimeout. (benno-smtp as a
// program is tested in test/integration.)

import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import { parseReceiverConfig, ReceiverConfig } from '../../src/receiver/config';
import type { Logger } from '../../src/ops/log';
import { Receiver } from '../../src/receiver/receiver';
import { CLOSING_GRACE_MS, patchSmtpServer, smtpServerPatched } from '../../src/receiver/smtp-server-patches';
import { SpoolWriter } from '../../src/spool/writer';
import { removeTree, tempDir } from '../helpers/fs';
import { RawSmtp } from '../helpers/raw-smtp-client';

const dir = tempDir('benno-receiver-');
after(() => removeTree(dir));

function testConfig(lines: string[] = []): ReceiverConfig {
  const config = parseReceiverConfig([`inbox = ${dir}`, ...lines].join('\n'), 'test');
  return { ...config, listen: { host: '127.0.0.1', port: 0 } };
}

/** A Receiver on a patched smtp-server, as benno-smtp makes it. */
function newReceiver(config: ReceiverConfig, writer: SpoolWriter, log: Logger, shutdownGraceMs = 1000): Receiver {
  patchSmtpServer();
  return new Receiver(config, writer, log, { shutdownGraceMs });
}

/** A Receiver listening on a free loopback port, for the duration of fn; closed after it. */
async function withReceiver(
  config: ReceiverConfig,
  writer: SpoolWriter,
  log: Logger,
  fn: (port: number) => Promise<void>,
): Promise<void> {
  const receiver = newReceiver(config, writer, log);
  await receiver.listen();
  try {
    await fn(receiver.port);
  } finally {
    await receiver.close();
  }
}

/** A logger that keeps its lines. */
function capturingLogger(): Logger & { lines: string[] } {
  const lines: string[] = [];
  const at = (level: string) => (message: string) => lines.push(`${level}: ${message}`);
  return { lines, error: at('error'), warn: at('warn'), info: at('info'), debug: at('debug') } as unknown as Logger & { lines: string[] };
}

describe('Receiver', () => {
  // First in this file: nothing in this process has patched smtp-server yet.
  it('refuses to start on an smtp-server that is not patched, and starts once it is', () => {
    assert.equal(smtpServerPatched(), false, 'this test needs a process in which smtp-server is not patched yet');
    assert.throws(() => new Receiver(testConfig(), new SpoolWriter(dir), capturingLogger(), { shutdownGraceMs: 1000 }), /^Error: smtp-server is not patched: call patchSmtpServer\(\)/);
    patchSmtpServer();
    assert.ok(new Receiver(testConfig(), new SpoolWriter(dir), capturingLogger(), { shutdownGraceMs: 1000 }));
  });

  it('stores into the writer it is handed, and leaves closing it to the caller', async () => {
    const inbox = fs.mkdtempSync(path.join(dir, 'handed-'));
    const writer = new SpoolWriter(inbox, { suffix: '.msg' });
    await withReceiver(testConfig(), writer, capturingLogger(), async (port) => {
      const { client } = await RawSmtp.open(port);
      await client.command('EHLO client.example');
      await client.command('MAIL FROM:<a@example.com>');
      await client.command('RCPT TO:<b@example.org>');
      const stored = await client.data(Buffer.from('Subject: handed\r\n\r\nbody\r\n'));
      client.destroy();
      const name = /^250 \S+ Ok: stored as (\S+\.msg)$/.exec(stored.text)?.[1];
      assert.ok(name, stored.text);
      assert.deepEqual(fs.readdirSync(inbox), [name]);
      assert.equal(fs.readFileSync(path.join(inbox, name), 'latin1'), 'X-REAL-MAILFROM: <a@example.com>\r\nX-REAL-RCPTTO: <b@example.org>\r\nSubject: handed\r\n\r\nbody\r\n');
    });
    assert.deepEqual(fs.readdirSync(dir).filter((f) => f.endsWith('.eml')), [], 'nothing in config.inbox');
    // Still open after the Receiver closed: a second message goes through the same writer.
    const file = writer.begin();
    file.write(Buffer.from('x\r\n'));
    assert.match((await file.commit()).name, /\.msg$/);
    writer.close();
  });

  it('max_clients counts the connections it admitted: the one beyond gets 421 and a log line; a place given back is taken', async () => {
    const log = capturingLogger();
    await withReceiver(testConfig(['max_clients = 2']), new SpoolWriter(dir), log, async (port) => {
      const first = await RawSmtp.open(port);
      const second = await RawSmtp.open(port);
      assert.deepEqual([first.greeting.code, second.greeting.code], [220, 220]);
      const third = await RawSmtp.open(port);
      assert.match(third.greeting.text, /^421 4\.7\.0 \S+ Too many connected clients, try again later$/);
      await third.client.closed;
      // The refused connection did not take a place.
      const fourth = await RawSmtp.open(port);
      assert.equal(fourth.greeting.code, 421);
      await fourth.client.closed;
      first.client.end();
      await first.client.closed;
      let again = 0;
      for (let i = 0; i < 50 && again !== 220; i++) {
        const next = await RawSmtp.open(port);
        again = next.greeting.code;
        if (again === 220) assert.equal((await next.client.command('EHLO client.example')).code, 250);
        next.client.destroy();
        if (again !== 220) await new Promise((r) => setTimeout(r, 20));
      }
      assert.equal(again, 220, 'a place given back is taken');
      second.client.destroy();
    });
    assert.deepEqual(
      log.lines.filter((l) => /max_clients/.test(l)),
      ['warn: max_clients (2) reached: refused client 127.0.0.1 with 421; raise max_clients if this is normal load'],
    );
  });

  it('close(): without clients it resolves at once and says nothing', async () => {
    const log = capturingLogger();
    const receiver = newReceiver(testConfig(), new SpoolWriter(dir), log, 10_000);
    await receiver.listen();
    const t0 = Date.now();
    await receiver.close();
    assert.ok(Date.now() - t0 < 1000, `closed after ${Date.now() - t0} ms`);
    assert.deepEqual(log.lines, []);
  });

  it('close(): a transaction under way finishes within the grace; the next command gets 421', async () => {
    const log = capturingLogger();
    const inbox = fs.mkdtempSync(path.join(dir, 'grace-'));
    const receiver = newReceiver(testConfig(), new SpoolWriter(inbox), log, 10_000);
    await receiver.listen();
    const { client } = await RawSmtp.open(receiver.port);
    await client.command('EHLO client.example');
    await client.command('MAIL FROM:<a@example.com>');
    await client.command('RCPT TO:<b@example.org>');
    assert.equal((await client.command('DATA')).code, 354);
    const t0 = Date.now();
    const closed = receiver.close();
    client.write('Subject: late\r\n\r\nbody\r\n.\r\n');
    assert.match((await client.reply()).text, /^250 .*stored as/);
    assert.equal((await client.command('NOOP')).text, '421 4.4.2 Server shutting down');
    await closed;
    assert.ok(Date.now() - t0 < 5000, `closed after ${Date.now() - t0} ms`);
    assert.equal(fs.readdirSync(inbox).length, 1);
    assert.deepEqual(log.lines.filter((l) => /shutdown/.test(l)), []);
  });

  it('close(): clients still connected after the grace get 421 and are closed, with one warning', async () => {
    const log = capturingLogger();
    const receiver = newReceiver(testConfig(), new SpoolWriter(dir), log, 300);
    await receiver.listen();
    const idle = await Promise.all([RawSmtp.open(receiver.port), RawSmtp.open(receiver.port)]);
    await idle[0].client.command('EHLO client.example');
    const t0 = Date.now();
    await receiver.close();
    const waited = Date.now() - t0;
    assert.ok(waited >= 250 && waited < 5000, `closed after ${waited} ms`);
    for (const { client } of idle) {
      assert.equal((await client.reply(1000)).text, '421 4.4.2 Server shutting down');
      await client.closed;
    }
    assert.deepEqual(log.lines.filter((l) => /shutdown/.test(l)), [
      'warn: shutdown: clients still connected after 0.3s, closing them; they keep their messages and retry',
    ]);
  });

  it('close(): a client that does not hang up after the 421 is cut off, and close() waits for that', async () => {
    const log = capturingLogger();
    const receiver = newReceiver(testConfig(), new SpoolWriter(dir), log, 300);
    await receiver.listen();
    const socket = net.connect({ port: receiver.port, host: '127.0.0.1', allowHalfOpen: true });
    socket.on('error', () => undefined);
    let text = '';
    socket.on('data', (d: Buffer) => (text += d.toString('latin1')));
    await new Promise((r) => socket.once('data', r));
    const t0 = Date.now();
    await receiver.close();
    const waited = Date.now() - t0;
    socket.destroy();
    assert.match(text, /^220 .*\r\n421 4\.4\.2 Server shutting down\r\n$/);
    assert.ok(waited >= CLOSING_GRACE_MS && waited < CLOSING_GRACE_MS + 3000, `closed after ${waited} ms`);
  });

  it('a command line of more than 4 KB closes the connection (smtp-server allows 16 KB by default)', async () => {
    await withReceiver(testConfig(), new SpoolWriter(dir), capturingLogger(), async (port) => {
      const { client } = await RawSmtp.open(port);
      await client.command('EHLO client.example');
      assert.equal((await client.command(`NOOP ${'x'.repeat(4000)}`)).code, 250);
      assert.equal((await client.command(`NOOP ${'x'.repeat(4200)}`)).text, '421 4.4.2 Error: Command line too long');
      await client.closed;
    });
  });

  it('src/receiver is library code: it imports nothing from src/cli (exit codes are the programs\' business)', () => {
    const root = path.join(__dirname, '..', '..', '..', 'src', 'receiver');
    const offending = fs
      .readdirSync(root)
      .filter((f) => f.endsWith('.ts'))
      .filter((f) => /^\s*(import|export)\b[^;]*from\s+['"]\.\.\/cli\//m.test(fs.readFileSync(path.join(root, f), 'utf8')) || /require\(['"]\.\.\/cli\//.test(fs.readFileSync(path.join(root, f), 'utf8')));
    assert.deepEqual(offending, []);
  });
});
