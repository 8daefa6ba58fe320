// Crash under load. Senders that retry on 4xx, as an MTA does, push
// messages with unique Message-IDs through a real Postfix while benno-milter
// is killed with SIGKILL every second and started again. Afterwards every
// message Postfix accepted is in the spool exactly once, every file is
// whole (its name is the SHA-256 of its content), and no temp file is left.
// The same for benno-smtp killed under the exporter.
// BENNO_CRASH_MESSAGES sets the count (default 5000).

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Program, run, sha256, startMilter } from '../helpers/daemon';
import { removeTree, tempDir } from '../helpers/fs';
import { Postfix } from '../helpers/postfix';
import { submit } from '../helpers/raw-smtp-client';
import { freePort } from '../helpers/net';
import { EXPORT_BIN, startReceiver } from '../helpers/smtp';
import { inSpool, readWhole, spoolFiles, tempFiles } from '../helpers/spool';

const MESSAGES = Number(process.env.BENNO_CRASH_MESSAGES ?? 5000);

/** One message as an MTA sends it; 4xx and a lost connection mean "try again", 5xx fails the test. */
async function send(port: number, messageId: string): Promise<'accepted' | 'retry'> {
  const body = `Message-ID: <${messageId}@crash.test>\r\nDate: Mon, 23 Nov 2026 12:00:00 +0000\r\nFrom: <sender@crash.test>\r\nTo: <rcpt@crash.test>\r\nSubject: ${messageId}\r\n\r\nbody of ${messageId}\r\n`;
  const d = await submit(port, 'sender@crash.test', ['rcpt@crash.test'], Buffer.from(body)).catch(() => null);
  if (!d) return 'retry';
  if (d.final.code === 250) return 'accepted';
  const refusal = d.refusal ?? d.final;
  assert.ok(refusal.code < 500, `permanent failure for ${messageId}: ${refusal.text}`);
  return 'retry';
}

/** Keeps killing `current()` with SIGKILL every interval and starting it again with `restart`. */
function killer(current: () => Program, restart: () => Promise<void>, intervalMs: number) {
  let stop = false;
  let kills = 0;
  const loop = (async () => {
    while (!stop) {
      await new Promise((r) => setTimeout(r, intervalMs));
      if (stop) break;
      current().proc.kill('SIGKILL');
      await current().exited;
      kills++;
      await restart();
    }
  })();
  return {
    get kills() {
      return kills;
    },
    async end() {
      stop = true;
      await loop;
    },
  };
}

function messageIdsIn(dir: string): Map<string, number> {
  const counts = new Map<string, number>();
  for (const name of spoolFiles(dir)) {
    const content = readWhole(dir, name);
    const id = /Message-ID: <([^>]+)@crash\.test>/.exec(content.toString('latin1'))?.[1];
    if (id) counts.set(id, (counts.get(id) ?? 0) + 1);
  }
  return counts;
}

describe(`crash under load (${MESSAGES} messages, SIGKILL every second)`, () => {
  let work: string;
  before(() => {
    work = tempDir();
    fs.chmodSync(work, 0o755);
  });
  after(() => removeTree(work));

  it('benno-milter behind Postfix: every accepted message archived once', async () => {
    const spool = path.join(work, 'spool');
    fs.mkdirSync(spool);
    const socketPath = path.join(work, 'milter.sock');
    let milter: Program;
    const start = async () => {
      milter = await startMilter(['-p', `unix:${socketPath}`, '-o', spool]);
      execFileSync('chgrp', ['postfix', socketPath]); // Postfix reaches it through group postfix
    };
    await start();
    const postfix = await Postfix.start({ milter: `unix:${socketPath}`, main: { milter_connect_timeout: '5s', milter_command_timeout: '10s', milter_content_timeout: '30s' } });
    const accepted = new Set<string>();
    let attempts = 0;
    let removedTemp = 0;
    const k = killer(() => milter, async () => {
      removedTemp += Number(/removed (\d+) temp file/.exec(milter.log())?.[1] ?? 0);
      await start();
    }, 1000);
    try {
      let next = 0;
      const started = Date.now();
      await Promise.all(
        Array.from({ length: 20 }, async () => {
          while (next < MESSAGES) {
            const id = `m${next++}`;
            for (;;) {
              attempts++;
              if ((await send(postfix.port, id)) === 'accepted') break;
              await new Promise((r) => setTimeout(r, 50 + Math.random() * 200));
              assert.ok(Date.now() - started < 20 * 60_000, 'the run finishes');
            }
            accepted.add(id);
          }
        }),
      );
    } finally {
      await k.end();
      await postfix.stop();
    }
    const lastLog = milter!.log();
    await milter!.stop();
    removedTemp += Number(/removed (\d+) temp file/.exec(lastLog)?.[1] ?? 0);
    const counts = messageIdsIn(spool);
    const missing = [...accepted].filter((id) => !counts.has(id));
    const twice = [...counts].filter(([, n]) => n > 1);
    console.log(`milter crash: ${k.kills} kills, ${accepted.size} accepted in ${attempts} attempts, ${missing.length} missing, ${twice.length} twice, ${removedTemp} stray temp files removed at restarts`);
    assert.equal(accepted.size, MESSAGES);
    assert.deepEqual(missing, [], 'every accepted message is in the spool');
    assert.deepEqual(twice, [], 'no message twice');
    assert.ok(k.kills >= 3, `${k.kills} kills`);
    assert.deepEqual(tempFiles(spool).length, 0);
  });

  it('benno-smtp under the exporter: every spool file arrives once, whole', async () => {
    const spool = path.join(work, 'export-spool');
    const inbox = path.join(work, 'inbox');
    fs.mkdirSync(spool);
    fs.mkdirSync(inbox);
    const originals = new Map<string, Buffer>();
    const files = Math.min(MESSAGES, 3000);
    for (let i = 0; i < files; i++) {
      const content = Buffer.from(`X-REAL-MAILFROM: <s@crash.test>\r\nX-REAL-RCPTTO: <r@crash.test>\r\nMessage-ID: <e${i}@crash.test>\r\nSubject: ${i}\r\n\r\n${'x'.repeat(2000)}\r\n`);
      const name = `${sha256(content)}.eml`;
      fs.writeFileSync(path.join(spool, name), content);
      originals.set(name, content);
    }
    const port = await freePort();
    let rx = await startReceiver(work, [`listen = 127.0.0.1:${port}`, `inbox = ${inbox}`]);
    const k = killer(() => rx.program, async () => {
      rx = await startReceiver(work, [`listen = 127.0.0.1:${port}`, `inbox = ${inbox}`]);
    }, 1000);
    let runs = 0;
    try {
      // cron: run the exporter again until the spool is empty
      while (inSpool(spool).some((n) => n.endsWith('.eml') || n.endsWith('.sending'))) {
        runs++;
        const exporter = run(EXPORT_BIN, ['--host', '127.0.0.1', '--port', String(port), '--connections', '4', '--timeout', '10', spool]);
        await exporter.closed;
        assert.ok(runs < 500, 'the exporter finishes');
      }
    } finally {
      await k.end();
    }
    await rx.program.stop();
    const stored = spoolFiles(inbox);
    for (const name of stored) readWhole(inbox, name);
    const missing = [...originals.keys()].filter((n) => !stored.includes(n));
    console.log(`receiver crash: ${k.kills} kills, ${runs} exporter runs, ${files} files, ${missing.length} missing, ${stored.length - files + missing.length} extra`);
    assert.deepEqual(missing, [], 'every spool file arrived');
    assert.equal(stored.length, files, 'nothing else arrived');
    assert.ok(k.kills >= 1, `${k.kills} kills`);
    assert.deepEqual(tempFiles(inbox), [], 'no temp file left after the last start');
    assert.deepEqual(inSpool(spool).filter((n) => !n.endsWith('.err')), [], 'the spool is empty');
  });
});
