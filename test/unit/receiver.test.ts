// The Receiver as a library: what it needs before it runs. (benno-smtp as a
// program is tested in test/integration.)

import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { parseReceiverConfig, ReceiverConfig } from '../../src/receiver/config';
import type { Logger } from '../../src/ops/log';
import { Receiver } from '../../src/receiver/receiver';
import { patchSmtpServer, smtpServerPatched } from '../../src/receiver/smtp-server-patches';
import { removeTree, tempDir } from '../helpers/fs';

const dir = tempDir('benno-receiver-');
after(() => removeTree(dir));

function testConfig(lines: string[] = []): ReceiverConfig {
  return parseReceiverConfig(['listen = 127.0.0.1:2500', `inbox = ${dir}`, ...lines].join('\n'), 'test');
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
    assert.throws(() => new Receiver(testConfig(), capturingLogger()), /^Error: smtp-server is not patched: call patchSmtpServer\(\)/);
    patchSmtpServer();
    assert.ok(new Receiver(testConfig(), capturingLogger()));
  });
});
