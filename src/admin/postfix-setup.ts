// What to tell Postfix so that it hands every message to benno-milter: the
// main.cf lines of the Benno documentation, or the same as -o overrides of
// chosen master.cf services; and the six UCR settings of a Univention
// server. Plans are lists of commands, printed with --dry-run.

import { isIP } from 'node:net';
import * as path from 'node:path';
import { MasterService, PostfixConfig, mainValue, milterList } from './postfix-config';
import { MilterSettings, OVERRIDE_FILE, SocketSettings, milterOptionValues, milterSocketText, withoutOption } from './milter-settings';
import { SocketSpec, SocketSpecError, formatPostfixEndpoint, localTarget, parsePostfixEndpoint, parseSocketSpec } from '../milter/socket-spec';
import { isLoopback } from '../ops/allowlist';

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

/**
 * Whether an entry of a milter list names our socket. TCP matches on the
 * port, whatever host Postfix connects to; a unix path on its last two
 * components, so that a path written for the other side of a chroot still
 * counts as ours.
 */
export function isOurs(entry: string, socket: SocketSpec | null): boolean {
  let e: SocketSpec;
  try {
    e = parsePostfixEndpoint(entry);
  } catch (err) {
    if (err instanceof SocketSpecError) return false;
    throw err;
  }
  if (socket?.kind === 'inet') return e.kind === 'inet' && e.port === socket.port;
  return socket?.kind === 'unix' && e.kind === 'unix' && e.path.includes(socket.path.split('/').slice(-2).join('/'));
}

/**
 * Our endpoint in a milter list, keeping other milters (OpenDKIM, ...) and
 * their order: it takes the place of an entry that named the milter before
 * (its TCP port, or a path for the other side of a chroot), since a second
 * entry for a socket nobody listens on would tempfail every message.
 */
function withMilter(current: string, endpoint: string, before: SocketSpec | null): string {
  const list = milterList(current);
  if (list.includes(endpoint) && !list.some((e) => e !== endpoint && isOurs(e, before))) return current;
  const out: string[] = [];
  for (const e of list) {
    const mine = e === endpoint || isOurs(e, before);
    if (!mine) out.push(e);
    else if (!out.includes(endpoint)) out.push(endpoint);
  }
  if (!out.includes(endpoint)) out.push(endpoint);
  return out.join(', ');
}

/**
 * The price of TCP between Postfix and a milter on the same host, measured
 * (npm run bench -- --only b; docs/BENCHMARKS.md, benno-milter(8)).
 */
export const LOCAL_TCP_COST = 'TCP on loopback runs at about 0.92 of a unix socket\'s rate (678 against 737 messages/s measured; benno-milter(8), "TCP on one host")';

export const OVERRIDE_NOTE = `the package's ${OVERRIDE_FILE} (written when this host had no Postfix) runs the milter outside group postfix: remove it, systemctl daemon-reload`;

/** benno-milter leaves loopback TCP for its unix socket: what /etc/default/benno-milter gets. */
export interface MilterMove {
  /** The socket as it was (SOCKET_TYPE:SOCKET). */
  from: string;
  /** The unix socket, under Postfix's queue directory so that a chrooted smtpd reaches it. */
  path: string;
  /** SOCKET_TYPE, SOCKET, and MILTERARGS when it loses its --allow (a unix socket is guarded by its mode). */
  values: Map<string, string>;
}

export interface MoveOptions {
  /** --keep-tcp: the administrator wants TCP. */
  keepTcp?: boolean;
  /** The package's override.conf exists: written when there was no Postfix, it runs the milter outside group postfix. */
  override?: boolean;
}

/**
 * Whether the milter should leave TCP for its unix socket, and why not when
 * it stays: a milter on loopback only serves this host, and a unix socket
 * costs Postfix less; one on another address may serve other hosts' MTAs.
 */
export function planMove(settings: MilterSettings, queueDirectory: string, options: MoveOptions = {}): { move: MilterMove | null; note: string | null } {
  const socket = milterSocket(settings);
  if (socket.kind !== 'inet') return { move: null, note: null };
  const from = milterSocketText(settings);
  const queue = queueDirectory.replace(/\/+$/, '');
  const path = `${queue}/benno-milter/benno-milter.sock`;
  const howTo = `set SOCKET_TYPE=local and SOCKET=${path} in /etc/default/benno-milter (without --allow in MILTERARGS), systemctl restart benno-milter, then run this again`;
  if (!isLoopback(socket.host)) {
    return { move: null, note: `benno-milter listens on TCP ${from}, where other hosts' MTAs may reach it, so Postfix here uses TCP too. ${LOCAL_TCP_COST}; if only this Postfix uses the milter, ${howTo}` };
  }
  if (options.keepTcp) return { move: null, note: `benno-milter stays on TCP ${from} (--keep-tcp). ${LOCAL_TCP_COST}` };
  if (options.override) return { move: null, note: `benno-milter stays on TCP ${from}: ${OVERRIDE_NOTE}, and ${howTo}` };
  const values = new Map([
    ['SOCKET_TYPE', 'local'],
    ['SOCKET', path],
  ]);
  if (milterOptionValues(settings.milterArgs, '--allow').length > 0) values.set('MILTERARGS', withoutOption(settings.milterArgs, '--allow'));
  return { move: { from, path, values }, note: null };
}

/** The socket Postfix is to name: the unix socket after a move, else the milter's own; the reasons go to notes. */
function socketChoice(current: MilterSettings, queue: string, options: MoveOptions, notes: string[]): { move: MilterMove | null; settings: SocketSettings } {
  const { move, note } = planMove(current, queue, options);
  if (move) notes.push(`benno-milter moves from TCP ${move.from}, which only this host can reach, to the unix socket ${move.path}: ${LOCAL_TCP_COST}; keep TCP with --keep-tcp`);
  if (note) notes.push(note);
  return { move, settings: move ? { socketType: 'local', socket: move.path } : current };
}

export interface SetupPlan {
  /** The milter moves from loopback TCP to its unix socket first; null when it stays where it is. */
  move: MilterMove | null;
  /** postconf argument lists, run in order, after the move. */
  commands: string[][];
  /** Lines for the operator (what the commands do, what to do next). */
  notes: string[];
}

export function planPostfixSetup(config: PostfixConfig, current: MilterSettings, services: string[], options: MoveOptions = {}): SetupPlan {
  const queue = mainValue(config, 'queue_directory') || '/var/spool/postfix';
  const commands: string[][] = [];
  const notes: string[] = [];
  const before = milterSocket(current);
  const { move, settings } = socketChoice(current, queue, options, notes);
  if (services.length === 0) {
    const smtpd = postfixEndpoint(settings, chrooted(service(config, 'smtp')), queue);
    const cleanup = postfixEndpoint(settings, chrooted(service(config, 'cleanup', 'unix')), queue);
    commands.push([
      '-e',
      `smtpd_milters = ${withMilter(mainValue(config, 'smtpd_milters'), smtpd, before)}`,
      `non_smtpd_milters = ${withMilter(mainValue(config, 'non_smtpd_milters'), cleanup, before)}`,
      'milter_default_action = tempfail',
    ]);
    notes.push(`main.cf: every smtpd (${smtpd}) and local submission (${cleanup}) passes benno-milter; a milter that is down means "try again later".`);
  } else {
    for (const name of services) {
      const s = service(config, name);
      if (!s) throw new SetupError(`master.cf has no inet service "${name}" (services: ${config.services.filter((x) => x.type === 'inet').map((x) => x.name).join(', ')})`);
      if (s.command !== 'smtpd') throw new SetupError(`master.cf service "${name}" runs ${s.command}, not smtpd`);
      const endpoint = postfixEndpoint(settings, chrooted(s), queue);
      commands.push(['-P', `${name}/inet/smtpd_milters=${withMilter(s.overrides.get('smtpd_milters') ?? mainValue(config, 'smtpd_milters'), endpoint, before)}`]);
      commands.push(['-P', `${name}/inet/milter_default_action=tempfail`]);
      notes.push(`master.cf service ${name}${chrooted(s) ? ' (chrooted)' : ''}: -o smtpd_milters=${endpoint}`);
    }
  }
  notes.push('Then: postfix reload');
  return { move, commands, notes };
}

/** The smtpd services of a Univention mail server that the Benno documentation sets up. */
export const UNIVENTION_SERVICES = ['smtp', 'submission', 'smtps'];

/** The milter on the Benno host, over TCP, as a Univention smtpd names it. */
export function univentionTcpEndpoint(host: string, port = 22500): string {
  if (!/^[A-Za-z0-9.:-]+$/.test(host)) throw new SetupError(`"${host}" is not a host name or address`);
  return formatPostfixEndpoint({ kind: 'inet', host, port, family: isIP(host) === 6 ? 6 : 4 });
}

/**
 * The Univention set-up when the milter runs on the mail server itself:
 * its unix socket, as each service's chroot sees it (after a move from
 * loopback TCP, as setup postfix makes it).
 */
export function univentionLocalPlan(config: PostfixConfig, current: MilterSettings, options: MoveOptions = {}): { move: MilterMove | null; notes: string[]; endpoint: (service: string) => string } {
  const queue = mainValue(config, 'queue_directory') || '/var/spool/postfix';
  const notes: string[] = [];
  const { move, settings } = socketChoice(current, queue, options, notes);
  return { move, notes, endpoint: (name) => postfixEndpoint(settings, chrooted(service(config, name)), queue) };
}

/** The UCR settings of the Benno documentation for a Univention mail server, with the endpoint each service uses. */
export function univentionCommands(endpoint: (service: string) => string): string[][] {
  const out: string[][] = [];
  for (const s of UNIVENTION_SERVICES) {
    out.push(['set', `mail/postfix/mastercf/options/${s}/smtpd_milters=${endpoint(s)}`]);
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
