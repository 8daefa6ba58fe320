// Postfix's configuration as postconf(1) reports it: `postconf -n` (main.cf
// settings), `postconf -M` (master.cf services) and `postconf -P` (their -o
// overrides). Parsed from text, so that the setup and doctor logic can be
// tested with recorded outputs of real systems.

import { execFileSync } from 'node:child_process';

export interface MasterService {
  /** "smtp", "submission", "127.0.0.1:10025", ... */
  name: string;
  type: string;
  /** chroot column: true, false, or null for "-" (Postfix 3 default: no chroot). */
  chroot: boolean | null;
  command: string;
  /** -o name=value overrides, in order. */
  overrides: Map<string, string>;
}

export interface PostfixConfig {
  /** main.cf settings that differ from the defaults (postconf -n). */
  main: Map<string, string>;
  services: MasterService[];
  /** Values Postfix would use for parameters not in main (defaults), looked up by the caller. */
  defaults: Map<string, string>;
}

export function parseMain(text: string): Map<string, string> {
  const main = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^([A-Za-z0-9_]+)\s*=\s?(.*)$/.exec(line.trimEnd());
    if (m) main.set(m[1], m[2]);
  }
  return main;
}

export function parseMaster(servicesText: string, overridesText: string): MasterService[] {
  const services: MasterService[] = [];
  for (const line of servicesText.split('\n')) {
    const fields = line.trim().split(/\s+/);
    if (fields.length < 8 || line.startsWith('#')) continue;
    const [name, type, , , chroot] = fields;
    services.push({
      name,
      type,
      chroot: chroot === '-' ? null : chroot === 'y',
      command: fields[7],
      overrides: new Map(),
    });
  }
  for (const line of overridesText.split('\n')) {
    const m = /^(.+)\/([a-z-]+)\/([A-Za-z0-9_]+)\s*=\s?(.*)$/.exec(line.trimEnd());
    if (!m) continue;
    const service = services.find((s) => s.name === m[1] && s.type === m[2]);
    service?.overrides.set(m[3], m[4]);
  }
  return services;
}

export function parsePostfixConfig(main: string, services: string, overrides: string, defaults: Record<string, string> = {}): PostfixConfig {
  return { main: parseMain(main), services: parseMaster(services, overrides), defaults: new Map(Object.entries(defaults)) };
}

/** Parameters whose defaults the checks need. */
const DEFAULTS_WANTED = ['milter_default_action', 'queue_directory', 'smtpd_milters', 'non_smtpd_milters', 'content_filter'];

/** Reads the live configuration with postconf (-c for another instance). */
export function readPostfixConfig(configDir?: string): PostfixConfig {
  const c = configDir ? ['-c', configDir] : [];
  const run = (...args: string[]) => execFileSync('postconf', [...c, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  const defaults = parseMain(run('-d', ...DEFAULTS_WANTED));
  return { main: parseMain(run('-n')), services: parseMaster(run('-M'), run('-P')), defaults };
}

/** A main.cf parameter as Postfix uses it: set value, else default, else ''. */
export function mainValue(config: PostfixConfig, name: string): string {
  return config.main.get(name) ?? config.defaults.get(name) ?? '';
}

/** A parameter as one service sees it: its -o override, else main.cf. */
export function serviceValue(config: PostfixConfig, service: MasterService, name: string): string {
  return service.overrides.get(name) ?? mainValue(config, name);
}

/** The smtpd services: those that receive mail over SMTP. */
export function smtpdServices(config: PostfixConfig): MasterService[] {
  return config.services.filter((s) => s.command === 'smtpd' && s.type === 'inet');
}

/** Milter endpoints of a parameter value (comma/space separated, {...} groups kept whole). */
export function milterList(value: string): string[] {
  const out: string[] = [];
  for (const m of value.matchAll(/\{[^}]*\}|[^\s,]+/g)) {
    const item = m[0].startsWith('{') ? m[0].slice(1, -1).trim().split(/[\s,]+/)[0] : m[0];
    if (item) out.push(item);
  }
  return out;
}
