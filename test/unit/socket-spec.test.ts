import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SocketSpecError, formatSocketSpec, parseSocketSpec } from '../../src/milter/socket-spec';

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
