// What to tell Postfix so that it hands every message to benno-milter: the
// main.cf lines of the Benno documentation, or the same as -o overrides of
// chosen master.cf services; and the six UCR settings of a Univention
// server. Plans are lists of commands, printed with --dry-run.

import { isIP } from 'node:net';
import * as path from 'node:path';
import { MasterService, PostfixConfig, mainValue, milterList } from './postfix-config';
import { MilterSettings, SocketSettings, milterSocketText } from './milter-settings';
import { SocketSpec, SocketSpecError, formatPostfixEndpoint, localTarget, parseSocketSpec } from '../milter/socket-spec';

export class SetupError extends Error {}

/** The milter's socket; SetupError when the milter could not read it either. */
function milterSocket(settings: SocketSettings): SocketSpec {
  try {
    return parseSocketSpec(milterSocketText(settings));
  } catch (err) {
    if (err instanceof SocketSpecError) throw new SetupError(`SOCKET_TYPE=${settings.socketType} SOCKET=${settings.socket}: ${err.message}`);
    throw err;
  }
}

/** The endpoint as Postfix writes it, for a service running chrooted (relative to the queue directory) or not. */
export function postfixEndpoint(settings: SocketSettings, chrooted: boolean, queueDirectory: string): string {
  const socket = milterSocket(settings);
  if (socket.kind === 'inet') return formatPostfixEndpoint(localTarget(socket));
  if (!chrooted) return formatPostfixEndpoint(socket);
  const queue = queueDirectory.replace(/\/+$/, '');
  if (!socket.path.startsWith(`${queue}/`)) {
    throw new SetupError(`the socket ${socket.path} is outside Postfix's queue directory ${queue}, where a chrooted smtpd cannot reach it; put it under ${queue}`);
  }
  return formatPostfixEndpoint({ kind: 'unix', path: `/${path.relative(queue, socket.path)}` });
}

function service(config: PostfixConfig, name: string, type = 'inet'): MasterService | undefined {
  return config.services.find((s) => s.name === name && s.type === type);
}

/** Postfix 3 runs a service unchrooted unless master.cf says "y". */
export function chrooted(s: MasterService | undefined): boolean {
  return s?.chroot === true;
}

/** Adds our endpoint to an existing milter list, keeping other milters (OpenDKIM, ...). */
function withMilter(current: string, endpoint: string): string {
  const list = milterList(current);
  if (list.includes(endpoint)) return current;
  return current.trim() ? `${current.trim()}, ${endpoint}` : endpoint;
}

export interface SetupPlan {
  /** postconf argument lists, run in order. */
  commands: string[][];
  /** Lines for the operator (what the commands do, what to do next). */
  notes: string[];
}

export function planPostfixSetup(config: PostfixConfig, settings: MilterSettings, services: string[]): SetupPlan {
  const queue = mainValue(config, 'queue_directory') || '/var/spool/postfix';
  const commands: string[][] = [];
  const notes: string[] = [];
  if (services.length === 0) {
    const smtpd = postfixEndpoint(settings, chrooted(service(config, 'smtp')), queue);
    const cleanup = postfixEndpoint(settings, chrooted(service(config, 'cleanup', 'unix')), queue);
    commands.push([
      '-e',
      `smtpd_milters = ${withMilter(mainValue(config, 'smtpd_milters'), smtpd)}`,
      `non_smtpd_milters = ${withMilter(mainValue(config, 'non_smtpd_milters'), cleanup)}`,
      'milter_default_action = tempfail',
    ]);
    notes.push(`main.cf: every smtpd (${smtpd}) and local submission (${cleanup}) passes benno-milter; a milter that is down means "try again later".`);
  } else {
    for (const name of services) {
      const s = service(config, name);
      if (!s) throw new SetupError(`master.cf has no inet service "${name}" (services: ${config.services.filter((x) => x.type === 'inet').map((x) => x.name).join(', ')})`);
      if (s.command !== 'smtpd') throw new SetupError(`master.cf service "${name}" runs ${s.command}, not smtpd`);
      const endpoint = postfixEndpoint(settings, chrooted(s), queue);
      commands.push(['-P', `${name}/inet/smtpd_milters=${withMilter(s.overrides.get('smtpd_milters') ?? mainValue(config, 'smtpd_milters'), endpoint)}`]);
      commands.push(['-P', `${name}/inet/milter_default_action=tempfail`]);
      notes.push(`master.cf service ${name}${chrooted(s) ? ' (chrooted)' : ''}: -o smtpd_milters=${endpoint}`);
    }
  }
  notes.push('Then: postfix reload');
  return { commands, notes };
}

/** The UCR settings of the Benno documentation for a Univention mail server. */
export function univentionCommands(host: string, port = 22500): string[][] {
  if (!/^[A-Za-z0-9.:-]+$/.test(host)) throw new SetupError(`"${host}" is not a host name or address`);
  const endpoint = formatPostfixEndpoint({ kind: 'inet', host, port, family: isIP(host) === 6 ? 6 : 4 });
  const out: string[][] = [];
  for (const s of ['smtp', 'submission', 'smtps']) {
    out.push(['set', `mail/postfix/mastercf/options/${s}/smtpd_milters=${endpoint}`]);
    out.push(['set', `mail/postfix/mastercf/options/${s}/milter_default_action=tempfail`]);
  }
  return out;
}

/**
 * What the Benno host needs in turn: its milter listens on TCP and takes
 * connections only from the MTAs named with --allow.
 */
export function univentionAllowNote(host: string, addresses: string[]): string {
  const here = addresses.length > 0 ? ` (this host's addresses: ${addresses.join(', ')})` : '';
  return (
    `on ${host}, benno-milter takes connections only from the MTAs it names: set MILTERARGS="--allow ADDRESS" in ` +
    `/etc/default/benno-milter there, with this mail server's address as ${host} sees it${here}, then systemctl restart benno-milter`
  );
}

/** A command as a shell line, quoted where needed. */
export function shellLine(program: string, args: string[]): string {
  return [program, ...args].map((a) => (/^[A-Za-z0-9_./:=@,+-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
}
