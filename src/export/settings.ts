// Export settings as the two programs receive them (command line, or
// /etc/default/benno-milter), checked once, turned into what the exporter
// needs. Secrets are read from files, never taken from the command line.

import * as fs from 'node:fs';
import { DEFAULT_ENVELOPE_NAMES, EnvelopeNames, envelopeNamesProblem, isFieldName } from '../spool/format';
import { DEFAULT_SUFFIX, suffixProblem } from '../spool/names';
import type { SenderOptions, StartTls } from './smtp-client';

export const DEFAULT_PORT = 2500;

/** A bad setting, named as the program received it; each program has its own exit code for it. */
export class SettingsError extends Error {
  override name = 'SettingsError';
}

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
  /** true/"yes": AUTH may go over a connection without TLS. */
  allowPlainAuth?: string | boolean;
  suffix?: string;
  senderHeader?: string;
  recipientHeader?: string;
}

export interface ExportSettings extends SenderOptions {
  connections: number;
  suffix: string;
  names: EnvelopeNames;
  /** Settings that work but should be changed, for the program to log once at start. */
  warnings: string[];
}

/**
 * Checks every value; a bad one is a SettingsError naming it (where: "--port",
 * "BENNOPORT in /etc/default/benno-milter"). Logs nothing: what deserves a
 * warning is returned in warnings.
 */
export function checkExportSettings(raw: RawExportSettings, nameOf: (key: keyof RawExportSettings) => string): ExportSettings {
  const bad = (key: keyof RawExportSettings, why: string): never => {
    throw new SettingsError(`bad ${nameOf(key)}: ${why}`);
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
  const warnings: string[] = [];
  const readFile = (key: keyof RawExportSettings, file: string) => {
    try {
      const fd = fs.openSync(file, 'r');
      try {
        return { content: fs.readFileSync(fd), mode: fs.fstatSync(fd).mode };
      } finally {
        fs.closeSync(fd);
      }
    } catch (err) {
      return bad(key, `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  };
  const ca = raw.caFile ? readFile('caFile', raw.caFile).content : undefined;
  if (Boolean(raw.user) !== Boolean(raw.passwordFile)) bad(raw.user ? 'passwordFile' : 'user', 'user and password file go together');
  let auth: SenderOptions['auth'];
  if (raw.user && raw.passwordFile) {
    const secret = readFile('passwordFile', raw.passwordFile);
    auth = { user: raw.user, pass: secret.content.toString('utf8').replace(/\r?\n$/, '') };
    if (secret.mode & 0o044) {
      const mode = (secret.mode & 0o7777).toString(8).padStart(4, '0');
      warnings.push(`password file ${raw.passwordFile} is readable by group or others (mode ${mode}): chmod 0600 ${raw.passwordFile}`);
    }
  }
  const allowPlainAuth = raw.allowPlainAuth === undefined || raw.allowPlainAuth === '' ? false : raw.allowPlainAuth;
  if (!['yes', 'no', true, false].includes(allowPlainAuth)) bad('allowPlainAuth', `"${allowPlainAuth}": use yes or no`);
  const suffix = raw.suffix ?? DEFAULT_SUFFIX;
  const suffixBad = suffixProblem(suffix);
  if (suffixBad) bad('suffix', suffixBad);
  const names = { sender: raw.senderHeader ?? DEFAULT_ENVELOPE_NAMES.sender, recipient: raw.recipientHeader ?? DEFAULT_ENVELOPE_NAMES.recipient };
  if (!isFieldName(names.sender)) bad('senderHeader', `"${names.sender}" is not a header field name`);
  if (!isFieldName(names.recipient)) bad('recipientHeader', `"${names.recipient}" is not a header field name`);
  // The same rule for the pair as the milter and benno-smtp apply (distinct, not the gateway name or the rename prefix).
  const pairProblem = envelopeNamesProblem(names);
  if (pairProblem) bad('recipientHeader', pairProblem);
  return {
    host: raw.host,
    port: int('port', raw.port, DEFAULT_PORT, 1, 65535),
    starttls,
    ca,
    ehloName: raw.ehlo || undefined,
    timeoutMs: int('timeout', raw.timeout, 60, 1, 3600) * 1000,
    connections: int('connections', raw.connections, 4, 1, 32),
    auth,
    allowPlainAuth: allowPlainAuth === true || allowPlainAuth === 'yes',
    suffix,
    names,
    warnings,
  };
}
