import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SocketSpecError, formatPostfixEndpoint, formatSocketSpec, localTarget, parsePostfixEndpoint, parseSocketSpec } from '../../src/milter/socket-spec';

describe('socket specs', () => {
  const good: [string, object][] = [
    ['local:/var/spool/postfix/benno-milter/benno-milter.sock', { kind: 'unix', path: '/var/spool/postfix/benno-milter/benno-milter.sock' }],
    ['unix:/run/m.sock', { kind: 'unix', path: '/run/m.sock' }],
    ['/run/m.sock', { kind: 'unix', path: '/run/m.sock' }],
    ['inet:22500@127.0.0.1', { kind: 'inet', host: '127.0.0.1', port: 22500, family: 4 }],
    ['inet:22500@localhost', { kind: 'inet', host: 'localhost', port: 22500, family: 4 }],
    ['inet:22500', { kind: 'inet', host: '0.0.0.0', port: 22500, family: 4 }],
    ['inet6:22500@::1', { kind: 'inet', host: '::1', port: 22500, family: 6 }],
    ['inet6:22500', { kind: 'inet', host: '::', port: 22500, family: 6 }],
    ['inet:127.0.0.1:22500', { kind: 'inet', host: '127.0.0.1', port: 22500, family: 4 }],
    ['inet:benno.example.net:22500', { kind: 'inet', host: 'benno.example.net', port: 22500, family: 4 }],
    ['inet:[::1]:22500', { kind: 'inet', host: '::1', port: 22500, family: 6 }],
    ['INET:22500@127.0.0.1', { kind: 'inet', host: '127.0.0.1', port: 22500, family: 4 }],
  ];
  for (const [spec, expected] of good) {
    it(`reads ${spec}`, () => assert.deepEqual(parseSocketSpec(spec), expected));
  }

  const bad: [string, RegExp][] = [
    ['local:relative.sock', /must be absolute/],
    ['inet:0@127.0.0.1', /bad port "0"/],
    ['inet:70000@127.0.0.1', /bad port "70000"/],
    ['inet:port@127.0.0.1', /bad port "port"/],
    ['inet:127.0.0.1', /cannot read socket/],
    ['inet:@127.0.0.1', /bad port ""/],
    ['inet:25@', /bad host ""/],
    ['tcp:25@127.0.0.1', /unknown socket type/],
    ['relative.sock', /unknown socket type/],
  ];
  for (const [spec, re] of bad) {
    it(`refuses ${spec}`, () => assert.throws(() => parseSocketSpec(spec), (e: Error) => e instanceof SocketSpecError && re.test(e.message)));
  }

  it('formats back', () => {
    assert.equal(formatSocketSpec(parseSocketSpec('inet:127.0.0.1:25')), 'inet:25@127.0.0.1');
    assert.equal(formatSocketSpec(parseSocketSpec('local:/a')), 'unix:/a');
  });
});

describe('Postfix milter endpoints', () => {
  const good: [string, object][] = [
    ['unix:/benno-milter/benno-milter.sock', { kind: 'unix', path: '/benno-milter/benno-milter.sock' }],
    ['unix:benno-milter/benno-milter.sock', { kind: 'unix', path: 'benno-milter/benno-milter.sock' }],
    ['local:/run/m.sock', { kind: 'unix', path: '/run/m.sock' }],
    ['inet:127.0.0.1:22500', { kind: 'inet', host: '127.0.0.1', port: 22500, family: 4 }],
    ['inet:localhost:8891', { kind: 'inet', host: 'localhost', port: 8891, family: 4 }],
    ['inet:[::1]:22500', { kind: 'inet', host: '::1', port: 22500, family: 6 }],
  ];
  for (const [endpoint, expected] of good) {
    it(`reads ${endpoint}`, () => assert.deepEqual(parsePostfixEndpoint(endpoint), expected));
  }

  const bad: [string, RegExp][] = [
    ['inet:22500@127.0.0.1', /cannot read milter endpoint/],
    ['inet:22500', /cannot read milter endpoint/],
    ['inet6:[::1]:22500', /cannot read milter endpoint/],
    ['unix:', /cannot read milter endpoint/],
    ['/run/m.sock', /cannot read milter endpoint/],
    ['inet:127.0.0.1:0', /bad port "0"/],
  ];
  for (const [endpoint, re] of bad) {
    it(`refuses ${endpoint}`, () => assert.throws(() => parsePostfixEndpoint(endpoint), (e: Error) => e instanceof SocketSpecError && re.test(e.message)));
  }

  it('writes what Postfix reads: [brackets] around an IPv6 address', () => {
    assert.equal(formatPostfixEndpoint(parseSocketSpec('local:/var/spool/postfix/m.sock')), 'unix:/var/spool/postfix/m.sock');
    assert.equal(formatPostfixEndpoint(parseSocketSpec('inet:22500@127.0.0.1')), 'inet:127.0.0.1:22500');
    assert.equal(formatPostfixEndpoint(parseSocketSpec('inet6:22500@::1')), 'inet:[::1]:22500');
    assert.equal(formatPostfixEndpoint(parseSocketSpec('inet:22500@benno.example.org')), 'inet:benno.example.org:22500');
    for (const endpoint of ['unix:/a/b.sock', 'inet:192.0.2.1:25', 'inet:[2001:db8::1]:25', 'inet:mail.example.org:8891']) {
      assert.equal(formatPostfixEndpoint(parsePostfixEndpoint(endpoint)), endpoint);
    }
  });

  it('a listener on every address is reached through loopback', () => {
    assert.deepEqual(localTarget(parseSocketSpec('inet:22500@0.0.0.0')), { kind: 'inet', host: '127.0.0.1', port: 22500, family: 4 });
    assert.deepEqual(localTarget(parseSocketSpec('inet:22500')), { kind: 'inet', host: '127.0.0.1', port: 22500, family: 4 });
    assert.deepEqual(localTarget(parseSocketSpec('inet6:22500@::')), { kind: 'inet', host: '::1', port: 22500, family: 6 });
    for (const spec of ['inet:22500@192.0.2.1', 'inet6:22500@::1', 'inet:22500@benno.example.org', 'local:/run/m.sock']) {
      assert.deepEqual(localTarget(parseSocketSpec(spec)), parseSocketSpec(spec));
    }
  });
});
