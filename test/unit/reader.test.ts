import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { SpoolReader } from '../../src/spool/reader';
import { listFiles, removeTree, tempDir } from '../helpers/fs';

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
  const clear = () => fs.readdirSync(dir).forEach((n) => fs.unlinkSync(path.join(dir, n)));

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
    assert.deepEqual(listFiles(dir), [`.a.eml.${host}.${process.pid}.sending`, 'b.eml', 'c.eml']);
    a.release();
    assert.ok(fs.existsSync(path.join(dir, 'a.eml')));
    assert.equal(r1.claim('b.eml')!.fail(), 'b.eml.err');
    r1.claim('c.eml')!.done();
    assert.deepEqual(listFiles(dir), ['a.eml', 'b.eml.err']);
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
    assert.deepEqual(listFiles(dir), ['.fresh.eml.otherhost.5.sending', `.live.eml.${host}.1.sending`, `.mine.eml.${host}.${process.pid}.sending`, 'dead.eml', 'old.eml']);
  });

  it('reads a large envelope in pieces and finds where the message starts', () => {
    clear();
    const rcpts = Array.from({ length: 3000 }, (_, i) => `X-REAL-RCPTTO: <recipient-number-${i}@example.org>\r\n`).join('');
    const head = `X-REAL-MAILFROM: <a@example.com>\r\n${rcpts}`;
    put('big.eml', `${head}Subject: x\r\n\r\nbody\r\n`);
    const env = new SpoolReader(dir).claim('big.eml')!.readEnvelope()!;
    assert.equal(env.recipients.length, 3000);
    assert.equal(env.messageOffset, Buffer.byteLength(head));
    assert.equal(String(env.recipients[2999]), 'recipient-number-2999@example.org');
  });

  it('a file without envelope lines has no envelope', () => {
    clear();
    put('plain.eml', 'Subject: no envelope\r\n\r\nbody\r\n');
    put('empty.eml', '');
    const r = new SpoolReader(dir);
    assert.equal(r.claim('plain.eml')!.readEnvelope(), null);
    assert.equal(r.claim('empty.eml')!.readEnvelope(), null);
  });
});
