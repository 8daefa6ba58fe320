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
import { freePort } from '../helpers/net';
import { parseDefaultFile } from '../../src/ops/default-file';
import { Postfix, queuedAs, swaks } from '../helpers/postfix';

const ADMIN_BIN = path.join(ROOT, 'dist', 'src', 'cli', 'benno-milter-admin.js');

/**
 * A throwaway Postfix (no milter configured) and a work directory with a
 * spool, for one describe block; the milter a test starts is stopped after.
 */
function adminFixture() {
  const t = {} as { work: string; spool: string; defaultFile: string; postfix: Postfix; milter?: Program };
  before(async () => {
    t.work = tempDir();
    fs.chmodSync(t.work, 0o755);
    t.spool = path.join(t.work, 'spool');
    fs.mkdirSync(t.spool);
    t.defaultFile = path.join(t.work, 'default');
    t.postfix = await Postfix.start();
  });
  after(async () => {
    await t.milter?.stop();
    await t.postfix?.stop();
    removeTree(t.work);
  });
  return {
    t,
    admin: (...args: string[]) => runToEnd(ADMIN_BIN, [...args, '--postfix-config', t.postfix.configDir, '--default-file', t.defaultFile]),
    postconf: (p: string) => execFileSync('postconf', ['-c', t.postfix.configDir, '-h', p], { encoding: 'utf8' }).trim(),
  };
}

describe('benno-milter-admin with a real Postfix', () => {
  const { t, admin, postconf } = adminFixture();
  let socketPath: string;

  before(() => {
    socketPath = path.join(t.work, 'milter.sock');
    fs.writeFileSync(t.defaultFile, `SOCKET_TYPE=local\nSOCKET=${socketPath}\nSPOOLDIR=${t.spool}\n`);
  });

  it('doctor finds the milter missing; setup postfix --dry-run changes nothing', async () => {
    const doctor = await admin('doctor');
    assert.equal(doctor.code, 1);
    assert.match(doctor.stdout, /error: benno-milter is not in smtpd_milters of any smtpd/);
    const dry = await admin('setup', 'postfix', '--dry-run');
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(dry.stdout, new RegExp(`postconf -c \\S+ -e 'smtpd_milters = unix:${socketPath}' 'non_smtpd_milters = unix:${socketPath}' 'milter_default_action = tempfail'`));
    assert.equal(postconf('smtpd_milters'), '');
  });

  it('setup postfix writes main.cf (absolute path: these services are not chrooted) and mail is archived', async () => {
    const r = await admin('setup', 'postfix');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(postconf('smtpd_milters'), `unix:${socketPath}`);
    assert.equal(postconf('non_smtpd_milters'), `unix:${socketPath}`);
    assert.equal(postconf('milter_default_action'), 'tempfail');

    t.milter = await startMilter(['-p', `unix:${socketPath}`, '-o', t.spool]);
    execFileSync('chgrp', ['postfix', socketPath]);
    const sent = await swaks(['--server', `127.0.0.1:${t.postfix.port}`, '--from', 'admin@example.com', '--to', 'r@example.org', '--header', 'Subject: after setup']);
    assert.equal(sent.code, 0, sent.output);
    await t.milter.waitForLine(new RegExp(`${queuedAs(sent.output)}: archived from=<admin@example.com>`));
  });

  it('doctor then finds no Postfix problem; status counts the spool', async () => {
    const doctor = await admin('doctor');
    // This test machine has no user benno (the package makes it); everything about Postfix must be clean.
    const lines = doctor.stdout.split('\n').filter((l) => /^(error|warning):/.test(l));
    assert.ok(lines.every((l) => /no user benno|user benno cannot/.test(l)), doctor.stdout);
    const status = await admin('status');
    assert.equal(status.code, 0);
    assert.match(status.stdout, new RegExp(`spool ${t.spool}: 1 file\\(s\\) waiting, \\d+ bytes, oldest \\d+ s`));
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

describe('benno-milter-admin moves a milter on loopback TCP to its unix socket (real Postfix)', () => {
  const { t, admin, postconf } = adminFixture();
  const startFromDefaultFile = async () => {
    const vars = parseDefaultFile(fs.readFileSync(t.defaultFile, 'utf8'), t.defaultFile);
    const args = (vars.get('MILTERARGS') ?? '').split(' ').filter(Boolean);
    return startMilter(['-p', `${vars.get('SOCKET_TYPE')}:${vars.get('SOCKET')}`, '-o', t.spool, ...args]);
  };
  const archivedThrough = async (m: Program, subject: string) => {
    const sent = await swaks(['--server', `127.0.0.1:${t.postfix.port}`, '--from', 'a@example.com', '--to', 'r@example.org', '--header', `Subject: ${subject}`]);
    assert.equal(sent.code, 0, sent.output);
    await m.waitForLine(new RegExp(`${queuedAs(sent.output)}: archived from=<a@example.com>`));
  };

  it('doctor warns about the TCP; setup postfix moves the milter and Postfix, and mail is archived through the socket', async () => {
    const port = await freePort();
    fs.writeFileSync(t.defaultFile, `# the administrator's comment\nSOCKET_TYPE=inet\nSOCKET=${port}@127.0.0.1\nSPOOLDIR=${t.spool}\nMILTERARGS="--allow 127.0.0.1 --log-level info"\n`);
    fs.chmodSync(t.defaultFile, 0o640);
    execFileSync('postconf', ['-c', t.postfix.configDir, '-e', `smtpd_milters = inet:127.0.0.1:${port}`, 'milter_default_action = tempfail']);
    await t.postfix.postfix('reload');
    t.milter = await startFromDefaultFile();
    await archivedThrough(t.milter, 'over TCP');

    const doctor = await admin('doctor');
    assert.match(doctor.stdout, new RegExp(`warning: Postfix reaches benno-milter on this host over TCP \\(inet:127\\.0\\.0\\.1:${port} from 127\\.0\\.0\\.1:${t.postfix.port}\\): TCP on loopback runs at about 0\\.92`));
    assert.match(doctor.stdout, /fix: benno-milter-admin setup postfix moves it to the unix socket/);

    // The socket's directory as the package makes it; this machine has no user benno for setup to give it to.
    const socketPath = path.join(t.postfix.queueDir, 'benno-milter', 'benno-milter.sock');
    fs.mkdirSync(path.dirname(socketPath), { mode: 0o750 });
    execFileSync('chgrp', ['postfix', path.dirname(socketPath)]);
    const dry = await admin('setup', 'postfix', '--dry-run');
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(dry.stdout, new RegExp(`^# ${t.defaultFile}: SOCKET_TYPE=local SOCKET=${socketPath} MILTERARGS=--log-level info$`, 'm'));
    assert.equal(postconf('smtpd_milters'), `inet:127.0.0.1:${port}`, '--dry-run changes nothing');
    assert.match(fs.readFileSync(t.defaultFile, 'utf8'), /SOCKET_TYPE=inet/);

    const r = await admin('setup', 'postfix');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /# benno-milter moves from TCP inet:\d+@127\.0\.0\.1, which only this host can reach, to the unix socket/);
    assert.equal(
      fs.readFileSync(t.defaultFile, 'utf8'),
      `# the administrator's comment\nSOCKET_TYPE=local\nSOCKET=${socketPath}\nSPOOLDIR=${t.spool}\nMILTERARGS="--log-level info"\n`,
    );
    assert.equal(fs.statSync(t.defaultFile).mode & 0o777, 0o640, 'the file keeps its mode');
    // The test's Postfix runs its services unchrooted: the absolute path, in place of the TCP entry.
    assert.equal(postconf('smtpd_milters'), `unix:${socketPath}`);
    assert.equal(postconf('non_smtpd_milters'), `unix:${socketPath}`);

    // What systemctl restart does on a real host: the milter starts from the default file.
    await t.milter.stop();
    t.milter = await startFromDefaultFile();
    execFileSync('chgrp', ['postfix', socketPath]);
    await archivedThrough(t.milter, 'over the unix socket');
    const after = await admin('doctor');
    assert.doesNotMatch(after.stdout, /over TCP/);
  });

  it('setup univention: this host with the milter installed gets its unix socket; another host TCP and the --allow note', async () => {
    const socketPath = path.join(t.postfix.queueDir, 'benno-milter', 'benno-milter.sock');
    const here = await admin('setup', 'univention', 'localhost');
    assert.equal(here.code, 0, here.stderr);
    const set = here.stdout.split('\n').filter((l) => l.startsWith('ucr set'));
    assert.deepEqual(
      set.filter((l) => /smtpd_milters/.test(l)),
      ['smtp', 'submission', 'smtps'].map((s) => `ucr set mail/postfix/mastercf/options/${s}/smtpd_milters=unix:${socketPath}`),
    );
    assert.doesNotMatch(here.stdout, /--allow/);
    const away = await admin('setup', 'univention', 'benno.example.org');
    assert.match(away.stdout, /^ucr set mail\/postfix\/mastercf\/options\/smtp\/smtpd_milters=inet:benno\.example\.org:22500$/m);
    assert.match(away.stdout, /set MILTERARGS="--allow ADDRESS"/);
  });
});
