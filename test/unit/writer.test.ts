import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { SpoolWriter } from '../../src/spool/writer';
import { mountTmpfs, removeTree, tempDir } from '../helpers/fs';
import { allFiles } from '../helpers/spool';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('spool writer', () => {
  let dir: string;
  before(() => (dir = tempDir()));
  after(() => removeTree(dir));

  it('commits under the content hash, mode 0640, and leaves no temp file', async () => {
    const w = new SpoolWriter(dir);
    const f = w.begin();
    const parts = [Buffer.from('X-REAL-MAILFROM: <a@b>\r\n'), Buffer.from('Subject: x\r\n\r\nbody\r\n')];
    for (const p of parts) f.write(p);
    const done = await f.commit();
    const content = Buffer.concat(parts);
    assert.equal(done.name, sha(content) + '.eml');
    assert.equal(done.size, content.length);
    assert.deepEqual(fs.readFileSync(path.join(dir, done.name)), content);
    assert.equal(fs.statSync(path.join(dir, done.name)).mode & 0o777, 0o640);
    assert.deepEqual(allFiles(dir), [done.name]);
  });

  it('the same content lands on the same name (a retry is not a second file)', async () => {
    const d = tempDir();
    try {
      const w = new SpoolWriter(d, { suffix: '.msg' });
      const names = [];
      for (let i = 0; i < 3; i++) {
        const f = w.begin();
        f.write(Buffer.from('same bytes\r\n'));
        names.push((await f.commit()).name);
      }
      assert.equal(new Set(names).size, 1);
      assert.match(names[0], /^[0-9a-f]{64}\.msg$/);
      assert.deepEqual(allFiles(d), [names[0]]);
    } finally {
      removeTree(d);
    }
  });

  it('streams large content to the temp file before commit, under a dot name', async () => {
    const d = tempDir();
    try {
      const w = new SpoolWriter(d, { bufferBytes: 64 * 1024, highWaterBytes: 256 * 1024 });
      const f = w.begin();
      const hash = createHash('sha256');
      let waited = 0;
      for (let i = 0; i < 160; i++) {
        const chunk = Buffer.alloc(65536, i & 0xff);
        hash.update(chunk);
        const wait = f.write(chunk);
        if (wait) {
          waited++;
          await wait;
        }
      }
      assert.ok(waited > 0, 'the writer asked to wait at least once');
      const temps = allFiles(d);
      assert.equal(temps.length, 1);
      assert.match(temps[0], new RegExp(`^\\.${os.hostname().replace(/[^A-Za-z0-9-]/g, '_')}\\.${process.pid}\\.\\d+\\.tmp$`));
      assert.ok(fs.statSync(path.join(d, temps[0])).size > 0, 'data reached the temp file before commit');
      const done = await f.commit();
      assert.equal(done.name, hash.digest('hex') + '.eml');
      assert.equal(fs.statSync(path.join(d, done.name)).size, 160 * 65536);
      assert.deepEqual(allFiles(d), [done.name]);
    } finally {
      removeTree(d);
    }
  });

  it('discard removes the temp file, also after data reached the disk', async () => {
    const d = tempDir();
    try {
      const w = new SpoolWriter(d, { bufferBytes: 1024 });
      const small = w.begin();
      small.write(Buffer.from('x'));
      await small.discard();
      const big = w.begin();
      for (let i = 0; i < 10; i++) await big.write(Buffer.alloc(4096, 0x61));
      await big.discard();
      assert.deepEqual(allFiles(d), []);
    } finally {
      removeTree(d);
    }
  });

  it('check() names a missing directory and a non-directory', async () => {
    await assert.rejects(new SpoolWriter(path.join(dir, 'missing')).check(), { code: 'ENOENT' });
    const file = path.join(dir, 'plain');
    fs.writeFileSync(file, '');
    await assert.rejects(new SpoolWriter(file).check(), { code: 'ENOTDIR' });
    fs.unlinkSync(file);
  });

  it('removes stale temp files of dead processes, keeps the living and foreign ones', () => {
    const d = tempDir();
    try {
      const host = os.hostname().replace(/[^A-Za-z0-9-]/g, '_');
      const dead = 4194304 + 1; // above pid_max: never a live process
      const names = {
        deadOurs: `.${host}.${dead}.1.tmp`,
        liveOurs: `.${host}.1.7.tmp`, // pid 1 is alive
        foreignFresh: '.otherhost.123.1.tmp',
        foreignOld: '.otherhost.124.1.tmp',
        unrelated: '.keep-me',
        mail: 'abc.eml',
      };
      for (const n of Object.values(names)) fs.writeFileSync(path.join(d, n), 'x');
      const old = new Date(Date.now() - 2 * 24 * 3600 * 1000);
      fs.utimesSync(path.join(d, names.foreignOld), old, old);
      const { removed } = new SpoolWriter(d).cleanStale();
      assert.deepEqual(removed.sort(), [names.deadOurs, names.foreignOld].sort());
      assert.deepEqual(allFiles(d), [names.liveOurs, names.foreignFresh, names.unrelated, names.mail].sort());
    } finally {
      removeTree(d);
    }
  });
});

describe('spool writer failure paths (real filesystems)', () => {
  it('disk full: commit fails with ENOSPC, nothing half-written remains, the next message fits', async () => {
    const fsys = mountTmpfs(256);
    try {
      const w = new SpoolWriter(fsys.dir, { bufferBytes: 32 * 1024 });
      const f = w.begin();
      for (let i = 0; i < 64; i++) await f.write(Buffer.alloc(16 * 1024, 0x62));
      await assert.rejects(f.commit(), { code: 'ENOSPC' });
      assert.deepEqual(allFiles(fsys.dir), []);
      const g = w.begin();
      g.write(Buffer.from('small message\r\n'));
      const done = await g.commit();
      assert.deepEqual(allFiles(fsys.dir), [done.name]);
      w.close();
    } finally {
      fsys.unmount();
    }
  });

  it('disk full when everything is still in memory (small message, full disk)', async () => {
    const fsys = mountTmpfs(64);
    try {
      fs.writeFileSync(path.join(fsys.dir, 'filler'), Buffer.alloc(64 * 1024));
    } catch {
      // the filler itself hit the limit: the disk is full, which is the point
    }
    try {
      const w = new SpoolWriter(fsys.dir);
      const f = w.begin();
      f.write(Buffer.alloc(8192, 0x63));
      await assert.rejects(f.commit(), { code: 'ENOSPC' });
      assert.deepEqual(allFiles(fsys.dir), ['filler']);
    } finally {
      fsys.unmount();
    }
  });

  it('read-only filesystem: check() and commit() fail with EROFS', async () => {
    const fsys = mountTmpfs(64, true);
    try {
      const w = new SpoolWriter(fsys.dir);
      await assert.rejects(w.check(), { code: 'EROFS' });
      const f = w.begin();
      f.write(Buffer.from('x'));
      await assert.rejects(f.commit(), { code: 'EROFS' });
    } finally {
      fsys.unmount();
    }
  });

  it('directory removed after start: commit fails with ENOENT', async () => {
    const d = tempDir();
    const w = new SpoolWriter(d);
    await w.check();
    removeTree(d);
    const f = w.begin();
    f.write(Buffer.from('x'));
    await assert.rejects(f.commit(), { code: 'ENOENT' });
  });
});
