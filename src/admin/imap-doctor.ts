// `benno-imapsync --doctor`: the IMAP import's side of the host. Three
// programs under three users share its files: benno-imapuser (root), the web
// login benno_imapauth (the web server's user) and benno-imapsync (benno).
// Each rule names a problem one of them would run into, with its fix. Like
// benno-milter-admin doctor, the rules work on gathered facts, so that tests
// can feed them made-up modes and accounts.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { adminLoginFor } from '../imap/admin-login';
import { ImapConfig, readImapAuthConfig } from '../imap/config';
import { keyPairMatches, loadPrivateKey, loadPublicKey } from '../imap/secret';
import { Account } from '../imap/store';
import { FileFacts, Finding, UserIds, canAccess, statFile, userIds } from './doctor';

/** Where Benno's web interface keeps its authentication modules; present when benno-web is installed. */
export const WEB_AUTH_DIR = '/etc/benno-web/auth.d';
export const AUTH_MODULE = '/usr/lib/benno-imap/benno_imapauth';
/** A sync older than this (cron and timer run every 15 minutes) means nothing runs it. */
const STALE_SECONDS = 2 * 3600;

export interface ImapDoctorFacts {
  /** imapsync.conf, read. */
  sync: ImapConfig;
  /** imapauth.conf: read, or why not; null when there is none. */
  auth: { file: string; config: ImapConfig | null; error: string | null } | null;
  benno: UserIds | null;
  /** The web server's user (www-data). */
  web: UserIds | null;
  stat: (p: string) => FileFacts | null;
  /** Whether keyfile holds the private key of pubkey; null when either cannot be loaded (other rules say why) or keyfile is unset. */
  keysMatch: boolean | null;
  /** Targets of the entries in WEB_AUTH_DIR; null when benno-web is not installed. */
  webAuthModules: string[] | null;
  /** The accounts with their last runs, or why they could not be read. */
  accounts: Account[] | { error: string };
  /** Why the tables are not of this version (MySQL before --init-db), or null. */
  schema: string | null;
  now: Date;
}

type Who = { name: string; ids: UserIds };

function people(f: ImapDoctorFacts, ...which: ('benno' | 'web')[]): Who[] {
  const all: Record<'benno' | 'web', Who | null> = {
    benno: f.benno ? { name: 'benno', ids: f.benno } : null,
    web: f.web ? { name: 'www-data', ids: f.web } : null,
  };
  return which.map((w) => all[w]).filter((w): w is Who => w !== null);
}

const access = (file: FileFacts, who: Who, bits: { r?: boolean; w?: boolean; x?: boolean }) =>
  canAccess(file, { uid: who.ids.uid, groups: [who.ids.gid, ...who.ids.groups] }, bits);

function keyRules(f: ImapDoctorFacts): Finding[] {
  const out: Finding[] = [];
  const pub = f.stat(f.sync.pubkey);
  if (!pub) out.push({ level: 'error', problem: `there is no public key ${f.sync.pubkey}: no password can be stored`, fix: 'benno-imapuser --genkey (it never overwrites a key)' });
  else for (const w of people(f, 'web')) if (f.auth && !access(pub, w, { r: true })) out.push({ level: 'error', problem: `the web login (${w.name}) cannot read the public key ${f.sync.pubkey}`, fix: `chmod 0644 ${f.sync.pubkey}` });
  const keyfile = f.sync.keyfile;
  if (keyfile === null) return out;
  const sec = f.stat(keyfile);
  if (!sec) {
    out.push({ level: 'error', problem: `there is no private key ${keyfile} (keyfile): benno-imapsync cannot decrypt a password`, fix: `restore it, or comment keyfile out in ${f.sync.source.file} and pipe the key in on stdin` });
    return out;
  }
  if (sec.mode & 0o007) out.push({ level: 'error', problem: `the private key ${keyfile} is open to every user (mode ${(sec.mode & 0o777).toString(8)}): anyone on this host can decrypt the stored IMAP passwords`, fix: `chgrp benno ${keyfile}; chmod 0640 ${keyfile}` });
  for (const w of people(f, 'benno')) if (!access(sec, w, { r: true })) out.push({ level: 'error', problem: `benno-imapsync (user benno) cannot read the private key ${keyfile}`, fix: `chgrp benno ${keyfile}; chmod 0640 ${keyfile}` });
  for (const w of people(f, 'web')) if (w.ids.uid !== 0 && access(sec, w, { r: true })) out.push({ level: 'error', problem: `the web server's user ${w.name} can read the private key ${keyfile}: a hole in the web interface would reveal every stored password`, fix: `chgrp benno ${keyfile}; chmod 0640 ${keyfile}; and take ${w.name} out of group benno` });
  if (f.keysMatch === false) out.push({ level: 'error', problem: `${keyfile} is not the private key of ${f.sync.pubkey}: passwords stored from now on cannot be decrypted`, fix: 'put the matching key back; with a new pair (benno-imapuser --genkey after moving both away), every password must be set again' });
  return out;
}

function databaseRules(f: ImapDoctorFacts): Finding[] {
  const out: Finding[] = [];
  const db = f.sync.database;
  const writers = people(f, 'benno', ...(f.auth ? (['web'] as const) : []));
  if (db.kind === 'mysql') {
    const secret = f.sync.databasePasswordFile;
    const file = secret ? f.stat(secret) : null;
    if (secret && file) for (const w of writers) if (!access(file, w, { r: true })) out.push({ level: 'error', problem: `${w.name} cannot read the database password file ${secret}`, fix: `chgrp www-data ${secret}; chmod 0640 ${secret}` });
    return out;
  }
  const dir = path.dirname(db.file);
  const d = f.stat(dir);
  if (!d) return [{ level: 'error', problem: `the database's directory ${dir} does not exist`, fix: `install -d -o root -g www-data -m 2770 ${dir}` }];
  // Every writer takes a lock file beside the database and replaces the file through a temporary one.
  for (const w of writers) if (!access(d, w, { w: true, x: true })) out.push({ level: 'error', problem: `${w.name} cannot create files in ${dir} (the database's lock and its new copy)`, fix: `chgrp www-data ${dir}; chmod 2770 ${dir}${w.name === 'benno' ? '; adduser benno www-data' : ''}` });
  const file = f.stat(db.file);
  if (!file) return [...out, { level: 'warning', problem: `the database ${db.file} does not exist yet`, fix: 'benno-imapuser --init-db, or add the first account with benno-imapuser' }];
  for (const w of writers) if (!access(file, w, { r: true, w: true })) out.push({ level: 'error', problem: `${w.name} cannot read and write the database ${db.file}`, fix: `chgrp www-data ${db.file}; chmod 0660 ${db.file}${w.name === 'benno' ? '; adduser benno www-data' : ''}` });
  return out;
}

function authRules(f: ImapDoctorFacts): Finding[] {
  const out: Finding[] = [];
  if (f.webAuthModules !== null && !f.webAuthModules.some((t) => t === AUTH_MODULE)) {
    out.push({ level: 'warning', problem: `benno-web is installed but ${AUTH_MODULE} is not in ${WEB_AUTH_DIR}: users cannot log in with their IMAP password, and the stored passwords are never renewed`, fix: `ln -s ${AUTH_MODULE} ${WEB_AUTH_DIR}/60_benno_imapauth` });
  }
  if (!f.auth) return out;
  if (f.auth.error || !f.auth.config) return [...out, { level: 'error', problem: `the web login cannot use its configuration: ${f.auth.error}`, fix: `correct ${f.auth.file}` }];
  const conf = f.stat(f.auth.file);
  for (const w of people(f, 'web')) if (conf && !access(conf, w, { r: true })) out.push({ level: 'error', problem: `${w.name} cannot read ${f.auth.file}`, fix: `chgrp www-data ${f.auth.file}; chmod 0640 ${f.auth.file}` });
  const a = f.auth.config;
  const where = (c: ImapConfig) => (c.database.kind === 'sqlite' ? `sqlite:${c.database.file}` : `mysql://${c.database.user}@${c.database.host}:${c.database.port}/${c.database.database}`);
  if (where(a) !== where(f.sync)) out.push({ level: 'error', problem: `the web login stores passwords in ${where(a)}, benno-imapsync reads ${where(f.sync)}`, fix: `set the same database in ${f.auth.file} and ${f.sync.source.file}` });
  if (path.resolve(a.pubkey) !== path.resolve(f.sync.pubkey)) out.push({ level: 'warning', problem: `the web login encrypts with ${a.pubkey}, benno-imapuser with ${f.sync.pubkey}`, fix: `set the same pubkey in ${f.auth.file} and ${f.sync.source.file}` });
  return out;
}

function inboxRules(f: ImapDoctorFacts): Finding[] {
  const d = f.stat(f.sync.inbox);
  if (!d) return [{ level: 'error', problem: `the inbox ${f.sync.inbox} does not exist`, fix: `install -d -o benno -g benno -m 0750 ${f.sync.inbox}, or set inbox in ${f.sync.source.file}` }];
  return people(f, 'benno')
    .filter((w) => !access(d, w, { w: true, x: true }))
    .map(() => ({ level: 'error' as const, problem: `benno-imapsync (user benno) cannot write into the inbox ${f.sync.inbox}`, fix: `chown benno ${f.sync.inbox}` }));
}

function accountRules(f: ImapDoctorFacts): Finding[] {
  if ('error' in f.accounts) return [{ level: 'error', problem: `the accounts cannot be read: ${f.accounts.error}`, fix: 'see benno-imapuser -l' }];
  const out: Finding[] = [];
  // The sync refuses such tables: every account would fail until they are upgraded.
  if (f.schema) out.push({ level: 'error', problem: `benno-imapsync cannot keep its records: ${f.schema}`, fix: `benno-imapuser -c ${f.sync.source.file} --init-db` });
  for (const a of f.accounts) {
    const who = `${a.user} on ${a.host}`;
    // An admin login (admin_user) needs no password of the user's own.
    if (!a.password && !adminLoginFor(f.sync, a.host)) {
      out.push({ level: 'warning', problem: `${who} has no password stored: the mailbox is not archived`, fix: `the user logs in to Benno's web interface once, or: benno-imapuser -u ${a.user} -i ${a.host} -p -` });
      continue;
    }
    if (!a.status) {
      out.push({ level: 'warning', problem: `${who} has never been synced`, fix: 'enable the cron line in /etc/cron.d/benno-imap, or: systemctl enable --now benno-imapsync.timer' });
      continue;
    }
    if (a.status.lastError) out.push({ level: 'warning', problem: `the last sync of ${who} (${a.status.lastRun.toISOString()}) failed: ${a.status.lastError}`, fix: `benno-imapsync -u ${a.user} -i ${a.host} shows it again; --list-folders -u ${a.user} -i ${a.host} checks the login` });
    const age = (f.now.getTime() - a.status.lastRun.getTime()) / 1000;
    if (age > STALE_SECONDS) out.push({ level: 'warning', problem: `${who} was last synced ${Math.round(age / 3600)} hours ago`, fix: 'check that the cron line in /etc/cron.d/benno-imap or benno-imapsync.timer is enabled, and its log' });
  }
  return out;
}

export function diagnoseImap(f: ImapDoctorFacts): Finding[] {
  return [...keyRules(f), ...databaseRules(f), ...authRules(f), ...inboxRules(f), ...accountRules(f)];
}

function readAuth(file: string): ImapDoctorFacts['auth'] {
  if (!fs.existsSync(file)) return null;
  try {
    return { file, config: readImapAuthConfig(file), error: null };
  } catch (err) {
    return { file, config: null, error: (err as Error).message };
  }
}

function webAuthModules(): string[] | null {
  if (!fs.existsSync(path.dirname(WEB_AUTH_DIR))) return null;
  let names: string[];
  try {
    names = fs.readdirSync(WEB_AUTH_DIR);
  } catch {
    return [];
  }
  return names.map((n) => {
    try {
      return fs.realpathSync(path.join(WEB_AUTH_DIR, n));
    } catch {
      return path.join(WEB_AUTH_DIR, n);
    }
  });
}

function keysMatch(config: ImapConfig): boolean | null {
  if (config.keyfile === null) return null;
  try {
    return keyPairMatches(loadPublicKey(config.pubkey), loadPrivateKey(config.keyfile));
  } catch {
    return null;
  }
}

/** Gathers the facts of this host; the accounts come from the caller, who owns the database connection. */
export function gatherImapFacts(sync: ImapConfig, authFile: string, accounts: ImapDoctorFacts['accounts'], schema: string | null): ImapDoctorFacts {
  return {
    sync,
    auth: readAuth(authFile),
    benno: userIds('benno'),
    web: userIds('www-data'),
    stat: statFile,
    keysMatch: keysMatch(sync),
    webAuthModules: webAuthModules(),
    accounts,
    schema,
    now: new Date(),
  };
}
