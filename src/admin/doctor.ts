// `benno-milter-admin doctor`: looks at Postfix's configuration, the
// milter's settings and the files between them, and names each problem with
// its fix. The checks work on gathered facts, so that tests can feed them
// recorded postconf output and made-up file modes.

import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { printable } from '../ops/text';
import { MasterService, PostfixConfig, milterList, serviceValue, smtpdServices, mainValue } from './postfix-config';
import { MilterSettings, OVERRIDE_FILE, milterOptionValues, milterSocketText, skippedDaemons } from './milter-settings';
import { isLoopback, isThisHost, thisHostNames } from '../ops/allowlist';
import { SocketSpec, SocketSpecError, parsePostfixEndpoint, parseSocketSpec } from '../milter/socket-spec';
import { LOCAL_TCP_COST, OVERRIDE_NOTE, chrooted, isOurs, postfixEndpoint, SetupError } from './postfix-setup';
import { ExportStatus, readExportStatus, spoolBacklog } from '../spool/status';

export interface Finding {
  level: 'error' | 'warning';
  problem: string;
  fix: string;
}

export interface FileFacts {
  uid: number;
  gid: number;
  mode: number;
  socket: boolean;
  directory: boolean;
}

export interface DoctorFacts {
  postfix: PostfixConfig | null;
  settings: MilterSettings;
  /** uid, primary gid and groups of user benno; null when there is no such user. */
  benno: { uid: number; gid: number; groups: number[] } | null;
  postfixGid: number | null;
  stat: (path: string) => FileFacts | null;
  /** Result of connecting to BENNOHOST:BENNOPORT; undefined when BENNOHOST is not set. */
  archiveReachable?: { ok: boolean; detail: string };
  /** This host's addresses and names: a milter there is local to Postfix. */
  hostNames?: string[];
  /** The package's override.conf exists (written when this host had no Postfix). */
  override?: boolean;
  /** net.ipv4.tcp_pingpong_thresh; null when the kernel has no such setting (before Linux 6.7). */
  pingpongThreshold?: number | null;
  /** Age in seconds of the oldest file waiting in the spool. */
  oldestSpoolAge: number | null;
  /** What the last export run recorded in the spool; null or absent when none did. */
  lastExport?: ExportStatus | null;
}

/**
 * A service that takes mail back from a content filter (Amavis and
 * friends): it clears content_filter, as FILTER_README and the Benno
 * documentation set it up, so that the mail does not loop.
 */
function reinjection(s: MasterService): boolean {
  return s.overrides.get('content_filter') === '';
}

export function canAccess(f: FileFacts, who: { uid: number; groups: number[] }, bits: { r?: boolean; w?: boolean; x?: boolean }): boolean {
  const want = (bits.r ? 4 : 0) | (bits.w ? 2 : 0) | (bits.x ? 1 : 0);
  const m = f.uid === who.uid ? (f.mode >> 6) & 7 : who.groups.includes(f.gid) ? (f.mode >> 3) & 7 : f.mode & 7;
  return (m & want) === want;
}

const modeText = (f: FileFacts) => (f.mode & 0o777).toString(8);

/** Postfix's side as the rules see it, worked out once. */
interface PostfixView {
  config: PostfixConfig;
  queue: string;
  smtpds: MasterService[];
  /** The smtpds that receive mail from outside, not back from a content filter. */
  publicServices: MasterService[];
  /** The public smtpds whose smtpd_milters name benno-milter. */
  using: MasterService[];
  /** The endpoint a service should name for our socket; null when it cannot reach it (a chroot without the socket). */
  expected(s: MasterService): string | null;
  /** The entry of smtpd_milters that names benno-milter, for a service in using. */
  ours(s: MasterService): string;
}

/** What the rules look at: the facts, and what several rules derive from them. */
interface Context {
  facts: DoctorFacts;
  settings: MilterSettings;
  /** null when postconf did not answer: the Postfix rules are skipped. */
  postfix: PostfixView | null;
  /** The milter's socket; null when it cannot read SOCKET_TYPE and SOCKET. */
  socket: SocketSpec | null;
  /** Why the milter cannot read them. */
  socketProblem: string | null;
  /** The milter's unix socket; null when it listens on TCP. */
  socketPath: string | null;
  /** User benno with all of its groups; null when there is no such user. */
  benno: { uid: number; groups: number[] } | null;
  /** A TCP socket beyond loopback: the milter does not start without --allow. */
  tcp: { where: string; allow: string[] } | null;
  /** Postfix's daemons as a user that owns nothing but is in group postfix; null when there is no such group. */
  postfixGroup: { uid: number; groups: number[] } | null;
}

function postfixView(config: PostfixConfig, settings: MilterSettings, socket: SocketSpec | null): PostfixView {
  const queue = mainValue(config, 'queue_directory') || '/var/spool/postfix';
  const smtpds = smtpdServices(config);
  const publicServices = smtpds.filter((s) => !reinjection(s));
  const oursIn = (s: MasterService) => milterList(serviceValue(config, s, 'smtpd_milters')).find((e) => isOurs(e, socket));
  return {
    config,
    queue,
    smtpds,
    publicServices,
    using: publicServices.filter((s) => oursIn(s) !== undefined),
    expected: (s) => {
      try {
        return postfixEndpoint(settings, chrooted(s), queue);
      } catch (err) {
        if (err instanceof SetupError) return null;
        throw err;
      }
    },
    ours: (s) => oursIn(s)!,
  };
}

/** null for loopback, for unix sockets and for sockets the milter cannot read. */
function exposedTcp(settings: MilterSettings, socket: SocketSpec | null): { where: string; allow: string[] } | null {
  if (socket?.kind !== 'inet' || isLoopback(socket.host)) return null;
  return { where: milterSocketText(settings), allow: milterOptionValues(settings.milterArgs, '--allow') };
}

function context(facts: DoctorFacts): Context {
  const { settings } = facts;
  let socket: SocketSpec | null = null;
  let socketProblem: string | null = null;
  try {
    socket = parseSocketSpec(milterSocketText(settings));
  } catch (err) {
    if (!(err instanceof SocketSpecError)) throw err;
    socketProblem = err.message;
  }
  return {
    facts,
    settings,
    postfix: facts.postfix ? postfixView(facts.postfix, settings, socket) : null,
    socket,
    socketProblem,
    socketPath: socket?.kind === 'unix' ? socket.path : null,
    benno: facts.benno ? { uid: facts.benno.uid, groups: [facts.benno.gid, ...facts.benno.groups] } : null,
    tcp: exposedTcp(settings, socket),
    postfixGroup: facts.postfixGid !== null ? { uid: -1, groups: [facts.postfixGid] } : null,
  };
}

/** One kind of problem: how to see it, and the fix to name. */
interface Rule {
  id: string;
  /** The findings of this rule; null or none when all is well. */
  check(c: Context): Finding | Finding[] | null;
}

/** A rule about one smtpd that passes benno-milter. */
interface ServiceRule {
  id: string;
  check(c: Context, p: PostfixView, s: MasterService): Finding | null;
}

const error = (problem: string, fix: string): Finding => ({ level: 'error', problem, fix });
const warning = (problem: string, fix: string): Finding => ({ level: 'warning', problem, fix });

/** A rule that needs Postfix's configuration: silent when postconf did not answer. */
function postfixRule(id: string, check: (c: Context, p: PostfixView) => Finding | Finding[] | null): Rule {
  return { id, check: (c) => (c.postfix ? check(c, c.postfix) : null) };
}

/** Checked service after service, so that each service's findings stand together. */
const SERVICE_RULES: ServiceRule[] = [
  {
    id: 'socket-outside-chroot',
    check: (c, p, s) =>
      c.socketPath !== null && p.expected(s) === null
        ? error(
            `service ${s.name} runs chrooted in ${p.queue}, but the milter socket ${c.socketPath} is outside it`,
            `set SOCKET under ${p.queue} in /etc/default/benno-milter, or run ${s.name} without chroot in master.cf`,
          )
        : null,
  },
  {
    id: 'socket-path-vs-chroot',
    check: (c, p, s) => {
      const want = p.expected(s);
      const have = p.ours(s);
      if (c.socketPath === null || want === null || have === want) return null;
      return error(
        `service ${s.name} ${chrooted(s) ? 'runs chrooted' : 'does not run chrooted'}, so ${have} does not reach the socket ${c.socketPath}`,
        `use ${want} in smtpd_milters (benno-milter-admin setup postfix${p.config.main.has('smtpd_milters') ? '' : ` --service ${s.name}`})`,
      );
    },
  },
  {
    id: 'milter-default-action',
    check: (_c, p, s) => {
      const action = serviceValue(p.config, s, 'milter_default_action') || 'tempfail';
      if (action === 'tempfail') return null;
      return error(
        `milter_default_action is ${action} for ${s.name}: when benno-milter is down, mail is ${action === 'accept' ? 'accepted without being archived' : 'rejected'}`,
        `postconf -e 'milter_default_action = tempfail'${s.overrides.has('milter_default_action') ? `; postconf -P '${s.name}/inet/milter_default_action=tempfail'` : ''}; postfix reload`,
      );
    },
  },
];


/** The checks of doctor, in the order their findings are printed. */
const RULES: Rule[] = [
  postfixRule('not-in-smtpd-milters', (_c, p) =>
    p.using.length > 0
      ? null
      : error(
          'benno-milter is not in smtpd_milters of any smtpd: mail received over SMTP is not archived',
          'run "benno-milter-admin setup postfix" (main.cf) or "benno-milter-admin setup postfix --service smtp" (master.cf), then "postfix reload"',
        ),
  ),
  postfixRule('service-bypasses-milter', (_c, p) =>
    p.using.length === 0
      ? null
      : p.publicServices
          .filter((s) => !p.using.includes(s))
          .map((s) =>
            warning(
              `master.cf service ${s.name} does not pass benno-milter: mail arriving there is not archived`,
              `benno-milter-admin setup postfix --service ${s.name}; postfix reload`,
            ),
          ),
  ),
  postfixRule('milter-services', (c, p) =>
    p.using.flatMap((s) => SERVICE_RULES.map((r) => r.check(c, p, s)).filter((f): f is Finding => f !== null)),
  ),
  postfixRule('local-milter-over-tcp', (c, p) => {
    const local = (entry: string) => {
      try {
        const e = parsePostfixEndpoint(entry);
        return e.kind === 'inet' && isThisHost(e.host, c.facts.hostNames ?? []);
      } catch (err) {
        if (err instanceof SocketSpecError) return false;
        throw err;
      }
    };
    const tcp = p.using.filter((s) => local(p.ours(s)));
    if (tcp.length === 0) return null;
    const entries = [...new Set(tcp.map((s) => p.ours(s)))].join(', ');
    const onLoopback = c.socket?.kind === 'inet' && isLoopback(c.socket.host);
    const sysctl =
      c.facts.pingpongThreshold === null || c.facts.pingpongThreshold === undefined
        ? ''
        : '. The host setting net.ipv4.tcp_pingpong_thresh=3 is no remedy: it changes delayed ACKs for every TCP connection in this network namespace and measured no consistent gain (benno-milter(8))';
    return warning(
      `Postfix reaches benno-milter on this host over TCP (${entries} from ${tcp.map((s) => s.name).join(', ')}): ${LOCAL_TCP_COST}`,
      (onLoopback
        ? 'benno-milter-admin setup postfix moves it to the unix socket'
        : `if no other host's MTA uses this milter, set SOCKET_TYPE=local and SOCKET=${p.queue}/benno-milter/benno-milter.sock in /etc/default/benno-milter (without --allow), systemctl restart benno-milter, then benno-milter-admin setup postfix`) +
        (c.facts.override ? ` (${OVERRIDE_NOTE})` : '') +
        sysctl,
    );
  }),
  postfixRule('not-in-non-smtpd-milters', (c, p) =>
    p.using.length === 0 || milterList(mainValue(p.config, 'non_smtpd_milters')).some((e) => isOurs(e, c.socket))
      ? null
      : warning(
          'benno-milter is not in non_smtpd_milters: mail submitted locally (sendmail, cron, web applications) is not archived',
          'benno-milter-admin setup postfix; postfix reload',
        ),
  ),
  postfixRule('archived-twice', (c, p) => {
    const skipped = skippedDaemons(c.settings.milterArgs);
    return p.smtpds
      .filter((s) => reinjection(s))
      .filter((s) => milterList(serviceValue(p.config, s, 'smtpd_milters')).some((e) => isOurs(e, c.socket)))
      .filter((s) => !skipped.includes(serviceValue(p.config, s, 'milter_macro_daemon_name')))
      .map((s) =>
        error(
          `master.cf service ${s.name} takes mail back from a content filter and passes it to benno-milter again: every such message is archived twice`,
          `postconf -P '${s.name}/inet/smtpd_milters=' '${s.name}/inet/non_smtpd_milters='; postfix reload`,
        ),
      );
  }),
  {
    id: 'socket-unreadable',
    check: (c) =>
      c.socketProblem === null
        ? null
        : error(
            `benno-milter cannot listen on SOCKET_TYPE=${c.settings.socketType} SOCKET=${c.settings.socket} (${c.socketProblem}): it does not start`,
            'set SOCKET_TYPE and SOCKET in /etc/default/benno-milter (local with an absolute path, or inet with PORT@HOST), then systemctl restart benno-milter',
          ),
  },
  {
    id: 'tcp-without-allow',
    check: (c) => {
      const { tcp } = c;
      if (!tcp || tcp.allow.length > 0) return null;
      return error(
        `benno-milter listens on TCP ${tcp.where} but no --allow names the MTAs that may connect: it refuses to start (anyone reaching the port could put mail into the archive)`,
        'set MILTERARGS="--allow ADDRESS" in /etc/default/benno-milter with the address of each MTA (repeat --allow; CIDR networks work), then systemctl restart benno-milter',
      );
    },
  },
  {
    id: 'tcp-allow-any',
    check: (c) => {
      const { tcp } = c;
      if (!tcp || !tcp.allow.includes('any')) return null;
      return warning(
        `benno-milter listens on TCP ${tcp.where} with --allow any: anyone who can reach the port can put mail into the archive`,
        'replace --allow any in MILTERARGS (/etc/default/benno-milter) with the addresses of the MTAs, or firewall the port',
      );
    },
  },
  {
    id: 'no-user-benno',
    check: (c) => (c.benno ? null : error('there is no user benno', 'reinstall the benno-milter package, or: adduser --system --group benno')),
  },
  {
    id: 'socket-missing',
    check: (c) =>
      c.socketPath !== null && !c.facts.stat(c.socketPath)
        ? warning(`the milter socket ${c.socketPath} does not exist: benno-milter is not running`, 'systemctl start benno-milter; journalctl -u benno-milter')
        : null,
  },
  {
    id: 'socket-closed-to-postfix',
    check: (c) => {
      const socket = c.socketPath === null ? null : c.facts.stat(c.socketPath);
      if (!socket || !c.postfixGroup || canAccess(socket, c.postfixGroup, { r: true, w: true })) return null;
      return error(
        `Postfix (group postfix) cannot connect to ${c.socketPath} (owner ${socket.uid}:${socket.gid}, mode ${modeText(socket)})`,
        'run benno-milter in group postfix (Group=postfix in benno-milter.service) with --socket-mode 0660',
      );
    },
  },
  {
    id: 'socket-dir-closed-to-postfix',
    check: (c) => {
      if (c.socketPath === null) return null;
      const dirPath = path.dirname(c.socketPath);
      const dir = c.facts.stat(dirPath);
      if (!dir || !c.postfixGroup || canAccess(dir, c.postfixGroup, { x: true })) return null;
      return error(
        `Postfix (group postfix) cannot enter the socket directory (mode ${modeText(dir)})`,
        `chown benno:postfix ${dirPath}; chmod 0750 ${dirPath}`,
      );
    },
  },
  {
    id: 'spool-missing',
    check: (c) => {
      const dir = c.settings.spoolDir;
      if (c.facts.stat(dir)?.directory) return null;
      return error(`the spool directory ${dir} does not exist`, `install -d -o benno -g benno -m 0750 ${dir}`);
    },
  },
  {
    id: 'spool-closed-to-benno',
    check: (c) => {
      const dir = c.settings.spoolDir;
      const spool = c.facts.stat(dir);
      if (!spool?.directory || !c.benno || canAccess(spool, c.benno, { w: true, x: true })) return null;
      return error(
        `user benno cannot create files in ${dir} (owner ${spool.uid}:${spool.gid}, mode ${modeText(spool)}): every message would be answered 451`,
        `chown benno ${dir}; chmod 0750 ${dir}`,
      );
    },
  },
  {
    id: 'archive-unreachable',
    check: (c) => {
      const host = c.settings.vars.get('BENNOHOST');
      const reach = c.facts.archiveReachable;
      if (!host || !reach || reach.ok) return null;
      return error(
        `the archive host ${host}:${c.settings.vars.get('BENNOPORT') || 2500} does not answer (${reach.detail}): the spool is not shipped`,
        'check that benno-smtp runs there (systemctl status benno-smtp) and that its allowed_clients and the firewall let this host in',
      );
    },
  },
  {
    id: 'export-behind',
    check: (c) => {
      const host = c.settings.vars.get('BENNOHOST');
      const age = c.facts.oldestSpoolAge;
      if (!host || age === null || age <= 3600) return null;
      return warning(
        `the oldest file in ${c.settings.spoolDir} waits for ${Math.round(age / 60)} minutes: the export to ${host} is not running or failing`,
        'enable the line in /etc/cron.d/benno-milter or benno-export2archive.timer; see benno-milter-admin status for the last result',
      );
    },
  },
  {
    id: 'export-refused',
    check: (c) => {
      const refused = c.facts.lastExport?.refused ?? 0;
      if (!c.settings.vars.get('BENNOHOST') || refused <= 0) return null;
      const first = c.facts.lastExport?.refusedFiles?.[0];
      return error(
        `the archive host refused ${refused} file(s) in the last export` +
          (first ? ` (${printable(first.name)}: ${printable(first.reason)})` : '') +
          `: they stay in ${c.settings.spoolDir} and are tried again at every run, but are not archived`,
        'see all of them with benno-milter-admin status and in the export log; fix the cause on the archive host (max_size, max_recipients, SMTPUTF8) or remove the files by hand',
      );
    },
  },
];

export function diagnose(facts: DoctorFacts): Finding[] {
  const c = context(facts);
  return RULES.flatMap((r) => r.check(c) ?? []);
}

export interface UserIds {
  uid: number;
  gid: number;
  groups: number[];
}

/** A user's uid, primary gid and groups, as id(1) prints them; null when there is no such user. */
export function userIds(user: string): UserIds | null {
  const uid = idOf('-u', user);
  return uid === null ? null : { uid: uid[0], gid: idOf('-g', user)?.[0] ?? -1, groups: idOf('-G', user) ?? [] };
}

/** Numbers printed by id(1) for a user ("-u", "-g", "-G"); null when there is no such user. */
function idOf(flag: string, user: string): number[] | null {
  try {
    return execFileSync('id', [flag, user], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim().split(/\s+/).map(Number);
  } catch {
    return null;
  }
}

function groupId(name: string): number | null {
  try {
    const line = execFileSync('getent', ['group', name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    return Number(line.split(':')[2]);
  } catch {
    return null;
  }
}

function reachable(host: string, port: number, timeoutMs = 5000): Promise<{ ok: boolean; detail: string }> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    const done = (ok: boolean, detail: string) => {
      s.destroy();
      resolve({ ok, detail });
    };
    s.setTimeout(timeoutMs, () => done(false, `no answer within ${timeoutMs / 1000}s`));
    s.once('connect', () => done(true, 'connected'));
    s.once('error', (err: NodeJS.ErrnoException) => done(false, err.code ?? err.message));
  });
}

export function statFile(p: string): FileFacts | null {
  try {
    const st = fs.statSync(p);
    return { uid: st.uid, gid: st.gid, mode: st.mode, socket: st.isSocket(), directory: st.isDirectory() };
  } catch {
    return null;
  }
}

function pingpongThreshold(): number | null {
  try {
    return Number(fs.readFileSync('/proc/sys/net/ipv4/tcp_pingpong_thresh', 'utf8').trim());
  } catch {
    return null;
  }
}

/** Gathers the facts of this host. */
export async function gatherFacts(postfix: PostfixConfig | null, settings: MilterSettings): Promise<DoctorFacts> {
  const benno = userIds('benno');
  const host = settings.vars.get('BENNOHOST');
  return {
    postfix,
    settings,
    benno,
    postfixGid: groupId('postfix'),
    stat: statFile,
    archiveReachable: host ? await reachable(host, Number(settings.vars.get('BENNOPORT') || 2500)) : undefined,
    oldestSpoolAge: host ? spoolBacklog(settings.spoolDir, settings.suffix)?.oldestSeconds ?? null : null,
    lastExport: host ? readExportStatus(settings.spoolDir) : null,
    hostNames: thisHostNames(),
    pingpongThreshold: pingpongThreshold(),
    override: fs.existsSync(OVERRIDE_FILE),
  };
}
