// /etc/benno-imap/imapsync.conf, read by benno-imapsync and benno-imapuser:
// INI, one [imapsync] section of "key = value" lines, ";" and "#" comments,
// also after a value, and [server HOST] sections for an admin login per
// server (admin-login.ts). The key names the issue fixes (database, pubkey,
// keyfile, ...) are the ones other tools write. Every key is checked here;
// a bad file is one ConfigError naming file, line and problem, before any
// network traffic (the command line makes it exit 78).

import * as fs from 'node:fs';
import { ConfigError, Setter, ValueError, absolutePath, applyConfigLines, applyConfigSections, checkedBy, logLevel, readConfigText, sectionKeys, wholeNumber } from '../ops/config-lines';
import { LogLevel } from '../ops/log';
import { gatewayNameProblem } from '../spool/format';
import { DEFAULT_SPOOL_DIR, DEFAULT_SUFFIX, suffixProblem } from '../spool/names';
import { ADMIN_KEYS, AdminKeys, SERVER_SECTION, ServerSection, adminLogins, checkAdminKeys, serverSection, splitHostPort } from './admin-login';
import { GENKEY_HINT } from './secret';
import { DatabaseUrl, DatabaseUrlError, parseDatabaseUrl } from './open-store';
import type { ServerOptions } from './sync';

export { ConfigError };

export const DEFAULT_CONFIG_FILE = '/etc/benno-imap/imapsync.conf';
export const SECTION = 'imapsync';
/** benno_imapauth's file: read by the web server's user, so it never names the private key. */
export const DEFAULT_AUTH_CONFIG_FILE = '/etc/benno-imap/imapauth.conf';
export const AUTH_SECTION = 'imapauth';
/** A login waits on the IMAP server while the user waits on the web page. */
export const DEFAULT_AUTH_TIMEOUT = 10;
export const DEFAULT_DATABASE = 'sqlite:/var/lib/benno-imap/benno-imap.db';
export const DEFAULT_PUBKEY = '/etc/benno-imap/benno-imap.pub';
/** Where benno-imapuser --genkey puts the private key; keyfile has no default (absent: stdin). */
export const DEFAULT_KEYFILE = '/etc/benno-imap/benno-imap.sec';


export type TlsMode = 'starttls' | 'imaps' | 'none';
const TLS_MODES: readonly TlsMode[] = ['starttls', 'imaps', 'none'];

export interface ImapConfig extends AdminKeys {
  /** The file read and the line each key was set on, for messages about what a key names. */
  source: { file: string; lines: ReadonlyMap<string, number> };
  database: DatabaseUrl;
  /** MySQL only: a file whose first line is the database password. */
  databasePasswordFile?: string;
  /** Public key that benno-imapuser encrypts passwords with. */
  pubkey: string;
  /** Private key of benno-imapsync; null: read it from stdin. */
  keyfile: string | null;
  inbox: string;
  suffix: string;
  /** Folder names never synced (a folder's subfolders with them). */
  exclude: string[];
  tls: TlsMode;
  /** Port of accounts whose host names none. */
  port: number;
  /** CA certificates (PEM) the IMAP servers' certificates are checked against; absent: the system's. */
  cafile?: string;
  /** Seconds an IMAP server may stay silent before its account is given up for this run. */
  timeout: number;
  /** Default container of benno-imapuser -C. */
  container: string;
  /** Default X-BENNO-GW name of new accounts (multi-import); absent: none. */
  gateway?: string;
  logLevel: LogLevel;
  /** The [server HOST] sections, in file order: an admin login per server (adminLoginFor). */
  servers: ServerSection[];
}

export const DEFAULT_PORTS: Record<TlsMode, number> = { starttls: 143, imaps: 993, none: 143 };

export const DEFAULTS: Omit<ImapConfig, 'source'> = {
  database: { kind: 'sqlite', file: DEFAULT_DATABASE.slice('sqlite:'.length) },
  pubkey: DEFAULT_PUBKEY,
  keyfile: null,
  inbox: DEFAULT_SPOOL_DIR,
  suffix: DEFAULT_SUFFIX,
  exclude: ['Drafts', 'Trash', 'Junk'],
  tls: 'starttls',
  port: DEFAULT_PORTS.starttls,
  timeout: 60,
  container: 'BennoContainer',
  logLevel: 'info',
  servers: [],
};

/** The database setting, parsed by the store's own rule; the value is never quoted back (it may hold a password). */
function database(v: string): DatabaseUrl {
  try {
    return parseDatabaseUrl(v);
  } catch (err) {
    if (err instanceof DatabaseUrlError) throw new ValueError(err.message, !err.mayQuote);
    throw err;
  }
}

/** "Drafts, Trash, Junk"; empty: nothing excluded. */
export function parseFolderList(v: string): string[] {
  if (v === '') return [];
  const names = v.split(',').map((s) => s.trim());
  if (names.some((n) => n === '')) throw new ValueError('an empty folder name; use names separated by commas');
  return names;
}

export function containerName(v: string): string {
  // Benno keeps each container in a directory of that name.
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(v) || v.length > 64) throw new ValueError("1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit");
  return v;
}

type Config = Omit<ImapConfig, 'source'>;

const KEYS: Record<string, Setter<Config>> = {
  database: (c, v) => (c.database = database(v)),
  database_password_file: (c, v) => (c.databasePasswordFile = absolutePath(v)),
  pubkey: (c, v) => (c.pubkey = absolutePath(v)),
  keyfile: (c, v) => {
    if (v === '') throw new ValueError('comment the line out to read the private key from stdin');
    c.keyfile = absolutePath(v);
  },
  inbox: (c, v) => (c.inbox = absolutePath(v)),
  suffix: (c, v) => (c.suffix = checkedBy(suffixProblem)(v)),
  exclude: (c, v) => (c.exclude = parseFolderList(v)),
  tls: (c, v) => {
    if (!(TLS_MODES as readonly string[]).includes(v)) throw new ValueError(`use ${TLS_MODES.join(', ')}`);
    c.tls = v as TlsMode;
  },
  port: (c, v) => (c.port = wholeNumber(1, 65535)(v)),
  cafile: (c, v) => (c.cafile = absolutePath(v)),
  timeout: (c, v) => (c.timeout = wholeNumber(1, 3600)(v)),
  container: (c, v) => (c.container = containerName(v)),
  gateway: (c, v) => (c.gateway = checkedBy(gatewayNameProblem)(v)),
  log_level: (c, v) => (c.logLevel = logLevel(v)),
  ...ADMIN_KEYS,
};

export const CONFIG_KEYS = Object.keys(KEYS);

/** Parses the text of imapsync.conf; errors name the file and line. Reads no other file. */
export function parseImapConfig(text: string, file: string): ImapConfig {
  const config: Config = { ...DEFAULTS, exclude: [...DEFAULTS.exclude], servers: [] };
  const main = sectionKeys(config, KEYS);
  const sectionNames = new Map<ServerSection, string>();
  const sections = applyConfigSections(text, file, { comments: ';#', trailingComments: true, first: SECTION }, (name, where) => {
    if (name === SECTION) return main;
    const server = serverSection(name, where);
    if (!server) throw new ConfigError(`${where}: unknown section [${name}]; this file has [${SECTION}] and [${SERVER_SECTION} HOST] sections`);
    config.servers.push(server);
    sectionNames.set(server, name);
    return sectionKeys(server, ADMIN_KEYS);
  });
  const lines = sections.get(SECTION) ?? new Map<string, number>();
  for (const [server, name] of sectionNames) server.lines = sections.get(name) ?? server.lines;
  checkAdminKeys(file, config, lines, config.servers);
  return finish(config, lines, file);
}

function finish(config: Config, lines: Map<string, number>, file: string): ImapConfig {
  if (!lines.has('port')) config.port = DEFAULT_PORTS[config.tls];
  if (config.databasePasswordFile !== undefined && config.database.kind !== 'mysql') {
    throw new ConfigError(`${file}, line ${lines.get('database_password_file')}: database_password_file is for a MySQL database; database is ${config.database.kind}:${config.database.file}`);
  }
  return { source: { file, lines }, ...config };
}

export function readImapConfig(file: string): ImapConfig {
  return parseImapConfig(readConfigText(file), file);
}

/** imapauth.conf's keys: those of imapsync.conf that mean the same for a login check. */
const AUTH_KEYS: Record<string, Setter<Config>> = {
  ...Object.fromEntries(['database', 'database_password_file', 'pubkey', 'tls', 'port', 'cafile', 'timeout', 'log_level'].map((k) => [k, KEYS[k]])),
  keyfile: () => {
    throw new ValueError('the web server reads this file: it must not name the private key (only benno-imapsync needs it, from imapsync.conf); remove the line');
  },
};

export const AUTH_CONFIG_KEYS = Object.keys(AUTH_KEYS).filter((k) => k !== 'keyfile');

/** Parses the text of imapauth.conf (section [imapauth]); the result has no keyfile. */
export function parseImapAuthConfig(text: string, file: string): ImapConfig {
  const config: Config = { ...DEFAULTS, exclude: [...DEFAULTS.exclude], servers: [], timeout: DEFAULT_AUTH_TIMEOUT };
  const lines = applyConfigLines(text, file, config, AUTH_KEYS, { comments: ';#', trailingComments: true, section: AUTH_SECTION });
  return finish(config, lines, file);
}

export function readImapAuthConfig(file: string): ImapConfig {
  return parseImapAuthConfig(readConfigText(file), file);
}

/** Where an account's IMAP server is: its HOST[:PORT], else the configuration's port; TLS as configured. */
export function serverFor(accountHost: string, config: ImapConfig): ServerOptions {
  const { host, port } = splitHostPort(accountHost);
  return { host, port: port ?? config.port, tls: config.tls, caFile: config.cafile, timeoutMs: config.timeout * 1000 };
}

/** What a program is about to open of the files the configuration names. */
export interface Needs {
  /** benno-imapuser: it encrypts passwords. */
  publicKey?: boolean;
  /** benno-imapsync: it decrypts them (from keyfile; with none, stdin is its own check). */
  privateKey?: boolean;
  /** Anything that connects to an IMAP server: cafile. */
  imap?: boolean;
  /** Anything that opens the database: database_password_file. */
  database?: boolean;
  /** benno-imapsync: every admin_password_file, [server] sections' included. */
  adminLogin?: boolean;
}

/**
 * Checks that the files a program needs can be opened, so that a wrong path
 * or mode is a ConfigError at start, before any network traffic. Reads no
 * content (it never appears in a message); the key's kind is checked where
 * it is loaded (secret.ts). An admin password file that others can read is
 * refused: it opens every mailbox of its server. Returns warnings to log: an
 * admin password file its group can read.
 */
export function checkConfigFiles(config: ImapConfig, needs: Needs): string[] {
  const warnings: string[] = [];
  const check = (key: string, file: string | null | undefined, hint = '', line = config.source.lines.get(key)): fs.Stats | null => {
    if (file === null || file === undefined) return null;
    const opened = openable(file);
    if (!(opened instanceof fs.Stats)) {
      const where = line === undefined ? `${config.source.file}: ${key} ${file} (the default)` : `${config.source.file}, line ${line}: ${key} ${file}`;
      throw new ConfigError(`${where}: ${opened}${opened.startsWith('cannot open it (ENOENT)') ? hint : ''}`);
    }
    return opened;
  };
  if (needs.publicKey) check('pubkey', config.pubkey, `; ${GENKEY_HINT}`);
  if (needs.privateKey) check('keyfile', config.keyfile, `; ${GENKEY_HINT}, or comment keyfile out to pipe the key in on stdin`);
  if (needs.imap) check('cafile', config.cafile);
  if (needs.database && config.database.kind === 'mysql') check('database_password_file', config.databasePasswordFile);
  const checked = new Set<string>();
  for (const admin of needs.adminLogin ? adminLogins(config) : []) {
    if (checked.has(admin.passwordFile)) continue;
    checked.add(admin.passwordFile);
    const mode = check('admin_password_file', admin.passwordFile, '', admin.line)!.mode & 0o777;
    const where = `${config.source.file}, line ${admin.line}: admin_password_file ${admin.passwordFile}`;
    const octal = `0${mode.toString(8).padStart(3, '0')}`;
    if (mode & 0o004) throw new ConfigError(`${where}: readable by others (mode ${octal}), and it opens every mailbox: chmod 600 it, owned by the user benno-imapsync runs as`);
    if (mode & 0o040) warnings.push(`${where}: readable by its group (mode ${octal}); chmod 600 it, owned by the user benno-imapsync runs as, unless no one else is in that group`);
  }
  return warnings;
}

/** The file's status, or why it cannot be used. */
function openable(file: string): fs.Stats | string {
  let fd: number;
  try {
    // O_NONBLOCK: a FIFO put there by mistake must not hang the start.
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  } catch (err) {
    return `cannot open it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`;
  }
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) return 'is not a regular file';
    if (st.size === 0) return 'is empty';
    return st;
  } finally {
    fs.closeSync(fd);
  }
}
