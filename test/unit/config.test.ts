import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError, DEFAULTS, parseReceiverConfig, readReceiverConfig } from '../../src/receiver/config';
import { parseDefaultFile } from '../../src/ops/default-file';
import { isLoopback } from '../../src/ops/allowlist';

describe('/etc/default/benno-milter', () => {
  it('reads shell-style assignments: comments, export, quotes, no expansion', () => {
    const vars = parseDefaultFile(
      [
        '#',
        '# Start options for benno-milter',
        '#',
        'SOCKET=/var/spool/postfix/benno-milter/benno-milter.sock',
        'SPOOLDIR=/srv/benno/inbox',
        '',
        '#BENNOHOST=your.benno-archive.host',
        'export BENNOPORT=2500',
        `MILTERARGS="--skip-daemon amavis --log-level debug"`,
        `QUOTED='a b # not a comment'`,
        'WITH_COMMENT=value # trailing comment',
        'DOLLAR="$HOME\\"x"',
        'EMPTY=',
      ].join('\n'),
      'test',
    );
    assert.equal(vars.get('SOCKET'), '/var/spool/postfix/benno-milter/benno-milter.sock');
    assert.equal(vars.get('SPOOLDIR'), '/srv/benno/inbox');
    assert.equal(vars.has('BENNOHOST'), false);
    assert.equal(vars.get('BENNOPORT'), '2500');
    assert.equal(vars.get('MILTERARGS'), '--skip-daemon amavis --log-level debug');
    assert.equal(vars.get('QUOTED'), 'a b # not a comment');
    assert.equal(vars.get('WITH_COMMENT'), 'value');
    assert.equal(vars.get('DOLLAR'), '$HOME"x');
    assert.equal(vars.get('EMPTY'), '');
  });

  it('names the line of a malformed entry', () => {
    assert.throws(() => parseDefaultFile('A=1\nnot an assignment\n', 'f'), /f, line 2: expected KEY=value/);
    assert.throws(() => parseDefaultFile('A="open\n', 'f'), /f, line 1: unterminated " quote/);
    assert.throws(() => parseDefaultFile('A=two words\n', 'f'), /quote values that contain spaces/);
  });
});

describe('benno-smtp.conf', () => {
  it('defaults: loopback only, port 2500, envelope lines on', () => {
    const c = parseReceiverConfig('# nothing set\n', 'f');
    assert.deepEqual(c.listen, { host: '0.0.0.0', port: 2500 });
    assert.equal(c.envelopeHeader, true);
    assert.deepEqual(c.allowedClients.map((s) => `${s.address}/${s.prefix}`), ['127.0.0.0/8', '::1/128']);
    assert.equal(c.inbox, DEFAULTS.inbox);
    assert.deepEqual([c.firstCommandTimeout, c.maxConnectionsPerClient, c.maxRecipients], [10, 50, 10_000]);
  });

  it('reads every key', () => {
    const c = parseReceiverConfig(
      [
        'listen = [::1]:2525',
        'inbox = /srv/inbox',
        'envelope_header = no',
        'suffix = .msg',
        'max_size = 50M',
        'allowed_clients = 192.0.2.0/24, 2001:db8::/32 10.1.2.3',
        'tls_key = /etc/k.pem',
        'tls_cert = /etc/c.pem',
        'auth_users = /etc/users',
        'hostname = archive.example.org',
        'max_clients = 20',
        'timeout = 60',
        'first_command_timeout = 5',
        'max_connections_per_client = 8',
        'max_recipients = 20000',
        'sender_header = X-Env-From',
        'recipient_header = X-Env-To',
        'log_level = debug',
      ].join('\n'),
      'f',
    );
    assert.deepEqual(c.listen, { host: '::1', port: 2525 });
    assert.equal(c.envelopeHeader, false);
    assert.equal(c.maxSize, 50 * 1024 * 1024);
    assert.deepEqual(c.allowedClients.map((s) => `${s.family}:${s.address}/${s.prefix}`), ['ipv4:192.0.2.0/24', 'ipv6:2001:db8::/32', 'ipv4:10.1.2.3/32']);
    assert.deepEqual(c.names, { sender: 'X-Env-From', recipient: 'X-Env-To' });
    assert.equal(c.logLevel, 'debug');
    assert.deepEqual([c.timeout, c.firstCommandTimeout, c.maxConnectionsPerClient, c.maxRecipients], [60, 5, 8, 20_000]);
  });

  const bad: [string, RegExp][] = [
    ['colour = blue', /f, line 1: unknown key "colour" \(known: listen, inbox/],
    ['listen = nowhere', /f, line 1: bad listen "nowhere": use host:port/],
    ['listen = 0.0.0.0:99999', /port 99999 is not 1-65535/],
    ['envelope_header = maybe', /use true or false/],
    ['max_size = lots', /use bytes or a number with K, M or G/],
    ['allowed_clients = 10.0.0.0/33', /prefix must be 0-32/],
    ['allowed_clients = example.org', /not an IP address or CIDR network/],
    ['inbox = relative/dir', /use an absolute path/],
    ['tls_key = /k.pem', /tls_key and tls_cert go together/],
    ['inbox = /a\ninbox = /b', /f, line 2: "inbox" is already set on line 1/],
    ['just words', /expected "key = value"/],
    ['first_command_timeout = 0', /bad first_command_timeout "0": use a whole number from 1 to 3600/],
    ['max_connections_per_client = many', /bad max_connections_per_client "many": use a whole number/],
    ['max_recipients = 0', /bad max_recipients "0": use a whole number from 1 to 100000/],
    ['max_recipients = 100001', /use a whole number from 1 to 100000/],
    ['sender_header = X-BENNO-GW', /f, line 1: bad sender_header: "X-BENNO-GW" is Benno's gateway header/],
    ['recipient_header = X-Untrusted-To', /line 1: bad recipient_header: .*starts with X-Untrusted-/],
    ['recipient_header = X-A\nsender_header = x-a', /f, line 2: bad sender_header: the sender and recipient header names must differ/],
  ];
  // A ConfigError is benno-smtp's exit 78 (test/integration/export.test.ts runs it with a bad file).
  for (const [text, re] of bad) {
    it(`refuses ${JSON.stringify(text)} with a ConfigError (exit 78)`, () => {
      assert.throws(() => parseReceiverConfig(text, 'f'), (e: Error) => e instanceof ConfigError && e.name === 'ConfigError' && re.test(e.message));
    });
  }

  it('a file that cannot be read is a ConfigError too', () => {
    assert.throws(() => readReceiverConfig('/nonexistent/benno-smtp.conf'), (e: Error) => e instanceof ConfigError && e.message === 'cannot read /nonexistent/benno-smtp.conf: ENOENT');
  });
});

describe('loopback addresses and networks', () => {
  it('127/8 inside, ::1 and localhost are loopback; wider networks and other hosts are not', () => {
    for (const [host, prefix] of [['127.0.0.1', undefined], ['127.0.0.0', 8], ['127.1.2.3', 32], ['::1', 128], ['::1', undefined], ['localhost', undefined]] as const) {
      assert.equal(isLoopback(host, prefix), true, `${host}/${prefix}`);
    }
    for (const [host, prefix] of [['127.0.0.0', 7], ['0.0.0.0', undefined], ['192.0.2.1', 32], ['::', 0], ['::1', 64], ['::ffff:127.0.0.1', undefined]] as const) {
      assert.equal(isLoopback(host, prefix), false, `${host}/${prefix}`);
    }
  });
});
