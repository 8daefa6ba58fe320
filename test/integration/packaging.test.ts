// What the packages ship besides the programs: systemd units, /etc files,
// manual pages. Checked with the tools an administrator and Debian use.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { describe, it } from 'node:test';
import { AUTH_CONFIG_KEYS, parseImapAuthConfig } from '../../src/imap/config';
import { CONFIG_KEYS, parseReceiverConfig } from '../../src/receiver/config';
import { parseDefaultFile } from '../../src/ops/default-file';
import { ROOT } from '../helpers/daemon';

const execFileP = promisify(execFile);

describe('systemd units', () => {
  it('systemd-analyze verify is clean and every service exposes at most 2.0', async () => {
    const { stdout } = await execFileP(path.join(ROOT, 'scripts', 'check-units'));
    const scores = [...stdout.matchAll(/exposure level for (\S+): ([\d.]+)/g)].map((m) => [m[1], Number(m[2])] as const);
    assert.deepEqual(scores.map(([u]) => u).sort(), ['benno-export2archive.service', 'benno-imapsync.service', 'benno-milter.service', 'benno-smtp.service']);
    for (const [unit, score] of scores) assert.ok(score <= 2.0, `${unit}: ${score}`);
  });

  it("benno-milter.service starts the daemon the way the Benno documentation describes", () => {
    const unit = fs.readFileSync(path.join(ROOT, 'systemd', 'benno-milter.service'), 'utf8');
    for (const line of [
      'Type=notify',
      'User=benno',
      'Group=postfix',
      'RuntimeDirectory=benno-milter',
      'Environment=SOCKET_TYPE=local',
      'Environment=SOCKET=/var/spool/postfix/benno-milter/benno-milter.sock',
      'Environment=SPOOLDIR=/srv/benno/inbox',
      'Environment=PIDFILE=/run/benno-milter/benno-milter.pid',
      'EnvironmentFile=-/etc/default/benno-milter',
      'ExecStart=/usr/sbin/benno-milter -l ${RUNTIME_DIRECTORY}/benno-milter.pid -p ${SOCKET_TYPE}:${SOCKET} -o ${SPOOLDIR} $MILTERARGS',
      'SyslogFacility=mail',
      'Restart=on-failure',
    ]) {
      assert.ok(unit.split('\n').includes(line), line);
    }
  });
});

describe('files in /etc', () => {
  it('/etc/default/benno-milter parses, sets nothing by default, and shows each setting commented', () => {
    const text = fs.readFileSync(path.join(ROOT, 'etc', 'default', 'benno-milter'), 'utf8');
    // Set lines would override the unit's defaults and the TCP override.conf of hosts without Postfix.
    assert.equal(parseDefaultFile(text, 'default').size, 0);
    for (const line of ['#SOCKET=/var/spool/postfix/benno-milter/benno-milter.sock', '#SPOOLDIR=/srv/benno/inbox', '#BENNOHOST=your.benno-archive.host']) {
      assert.ok(text.split('\n').includes(line), line);
    }
    const uncommented = text.split('\n').filter((l) => /^#[A-Z_]+=/.test(l)).map((l) => l.slice(1)).join('\n');
    const vars = parseDefaultFile(uncommented, 'default');
    assert.deepEqual([...vars.keys()].sort(), ['BENNOALLOWPLAINAUTH', 'BENNOCAFILE', 'BENNOHOST', 'BENNOPASSWORDFILE', 'BENNOPORT', 'BENNOSTARTTLS', 'BENNOUSER', 'MILTERARGS', 'SOCKET', 'SOCKET_TYPE', 'SPOOLDIR']);
  });

  it('/etc/cron.d/benno-milter carries the commented export line', () => {
    const text = fs.readFileSync(path.join(ROOT, 'etc', 'cron.d', 'benno-milter'), 'utf8');
    assert.ok(text.split('\n').includes('#*/15 * * * * benno /usr/sbin/benno-export2archive'));
    assert.ok(!/^[^#\s]/m.test(text), 'nothing active');
  });

  it('/etc/cron.d/benno-imap carries the line of the Benno documentation, commented', () => {
    const text = fs.readFileSync(path.join(ROOT, 'etc', 'cron.d', 'benno-imap'), 'utf8');
    const lines = text.split('\n');
    assert.ok(lines.includes('# Start IMAP import every 15 minutes'));
    assert.ok(lines.includes('#*/15 * * * * benno [ -x /usr/sbin/benno-imapsync ] && /usr/sbin/benno-imapsync -c /etc/benno-imap/imapsync.conf -f /var/log/benno/imapsync.log'));
    assert.ok(!/^[^#\s]/m.test(text), 'nothing active');
  });

  it('imapauth.conf shows every key commented, each example parses, and the file as shipped parses', () => {
    const text = fs.readFileSync(path.join(ROOT, 'etc', 'benno-imap', 'imapauth.conf'), 'utf8');
    parseImapAuthConfig(text, 'imapauth.conf');
    const examples = text.split('\n').filter((l) => /^#[a-z_]+ = /.test(l)).map((l) => l.slice(1));
    assert.deepEqual(examples.map((l) => l.split(' ')[0]).sort(), [...AUTH_CONFIG_KEYS].sort());
    const mysql = examples.find((l) => l.startsWith('database_password_file'))!;
    for (const line of examples) parseImapAuthConfig(`[imapauth]\n${line === mysql ? `database = mysql://benno@localhost/benno\n${line}` : line}\n`, 'example');
  });

  it('benno-smtp.conf documents every key, and every commented example parses', () => {
    const text = fs.readFileSync(path.join(ROOT, 'etc', 'benno-smtp', 'benno-smtp.conf'), 'utf8');
    parseReceiverConfig(text, 'benno-smtp.conf');
    const examples = text.split('\n').filter((l) => /^#[a-z_]+ = /.test(l)).map((l) => l.slice(1));
    for (const key of CONFIG_KEYS) assert.ok(examples.some((l) => l.startsWith(`${key} = `)), `${key} is in the file`);
    for (const line of examples) parseReceiverConfig(line.replace(/^tls_(key|cert) = .*$/, ''), 'example');
  });
});

describe('manual pages', () => {
  const pages = ['benno-milter.8', 'benno-milter2smtp.8', 'benno-export2archive.8', 'benno-milter-admin.8', 'benno-smtp.8', 'benno-smtp.conf.5', 'benno-imapsync.8', 'benno-imapuser.8', 'imapsync.conf.5', 'benno_imapauth.8', 'imapauth.conf.5', 'benno-imapimport.8', 'benno-pop3.8'];
  for (const page of pages) {
    it(`${page} formats without warnings`, async () => {
      const { stdout, stderr } = await execFileP('groff', ['-man', '-ww', '-Tutf8', path.join(ROOT, 'man', page)], { env: { ...process.env, LC_ALL: 'C.UTF-8' } });
      assert.equal(stderr, '');
      const title = page.replace(/\.\d$/, '').toUpperCase();
      assert.ok(stdout.startsWith(`${title}(${page.slice(-1)})`), stdout.slice(0, 80));
    });
  }
});
