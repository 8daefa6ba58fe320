// Milter socket addresses as administrators write them: libmilter's form
// (local:/path, unix:/path, inet:PORT@HOST, inet6:PORT@HOST) and Postfix's
// form (unix:/path, inet:HOST:PORT, inet:[::1]:PORT).

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

export function parseSocketSpec(spec: string): SocketSpec {
  const colon = spec.indexOf(':');
  const type = colon < 0 ? '' : spec.slice(0, colon).toLowerCase();
  const rest = colon < 0 ? spec : spec.slice(colon + 1);

  if (spec.startsWith('/')) return { kind: 'unix', path: spec };
  if (type === 'local' || type === 'unix') {
    if (!rest.startsWith('/')) throw new SocketSpecError(`socket path in "${spec}" must be absolute`);
    return { kind: 'unix', path: rest };
  }
  if (type === 'inet' || type === 'inet6') {
    const defaultFamily: 4 | 6 = type === 'inet6' ? 6 : 4;
    let host: string;
    let port: number;
    const at = rest.indexOf('@');
    if (at >= 0) {
      // libmilter: PORT@HOST
      port = parsePort(rest.slice(0, at), spec);
      host = checkHost(rest.slice(at + 1), spec);
    } else if (/^\d+$/.test(rest)) {
      // libmilter: PORT alone listens on every address
      port = parsePort(rest, spec);
      host = defaultFamily === 6 ? '::' : '0.0.0.0';
    } else {
      // Postfix: HOST:PORT or [V6ADDR]:PORT
      const m = /^\[([^\]]+)\]:(\d+)$/.exec(rest) ?? /^([^:]+):(\d+)$/.exec(rest);
      if (!m) throw new SocketSpecError(`cannot read socket "${spec}": use inet:PORT@HOST or inet:HOST:PORT`);
      host = checkHost(m[1], spec);
      port = parsePort(m[2], spec);
    }
    if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
    const ipFamily = isIP(host);
    const family: 4 | 6 = ipFamily === 6 ? 6 : ipFamily === 4 ? 4 : defaultFamily;
    return { kind: 'inet', host, port, family };
  }
  throw new SocketSpecError(
    `unknown socket type in "${spec}": use local:/path, unix:/path, inet:PORT@HOST, inet6:PORT@HOST or inet:HOST:PORT`,
  );
}

export function formatSocketSpec(s: SocketSpec): string {
  if (s.kind === 'unix') return `unix:${s.path}`;
  return `inet${s.family === 6 ? '6' : ''}:${s.port}@${s.host}`;
}
