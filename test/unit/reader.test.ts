import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { SpoolReader } from '../../src/spool/reader';
import { removeTree, tempDir } from '../helpers/fs';
import { allFiles } from '../helpers/spool';

const host = os.hostname().replace(/[^A-Za-z0-9-]/g, '_');

describe('spool reader', () => {
  let dir: string;
  before(() => (dir = tempDir()));
  after(() => removeTree(dir));

  const put = (name: string, content: string | Buffer, ageSeconds = 0) => {
    const p = path.join(dir, name);
    fs.writeFileSync(p, content);
    const t = new Date(Date.now() - ageSeconds * 1000);
    fs.utimesSync(p, t, t);
  };
  const clear = () => allFiles(dir).forEach((n) => fs.unlinkSync(path.join(dir, n)));

  it('lists waiting files oldest first, not temp, claimed or failed ones', () => {
    clear();
    put('b.eml', 'x', 10);
    put('a.eml', 'x', 20);
    put('c.eml.err', 'x');
    put('.host.1.2.tmp', 'x');
    put(`.d.eml.${host}.1.sending`, 'x');
    put('notes.txt', 'x');
    assert.deepEqual(new SpoolReader(dir).list().map((e) => e.name), ['a.eml', 'b.eml']);
  });

  it('a file is claimed once; release puts it back, fail renames it .err, done removes it', () => {
    clear();
    put('a.eml', 'x');
    put('b.eml', 'x');
    put('c.eml', 'x');
    const r1 = new SpoolReader(dir);
    const r2 = new SpoolReader(dir);
    const a = r1.claim('a.eml')!;
    assert.ok(a);
    assert.equal(r2.claim('a.eml'), null, 'a second claim of the same file fails');
    assert.deepEqual(allFiles(dir), [`.a.eml.${host}.${process.pid}.sending`, 'b.eml', 'c.eml']);
    a.release();
    assert.ok(fs.existsSync(path.join(dir, 'a.eml')));
    assert.equal(r1.claim('b.eml')!.fail(), 'b.eml.err');
    r1.claim('c.eml')!.done();
    assert.deepEqual(allFiles(dir), ['a.eml', 'b.eml.err']);
  });

  it("puts back claims of dead processes on this host, and anyone's after a day", () => {
    clear();
    put(`.dead.eml.${host}.4194310.sending`, 'x');
    put(`.mine.eml.${host}.${process.pid}.sending`, 'x');
    put(`.live.eml.${host}.1.sending`, 'x');
    put('.fresh.eml.otherhost.5.sending', 'x');
    put('.old.eml.otherhost.6.sending', 'x', 2 * 24 * 3600);
    const back = new SpoolReader(dir).recoverStale();
    assert.deepEqual(back.sort(), ['dead.eml', 'old.eml']);
    assert.deepEqual(allFiles(dir), ['.fresh.eml.otherhost.5.sending', `.live.eml.${host}.1.sending`, `.mine.eml.${host}.${process.pid}.sending`, 'dead.eml', 'old.eml']);
  });

  it('reads a large envelope in pieces and finds where the message starts', () => {
    clear();
    const rcpts = Array.from({ length: 3000 }, (_, i) => `X-REAL-RCPTTO: <recipient-number-${i}@example.org>\r\n`).join('');
    const head = `X-REAL-MAILFROM: <a@example.com>\r\n${rcpts}`;
    put('big.eml', `${head}Subject: x\r\n\r\nbody\r\n`);
    const read = new SpoolReader(dir).claim('big.eml')!.readEnvelope();
    assert.ok(read.ok);
    const env = read.envelope;
    assert.equal(env.recipients.length, 3000);
    assert.equal(env.messageOffset, Buffer.byteLength(head));
    assert.equal(String(env.recipients[2999]), 'recipient-number-2999@example.org');
  });

  it('an envelope block larger than any the milter writes is no envelope, never a partial one', () => {
    clear();
    const rcpts = Array.from({ length: 30_000 }, (_, i) => `X-REAL-RCPTTO: <recipient-number-${i}@example.org>\r\n`).join('');
    put('huge.eml', `X-REAL-MAILFROM: <a@example.com>\r\n${rcpts}Subject: x\r\n\r\nbody\r\n`);
    const read = new SpoolReader(dir).claim('huge.eml')!.readEnvelope();
    assert.equal(read.ok, false);
    assert.match(read.ok ? '' : read.why, /or more than 1048576 bytes of them/);
  });

  it('a file without envelope lines has no envelope', () => {
    clear();
    put('plain.eml', 'Subject: no envelope\r\n\r\nbody\r\n');
    put('empty.eml', '');
    const r = new SpoolReader(dir);
    const why = { ok: false, why: 'no valid X-REAL-MAILFROM/X-REAL-RCPTTO lines at its start, or more than 1048576 bytes of them' };
    assert.deepEqual(r.claim('plain.eml')!.readEnvelope(), why);
    assert.deepEqual(r.claim('empty.eml')!.readEnvelope(), why);
  });

  it('lists only regular files: a symbolic link, a directory or a FIFO under a spool name is skipped and named', () => {
    clear();
    put('a.eml', 'x');
    const secret = path.join(os.tmpdir(), `benno-secret-${process.pid}`);
    fs.writeFileSync(secret, 'X-REAL-MAILFROM: <a@example.com>\r\nX-REAL-RCPTTO: <b@example.org>\r\n\r\nsecret\r\n', { mode: 0o600 });
    try {
      fs.symlinkSync(secret, path.join(dir, 'link.eml'));
      fs.mkdirSync(path.join(dir, 'dir.eml'));
      execFileSync('mkfifo', [path.join(dir, 'fifo.eml')]);
      const skipped: string[] = [];
      assert.deepEqual(new SpoolReader(dir).list((name, what) => skipped.push(`${name}: ${what}`)).map((e) => e.name), ['a.eml']);
      assert.deepEqual(skipped.sort(), ['dir.eml: a directory', 'fifo.eml: a FIFO', 'link.eml: a symbolic link']);
    } finally {
      fs.rmSync(secret, { force: true });
      fs.rmdirSync(path.join(dir, 'dir.eml'));
    }
  });

  it('a claimed file swapped for a symbolic link before it is read: not a regular file, nothing of the target read, .err', () => {
    clear();
    const secret = path.join(os.tmpdir(), `benno-secret-${process.pid}`);
    fs.writeFileSync(secret, 'X-REAL-MAILFROM: <a@example.com>\r\nX-REAL-RCPTTO: <b@example.org>\r\n\r\nTOP SECRET\r\n', { mode: 0o600 });
    try {
      put('a.eml', 'X-REAL-MAILFROM: <a@example.com>\r\nX-REAL-RCPTTO: <b@example.org>\r\n\r\nharmless\r\n');
      const claimed = new SpoolReader(dir).claim('a.eml')!;
      fs.unlinkSync(claimed.path);
      fs.symlinkSync(secret, claimed.path);
      assert.deepEqual(claimed.readEnvelope(), { ok: false, why: 'not a regular file (a symbolic link)' });
      assert.throws(() => claimed.stream(0), /before readEnvelope/, 'no descriptor to read the target through');
      assert.equal(claimed.fail(), 'a.eml.err');
      assert.ok(fs.lstatSync(path.join(dir, 'a.eml.err')).isSymbolicLink(), 'the link itself is set aside');
    } finally {
      fs.rmSync(secret, { force: true });
    }
  });

  it('a FIFO swapped in does not block the read: not a regular file', () => {
    clear();
    put('a.eml', 'x');
    const claimed = new SpoolReader(dir).claim('a.eml')!;
    fs.unlinkSync(claimed.path);
    execFileSync('mkfifo', [claimed.path]);
    assert.deepEqual(claimed.readEnvelope(), { ok: false, why: 'not a regular file (a FIFO)' });
    claimed.fail();
  });

  it('streams the message from the descriptor it read the envelope from, whatever happens to the name', async () => {
    clear();
    put('a.eml', 'X-REAL-MAILFROM: <a@example.com>\r\nX-REAL-RCPTTO: <b@example.org>\r\nSubject: the real one\r\n\r\nbody\r\n');
    const claimed = new SpoolReader(dir).claim('a.eml')!;
    const read = claimed.readEnvelope();
    assert.ok(read.ok);
    // Replaced after the check: the stream still reads the file that was checked.
    fs.unlinkSync(claimed.path);
    fs.writeFileSync(claimed.path, 'X-REAL-MAILFROM: <evil@example.com>\r\nX-REAL-RCPTTO: <b@example.org>\r\nSubject: swapped\r\n\r\n');
    const chunks: Buffer[] = [];
    for await (const c of claimed.stream(read.envelope.messageOffset)) chunks.push(c as Buffer);
    assert.equal(Buffer.concat(chunks).toString(), 'Subject: the real one\r\n\r\nbody\r\n');
    claimed.done();
  });
});
