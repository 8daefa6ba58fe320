// setup, doctor and status logic on recorded postconf output (Debian's
// master.cf with the Benno main.cf lines, a Univention-like master.cf, an
// Amavis set-up) and made-up file facts.

import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { DoctorFacts, FileFacts, diagnose } from '../../src/admin/doctor';
import { MilterSettings, UNIT_DEFAULTS, parseOverride, skippedDaemons, withoutOption } from '../../src/admin/milter-settings';
import { parseDefaultFile, withDefaultValues } from '../../src/ops/default-file';
import { PostfixConfig, milterList, parsePostfixConfig } from '../../src/admin/postfix-config';
import {
  SetupError,
  planPostfixSetup,
  postfixEndpoint,
  shellLine,
  univentionAllowNote,
  univentionCommands,
  univentionLocalPlan,
  univentionTcpEndpoint,
} from '../../src/admin/postfix-setup';
import { statusReport } from '../../src/admin/status';
import { EXPORT_STATUS_FILE } from '../../src/spool/names';
import { readExportStatus, spoolBacklog, writeExportStatus } from '../../src/spool/status';
import { ROOT } from '../helpers/daemon';
import { removeTree, tempDir } from '../helpers/fs';

const FIXTURES = path.join(ROOT, 'test', 'fixtures', 'postconf');

function recorded(name: string, edit: (main: string, master: string, overrides: string) => [string, string, string] = (a, b, c) => [a, b, c]): PostfixConfig {
  const read = (kind: string) => fs.readFileSync(path.join(FIXTURES, `${name}.${kind}.txt`), 'utf8');
  const [main, master, overrides] = edit(read('n'), read('M'), read('P'));
  return parsePostfixConfig(main, master, overrides, { milter_default_action: 'tempfail', queue_directory: '/var/spool/postfix' });
}

const localSettings = (extra: Partial<MilterSettings> = {}): MilterSettings => ({
  socketType: UNIT_DEFAULTS.SOCKET_TYPE,
  socket: UNIT_DEFAULTS.SOCKET,
  spoolDir: UNIT_DEFAULTS.SPOOLDIR,
  suffix: '.eml',
  milterArgs: '',
  vars: new Map(),
  ...extra,
});

const BENNO = { uid: 101, gid: 104, groups: [104, 102] };
const POSTFIX_GID = 102;

/** A healthy host: socket benno:postfix 0660 in a benno:postfix 0750 directory, spool benno 0750. */
function facts(config: PostfixConfig | null, settings: MilterSettings, files: Record<string, FileFacts | null> = {}, extra: Partial<DoctorFacts> = {}): DoctorFacts {
  const defaults: Record<string, FileFacts> = {
    '/var/spool/postfix/benno-milter/benno-milter.sock': { uid: 101, gid: 102, mode: 0o140660, socket: true, directory: false },
    '/var/spool/postfix/benno-milter': { uid: 101, gid: 102, mode: 0o40750, socket: false, directory: true },
    '/srv/benno/inbox': { uid: 101, gid: 104, mode: 0o40750, socket: false, directory: true },
  };
  return {
    postfix: config,
    settings,
    benno: BENNO,
    postfixGid: POSTFIX_GID,
    stat: (p) => (p in files ? files[p] : defaults[p] ?? null),
    oldestSpoolAge: null,
    ...extra,
  };
}

const problems = (f: DoctorFacts) => diagnose(f).map((x) => `${x.level}: ${x.problem}`);

describe('postconf output', () => {
  it('reads services, chroot columns and -o overrides', () => {
    const c = recorded('univention');
    const smtps = c.services.find((s) => s.name === 'smtps' && s.type === 'inet')!;
    assert.equal(smtps.chroot, true);
    assert.equal(smtps.command, 'smtpd');
    assert.equal(smtps.overrides.get('smtpd_milters'), 'inet:benno.example.org:22500');
    assert.equal(c.main.get('myhostname'), 'ucs-mail.example.org');
    const amavis = recorded('amavis').services.find((s) => s.name === '127.0.0.1:10025')!;
    assert.equal(amavis.chroot, false);
    assert.equal(amavis.overrides.get('content_filter'), '');
  });

  it('milter lists: commas, spaces, {...} groups with options', () => {
    assert.deepEqual(milterList('inet:localhost:8891, unix:/benno-milter/benno-milter.sock'), ['inet:localhost:8891', 'unix:/benno-milter/benno-milter.sock']);
    assert.deepEqual(milterList('{ inet:localhost:8891, default_action=accept } unix:/a'), ['inet:localhost:8891', 'unix:/a']);
    assert.deepEqual(milterList(''), []);
  });
});

describe('setup postfix', () => {
  it('main.cf lines of the Benno documentation, path relative to the chroot', () => {
    const fresh = recorded('debian', (main, M, P) => [main.replace(/^(smtpd_milters|non_smtpd_milters|milter_default_action) = .*\n/gm, ''), M, P]);
    const plan = planPostfixSetup(fresh, localSettings(), []);
    assert.deepEqual(plan.commands, [
      ['-e', 'smtpd_milters = unix:/benno-milter/benno-milter.sock', 'non_smtpd_milters = unix:/benno-milter/benno-milter.sock', 'milter_default_action = tempfail'],
    ]);
  });

  it('keeps milters already configured (OpenDKIM) and does not add ours twice', () => {
    const withDkim = recorded('debian', (main, M, P) => [main.replace(/^smtpd_milters = .*$/m, 'smtpd_milters = inet:localhost:8891'), M, P]);
    const plan = planPostfixSetup(withDkim, localSettings(), []);
    assert.equal(plan.commands[0][1], 'smtpd_milters = inet:localhost:8891, unix:/benno-milter/benno-milter.sock');
    assert.equal(plan.commands[0][2], 'non_smtpd_milters = unix:/benno-milter/benno-milter.sock', 'already there: unchanged');
  });

  it('an unchrooted service gets the absolute path; TCP gets inet:HOST:PORT', () => {
    assert.equal(postfixEndpoint(localSettings(), false, '/var/spool/postfix'), 'unix:/var/spool/postfix/benno-milter/benno-milter.sock');
    assert.equal(postfixEndpoint(localSettings(), true, '/var/spool/postfix/'), 'unix:/benno-milter/benno-milter.sock');
    assert.equal(postfixEndpoint({ socketType: 'inet', socket: '22500@0.0.0.0' }, true, '/var/spool/postfix'), 'inet:127.0.0.1:22500');
    assert.equal(postfixEndpoint({ socketType: 'inet', socket: '22500@benno.example.org' }, true, '/q'), 'inet:benno.example.org:22500');
    assert.equal(postfixEndpoint({ socketType: 'inet6', socket: '22500@::1' }, false, '/q'), 'inet:[::1]:22500');
    assert.throws(() => postfixEndpoint(localSettings({ socket: '/run/benno/m.sock' }), true, '/var/spool/postfix'), SetupError);
  });

  it('reads SOCKET_TYPE and SOCKET as the milter does: the Postfix form too, and the same refusals', () => {
    assert.equal(postfixEndpoint({ socketType: 'inet', socket: '127.0.0.1:22500' }, true, '/q'), 'inet:127.0.0.1:22500');
    assert.equal(postfixEndpoint({ socketType: 'inet6', socket: '22500@::' }, true, '/q'), 'inet:[::1]:22500');
    assert.equal(postfixEndpoint({ socketType: 'INET', socket: '22500@192.0.2.1' }, true, '/q'), 'inet:192.0.2.1:22500');
    const refused = (socketType: string, socket: string, re: RegExp) =>
      assert.throws(() => postfixEndpoint({ socketType, socket }, false, '/var/spool/postfix'), (e: Error) => e instanceof SetupError && re.test(e.message));
    refused('inet', 'bogus', /^SOCKET_TYPE=inet SOCKET=bogus: cannot read socket "inet:bogus"/);
    refused('inet', '99999@127.0.0.1', /bad port "99999"/);
    refused('local', 'm.sock', /must be absolute/);
    // The unit runs the milter with -p ${SOCKET_TYPE}:${SOCKET}: "local:unix:/..." is no socket it can listen on.
    refused('local', 'unix:/var/spool/postfix/benno-milter/benno-milter.sock', /must be absolute/);
    refused('tcp', '22500@127.0.0.1', /unknown socket type/);
  });

  it('--service: -o options on those master.cf services, per their chroot', () => {
    const notChrooted = recorded('debian', (_main, M, P) => ['', M.replace(/^submission .*$/m, '').replace(/^smtp( +)inet( +)n( +)-( +)y/m, 'smtp$1inet$2n$3-$4n'), P]);
    const plan = planPostfixSetup(notChrooted, localSettings(), ['smtp']);
    assert.deepEqual(plan.commands, [
      ['-P', 'smtp/inet/smtpd_milters=unix:/var/spool/postfix/benno-milter/benno-milter.sock'],
      ['-P', 'smtp/inet/milter_default_action=tempfail'],
    ]);
    assert.throws(() => planPostfixSetup(notChrooted, localSettings(), ['nosuch']), /master\.cf has no inet service "nosuch"/);
    assert.throws(() => planPostfixSetup(recorded('debian'), localSettings(), ['pickup']), /no inet service "pickup"/);
  });

  it('shell lines quote what needs quoting', () => {
    assert.equal(shellLine('postconf', ['-e', 'milter_default_action = tempfail']), "postconf -e 'milter_default_action = tempfail'");
    assert.equal(shellLine('postconf', ['-P', 'smtp/inet/smtpd_milters=unix:/a']), 'postconf -P smtp/inet/smtpd_milters=unix:/a');
  });
});

describe('setup univention', () => {
  it('the six ucr set commands of the Benno documentation', () => {
    assert.deepEqual(univentionCommands(() => univentionTcpEndpoint('benno.example.org')).map((a) => shellLine('ucr', a)), [
      'ucr set mail/postfix/mastercf/options/smtp/smtpd_milters=inet:benno.example.org:22500',
      'ucr set mail/postfix/mastercf/options/smtp/milter_default_action=tempfail',
      'ucr set mail/postfix/mastercf/options/submission/smtpd_milters=inet:benno.example.org:22500',
      'ucr set mail/postfix/mastercf/options/submission/milter_default_action=tempfail',
      'ucr set mail/postfix/mastercf/options/smtps/smtpd_milters=inet:benno.example.org:22500',
      'ucr set mail/postfix/mastercf/options/smtps/milter_default_action=tempfail',
    ]);
    assert.throws(() => univentionTcpEndpoint('bad host'), SetupError);
  });

  it('an IPv6 address in [brackets], as Postfix writes it', () => {
    assert.equal(univentionCommands(() => univentionTcpEndpoint('2001:db8::25', 2500))[0][1], 'mail/postfix/mastercf/options/smtp/smtpd_milters=inet:[2001:db8::25]:2500');
  });

  it('names the --allow the Benno host needs for this mail server', () => {
    assert.equal(
      univentionAllowNote('benno.example.org', ['192.0.2.10']),
      'on benno.example.org, benno-milter takes connections only from the MTAs it names: set MILTERARGS="--allow ADDRESS" in ' +
        "/etc/default/benno-milter there, with this mail server's address as benno.example.org sees it (this host's addresses: 192.0.2.10), then systemctl restart benno-milter",
    );
  });
});

describe('doctor', () => {
  it('a correct Debian set-up: no problems', () => {
    assert.deepEqual(problems(facts(recorded('debian'), localSettings())), []);
  });

  it('a correct Univention set-up (milter over TCP): no problems', () => {
    const tcp = localSettings({ socketType: 'inet', socket: '22500@0.0.0.0', milterArgs: '--allow 192.0.2.10' });
    const ucs = recorded('univention');
    // On Univention the cleanup path is not set by the UCR variables of the documentation.
    assert.deepEqual(problems(facts(ucs, tcp)), [
      'warning: benno-milter is not in non_smtpd_milters: mail submitted locally (sendmail, cron, web applications) is not archived',
    ]);
  });

  it('a TCP milter beyond loopback without --allow: it will not start; with --allow any: a warning', () => {
    const tcp = (milterArgs: string) => problems(facts(recorded('univention'), localSettings({ socketType: 'inet', socket: '22500@0.0.0.0', milterArgs })));
    assert.ok(
      tcp('').includes(
        'error: benno-milter listens on TCP inet:22500@0.0.0.0 but no --allow names the MTAs that may connect: it refuses to start (anyone reaching the port could put mail into the archive)',
      ),
    );
    assert.ok(tcp('--allow any').includes('warning: benno-milter listens on TCP inet:22500@0.0.0.0 with --allow any: anyone who can reach the port can put mail into the archive'));
    assert.ok(!tcp('--log-level debug --allow=10.0.0.0/8').some((p) => /--allow/.test(p)));
    const loopback = problems(facts(recorded('univention'), localSettings({ socketType: 'inet', socket: '22500@127.0.0.1' })));
    assert.ok(!loopback.some((p) => /--allow/.test(p)), 'loopback needs no --allow');
  });

  it('a socket the milter cannot read: it does not start', () => {
    const found = problems(facts(null, localSettings({ socket: 'benno-milter.sock' })));
    assert.deepEqual(found, [
      'error: benno-milter cannot listen on SOCKET_TYPE=local SOCKET=benno-milter.sock (socket path in "local:benno-milter.sock" must be absolute): it does not start',
    ]);
    const tcp = problems(facts(recorded('univention'), localSettings({ socketType: 'inet', socket: '22500@' })));
    assert.ok(tcp.includes('error: benno-milter cannot listen on SOCKET_TYPE=inet SOCKET=22500@ (bad host "" in socket "inet:22500@"): it does not start'), tcp.join('\n'));
  });

  it('a relative path in a milter list names the socket in the queue directory: ours', () => {
    const relative = recorded('debian', (main, M, P) => [main.replace(/^non_smtpd_milters = unix:\//m, 'non_smtpd_milters = unix:'), M, P]);
    assert.equal(relative.main.get('non_smtpd_milters'), 'unix:benno-milter/benno-milter.sock');
    assert.deepEqual(problems(facts(relative, localSettings())), []);
  });

  it('milter not configured at all', () => {
    const none = recorded('debian', (main, M, P) => [main.replace(/^.*milter.*\n/gm, ''), M, P]);
    assert.deepEqual(problems(facts(none, localSettings())), ['error: benno-milter is not in smtpd_milters of any smtpd: mail received over SMTP is not archived']);
  });

  it('socket path vs chroot mismatch, both ways', () => {
    const absolute = recorded('debian', (main, M, P) => [main.replace(/unix:\/benno-milter/g, 'unix:/var/spool/postfix/benno-milter'), M, P]);
    assert.match(problems(facts(absolute, localSettings()))[0], /^error: service smtp runs chrooted, so unix:\/var\/spool\/postfix\/benno-milter\/benno-milter\.sock does not reach the socket/);
    const unchrooted = recorded('debian', (main, M, P) => [main, M.replace(/^smtp( +)inet( +)n( +)-( +)y/m, 'smtp$1inet$2n$3-$4n'), P]);
    const found = diagnose(facts(unchrooted, localSettings()));
    assert.match(found[0].problem, /service smtp does not run chrooted, so unix:\/benno-milter\/benno-milter\.sock does not reach/);
    assert.match(found[0].fix, /unix:\/var\/spool\/postfix\/benno-milter\/benno-milter\.sock/);
  });

  it('services that pass benno-milter: the findings of each stand together, service after service', () => {
    const two = recorded('debian', (main, M, P) => [
      main.replace(/unix:\/benno-milter/g, 'unix:/var/spool/postfix/benno-milter').replace('milter_default_action = tempfail', 'milter_default_action = accept'),
      `${M}submission inet  n       -       y       -       -       smtpd\n`,
      `${P}submission/inet/milter_default_action = reject\n`,
    ]);
    assert.deepEqual(
      problems(facts(two, localSettings())).map((p) => p.replace(/: when .*|, so .*/, '')),
      ['error: service smtp runs chrooted', 'error: milter_default_action is accept for smtp', 'error: service submission runs chrooted', 'error: milter_default_action is reject for submission'],
    );
  });

  it('milter_default_action not tempfail', () => {
    const accept = recorded('debian', (main, M, P) => [main.replace('milter_default_action = tempfail', 'milter_default_action = accept'), M, P]);
    assert.deepEqual(problems(facts(accept, localSettings())), [
      'error: milter_default_action is accept for smtp: when benno-milter is down, mail is accepted without being archived',
    ]);
  });

  it('Amavis re-injection smtpd without -o smtpd_milters=: double archiving; fixed by the -o lines or --skip-daemon', () => {
    const amavis = recorded('amavis');
    const found = diagnose(facts(amavis, localSettings()));
    assert.equal(found.length, 1);
    assert.match(found[0].problem, /service 127\.0\.0\.1:10025 takes mail back from a content filter and passes it to benno-milter again: every such message is archived twice/);
    assert.equal(found[0].fix, "postconf -P '127.0.0.1:10025/inet/smtpd_milters=' '127.0.0.1:10025/inet/non_smtpd_milters='; postfix reload");
    const fixed = recorded('amavis', (main, M, P) => [main, M, `${P}127.0.0.1:10025/inet/smtpd_milters =\n`]);
    assert.deepEqual(problems(facts(fixed, localSettings())), []);
    assert.deepEqual(problems(facts(amavis, localSettings({ milterArgs: '--skip-daemon amavis-reinject' }))), []);
  });

  it('socket and spool permissions for user benno and group postfix', () => {
    const wrong = facts(recorded('debian'), localSettings(), {
      '/var/spool/postfix/benno-milter/benno-milter.sock': { uid: 101, gid: 104, mode: 0o140600, socket: true, directory: false },
      '/var/spool/postfix/benno-milter': { uid: 0, gid: 0, mode: 0o40700, socket: false, directory: true },
      '/srv/benno/inbox': { uid: 0, gid: 0, mode: 0o40755, socket: false, directory: true },
    });
    const found = problems(wrong);
    assert.equal(found.length, 3, found.join('\n'));
    assert.match(found[0], /Postfix \(group postfix\) cannot connect to \/var\/spool\/postfix\/benno-milter\/benno-milter\.sock \(owner 101:104, mode 600\)/);
    assert.match(found[1], /cannot enter the socket directory \(mode 700\)/);
    assert.match(found[2], /user benno cannot create files in \/srv\/benno\/inbox \(owner 0:0, mode 755\)/);
    assert.deepEqual(problems(facts(recorded('debian'), localSettings(), { '/var/spool/postfix/benno-milter/benno-milter.sock': null })), [
      'warning: the milter socket /var/spool/postfix/benno-milter/benno-milter.sock does not exist: benno-milter is not running',
    ]);
  });

  it('BENNOHOST unreachable, and a backlog older than an hour', () => {
    const settings = localSettings({ vars: new Map([['BENNOHOST', 'archive.example.org']]) });
    const found = problems(facts(recorded('debian'), settings, {}, { archiveReachable: { ok: false, detail: 'ECONNREFUSED' }, oldestSpoolAge: 2 * 3600 }));
    assert.deepEqual(found, [
      'error: the archive host archive.example.org:2500 does not answer (ECONNREFUSED): the spool is not shipped',
      'warning: the oldest file in /srv/benno/inbox waits for 120 minutes: the export to archive.example.org is not running or failing',
    ]);
  });

  it('files the archive host refused in the last export: an error with the first one and the fix', () => {
    const settings = localSettings({ vars: new Map([['BENNOHOST', 'archive.example.org']]) });
    const lastExport = {
      time: new Date().toISOString(),
      host: 'archive.example.org:2500',
      exitCode: 65,
      sent: 0,
      deferred: 0,
      refused: 3,
      refusedFiles: [{ name: 'a.eml', reason: '552 5.3.4 Message too big (MAIL FROM:<a@example.com>)' }],
      failed: 0,
      seconds: 1,
    };
    const found = diagnose(facts(recorded('debian'), settings, {}, { lastExport }));
    assert.deepEqual(found, [
      {
        level: 'error',
        problem:
          'the archive host refused 3 file(s) in the last export (a.eml: 552 5.3.4 Message too big (MAIL FROM:<a@example.com>)): they stay in /srv/benno/inbox and are tried again at every run, but are not archived',
        fix: 'see all of them with benno-milter-admin status and in the export log; fix the cause on the archive host (max_size, max_recipients, SMTPUTF8) or remove the files by hand',
      },
    ]);
    assert.deepEqual(diagnose(facts(recorded('debian'), settings, {}, { lastExport: { ...lastExport, refused: 0, refusedFiles: [] } })), []);
    assert.deepEqual(diagnose(facts(recorded('debian'), localSettings(), {}, { lastExport })), [], 'without BENNOHOST there is no export');
  });
});

describe('one host: the unix socket rather than loopback TCP (issue 13)', () => {
  const tcpSettings = (socket: string, milterArgs = '') => localSettings({ socketType: 'inet', socket, milterArgs });
  const debian = () => recorded('debian', (main, M, P) => [main.replace(/^(smtpd_milters|non_smtpd_milters) = .*\n/gm, ''), M, P]);

  it('a milter on loopback TCP moves to its unix socket, and Postfix names that instead of the TCP entry', () => {
    const onTcp = recorded('debian', (main, M, P) => [
      main.replace(/^smtpd_milters = .*$/m, 'smtpd_milters = inet:localhost:8891, inet:127.0.0.1:22500').replace(/^non_smtpd_milters = .*$/m, 'non_smtpd_milters = inet:127.0.0.1:22500'),
      M,
      P,
    ]);
    const plan = planPostfixSetup(onTcp, tcpSettings('22500@127.0.0.1', '--allow 127.0.0.1 --skip-daemon amavis'), []);
    assert.deepEqual(plan.move, {
      from: 'inet:22500@127.0.0.1',
      path: '/var/spool/postfix/benno-milter/benno-milter.sock',
      values: new Map([
        ['SOCKET_TYPE', 'local'],
        ['SOCKET', '/var/spool/postfix/benno-milter/benno-milter.sock'],
        ['MILTERARGS', '--skip-daemon amavis'],
      ]),
    });
    // OpenDKIM keeps its place; our TCP entry is replaced, not joined by a second one that nobody would answer.
    assert.equal(plan.commands[0][1], 'smtpd_milters = inet:localhost:8891, unix:/benno-milter/benno-milter.sock');
    assert.equal(plan.commands[0][2], 'non_smtpd_milters = unix:/benno-milter/benno-milter.sock');
    assert.match(plan.notes[0], /^benno-milter moves from TCP inet:22500@127\.0\.0\.1, which only this host can reach, to the unix socket .*0\.92 of a unix socket's rate.*--keep-tcp$/);
  });

  it('stays on TCP with --keep-tcp, with the override file of a host that had no Postfix, and when other hosts may connect', () => {
    const keep = planPostfixSetup(debian(), tcpSettings('22500@127.0.0.1'), [], { keepTcp: true });
    assert.equal(keep.move, null);
    assert.equal(keep.commands[0][1], 'smtpd_milters = inet:127.0.0.1:22500');
    assert.match(keep.notes[0], /stays on TCP inet:22500@127\.0\.0\.1 \(--keep-tcp\)/);
    const override = planPostfixSetup(debian(), tcpSettings('22500@::1'), [], { override: true });
    assert.equal(override.move, null);
    assert.match(override.notes[0], /override\.conf .*remove it, systemctl daemon-reload/);
    const shared = planPostfixSetup(debian(), tcpSettings('22500@0.0.0.0', '--allow 192.0.2.25'), []);
    assert.equal(shared.move, null);
    assert.equal(shared.commands[0][1], 'smtpd_milters = inet:127.0.0.1:22500');
    assert.match(shared.notes[0], /other hosts' MTAs may reach it.*if only this Postfix uses the milter, set SOCKET_TYPE=local/);
    assert.equal(planPostfixSetup(debian(), localSettings(), []).move, null, 'a unix socket stays');
  });

  it('a chrooted path for an unchrooted service is replaced, not doubled', () => {
    const notChrooted = recorded('debian', (main, M, P) => [main, M.replace(/^smtp( +)inet( +)n( +)-( +)y/m, 'smtp$1inet$2n$3-$4n'), P]);
    assert.equal(planPostfixSetup(notChrooted, localSettings(), []).commands[0][1], 'smtpd_milters = unix:/var/spool/postfix/benno-milter/benno-milter.sock');
  });

  it('Univention with the milter on the mail server itself: the unix socket per chroot, after the move', () => {
    const local = univentionLocalPlan(recorded('univention'), tcpSettings('22500@localhost'));
    assert.equal(local.move?.path, '/var/spool/postfix/benno-milter/benno-milter.sock');
    const lines = univentionCommands(local.endpoint).map((x) => shellLine('ucr', x));
    assert.equal(lines.length, 6);
    for (const l of lines.filter((x) => /smtpd_milters/.test(x))) assert.match(l, /=unix:(\/var\/spool\/postfix)?\/benno-milter\/benno-milter\.sock$/);
    assert.equal(univentionLocalPlan(recorded('univention'), localSettings()).move, null);
  });

  it('MILTERARGS loses --allow in both spellings and keeps every other word', () => {
    assert.equal(withoutOption('--allow 127.0.0.1 --gateway "mx 1" --allow=::1 -v', '--allow'), '--gateway "mx 1" -v');
    assert.equal(withoutOption('', '--allow'), '');
  });

  it('the default file: the active assignment replaced in place, comments kept, a missing key appended', () => {
    const text = '# socket\n#SOCKET_TYPE=local\nSOCKET_TYPE=inet\nexport SOCKET=22500@127.0.0.1 # loopback\nSPOOLDIR=/srv/benno/inbox\n';
    const out = withDefaultValues(text, new Map([['SOCKET_TYPE', 'local'], ['SOCKET', '/var/spool/postfix/benno-milter/benno-milter.sock'], ['MILTERARGS', '--gateway "mx 1"']]));
    assert.equal(
      out,
      '# socket\n#SOCKET_TYPE=local\nSOCKET_TYPE=local\nSOCKET=/var/spool/postfix/benno-milter/benno-milter.sock\nSPOOLDIR=/srv/benno/inbox\nMILTERARGS="--gateway \\"mx 1\\""\n',
    );
    const read = parseDefaultFile(out, 'default');
    assert.equal(read.get('MILTERARGS'), '--gateway "mx 1"', 'what the file says is what was meant');
    assert.equal(read.get('SOCKET_TYPE'), 'local');
    assert.equal(withDefaultValues('', new Map([['A', 'b']])), 'A=b\n');
  });

  it('doctor: Postfix reaching a local milter over TCP is a warning with the cost and the remedy', () => {
    const onTcp = recorded('debian', (main, M, P) => [
      main.replace(/^smtpd_milters = .*$/m, 'smtpd_milters = inet:127.0.0.1:22500').replace(/^non_smtpd_milters = .*$/m, 'non_smtpd_milters = inet:127.0.0.1:22500'),
      M,
      P,
    ]);
    const found = diagnose(facts(onTcp, tcpSettings('22500@127.0.0.1'), {}, { pingpongThreshold: null }));
    assert.equal(found.length, 1, JSON.stringify(found));
    assert.equal(found[0].level, 'warning');
    assert.match(found[0].problem, /^Postfix reaches benno-milter on this host over TCP \(inet:127\.0\.0\.1:22500 from smtp.*0\.92 of a unix socket's rate/);
    assert.equal(found[0].fix, 'benno-milter-admin setup postfix moves it to the unix socket');
    const sysctl = diagnose(facts(onTcp, tcpSettings('22500@127.0.0.1'), {}, { pingpongThreshold: 1 }));
    assert.match(sysctl[0].fix, /\. The host setting net\.ipv4\.tcp_pingpong_thresh=3 is no remedy: it changes delayed ACKs for every TCP connection in this network namespace and measured no consistent gain/);
    // The milter on all addresses, Postfix on this host's own address: still local.
    const ownAddress = recorded('debian', (main, M, P) => [main.replace(/^smtpd_milters = .*$/m, 'smtpd_milters = inet:192.0.2.10:22500'), M, P]);
    const shared = diagnose(facts(ownAddress, tcpSettings('22500@0.0.0.0', '--allow 192.0.2.0/24'), {}, { hostNames: ['mail.example.org', '192.0.2.10'] }));
    assert.match(shared.map((f) => f.fix).join('\n'), /if no other host's MTA uses this milter, set SOCKET_TYPE=local/);
    // A milter on another host over TCP is the documented set-up: nothing to say.
    const remote = recorded('debian', (main, M, P) => [main.replace(/^smtpd_milters = .*$/m, 'smtpd_milters = inet:benno.example.org:22500'), M, P]);
    assert.ok(!diagnose(facts(remote, tcpSettings('22500@0.0.0.0', '--allow 192.0.2.0/24'), {}, { hostNames: ['192.0.2.10'] })).some((f) => /this host over TCP/.test(f.problem)));
  });
});

describe('settings and status', () => {
  it("reads the package's override.conf and --skip-daemon names", () => {
    const o = parseOverride('[Service]\nGroup=benno\nEnvironment=SOCKET_TYPE=inet\nEnvironment="SOCKET=22500@0.0.0.0" OTHER=1\n');
    assert.deepEqual([...o], [['SOCKET_TYPE', 'inet'], ['SOCKET', '22500@0.0.0.0'], ['OTHER', '1']]);
    assert.deepEqual(skippedDaemons('--log-level debug --skip-daemon amavis "--skip-daemon=other"'), ['amavis', 'other']);
  });

  it('status: backlog, refused files, last export', () => {
    const dir = tempDir();
    try {
      const now = Date.now();
      for (const [name, age] of [['a.eml', 10], ['b.eml', 7200], ['c.eml.err', 5], ['.x.tmp', 1]] as const) {
        fs.writeFileSync(path.join(dir, name), 'x'.repeat(100));
        const t = new Date(now - age * 1000);
        fs.utimesSync(path.join(dir, name), t, t);
      }
      const backlog = spoolBacklog(dir, '.eml', now)!;
      assert.deepEqual({ ...backlog, oldestSeconds: Math.round(backlog.oldestSeconds!) }, { count: 2, bytes: 200, oldestSeconds: 7200, failed: 1 });
      writeExportStatus(dir, { time: new Date(now - 600_000).toISOString(), host: 'archive:2500', exitCode: 75, sent: 3, deferred: 2, failed: 0, seconds: 1.5 });
      assert.deepEqual(statusReport({ dir, suffix: '.eml' }, 'archive', now), [
        `spool ${dir}: 2 file(s) waiting, 200 bytes, oldest 2.0 h`,
        '1 file(s) set aside as *.err (not spool files, or refused by the archive host under an older version): look at them; rename one back without .err to send it again',
        'last export to archive:2500: 10 min ago, exit 75, sent 3, deferred 2, refused 0, failed 0, 1.5 s',
      ]);
      assert.equal(statusReport({ dir, suffix: '.eml' }, undefined, now).at(-1), 'BENNOHOST is not set: the milter writes into the archive inbox directly, nothing is exported');
    } finally {
      removeTree(dir);
    }
  });

  it('status: files the archive host refused in the last export, five named, the reasons made printable', () => {
    const dir = tempDir();
    try {
      const now = Date.now();
      const refusedFiles = Array.from({ length: 7 }, (_, i) => ({ name: `${i}.eml`, reason: `550 5.1.1 no such user ${i}` }));
      refusedFiles[1].reason = '554 evil\x1b[2J\nforged line';
      writeExportStatus(dir, { time: new Date(now - 60_000).toISOString(), host: 'archive:2500', exitCode: 65, sent: 1, deferred: 0, refused: 9, refusedFiles, failed: 0, seconds: 0.5 });
      assert.deepEqual(statusReport({ dir, suffix: '.eml' }, 'archive', now).slice(1), [
        'last export to archive:2500: 60 s ago, exit 65, sent 1, deferred 0, refused 9, failed 0, 0.5 s',
        '9 file(s) the archive host refused in the last export (kept in the spool, tried again at every run):',
        '  0.eml: 550 5.1.1 no such user 0',
        '  1.eml: 554 evil\\x{1B}[2J\\x{0A}forged line',
        '  2.eml: 550 5.1.1 no such user 2',
        '  3.eml: 550 5.1.1 no such user 3',
        '  4.eml: 550 5.1.1 no such user 4',
        '  … and 4 more',
      ]);
      // A status file of an older version has no refused fields.
      writeExportStatus(dir, { time: new Date(now - 60_000).toISOString(), host: 'archive:2500', exitCode: 0, sent: 1, deferred: 0, failed: 0, seconds: 0.5 });
      assert.deepEqual(statusReport({ dir, suffix: '.eml' }, 'archive', now).slice(1), ['last export to archive:2500: 60 s ago, exit 0, sent 1, deferred 0, refused 0, failed 0, 0.5 s']);
    } finally {
      removeTree(dir);
    }
  });

  it('status: only regular files count as waiting; the status file is neither read nor written through a link', () => {
    const dir = tempDir();
    const outside = tempDir();
    try {
      fs.writeFileSync(path.join(dir, 'a.eml'), 'x'.repeat(100));
      fs.writeFileSync(path.join(outside, 'big'), 'y'.repeat(5000));
      fs.symlinkSync(path.join(outside, 'big'), path.join(dir, 'link.eml'));
      fs.mkdirSync(path.join(dir, 'dir.eml'));
      const backlog = spoolBacklog(dir)!;
      assert.deepEqual([backlog.count, backlog.bytes], [1, 100]);

      const target = path.join(outside, 'target');
      fs.writeFileSync(target, '{"time":"2026-01-01T00:00:00Z","host":"forged:1","exitCode":0,"sent":0,"deferred":0,"failed":0,"seconds":0}\n');
      fs.symlinkSync(target, path.join(dir, EXPORT_STATUS_FILE));
      assert.equal(readExportStatus(dir), null, 'a link is not followed');
      const victim = path.join(outside, 'victim');
      fs.writeFileSync(victim, 'keep me');
      fs.symlinkSync(victim, path.join(dir, `${EXPORT_STATUS_FILE}.${process.pid}`));
      writeExportStatus(dir, { time: new Date().toISOString(), host: 'archive:2500', exitCode: 0, sent: 1, deferred: 0, refused: 0, refusedFiles: [], failed: 0, seconds: 0.1 });
      assert.equal(fs.readFileSync(victim, 'utf8'), 'keep me', 'a link under the temp name is not written through');
      assert.equal(readExportStatus(dir)!.host, 'archive:2500');
      assert.equal(fs.readFileSync(target, 'utf8').includes('forged:1'), true, 'the old link target is untouched');
    } finally {
      removeTree(dir);
      removeTree(outside);
    }
  });
});
