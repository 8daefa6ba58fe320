// benno-milter-admin against a real Postfix: `setup postfix` writes the
// lines with postconf, and mail then reaches the milter; `doctor` and
// `status` read the same system.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Program, ROOT, runToEnd, startMilter } from '../helpers/daemon';
import { removeTree, tempDir } from '../helpers/fs';
import { Postfix, queuedAs, swaks } from '../helpers/postfix';

const ADMIN_BIN = path.join(ROOT, 'dist', 'src', 'cli', 'benno-milter-admin.js');

describe('benno-milter-admin with a real Postfix', () => {
  let work: string;
  let spool: string;
  let socketPath: string;
  let defaultFile: string;
  let postfix: Postfix;
  let milter: Program | undefined;

  before(async () => {
    work = tempDir();
    fs.chmodSync(work, 0o755);
    spool = path.join(work, 'spool');
    fs.mkdirSync(spool);
    socketPath = path.join(work, 'milter.sock');
    defaultFile = path.join(work, 'default');
    fs.writeFileSync(defaultFile, `SOCKET_TYPE=local\nSOCKET=${socketPath}\nSPOOLDIR=${spool}\n`);
    postfix = await Postfix.start(); // no milter configured yet
  });
  after(async () => {
    await milter?.stop();
    await postfix?.stop();
    removeTree(work);
  });

  const admin = (...args: string[]) => runToEnd(ADMIN_BIN, [...args, '--postfix-config', postfix.configDir, '--default-file', defaultFile]);

  it('doctor finds the milter missing; setup postfix --dry-run changes nothing', async () => {
    const doctor = await admin('doctor');
    assert.equal(doctor.code, 1);
    assert.match(doctor.stdout, /error: benno-milter is not in smtpd_milters of any smtpd/);
    const dry = await admin('setup', 'postfix', '--dry-run');
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(dry.stdout, new RegExp(`postconf -c \\S+ -e 'smtpd_milters = unix:${socketPath}' 'non_smtpd_milters = unix:${socketPath}' 'milter_default_action = tempfail'`));
    assert.equal(execFileSync('postconf', ['-c', postfix.configDir, '-h', 'smtpd_milters'], { encoding: 'utf8' }).trim(), '');
  });

  it('setup postfix writes main.cf (absolute path: these services are not chrooted) and mail is archived', async () => {
    const r = await admin('setup', 'postfix');
    assert.equal(r.code, 0, r.stderr);
    const value = (p: string) => execFileSync('postconf', ['-c', postfix.configDir, '-h', p], { encoding: 'utf8' }).trim();
    assert.equal(value('smtpd_milters'), `unix:${socketPath}`);
    assert.equal(value('non_smtpd_milters'), `unix:${socketPath}`);
    assert.equal(value('milter_default_action'), 'tempfail');

    milter = await startMilter(['-p', `unix:${socketPath}`, '-o', spool]);
    execFileSync('chgrp', ['postfix', socketPath]);
    const sent = await swaks(['--server', `127.0.0.1:${postfix.port}`, '--from', 'admin@example.com', '--to', 'r@example.org', '--header', 'Subject: after setup']);
    assert.equal(sent.code, 0, sent.output);
    await milter.waitForLine(new RegExp(`${queuedAs(sent.output)}: archived from=<admin@example.com>`));
  });

  it('doctor then finds no Postfix problem; status counts the spool', async () => {
    const doctor = await admin('doctor');
    // This test machine has no user benno (the package makes it); everything about Postfix must be clean.
    const lines = doctor.stdout.split('\n').filter((l) => /^(error|warning):/.test(l));
    assert.ok(lines.every((l) => /no user benno|user benno cannot/.test(l)), doctor.stdout);
    const status = await admin('status');
    assert.equal(status.code, 0);
    assert.match(status.stdout, new RegExp(`spool ${spool}: 1 file\\(s\\) waiting, \\d+ bytes, oldest \\d+ s`));
    assert.match(status.stdout, /BENNOHOST is not set/);
  });

  it('usage errors are one line with exit 64', async () => {
    const r = await runToEnd(ADMIN_BIN, ['frobnicate']);
    assert.equal(r.code, 64);
    assert.match(r.stderr.trim(), /^benno-milter-admin: unknown command "frobnicate" \(try --help\)$/);
    const u = await runToEnd(ADMIN_BIN, ['setup', 'univention']);
    assert.equal(u.code, 64);
  });
});
