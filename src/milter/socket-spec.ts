// Milter socket addresses as administrators write them: libmilter's form
// (local:/path, unix:/path, inet:PORT@HOST, inet6:PORT@HOST) and Postfix's
// form (unix:/path, inet:HOST:PORT, inet:[::1]:PORT). The one place that
// reads and writes them, for the milter and for what Postfix is told.

import { isIP } from 'node:net';

export type SocketSpec =
  | { kind: 'unix'; path: string }
  | { kind: 'inet'; host: string; port: number; family: 4 | 6 };

export class SocketSpecError extends Error {
  override name = 'SocketSpecError';
}

function parsePort(text: string, spec: string): number {
  if (!/^\d{1,5}$/.test(text) || Number(text) < 1 || Number(text) > 65535) {
    throw new SocketSpecError(`bad port "${text}" in socket "${spec}" (want 1-65535)`);
  }
  return Number(text);
}

function checkHost(host: string, spec: string): string {
  if (host === '' || /[\s/@]/.test(host)) throw new SocketSpecError(`bad host "${host}" in socket "${spec}"`);
  return host;
}

/** "inet:..." → ["inet", "..."]; no colon: no type. */
function splitType(spec: string): [type: string, rest: string] {
  const colon = spec.indexOf(':');
  return colon < 0 ? ['', spec] : [spec.slice(0, colon).toLowerCase(), spec.slice(colon + 1)];
}

/** Postfix's HOST:PORT or [V6ADDR]:PORT; null when rest has neither form. */
function postfixHostPort(rest: string, spec: string): { host: string; port: number } | null {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(rest) ?? /^([^:]+):(\d+)$/.exec(rest);
  return m ? { host: checkHost(m[1], spec), port: parsePort(m[2], spec) } : null;
}

function inetSpec(host: string, port: number, defaultFamily: 4 | 6): SocketSpec {
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  const ipFamily = isIP(host);
  const family: 4 | 6 = ipFamily === 6 ? 6 : ipFamily === 4 ? 4 : defaultFamily;
  return { kind: 'inet', host, port, family };
}

export function parseSocketSpec(spec: string): SocketSpec {
  const [type, rest] = splitType(spec);

  if (spec.startsWith('/')) return { kind: 'unix', path: spec };
  if (type === 'local' || type === 'unix') {
    if (!rest.startsWith('/')) throw new SocketSpecError(`socket path in "${spec}" must be absolute`);
    return { kind: 'unix', path: rest };
  }
  if (type === 'inet' || type === 'inet6') {
    const defaultFamily: 4 | 6 = type === 'inet6' ? 6 : 4;
    const at = rest.indexOf('@');
    if (at >= 0) {
      // libmilter: PORT@HOST
      const port = parsePort(rest.slice(0, at), spec);
      return inetSpec(checkHost(rest.slice(at + 1), spec), port, defaultFamily);
    }
    if (/^\d+$/.test(rest)) {
      // libmilter: PORT alone listens on every address
      return inetSpec(defaultFamily === 6 ? '::' : '0.0.0.0', parsePort(rest, spec), defaultFamily);
    }
    const hostPort = postfixHostPort(rest, spec);
    if (!hostPort) throw new SocketSpecError(`cannot read socket "${spec}": use inet:PORT@HOST or inet:HOST:PORT`);
    return inetSpec(hostPort.host, hostPort.port, defaultFamily);
  }
  throw new SocketSpecError(
    `unknown socket type in "${spec}": use local:/path, unix:/path, inet:PORT@HOST, inet6:PORT@HOST or inet:HOST:PORT`,
  );
}

export function formatSocketSpec(s: SocketSpec): string {
  if (s.kind === 'unix') return `unix:${s.path}`;
  return `inet${s.family === 6 ? '6' : ''}:${s.port}@${s.host}`;
}

/**
 * An entry of Postfix's smtpd_milters or non_smtpd_milters: unix:PATH (or
 * local:PATH), inet:HOST:PORT, inet:[V6ADDR]:PORT. Postfix has no PORT@HOST
 * form, and its daemons run in the queue directory, where a relative PATH
 * names a socket too.
 */
export function parsePostfixEndpoint(endpoint: string): SocketSpec {
  const [type, rest] = splitType(endpoint);
  if ((type === 'unix' || type === 'local') && rest !== '') return { kind: 'unix', path: rest };
  const hostPort = type === 'inet' ? postfixHostPort(rest, endpoint) : null;
  if (!hostPort) throw new SocketSpecError(`cannot read milter endpoint "${endpoint}": Postfix takes unix:PATH or inet:HOST:PORT`);
  return inetSpec(hostPort.host, hostPort.port, 4);
}

/** The endpoint as Postfix writes it in smtpd_milters. */
export function formatPostfixEndpoint(s: SocketSpec): string {
  if (s.kind === 'unix') return `unix:${s.path}`;
  return `inet:${s.host.includes(':') ? `[${s.host}]` : s.host}:${s.port}`;
}

/**
 * Where a client on this host connects to reach a listener on s: a
 * listener on every address is reached through loopback.
 */
export function localTarget(s: SocketSpec): SocketSpec {
  if (s.kind !== 'inet') return s;
  if (s.host === '0.0.0.0') return { ...s, host: '127.0.0.1' };
  if (s.host === '::') return { ...s, host: '::1' };
  return s;
}
