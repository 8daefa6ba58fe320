// Export settings as the two programs receive them (command line, or
// /etc/default/benno-milter), checked once, turned into what the exporter
// needs. Secrets are read from files, never taken from the command line.

import * as fs from 'node:fs';
import { Fatal } from '../ops/sysexits';
import { DEFAULT_ENVELOPE_NAMES, EnvelopeNames, isFieldName } from '../spool/format';
import type { SenderOptions, StartTls } from './smtp-sender';

export const DEFAULT_PORT = 2500;

export interface RawExportSettings {
  host: string;
  port?: string | number;
  starttls?: string;
  caFile?: string;
  ehlo?: string;
  timeout?: string | number;
  connections?: string | number;
  user?: string;
  passwordFile?: string;
  suffix?: string;
  senderHeader?: string;
  recipientHeader?: string;
}

export interface ExportSettings extends SenderOptions {
  connections: number;
  suffix: string;
  names: EnvelopeNames;
}

/** Checks every value; a bad one is a Fatal naming it (where: "--port", "BENNOPORT in /etc/default/benno-milter"). */
export function checkExportSettings(raw: RawExportSettings, exitCode: number, nameOf: (key: keyof RawExportSettings) => string): ExportSettings {
  const bad = (key: keyof RawExportSettings, why: string): never => {
    throw new Fatal(`bad ${nameOf(key)}: ${why}`, exitCode);
  };
  const int = (key: keyof RawExportSettings, value: string | number | undefined, fallback: number, min: number, max: number) => {
    if (value === undefined || value === '') return fallback;
    const n = Number(value);
    if (!Number.isInteger(n) || n < min || n > max) bad(key, `"${value}" is not a whole number from ${min} to ${max}`);
    return n;
  };
  if (!raw.host || /[\s/]/.test(raw.host)) bad('host', `"${raw.host ?? ''}" is not a host name or address`);
  const starttls = (raw.starttls || 'opportunistic') as StartTls;
  if (!['require', 'opportunistic', 'off'].includes(starttls)) bad('starttls', `"${raw.starttls}": use require, opportunistic or off`);
  const readSecret = (key: keyof RawExportSettings, file: string) => {
    try {
      return fs.readFileSync(file);
    } catch (err) {
      return bad(key, `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  };
  const ca = raw.caFile ? readSecret('caFile', raw.caFile) : undefined;
  if (Boolean(raw.user) !== Boolean(raw.passwordFile)) bad(raw.user ? 'passwordFile' : 'user', 'user and password file go together');
  const auth = raw.user && raw.passwordFile ? { user: raw.user, pass: readSecret('passwordFile', raw.passwordFile).toString('utf8').replace(/\r?\n$/, '') } : undefined;
  const suffix = raw.suffix ?? '.eml';
  if (!/^[A-Za-z0-9._-]*$/.test(suffix)) bad('suffix', `"${suffix}": letters, digits, '.', '_' and '-' only`);
  const names = { sender: raw.senderHeader ?? DEFAULT_ENVELOPE_NAMES.sender, recipient: raw.recipientHeader ?? DEFAULT_ENVELOPE_NAMES.recipient };
  if (!isFieldName(names.sender)) bad('senderHeader', `"${names.sender}" is not a header field name`);
  if (!isFieldName(names.recipient)) bad('recipientHeader', `"${names.recipient}" is not a header field name`);
  return {
    host: raw.host,
    port: int('port', raw.port, DEFAULT_PORT, 1, 65535),
    starttls,
    ca,
    ehloName: raw.ehlo || undefined,
    timeoutMs: int('timeout', raw.timeout, 60, 1, 3600) * 1000,
    connections: int('connections', raw.connections, 4, 1, 32),
    auth,
    suffix,
    names,
  };
}
