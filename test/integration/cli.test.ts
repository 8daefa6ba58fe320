// What an administrator sees on the command line: --help, --version, and one
// clear line with a sysexits.h code for every mistake.

import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { MILTER_BIN, ROOT, runToEnd } from '../helpers/daemon';
import { removeTree, tempDir } from '../helpers/fs';
import { SMTP_BIN } from '../helpers/smtp';

describe('benno-milter command line', () => {
  let work: string;
  before(() => (work = tempDir()));
  after(() => removeTree(work));

  it('--help answers: usage, every option, socket forms, Postfix lines, exit codes', async () => {
    const r = await runToEnd(MILTER_BIN, ['--help']);
    assert.equal(r.code, 0);
    for (const text of ['Usage: benno-milter -p SOCKET -o SPOOLDIR [-l PIDFILE]', '--skip-daemon', '--suffix', 'inet:PORT@HOST', 'smtpd_milters = unix:/benno-milter/benno-milter.sock', 'milter_default_action = tempfail', '64 bad usage']) {
      assert.ok(r.stdout.includes(text), `--help mentions ${text}`);
    }
  });

  it('--version prints the package version', async () => {
    const r = await runToEnd(MILTER_BIN, ['--version']);
    assert.equal(r.code, 0);
    const pkg = JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', '..', 'package.json'), 'utf8'));
    assert.equal(r.stdout.trim(), pkg.version);
  });

  const usage: [string, string[], RegExp][] = [
    ['an unknown option', ['--no-such-option'], /^benno-milter: Unknown argument: no-such-option \(try --help\)$/],
    ['a bad socket type', ['-p', 'tcp:25@127.0.0.1'], /^benno-milter: unknown socket type in "tcp:25@127.0.0.1"/],
    ['a bad port', ['-p', 'inet:99999@127.0.0.1'], /^benno-milter: bad port "99999"/],
    ['a relative socket path', ['-p', 'local:milter.sock'], /^benno-milter: socket path in "local:milter.sock" must be absolute$/],
    ['a bad header name', ['--sender-header', 'X Bad'], /^benno-milter: bad --sender-header "X Bad": not a header field name of at most 64 characters$/],
    ['a suffix with a slash', ['--suffix', '../x'], /^benno-milter: bad --suffix/],
    ['the suffix of set-aside files', ['--suffix', '.err'], /^benno-milter: bad --suffix "\.err": names ending in \.err are reserved for files set aside by the exporter$/],
    ['a gateway name that is no single token', ['--gateway', 'a b'], /^benno-milter: bad --gateway "a b" is not a gateway name: 1 to 64 letters, digits, '\.', '_' or '-', starting with a letter or digit$/],
    ['a bad socket mode', ['--socket-mode', '999'], /^benno-milter: bad --socket-mode "999"/],
    ['a non-numeric limit', ['--max-connections', 'lots'], /^benno-milter: bad --max-connections/],
    ['an option given twice', ['-o', '/a', '-o', '/b'], /^benno-milter: --spool given more than once$/],
    ['the same name for sender and recipient', ['--sender-header', 'X-Env', '--recipient-header', 'x-env'], /^benno-milter: bad --sender-header\/--recipient-header: the sender and recipient header names must differ$/],
    ['a fractional recipient limit', ['--max-recipients', '1.5'], /^benno-milter: bad --max-recipients "1.5": want a whole number of at least 1$/],
  ];
  for (const [what, args, re] of usage) {
    it(`${what}: one line, exit 64`, async () => {
      const socket = args.includes('-p') ? [] : ['-p', `unix:${path.join(work, 's')}`];
      const spool = args.includes('-o') ? [] : ['-o', work];
      const r = await runToEnd(MILTER_BIN, [...socket, ...spool, ...args]);
      assert.equal(r.code, 64, r.stderr);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.match(r.stderr.trim(), re);
    });
  }

  it('a missing spool directory: one line naming it, exit 73', async () => {
    const missing = path.join(work, 'no-such-dir');
    const r = await runToEnd(MILTER_BIN, ['-p', `unix:${path.join(work, 's')}`, '-o', missing]);
    assert.equal(r.code, 73);
    assert.equal(r.stderr.trim(), `benno-milter: spool directory ${missing} does not exist; create it (owner root, mode 0750) or pass -o`);
    assert.ok(!fs.existsSync(path.join(work, 's')), 'no socket left behind');
  });

  it('a pid file naming a running process: exit 73, the other instance is left alone', async () => {
    const pidFile = path.join(work, 'pid');
    fs.writeFileSync(pidFile, '1\n');
    const r = await runToEnd(MILTER_BIN, ['-p', `unix:${path.join(work, 's2')}`, '-o', work, '-l', pidFile]);
    assert.equal(r.code, 73);
    assert.match(r.stderr.trim(), /^benno-milter: cannot write pid file: pid file .* names running process 1; is another instance running\?$/);
    assert.equal(fs.readFileSync(pidFile, 'utf8'), '1\n');
  });
});

describe('benno-milter-admin command line', () => {
  const ADMIN_BIN = path.join(ROOT, 'dist', 'src', 'cli', 'benno-milter-admin.js');

  it('--help: a usage line and a Commands entry for each command', async () => {
    const r = await runToEnd(ADMIN_BIN, ['--help']);
    assert.equal(r.code, 0);
    const usage = ['setup postfix [--dry-run] [--service NAME...] [--keep-tcp]', 'setup univention HOST [--apply] [--port N] [--keep-tcp]', 'doctor', 'status', 'audit [--since TIME] [--until TIME] [--log FILE...] [--json | --check]'];
    assert.ok(r.stdout.startsWith(`Usage: ${usage.map((u) => `benno-milter-admin ${u}`).join('\n')}\n`), r.stdout);
    for (const line of [
      '  setup postfix     add benno-milter to main.cf (smtpd_milters, non_smtpd_milters,',
      '                    milter_default_action = tempfail), or with --service to the -o options of',
      '  setup univention  print the six "ucr set" commands of the Benno documentation (--apply runs them),',
      '  doctor            check Postfix, the milter and the files between them; name each problem',
      '  status            files waiting in the spool, and the last export',
      '  audit             prove from the mail log that every message the MTA (Postfix, Sendmail)',
      '                    --log others. Exit 0 complete, 1 not; --check: one line, Nagios codes',
    ]) {
      assert.ok(r.stdout.split('\n').includes(line), `--help has the line ${line}`);
    }
  });

  const usage: [string, string[], string][] = [
    ['no command', [], 'name a command: setup, doctor, status or audit'],
    ['audit with a time it does not know', ['audit', '--since', 'tomorrow'], '--since "tomorrow" is not a time (2026-11-24, "2026-11-24 10:00:00", today, yesterday, -24h)'],
    ['audit with --json and --check', ['audit', '--json', '--check'], '--json and --check exclude each other'],
    ['audit with --until before --since', ['audit', '--since', '2026-11-24', '--until', '2026-11-23'], '--until must be after --since'],
    ['an unknown command', ['frobnicate'], 'unknown command "frobnicate"'],
    ['setup alone', ['setup'], 'unknown setup "": use setup postfix or setup univention HOST'],
    ['an unknown setup', ['setup', 'exim'], 'unknown setup "exim": use setup postfix or setup univention HOST'],
    ['setup univention without its host', ['setup', 'univention'], 'setup univention needs the Benno host: setup univention HOST'],
    ['setup univention with a bad host', ['setup', 'univention', 'bad host'], '"bad host" is not a host name or address'],
  ];
  for (const [what, args, message] of usage) {
    it(`${what}: one line, exit 64`, async () => {
      const r = await runToEnd(ADMIN_BIN, args);
      assert.equal(r.code, 64, r.stderr);
      assert.equal(r.stderr, `benno-milter-admin: ${message} (try --help)`);
    });
  }
});

describe('benno-milter-admin audit: exit codes', () => {
  const ADMIN_BIN = path.join(ROOT, 'dist', 'src', 'cli', 'benno-milter-admin.js');
  const FIXTURES = path.join(ROOT, 'test', 'fixtures', 'audit');
  let work: string;
  before(() => (work = tempDir()));
  after(() => removeTree(work));

  it('complete 0, incomplete 1; --check 0 OK, 2 CRITICAL', async () => {
    const complete = ['--log', path.join(FIXTURES, 'reinject.maillog'), path.join(FIXTURES, 'reinject.milter')];
    const gaps = ['--log', path.join(FIXTURES, 'plain.maillog'), path.join(FIXTURES, 'plain.milter')];
    assert.equal((await runToEnd(ADMIN_BIN, ['audit', ...complete])).code, 0);
    assert.equal((await runToEnd(ADMIN_BIN, ['audit', ...gaps])).code, 1);
    assert.equal((await runToEnd(ADMIN_BIN, ['audit', '--json', ...gaps])).code, 1);
    assert.equal((await runToEnd(ADMIN_BIN, ['audit', '--check', ...complete])).code, 0);
    const critical = await runToEnd(ADMIN_BIN, ['audit', '--check', ...gaps]);
    assert.equal(critical.code, 2);
    assert.match(critical.stdout, /^BENNO AUDIT CRITICAL - 2 of 5 messages accepted by the MTA not archived .*\n$/);
  });

  it('a log that cannot be read: 66, or UNKNOWN (3) with --check; no log lines at all: 65', async () => {
    const missing = path.join(work, 'missing.log');
    const r = await runToEnd(ADMIN_BIN, ['audit', '--log', missing]);
    assert.equal(r.code, 66);
    assert.equal(r.stderr, `benno-milter-admin: cannot read ${missing}: ENOENT`);
    const check = await runToEnd(ADMIN_BIN, ['audit', '--check', '--log', missing]);
    assert.equal(check.code, 3);
    assert.equal(check.stdout, `BENNO AUDIT UNKNOWN - cannot read ${missing}: ENOENT\n`);
    const garbage = path.join(work, 'garbage.log');
    fs.writeFileSync(garbage, 'no log line here\n');
    assert.equal((await runToEnd(ADMIN_BIN, ['audit', '--log', garbage])).code, 65);
  });
});

describe('benno-smtp starts as benno-milter does (issue 10)', () => {
  let work: string;
  before(() => (work = tempDir()));
  after(() => removeTree(work));

  const start = (name: string, lines: string[]) => {
    const config = path.join(work, name);
    fs.writeFileSync(config, `${lines.join('\n')}\n`);
    return { config, run: () => runToEnd(SMTP_BIN, ['-c', config]) };
  };

  it('a missing inbox: one line naming it and the setting, exit 73', async () => {
    const missing = path.join(work, 'no-such-inbox');
    const { config, run } = start('missing.conf', ['listen = 127.0.0.1:1', `inbox = ${missing}`]);
    const r = await run();
    assert.equal(r.code, 73);
    assert.equal(r.stderr.trim(), `benno-smtp: inbox ${missing} does not exist; create it (owner root, mode 0750) or set inbox in ${config}`);
  });

  it('a port another process listens on: one line, exit 69', async () => {
    const busy = net.createServer();
    await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
    try {
      const port = (busy.address() as net.AddressInfo).port;
      const { run } = start('busy.conf', [`listen = 127.0.0.1:${port}`, `inbox = ${work}`]);
      const r = await run();
      assert.equal(r.code, 69, r.stderr);
      assert.match(r.stderr.trim(), new RegExp(`^benno-smtp: cannot listen on 127\\.0\\.0\\.1:${port}: .*EADDRINUSE`));
      assert.equal(r.stderr.trim().split('\n').length, 1);
    } finally {
      busy.close();
    }
  });
});
