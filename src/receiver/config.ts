// /etc/benno-smtp/benno-smtp.conf: "key = value" lines, "#" comments, blank
// lines. Every key is known and checked here; an unknown key or a bad value
// is a ConfigError naming the file, line and reason, which benno-smtp turns
// into its exit status 78.

import * as os from 'node:os';
import { Subnet, SubnetError, parseSubnets } from '../ops/allowlist';
import { LogLevel } from '../ops/log';
import { ConfigError, Setter, ValueError, absolutePath, applyConfigLines, checkedBy, logLevel, readConfigText, wholeNumber } from '../ops/config-lines';
import { DEFAULT_SPOOL_DIR, DEFAULT_SUFFIX, suffixProblem } from '../spool/names';
import { DEFAULT_ENVELOPE_NAMES, DEFAULT_MAX_RECIPIENTS, EnvelopeNames, envelopeNamesProblem, gatewayNameProblem, isFieldName } from '../spool/format';

export const DEFAULT_CONFIG_FILE = '/etc/benno-smtp/benno-smtp.conf';

export interface ReceiverConfig {
  listen: { host: string; port: number };
  inbox: string;
  envelopeHeader: boolean;
  suffix: string;
  /** Largest message in bytes; 0: no limit. */
  maxSize: number;
  allowedClients: Subnet[];
  tlsKey?: string;
  tlsCert?: string;
  /** File of AUTH users (user:scrypt hash lines); when set, AUTH is required. */
  authUsers?: string;
  hostname: string;
  maxClients: number;
  /** Most connections at once from one client address. */
  maxConnectionsPerClient: number;
  /** Seconds a client may stay silent. */
  timeout: number;
  /** Seconds a client may take after the greeting before its first command (at most timeout). */
  firstCommandTimeout: number;
  /** Most recipients per message; at least the milter's --max-recipients, so that every file it writes can be sent here. */
  maxRecipients: number;
  names: EnvelopeNames;
  /** Multi-import: the X-BENNO-GW name given to messages whose client sent none. */
  gateway?: string;
  logLevel: LogLevel;
}

export const DEFAULTS: ReceiverConfig = {
  listen: { host: '0.0.0.0', port: 2500 },
  inbox: DEFAULT_SPOOL_DIR,
  envelopeHeader: true,
  suffix: DEFAULT_SUFFIX,
  maxSize: 256 * 1024 * 1024,
  allowedClients: parseSubnets('127.0.0.0/8, ::1/128'),
  hostname: os.hostname(),
  maxClients: 100,
  // Half of max_clients, as Postfix's smtpd_client_connection_count_limit is half its process limit.
  maxConnectionsPerClient: 50,
  timeout: 300,
  firstCommandTimeout: 10,
  maxRecipients: DEFAULT_MAX_RECIPIENTS,
  names: DEFAULT_ENVELOPE_NAMES,
  logLevel: 'info',
};

export { ConfigError };

export function parseListen(v: string): { host: string; port: number } {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(v) ?? /^([^:\s]+):(\d+)$/.exec(v) ?? /^()(\d+)$/.exec(v);
  if (!m) throw new ValueError('use host:port, [ipv6]:port or port');
  const port = Number(m[2]);
  if (port < 1 || port > 65535) throw new ValueError(`port ${m[2]} is not 1-65535`);
  return { host: m[1] || '0.0.0.0', port };
}

function parseSize(v: string): number {
  const m = /^(\d+)\s*([KMG]?)B?$/i.exec(v);
  if (!m) throw new ValueError('use bytes or a number with K, M or G');
  return Number(m[1]) * { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 }[m[2].toUpperCase() as '' | 'K' | 'M' | 'G'];
}

function parseBool(v: string): boolean {
  if (/^(true|yes|on|1)$/i.test(v)) return true;
  if (/^(false|no|off|0)$/i.test(v)) return false;
  throw new ValueError('use true or false');
}

const KEYS: Record<string, Setter<ReceiverConfig>> = {
  listen: (c, v) => (c.listen = parseListen(v)),
  inbox: (c, v) => (c.inbox = absolutePath(v)),
  envelope_header: (c, v) => (c.envelopeHeader = parseBool(v)),
  suffix: (c, v) => (c.suffix = checkedBy(suffixProblem)(v)),
  max_size: (c, v) => (c.maxSize = parseSize(v)),
  allowed_clients: (c, v) => {
    try {
      c.allowedClients = parseSubnets(v);
    } catch (err) {
      if (err instanceof SubnetError) throw new ValueError(err.message);
      throw err;
    }
  },
  tls_key: (c, v) => (c.tlsKey = absolutePath(v)),
  tls_cert: (c, v) => (c.tlsCert = absolutePath(v)),
  auth_users: (c, v) => (c.authUsers = absolutePath(v)),
  hostname: (c, v) => {
    if (!/^[A-Za-z0-9.-]+$/.test(v)) throw new ValueError('not a host name');
    c.hostname = v;
  },
  max_clients: (c, v) => (c.maxClients = wholeNumber(1, 100000)(v)),
  max_connections_per_client: (c, v) => (c.maxConnectionsPerClient = wholeNumber(1, 100000)(v)),
  timeout: (c, v) => (c.timeout = wholeNumber(1, 3600)(v)),
  first_command_timeout: (c, v) => (c.firstCommandTimeout = wholeNumber(1, 3600)(v)),
  max_recipients: (c, v) => (c.maxRecipients = wholeNumber(1, 100000)(v)),
  sender_header: (c, v) => {
    if (!isFieldName(v)) throw new ValueError('not a header field name');
    c.names = { ...c.names, sender: v };
  },
  recipient_header: (c, v) => {
    if (!isFieldName(v)) throw new ValueError('not a header field name');
    c.names = { ...c.names, recipient: v };
  },
  gateway: (c, v) => (c.gateway = checkedBy(gatewayNameProblem)(v)),
  log_level: (c, v) => (c.logLevel = logLevel(v)),
};

export const CONFIG_KEYS = Object.keys(KEYS);

/** Parses the text of a configuration file; errors name the file and line. */
export function parseReceiverConfig(text: string, file: string): ReceiverConfig {
  const config: ReceiverConfig = { ...DEFAULTS, listen: { ...DEFAULTS.listen } };
  const seen = applyConfigLines(text, file, config, KEYS, { comments: '#' });
  if (Boolean(config.tlsKey) !== Boolean(config.tlsCert)) {
    throw new ConfigError(`${file}: tls_key and tls_cert go together`);
  }
  // The two names are checked together, at the line of the later one.
  const names = envelopeNamesProblem(config.names);
  if (names) {
    const key = (seen.get('sender_header') ?? 0) > (seen.get('recipient_header') ?? 0) ? 'sender_header' : 'recipient_header';
    throw new ConfigError(`${file}, line ${seen.get(key)}: bad ${key}: ${names}`);
  }
  return config;
}

export function readReceiverConfig(file: string): ReceiverConfig {
  return parseReceiverConfig(readConfigText(file), file);
}
