// One administrative login for every mailbox of a server (issue 12): SASL
// PLAIN with the administrator as authentication identity and the account's
// user as authorization identity (a Dovecot master user, a Cyrus admin), so
// that an account is archived before its user has ever logged in to the web
// interface. imapsync.conf sets it for every server with admin_user and
// admin_password_file in [imapsync], and per server in [server HOST] or
// [server HOST:PORT] sections: the section with the port wins over the one
// without, either over [imapsync]; "admin_user =" (empty) in a section
// switches the admin login off there.

import { ConfigError, Setter, ValueError, absolutePath } from '../ops/config-lines';

/** The keys an admin login has, in [imapsync] and in a [server] section. */
export interface AdminKeys {
  /** The administrator, SASL PLAIN's authentication identity; '' in a section: no admin login there. */
  adminUser?: string;
  /** The file whose first line is the administrator's password. */
  adminPasswordFile?: string;
}

/** A [server HOST] or [server HOST:PORT] section. */
export interface ServerSection extends AdminKeys {
  /** The section's name after "server", as written. */
  name: string;
  /** Lower case, without the brackets of an IPv6 address. */
  host: string;
  /** null: every port of the host. */
  port: number | null;
  /** "FILE, line N" of the section line. */
  where: string;
  /** The line each key was set on. */
  lines: ReadonlyMap<string, number>;
}

/** The admin login that applies to an account, resolved. */
export interface AdminLogin {
  user: string;
  passwordFile: string;
  /** The section it comes from: "[imapsync]" or "[server HOST]", for messages. */
  section: string;
  /** The key admin_password_file's line, for messages about the file. */
  line: number | undefined;
}

export const SERVER_SECTION = 'server';

function adminUser(v: string): string {
  // SASL PLAIN separates its fields with NUL; a control character is a typing error.
  if (/[\x00-\x1f\x7f]/.test(v) || v.length > 255) throw new ValueError('up to 255 characters, no control characters');
  return v;
}

/** admin_user and admin_password_file; an empty admin_user is allowed here and judged by the section it is in. */
export const ADMIN_KEYS: Record<string, Setter<AdminKeys>> = {
  admin_user: (c, v) => (c.adminUser = adminUser(v)),
  admin_password_file: (c, v) => (c.adminPasswordFile = absolutePath(v)),
};

/** An account's HOST, HOST:PORT or [IPV6]:PORT as host and port (null: none given). */
export function splitHostPort(hostPort: string): { host: string; port: number | null } {
  const m = /^(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(hostPort);
  const host = (m?.[1] ?? hostPort).replace(/^\[(.*)\]$/, '$1');
  return { host, port: m?.[2] ? Number(m[2]) : null };
}

/**
 * The section for a "[server ...]" line, or null when the name is not one.
 * Throws a ConfigError for a server section whose host is not usable.
 */
export function serverSection(name: string, where: string): ServerSection | null {
  const m = /^server(?:\s+(.*))?$/.exec(name);
  if (!m) return null;
  const spec = m[1] ?? '';
  const valid = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(:\d{1,5})?$/.test(spec);
  const { host, port } = splitHostPort(spec);
  if (!valid || (port !== null && (port < 1 || port > 65535))) {
    throw new ConfigError(`${where}: bad section [${name}]: use [server HOST] or [server HOST:PORT], HOST as the accounts have it (benno-imapuser -i), an IPv6 address in brackets`);
  }
  return { name: spec, host: host.toLowerCase(), port, where, lines: new Map() };
}

/**
 * Checks the admin keys across each section once the file is read: both keys
 * or neither in [imapsync]; in a [server] section both, or admin_user empty
 * alone; no two sections for the same server.
 */
export function checkAdminKeys(file: string, global: AdminKeys, globalLines: ReadonlyMap<string, number>, servers: readonly ServerSection[]): void {
  const at = (lines: ReadonlyMap<string, number>, key: string) => `${file}, line ${lines.get(key)}`;
  if (global.adminUser === '') throw new ConfigError(`${at(globalLines, 'admin_user')}: bad admin_user "": comment the line out for no admin login`);
  if (global.adminUser !== undefined && global.adminPasswordFile === undefined) {
    throw new ConfigError(`${at(globalLines, 'admin_user')}: admin_user needs admin_password_file, the file whose first line is its password`);
  }
  if (global.adminUser === undefined && global.adminPasswordFile !== undefined) {
    throw new ConfigError(`${at(globalLines, 'admin_password_file')}: admin_password_file without admin_user: whose password is it?`);
  }
  const seen = new Map<string, ServerSection>();
  for (const s of servers) {
    const key = `${s.host} ${s.port ?? ''}`;
    const earlier = seen.get(key);
    if (earlier) throw new ConfigError(`${s.where}: [server ${s.name}] is the same server as [server ${earlier.name}] (${earlier.where})`);
    seen.set(key, s);
    if (s.adminUser === undefined) {
      throw new ConfigError(`${s.where}: [server ${s.name}] needs admin_user and admin_password_file, or "admin_user =" (empty) for the users' own passwords on this server`);
    }
    if (s.adminUser === '' && s.adminPasswordFile !== undefined) {
      throw new ConfigError(`${at(s.lines, 'admin_password_file')}: admin_password_file with an empty admin_user, which means the users' own passwords on this server: drop one of the two`);
    }
    if (s.adminUser !== '' && s.adminPasswordFile === undefined) {
      throw new ConfigError(`${at(s.lines, 'admin_user')}: admin_user needs admin_password_file, the file whose first line is its password`);
    }
  }
}

/** What adminLoginFor needs of the configuration. */
export interface AdminConfig extends AdminKeys {
  /** The port of accounts whose host names none. */
  port: number;
  servers: readonly ServerSection[];
  source: { lines: ReadonlyMap<string, number> };
}

function sectionLogin(s: ServerSection): AdminLogin | null {
  if (!s.adminUser || !s.adminPasswordFile) return null;
  return { user: s.adminUser, passwordFile: s.adminPasswordFile, section: `[server ${s.name}]`, line: s.lines.get('admin_password_file') };
}

function globalLogin(config: AdminConfig): AdminLogin | null {
  if (!config.adminUser || !config.adminPasswordFile) return null;
  return { user: config.adminUser, passwordFile: config.adminPasswordFile, section: '[imapsync]', line: config.source.lines.get('admin_password_file') };
}

/**
 * The admin login for an account on hostPort (port: the configuration's
 * when it names none), or null: the account's own password.
 */
export function adminLoginFor(config: AdminConfig, hostPort: string): AdminLogin | null {
  const account = splitHostPort(hostPort);
  const host = account.host.toLowerCase();
  const port = account.port ?? config.port;
  const mine = config.servers.filter((s) => s.host === host && (s.port === null || s.port === port));
  const section = mine.find((s) => s.port !== null) ?? mine[0];
  return section ? sectionLogin(section) : globalLogin(config);
}

/** Every admin login the configuration sets, for the checks of their files at start. */
export function adminLogins(config: AdminConfig): AdminLogin[] {
  return [globalLogin(config), ...config.servers.map(sectionLogin)].filter((l): l is AdminLogin => l !== null);
}
