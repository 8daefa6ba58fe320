// `benno-milter-admin doctor`: looks at Postfix's configuration, the
// milter's settings and the files between them, and names each problem with
// its fix. The checks work on gathered facts, so that tests can feed them
// recorded postconf output and made-up file modes.

import * as fs from 'node:fs';
import * as net from 'node:net';
import { execFileSync } from 'node:child_process';
import { printable } from '../ops/text';
import { MasterService, PostfixConfig, milterList, serviceValue, smtpdServices, mainValue } from './postfix-config';
import { MilterSettings, milterOptionValues, skippedDaemons } from './milter-settings';
import { isLoopback } from '../ops/allowlist';
import { parseSocketSpec } from '../milter/socket-spec';
import { chrooted, postfixEndpoint, SetupError } from './postfix-setup';
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

function isOurs(endpoint: string, settings: MilterSettings): boolean {
  if (settings.socketType === 'inet' || settings.socketType === 'inet6') {
    const port = /^(\d+)/.exec(settings.socket)?.[1];
    return endpoint.startsWith('inet') && port !== undefined && endpoint.endsWith(`:${port}`);
  }
  const base = settings.socket.split('/').slice(-2).join('/');
  return endpoint.includes(base);
}

function canAccess(f: FileFacts, who: { uid: number; groups: number[] }, bits: { r?: boolean; w?: boolean; x?: boolean }): boolean {
  const want = (bits.r ? 4 : 0) | (bits.w ? 2 : 0) | (bits.x ? 1 : 0);
  const m = f.uid === who.uid ? (f.mode >> 6) & 7 : who.groups.includes(f.gid) ? (f.mode >> 3) & 7 : f.mode & 7;
  return (m & want) === want;
}

export function diagnose(facts: DoctorFacts): Finding[] {
  const out: Finding[] = [];
  const { postfix: config, settings } = facts;
  const unixSocket = settings.socketType === 'local' || settings.socketType === 'unix';

  if (config) {
    const queue = mainValue(config, 'queue_directory') || '/var/spool/postfix';
    const expected = (s: MasterService | undefined) => {
      try {
        return postfixEndpoint(settings, chrooted(s), queue);
      } catch (err) {
        if (err instanceof SetupError) return null;
        throw err;
      }
    };
    const smtpds = smtpdServices(config);
    const publicServices = smtpds.filter((s) => !reinjection(s));
    const using = publicServices.filter((s) => milterList(serviceValue(config, s, 'smtpd_milters')).some((e) => isOurs(e, settings)));
    if (using.length === 0) {
      out.push({
        level: 'error',
        problem: 'benno-milter is not in smtpd_milters of any smtpd: mail received over SMTP is not archived',
        fix: 'run "benno-milter-admin setup postfix" (main.cf) or "benno-milter-admin setup postfix --service smtp" (master.cf), then "postfix reload"',
      });
    } else {
      for (const s of publicServices.filter((x) => !using.includes(x))) {
        out.push({
          level: 'warning',
          problem: `master.cf service ${s.name} does not pass benno-milter: mail arriving there is not archived`,
          fix: `benno-milter-admin setup postfix --service ${s.name}; postfix reload`,
        });
      }
    }
    for (const s of using) {
      const want = expected(s);
      const have = milterList(serviceValue(config, s, 'smtpd_milters')).find((e) => isOurs(e, settings))!;
      if (want === null && unixSocket) {
        out.push({
          level: 'error',
          problem: `service ${s.name} runs chrooted in ${queue}, but the milter socket ${settings.socket} is outside it`,
          fix: `set SOCKET under ${queue} in /etc/default/benno-milter, or run ${s.name} without chroot in master.cf`,
        });
      } else if (unixSocket && want !== null && have !== want) {
        out.push({
          level: 'error',
          problem: `service ${s.name} ${chrooted(s) ? 'runs chrooted' : 'does not run chrooted'}, so ${have} does not reach the socket ${settings.socket}`,
          fix: `use ${want} in smtpd_milters (benno-milter-admin setup postfix${config.main.has('smtpd_milters') ? '' : ` --service ${s.name}`})`,
        });
      }
      const action = serviceValue(config, s, 'milter_default_action') || 'tempfail';
      if (action !== 'tempfail') {
        out.push({
          level: 'error',
          problem: `milter_default_action is ${action} for ${s.name}: when benno-milter is down, mail is ${action === 'accept' ? 'accepted without being archived' : 'rejected'}`,
          fix: `postconf -e 'milter_default_action = tempfail'${s.overrides.has('milter_default_action') ? `; postconf -P '${s.name}/inet/milter_default_action=tempfail'` : ''}; postfix reload`,
        });
      }
    }
    const cleanupEndpoints = milterList(mainValue(config, 'non_smtpd_milters'));
    if (using.length > 0 && !cleanupEndpoints.some((e) => isOurs(e, settings))) {
      out.push({
        level: 'warning',
        problem: 'benno-milter is not in non_smtpd_milters: mail submitted locally (sendmail, cron, web applications) is not archived',
        fix: 'benno-milter-admin setup postfix; postfix reload',
      });
    }
    const skipped = skippedDaemons(settings.milterArgs);
    for (const s of smtpds.filter((x) => reinjection(x))) {
      const passes = milterList(serviceValue(config, s, 'smtpd_milters')).some((e) => isOurs(e, settings));
      const daemonName = serviceValue(config, s, 'milter_macro_daemon_name');
      if (passes && !skipped.includes(daemonName)) {
        out.push({
          level: 'error',
          problem: `master.cf service ${s.name} takes mail back from a content filter and passes it to benno-milter again: every such message is archived twice`,
          fix: `postconf -P '${s.name}/inet/smtpd_milters=' '${s.name}/inet/non_smtpd_milters='; postfix reload`,
        });
      }
    }
  }

  out.push(...tcpExposure(settings));
  const who = facts.benno ? { uid: facts.benno.uid, groups: [facts.benno.gid, ...facts.benno.groups] } : null;
  if (!facts.benno) {
    out.push({ level: 'error', problem: 'there is no user benno', fix: 'reinstall the benno-milter package, or: adduser --system --group benno' });
  }
  if (unixSocket) {
    const socketPath = settings.socket.replace(/^(unix|local):/, '');
    const socket = facts.stat(socketPath);
    const dir = facts.stat(socketPath.replace(/\/[^/]+$/, '') || '/');
    const postfixGroup = facts.postfixGid !== null ? { uid: -1, groups: [facts.postfixGid] } : null;
    if (!socket) {
      out.push({ level: 'warning', problem: `the milter socket ${socketPath} does not exist: benno-milter is not running`, fix: 'systemctl start benno-milter; journalctl -u benno-milter' });
    } else if (postfixGroup && !canAccess(socket, postfixGroup, { r: true, w: true })) {
      out.push({
        level: 'error',
        problem: `Postfix (group postfix) cannot connect to ${socketPath} (owner ${socket.uid}:${socket.gid}, mode ${(socket.mode & 0o777).toString(8)})`,
        fix: 'run benno-milter in group postfix (Group=postfix in benno-milter.service) with --socket-mode 0660',
      });
    }
    if (dir && postfixGroup && !canAccess(dir, postfixGroup, { x: true })) {
      out.push({
        level: 'error',
        problem: `Postfix (group postfix) cannot enter the socket directory (mode ${(dir.mode & 0o777).toString(8)})`,
        fix: `chown benno:postfix ${socketPath.replace(/\/[^/]+$/, '')}; chmod 0750 ${socketPath.replace(/\/[^/]+$/, '')}`,
      });
    }
  }
  const spool = facts.stat(settings.spoolDir);
  if (!spool || !spool.directory) {
    out.push({ level: 'error', problem: `the spool directory ${settings.spoolDir} does not exist`, fix: `install -d -o benno -g benno -m 0750 ${settings.spoolDir}` });
  } else if (who && !canAccess(spool, who, { w: true, x: true })) {
    out.push({
      level: 'error',
      problem: `user benno cannot create files in ${settings.spoolDir} (owner ${spool.uid}:${spool.gid}, mode ${(spool.mode & 0o777).toString(8)}): every message would be answered 451`,
      fix: `chown benno ${settings.spoolDir}; chmod 0750 ${settings.spoolDir}`,
    });
  }

  const host = settings.vars.get('BENNOHOST');
  if (host && facts.archiveReachable && !facts.archiveReachable.ok) {
    out.push({
      level: 'error',
      problem: `the archive host ${host}:${settings.vars.get('BENNOPORT') || 2500} does not answer (${facts.archiveReachable.detail}): the spool is not shipped`,
      fix: 'check that benno-smtp runs there (systemctl status benno-smtp) and that its allowed_clients and the firewall let this host in',
    });
  }
  if (host && facts.oldestSpoolAge !== null && facts.oldestSpoolAge > 3600) {
    out.push({
      level: 'warning',
      problem: `the oldest file in ${settings.spoolDir} waits for ${Math.round(facts.oldestSpoolAge / 60)} minutes: the export to ${host} is not running or failing`,
      fix: 'enable the line in /etc/cron.d/benno-milter or benno-export2archive.timer; see benno-milter-admin status for the last result',
    });
  }
  const refused = facts.lastExport?.refused ?? 0;
  if (host && refused > 0) {
    const first = facts.lastExport?.refusedFiles?.[0];
    out.push({
      level: 'error',
      problem:
        `the archive host refused ${refused} file(s) in the last export` +
        (first ? ` (${printable(first.name)}: ${printable(first.reason)})` : '') +
        `: they stay in ${settings.spoolDir} and are tried again at every run, but are not archived`,
      fix: 'see all of them with benno-milter-admin status and in the export log; fix the cause on the archive host (max_size, max_recipients, SMTPUTF8) or remove the files by hand',
    });
  }
  return out;
}

/** A TCP socket beyond loopback needs --allow: the milter refuses to start without it. */
function tcpExposure(settings: MilterSettings): Finding[] {
  if (settings.socketType !== 'inet' && settings.socketType !== 'inet6') return [];
  let host: string;
  try {
    const spec = parseSocketSpec(`${settings.socketType}:${settings.socket}`);
    if (spec.kind !== 'inet') return [];
    host = spec.host;
  } catch {
    return [];
  }
  if (isLoopback(host)) return [];
  const allow = milterOptionValues(settings.milterArgs, '--allow');
  const where = `${settings.socketType}:${settings.socket}`;
  if (allow.length === 0) {
    return [
      {
        level: 'error',
        problem: `benno-milter listens on TCP ${where} but no --allow names the MTAs that may connect: it refuses to start (anyone reaching the port could put mail into the archive)`,
        fix: 'set MILTERARGS="--allow ADDRESS" in /etc/default/benno-milter with the address of each MTA (repeat --allow; CIDR networks work), then systemctl restart benno-milter',
      },
    ];
  }
  if (allow.includes('any')) {
    return [
      {
        level: 'warning',
        problem: `benno-milter listens on TCP ${where} with --allow any: anyone who can reach the port can put mail into the archive`,
        fix: 'replace --allow any in MILTERARGS (/etc/default/benno-milter) with the addresses of the MTAs, or firewall the port',
      },
    ];
  }
  return [];
}

/** Numbers printed by id(1) for user benno ("-u", "-g", "-G"); null when there is no such user. */
function idOf(flag: string): number[] | null {
  try {
    return execFileSync('id', [flag, 'benno'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim().split(/\s+/).map(Number);
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

/** Gathers the facts of this host. */
export async function gatherFacts(postfix: PostfixConfig | null, settings: MilterSettings): Promise<DoctorFacts> {
  const uid = idOf('-u');
  const benno = uid === null ? null : { uid: uid[0], gid: idOf('-g')?.[0] ?? -1, groups: idOf('-G') ?? [] };
  const host = settings.vars.get('BENNOHOST');
  return {
    postfix,
    settings,
    benno,
    postfixGid: groupId('postfix'),
    stat: (p) => {
      try {
        const st = fs.statSync(p);
        return { uid: st.uid, gid: st.gid, mode: st.mode, socket: st.isSocket(), directory: st.isDirectory() };
      } catch {
        return null;
      }
    },
    archiveReachable: host ? await reachable(host, Number(settings.vars.get('BENNOPORT') || 2500)) : undefined,
    oldestSpoolAge: host ? spoolBacklog(settings.spoolDir, settings.suffix)?.oldestSeconds ?? null : null,
    lastExport: host ? readExportStatus(settings.spoolDir) : null,
  };
}
