// The Receiver as a library: what it needs before it runs. (benno-smtp as a
// program is tested in test/integration.)

import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import { parseReceiverConfig, ReceiverConfig } from '../../src/receiver/config';
import type { Logger } from '../../src/ops/log';
import { Receiver } from '../../src/receiver/receiver';
import { patchSmtpServer, smtpServerPatched } from '../../src/receiver/smtp-server-patches';
import { SpoolWriter } from '../../src/spool/writer';
import { removeTree, tempDir } from '../helpers/fs';
import { RawSmtp } from '../helpers/raw-smtp-client';

const dir = tempDir('benno-receiver-');
after(() => removeTree(dir));

function testConfig(lines: string[] = []): ReceiverConfig {
  const config = parseReceiverConfig([`inbox = ${dir}`, ...lines].join('\n'), 'test');
  return { ...config, listen: { host: '127.0.0.1', port: 0 } };
}

/** A Receiver listening on a free loopback port, for the duration of fn; closed after it. */
async function withReceiver(
  config: ReceiverConfig,
  writer: SpoolWriter,
  log: Logger,
  fn: (receiver: Receiver, port: number) => Promise<void>,
): Promise<void> {
  const receiver = new Receiver(config, writer, log);
  await receiver.listen();
  try {
    await fn(receiver, receiver.port);
  } finally {
    await receiver.close(1000);
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
    assert.throws(() => new Receiver(testConfig(), new SpoolWriter(dir), capturingLogger()), /^Error: smtp-server is not patched: call patchSmtpServer\(\)/);
    patchSmtpServer();
    assert.ok(new Receiver(testConfig(), new SpoolWriter(dir), capturingLogger()));
  });

  it('stores into the writer it is handed, and leaves closing it to the caller', async () => {
    const inbox = fs.mkdtempSync(path.join(dir, 'handed-'));
    const writer = new SpoolWriter(inbox, { suffix: '.msg' });
    await withReceiver(testConfig(), writer, capturingLogger(), async (_receiver, port) => {
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
});
