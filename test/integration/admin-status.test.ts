// `benno-milter-admin status` counts the spool under the suffix the milter
// writes (its --suffix in MILTERARGS) or the exporter sends (SUFFIX), not
// under a fixed .eml.

import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { SpoolWriter } from '../../src/spool/writer';
import { ROOT, runToEnd } from '../helpers/daemon';
import { removeTree, tempDir } from '../helpers/fs';

const ADMIN_BIN = path.join(ROOT, 'dist', 'src', 'cli', 'benno-milter-admin.js');

describe('benno-milter-admin status with a suffix other than .eml', () => {
  let work: string;
  let spool: string;

  before(async () => {
    work = tempDir();
    spool = path.join(work, 'spool');
    fs.mkdirSync(spool);
    const writer = new SpoolWriter(spool, { suffix: '.msg' });
    for (const text of ['one', 'two']) {
      const file = writer.begin();
      file.write(Buffer.from(`X-REAL-MAILFROM: <a@example.com>\r\nX-REAL-RCPTTO: <b@example.org>\r\nSubject: ${text}\r\n\r\nbody\r\n`));
      await file.commit();
    }
    writer.close();
  });
  after(() => removeTree(work));

  const status = async (defaults: string) => {
    const defaultFile = path.join(work, 'default');
    fs.writeFileSync(defaultFile, `SPOOLDIR=${spool}\n${defaults}`);
    const r = await runToEnd(ADMIN_BIN, ['status', '--default-file', defaultFile]);
    assert.equal(r.code, 0, r.stderr);
    return r.stdout;
  };

  it("counts the files under the milter's --suffix", async () => {
    assert.match(await status('MILTERARGS="--log-level debug --suffix .msg"\n'), new RegExp(`^spool ${spool}: 2 file\\(s\\) waiting, \\d+ bytes`, 'm'));
  });

  it("counts the files under the exporter's SUFFIX", async () => {
    assert.match(await status('SUFFIX=.msg\n'), new RegExp(`^spool ${spool}: 2 file\\(s\\) waiting`, 'm'));
  });

  it('counts nothing under the default suffix', async () => {
    assert.match(await status(''), new RegExp(`^spool ${spool}: 0 file\\(s\\) waiting`, 'm'));
  });
});
