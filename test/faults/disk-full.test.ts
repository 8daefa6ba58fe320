// Disk full. The spool is a small tmpfs; messages keep coming through a
// real Postfix (senders retry on 4xx) while a janitor, standing in for
// Benno's importer, takes files out only now and then. When the spool is
// full the clients get 4xx, nothing half-written appears under a final name,
// the milter keeps serving, and in the end every accepted message is there
// once. The same for benno-smtp under the exporter.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runToEnd, sha256, startMilter } from '../helpers/daemon';
import { mountTmpfs, removeTree, tempDir } from '../helpers/fs';
import { Postfix } from '../helpers/postfix';
import { submit } from '../helpers/raw-smtp-client';
import { freePort } from '../helpers/net';
import { EXPORT_BIN, startReceiver } from '../helpers/smtp';
import { allFiles, inSpool, readWhole, spoolFiles, tempFiles } from '../helpers/spool';

const MESSAGES = 200;
const SIZE = 40 * 1024;

/** One message; ok, or the code of the refusal (0: the connection failed). */
async function send(port: number, i: number): Promise<{ ok: boolean; code: number }> {
  const message = Buffer.from(`Message-ID: <d${i}@disk.test>\r\nDate: Mon, 23 Nov 2026 12:00:00 +0000\r\nSubject: ${i}\r\n\r\n${'y'.repeat(SIZE)}\r\n`);
  const d = await submit(port, 'full@disk.test', ['rcpt@disk.test'], message).catch(() => null);
  if (!d) return { ok: false, code: 0 };
  return d.final.code === 250 ? { ok: true, code: 0 } : { ok: false, code: (d.refusal ?? d.final).code };
}

/** Moves whole files out of dir into store, as the archive's importer does. */
function importAll(dir: string, store: string): number {
  let n = 0;
  for (const name of spoolFiles(dir)) {
    fs.copyFileSync(path.join(dir, name), path.join(store, name));
    fs.unlinkSync(path.join(dir, name));
    n++;
  }
  return n;
}

function checkWhole(dir: string): void {
  for (const name of spoolFiles(dir)) readWhole(dir, name);
}

describe('disk full', () => {
  let work: string;
  before(() => {
    work = tempDir();
    fs.chmodSync(work, 0o755);
  });
  after(() => removeTree(work));

  it('benno-milter: 4xx while the spool is full, then every accepted message', async () => {
    const fsys = mountTmpfs(1024);
    const store = path.join(work, 'imported');
    fs.mkdirSync(store);
    const socketPath = path.join(work, 'milter.sock');
    const milter = await startMilter(['-p', `unix:${socketPath}`, '-o', fsys.dir]);
    execFileSync('chgrp', ['postfix', socketPath]);
    const postfix = await Postfix.start({ milter: `unix:${socketPath}` });
    let tempfails = 0;
    let imported = 0;
    try {
      let next = 0;
      const accepted = new Set<number>();
      await Promise.all(
        Array.from({ length: 10 }, async () => {
          while (next < MESSAGES) {
            const i = next++;
            for (let attempt = 0; ; attempt++) {
              const r = await send(postfix.port, i);
              if (r.ok) break;
              assert.ok(r.code === 0 || (r.code >= 400 && r.code < 500), `message ${i}: ${r.code}`);
              tempfails++;
              // The importer comes by now and then, as Benno does.
              if (tempfails % 25 === 0) imported += importAll(fsys.dir, store);
              await new Promise((res) => setTimeout(res, 20));
              assert.ok(attempt < 2000, `message ${i} gets through`);
            }
            accepted.add(i);
          }
        }),
      );
      imported += importAll(fsys.dir, store);
      assert.equal(accepted.size, MESSAGES);
    } finally {
      await postfix.stop();
    }
    const enospc = milter.log().split('\n').filter((l) => /archiving failed: ENOSPC/.test(l)).length;
    assert.equal(milter.proc.exitCode, null, 'the milter kept serving');
    await milter.stop();
    checkWhole(store);
    const ids = spoolFiles(store).map((n) => /Message-ID: <d(\d+)@disk\.test>/.exec(fs.readFileSync(path.join(store, n), 'latin1'))![1]);
    console.log(`milter disk full: ${tempfails} temporary failures (${enospc} ENOSPC), ${imported} files imported, ${ids.length} distinct messages`);
    assert.ok(enospc > 0, 'the spool did fill');
    assert.equal(new Set(ids).size, ids.length, 'none twice');
    assert.equal(ids.length, MESSAGES, 'every accepted message is there');
    assert.deepEqual(allFiles(fsys.dir), [], 'nothing half-written left');
    fsys.unmount();
  });

  it('benno-smtp: 451 while the inbox is full, the exporter keeps the files, then all arrive whole', async () => {
    const fsys = mountTmpfs(1024);
    const spool = path.join(work, 'export-spool');
    const store = path.join(work, 'imported-smtp');
    fs.mkdirSync(spool);
    fs.mkdirSync(store);
    const originals = new Set<string>();
    for (let i = 0; i < MESSAGES; i++) {
      const content = Buffer.from(`X-REAL-MAILFROM: <s@disk.test>\r\nX-REAL-RCPTTO: <r@disk.test>\r\nSubject: ${i}\r\n\r\n${'z'.repeat(SIZE)}\r\n`);
      const name = `${sha256(content)}.eml`;
      fs.writeFileSync(path.join(spool, name), content);
      originals.add(name);
    }
    const port = await freePort();
    const rx = await startReceiver(work, [`listen = 127.0.0.1:${port}`, `inbox = ${fsys.dir}`]);
    let runs = 0;
    let deferredRuns = 0;
    try {
      while (inSpool(spool).some((n) => n.endsWith('.eml'))) {
        runs++;
        const r = await runToEnd(EXPORT_BIN, ['--host', '127.0.0.1', '--port', String(port), spool]);
        if (r.code === 75) deferredRuns++;
        else assert.equal(r.code, 0, r.stderr);
        importAll(fsys.dir, store);
        assert.ok(runs < 100, 'the export finishes');
      }
    } finally {
      await rx.program.stop();
    }
    checkWhole(store);
    console.log(`receiver disk full: ${runs} exporter runs, ${deferredRuns} with deferrals`);
    assert.ok(deferredRuns > 0, 'the inbox did fill');
    assert.deepEqual(spoolFiles(store), [...originals].sort());
    assert.deepEqual(tempFiles(fsys.dir), []);
    fsys.unmount();
  });
});
