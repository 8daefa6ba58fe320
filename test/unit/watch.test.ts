// The watch loop of benno-export2archive --watch, with a stand-in for the
// export run that claims files as the exporter does (its renames wake the
// watch just like the real ones), and short timings.

import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { ExportSummary } from '../../src/export/exporter';
import { ExportWatcher, WATCH_TIMING, WatchTiming, nextPause, retryLater } from '../../src/export/watch';
import type { Logger } from '../../src/ops/log';
import { SpoolReader } from '../../src/spool/reader';
import { eventually } from '../helpers/daemon';
import { removeTree, tempDir } from '../helpers/fs';

function summary(fields: Partial<ExportSummary> = {}): ExportSummary {
  return { total: 0, sent: 0, deferred: 0, refused: 0, refusedFiles: [], failed: 0, skipped: 0, bytes: 0, seconds: 0, serverRefused: false, handled: [], ...fields };
}

describe('when the watch pauses', () => {
  it('not after a run that went through, nor for files refused or set aside: the archive host is fine', () => {
    assert.equal(retryLater(summary({ sent: 3, refused: 1, failed: 1 })), false);
    assert.equal(nextPause(WATCH_TIMING.firstPauseMs, summary({ refused: 1 })), 0);
  });

  it('after a deferral, a server that refuses us, or a run that failed: 30 s, doubling up to 5 min', () => {
    for (const s of [summary({ deferred: 1 }), summary({ deferred: 1, serverRefused: true }), null]) {
      assert.equal(retryLater(s), true);
      assert.equal(nextPause(0, s), 30_000);
      assert.equal(nextPause(30_000, s), 60_000);
      assert.equal(nextPause(240_000, s), 300_000);
      assert.equal(nextPause(300_000, s), 300_000);
    }
  });
});

describe('export watcher', () => {
  let dir: string;
  let watcher: ExportWatcher | undefined;
  before(() => (dir = tempDir()));
  after(() => removeTree(dir));

  const spool = (name: string) => {
    const d = path.join(dir, name);
    fs.mkdirSync(d);
    return d;
  };
  // As the milter does: written under a dot name, renamed into place.
  const arrive = (spoolDir: string, name: string) => {
    const tmp = path.join(spoolDir, `.${name}.tmp`);
    fs.writeFileSync(tmp, 'X-REAL-MAILFROM: <a@example.com>\r\nX-REAL-RCPTTO: <b@example.com>\r\n\r\nbody\r\n');
    fs.renameSync(tmp, path.join(spoolDir, name));
  };
  const waiting = (spoolDir: string) => new SpoolReader(spoolDir).list().map((e) => e.name);

  /** Starts a watcher whose runs claim every waiting file and do with it what `settle` says; returns the runs' start times. */
  const watch = (spoolDir: string, settle: (names: string[]) => ExportSummary, timing: Partial<WatchTiming> = {}, log = quietLog()) => {
    const runs: number[] = [];
    const reader = new SpoolReader(spoolDir);
    watcher = new ExportWatcher({
      spoolDir,
      suffix: '.eml',
      log,
      timing: { ...WATCH_TIMING, ...timing },
      run: async () => {
        runs.push(Date.now());
        const names = waiting(spoolDir);
        const s = settle(names);
        for (const name of names) {
          const claimed = reader.claim(name)!;
          if (s.sent > 0) claimed.done();
          else claimed.release();
        }
        return s;
      },
    });
    return runs;
  };
  const stop = async () => {
    await watcher?.stop();
    watcher = undefined;
  };
  const sent = (names: string[]) => summary({ total: names.length, sent: names.length, handled: names });
  const refused = (names: string[]) => summary({ total: names.length, refused: names.length, handled: names });
  const deferred = (names: string[]) => summary({ total: names.length, deferred: names.length, handled: names });
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

  it('runs nothing for an empty spool, one run when a file arrives, and stops at once', async () => {
    const d = spool('arrive');
    const runs = watch(d, sent);
    try {
      await sleep(400);
      assert.equal(runs.length, 0, 'no run without files');
      arrive(d, 'a.eml');
      await eventually(() => runs.length === 1 && waiting(d).length === 0, 'the new file shipped');
      await sleep(600);
      assert.equal(runs.length, 1, 'its own removal wakes no run');
      const t0 = Date.now();
      await stop();
      assert.ok(Date.now() - t0 < 1000, 'stop does not wait for the idle time');
    } finally {
      await stop();
    }
  });

  it('a file the archive host refuses wakes no run by its own renames; a new file does; the idle time retries it', async () => {
    const d = spool('refused');
    arrive(d, 'a.eml');
    const runs = watch(d, refused, { idleMs: 1500 });
    try {
      await eventually(() => runs.length === 1, 'the first run, at start');
      await sleep(700);
      assert.equal(runs.length, 1, 'no run for the renames of the refused file');
      arrive(d, 'b.eml');
      await eventually(() => runs.length === 2, 'a run for the new file');
      await eventually(() => runs.length === 3, 'the files left behind tried again');
      assert.ok(runs[2] - runs[1] >= 1400, `retried after the idle time, not before (${runs[2] - runs[1]} ms)`);
    } finally {
      await stop();
    }
  });

  it('after runs that deferred, files left behind wait for a pause that doubles', async () => {
    const d = spool('deferred');
    arrive(d, 'a.eml');
    const runs = watch(d, deferred, { firstPauseMs: 400, maxPauseMs: 800 });
    try {
      await eventually(() => runs.length === 4, 'four runs');
      const gaps = runs.slice(1).map((t, i) => t - runs[i]);
      assert.ok(gaps[0] >= 380 && gaps[1] >= 780 && gaps[2] >= 780, `pauses of 400, 800, 800 ms (${gaps.join(', ')})`);
    } finally {
      await stop();
    }
  });

  it('a run that fails is logged and tried again after the pause', async () => {
    const d = spool('failing');
    arrive(d, 'a.eml');
    const errors: string[] = [];
    let calls = 0;
    const runs = watch(
      d,
      (names) => {
        if (++calls === 1) throw new Error('disk on fire');
        return sent(names);
      },
      { firstPauseMs: 300 },
      quietLog(errors),
    );
    try {
      await eventually(() => runs.length === 2 && waiting(d).length === 0, 'the second run ships the file');
      assert.deepEqual(errors, ['export failed: disk on fire']);
      assert.ok(runs[1] - runs[0] >= 280, `after the pause (${runs[1] - runs[0]} ms)`);
    } finally {
      await stop();
    }
  });
});

function quietLog(errors: string[] = []): Logger {
  const nothing = () => undefined;
  return { error: (message: string) => errors.push(message), warn: nothing, info: nothing, debug: nothing } as unknown as Logger;
}
