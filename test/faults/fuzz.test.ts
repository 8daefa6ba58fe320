// Fuzzing the milter protocol and the SMTP receiver for a bounded time.
// BENNO_FUZZ_SECONDS sets the time per target (default 20); BENNO_FUZZ_SEED
// repeats a run.

import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Program, startMilter } from '../helpers/daemon';
import { removeTree, tempDir } from '../helpers/fs';
import { submit } from '../helpers/raw-smtp-client';
import { freePort } from '../helpers/net';
import { startReceiver } from '../helpers/smtp';
import { Rng, fuzzMilter } from './fuzz';
import { spoolFiles, tempFiles } from '../helpers/spool';

const SECONDS = Number(process.env.BENNO_FUZZ_SECONDS ?? 20);
const SEED = Number(process.env.BENNO_FUZZ_SEED ?? Date.now() % 1_000_000);

describe(`fuzzing (${SECONDS} s per target, seed ${SEED})`, () => {
  let work: string;
  before(() => (work = tempDir()));
  after(() => removeTree(work));

  it('the harness notices a peer that hangs (the fuzz checks can fail)', async () => {
    const { runInput } = await import('./fuzz');
    const held: net.Socket[] = [];
    const silent = net.createServer({ allowHalfOpen: true }, (s) => held.push(s)); // never answers, never closes
    const socketPath = path.join(work, 'silent.sock');
    await new Promise<void>((r) => silent.listen(socketPath, r));
    try {
      assert.equal(await runInput({ path: socketPath }, Buffer.from('anything'), 300), 'hung');
    } finally {
      held.forEach((s) => s.destroy());
      await new Promise((r) => silent.close(r));
    }
  });

  it('benno-milter: random and mutated packet streams', async () => {
    const spool = path.join(work, 'milter-spool');
    fs.mkdirSync(spool);
    const socketPath = path.join(work, 'milter.sock');
    // A short idle timeout, so that a stuck session shows up as a hang here.
    const milter: Program = await startMilter(['-p', `unix:${socketPath}`, '-o', spool, '--timeout', '3']);
    try {
      const r = await fuzzMilter(milter, { path: socketPath }, { seconds: SECONDS, seed: SEED });
      console.log(`milter fuzz: ${r.cases} cases, canary ${r.canaryMessages} messages, RSS ${(r.rssStart / 1048576).toFixed(1)} → ${(r.rssEnd / 1048576).toFixed(1)} MiB`);
      assert.deepEqual(r.failures, [], `failing inputs saved under test/fixtures/fuzz/ (seed ${SEED})`);
      assert.ok(r.cases > 50, `${r.cases} cases`);
      assert.ok(r.rssEnd < r.rssStart + 64 * 1024 * 1024, `RSS ${r.rssStart} → ${r.rssEnd}`);
      assert.ok(milter.proc.exitCode === null, 'still running');
      assert.ok(!milter.log().includes('internal error'), milter.log().split('\n').filter((l) => l.includes('internal error')).slice(0, 3).join('\n'));
    } finally {
      await milter.stop();
    }
    assert.deepEqual(tempFiles(spool), [], 'no temp file left after the fuzzed sessions');
  });

  it('benno-smtp: random SMTP input', async () => {
    const inbox = path.join(work, 'smtp-inbox');
    fs.mkdirSync(inbox);
    const port = await freePort();
    const rx = await startReceiver(work, [`listen = 127.0.0.1:${port}`, `inbox = ${inbox}`, 'timeout = 3', 'max_size = 1M']);
    const rng = new Rng(SEED);
    const words = ['HELO', 'EHLO', 'MAIL FROM:', 'RCPT TO:', 'DATA', 'RSET', 'NOOP', 'QUIT', 'VRFY', 'STARTTLS', 'AUTH PLAIN', 'BDAT', '.', '', 'XCLIENT', 'HELP'];
    const junk = () => {
      const parts: Buffer[] = [];
      for (let i = 0; i < 1 + rng.int(20); i++) {
        const r = rng.int(4);
        if (r === 0) parts.push(rng.bytes(rng.int(300)));
        else parts.push(Buffer.from(`${rng.pick(words)}${rng.next() < 0.5 ? ` <${rng.bytes(rng.int(30)).toString('latin1')}>` : ''}${rng.pick(['\r\n', '\n', '\r', ''])}`, 'latin1'));
      }
      return Buffer.concat(parts);
    };
    let cases = 0;
    let canary = 0;
    try {
      const deadline = Date.now() + SECONDS * 1000;
      while (Date.now() < deadline) {
        await Promise.all(
          Array.from({ length: 8 }, () =>
            new Promise<void>((resolve) => {
              const s = net.connect(port, '127.0.0.1');
              const t = setTimeout(() => s.destroy(), 5000);
              s.on('data', () => undefined);
              s.once('connect', () => s.end(junk()));
              s.once('error', () => undefined);
              s.once('close', () => {
                clearTimeout(t);
                resolve();
              });
            }),
          ),
        );
        cases += 8;
        assert.equal(rx.program.proc.exitCode, null, 'benno-smtp still running');
        const sent = await submit(port, 'canary@example.com', ['canary@example.org'], Buffer.from(`Subject: canary ${canary}\r\n\r\nbody\r\n`));
        assert.equal(sent.final.code, 250, sent.replies.map((r) => r.text).join('\n'));
        canary++;
      }
      console.log(`smtp fuzz: ${cases} connections of junk, canary ${canary} messages`);
      assert.ok(cases > 50);
      assert.ok(spoolFiles(inbox).length >= canary, 'every canary message stored');
      assert.deepEqual(tempFiles(inbox), [], 'no temp file left behind');
      assert.ok(!rx.program.log().includes('internal error'));
    } finally {
      await rx.program.stop();
    }
  });
});
