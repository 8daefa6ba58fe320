#!/usr/bin/env node
// benno-imapuser: the IMAP accounts benno-imapsync archives, in the database
// imapsync.conf names. Command lines as in Benno's documentation.

import * as fs from 'node:fs';
import { shellLine } from '../admin/postfix-setup';
import { ConfigError, DEFAULT_CONFIG_FILE, ImapConfig, checkConfigFiles, containerName, readImapConfig } from '../imap/config';
import { KeyError, SecretError, encryptPassword, generateKeyPair, loadPublicKey } from '../imap/secret';
import { Account, AccountStore, StoreError } from '../imap/store';
import { ValueError } from '../ops/config-lines';
import { gatewayNameProblem } from '../spool/format';
import { emailsArg, hostArg, readPassword, usage } from './mailbox-args';
import { commandLine, rejectRepeated, runMain } from './run';
import { STORE_EXIT, openAccountStore } from './imap-store';
import { EX_CANTCREAT, EX_CONFIG, EX_SOFTWARE, Fatal } from './sysexits';

const PROGRAM = 'benno-imapuser';

const USAGE = `Usage: ${PROGRAM} -u USER -i HOST[:PORT] [-C CONTAINER] [-n NAME] [-e ADDR,ADDR...] [--gateway NAME] [-p PASSWORD | -p - | --password-file FILE]
       ${PROGRAM} -u USER [-i HOST] (-p PASSWORD | -p - | --password-file FILE)
       ${PROGRAM} -D -u USER -i HOST
       ${PROGRAM} -l
       ${PROGRAM} --genkey
       ${PROGRAM} --init-db

Adds an IMAP account for benno-imapsync, or updates it when USER on HOST exists; changes a
password; deletes (-D) or lists (-l) accounts. Every form takes -c CONFIG (default ${DEFAULT_CONFIG_FILE}).`;

const EPILOG = `An account is USER and HOST together: one user name may exist on several servers.
Options not given keep their stored value, or for a new account take the defaults of the
configuration (container). -e lists the account's e-mail addresses: imported mail is filed
for them (the user name, when it is an address, if -e is not given).

The password is stored encrypted with the public key (pubkey); only benno-imapsync, which
holds the private key, can read it. -p PASSWORD is visible to other local users (ps, shell
history): prefer -p - (the password on stdin) or --password-file.

--genkey writes a new key pair to pubkey and keyfile (never over existing files); --init-db
creates the tables in a MySQL database (an SQLite file gets them on first use).

Exit status: 0 done, 64 bad usage or an ambiguous user, 65 bad data, 67 no such account,
69 the database cannot be reached, 73 a key file cannot be created, 75 the database is
locked by another program, 78 a bad configuration or key.`;

interface Args {
  config: string;
  user?: string;
  host?: string;
  container?: string;
  name?: string;
  emails?: string;
  gateway?: string;
  password?: string;
  'password-file'?: string;
  delete: boolean;
  list: boolean;
  genkey: boolean;
  'init-db': boolean;
}

function parseArgs(): Args {
  const a = commandLine(PROGRAM, USAGE, EPILOG)
    .option('config', { alias: 'c', type: 'string', default: DEFAULT_CONFIG_FILE, describe: 'configuration file' })
    .option('user', { alias: 'u', type: 'string', describe: 'IMAP user name' })
    .option('host', { alias: 'i', type: 'string', describe: 'IMAP server, HOST or HOST:PORT' })
    .option('container', { alias: 'C', type: 'string', describe: 'Benno container (default: container of the configuration)' })
    .option('name', { alias: 'n', type: 'string', describe: 'display name' })
    .option('emails', { alias: 'e', type: 'string', describe: "the account's e-mail addresses, comma-separated" })
    .option('gateway', { type: 'string', describe: 'X-BENNO-GW name for Benno\'s container rules (multi-import); "" removes it' })
    .option('password', { alias: 'p', type: 'string', describe: 'IMAP password; "-": read it from stdin' })
    .option('password-file', { type: 'string', describe: 'read the IMAP password from the first line of this file' })
    .option('delete', { alias: 'D', type: 'boolean', default: false, describe: 'delete the account USER on HOST' })
    .option('list', { alias: 'l', type: 'boolean', default: false, describe: 'list the accounts, one command line each' })
    .option('genkey', { type: 'boolean', default: false, describe: 'write a new key pair to pubkey and keyfile' })
    .option('init-db', { type: 'boolean', default: false, describe: 'create the tables in the database' })
    .parseSync() as unknown as Args;
  rejectRepeated(PROGRAM, a as unknown as Record<string, unknown>, ['config', 'user', 'host', 'container', 'name', 'emails', 'gateway', 'password', 'password-file']);
  return a;
}

function checked<T>(what: string, value: string, check: (v: string) => T): T {
  try {
    return check(value);
  } catch (err) {
    if (err instanceof ValueError) usage(`bad ${what} "${value}": ${err.message}`);
    throw err;
  }
}

/** One account as a command line that adds it again. */
function accountLine(account: Account): string {
  const args = ['-u', account.user, '-i', account.host, '-C', account.container];
  if (account.name) args.push('-n', account.name);
  if (account.emails) args.push('-e', account.emails);
  if (account.gateway) args.push('--gateway', account.gateway);
  return `${shellLine(PROGRAM, args)}${account.password ? '' : '   # no password yet'}`;
}

/** The group benno-imapsync runs as, to read the private key; undefined where there is none. */
function bennoGid(): number | undefined {
  try {
    const line = fs.readFileSync('/etc/group', 'utf8').split('\n').find((l) => l.startsWith('benno:'));
    return line ? Number(line.split(':')[2]) : undefined;
  } catch {
    return undefined;
  }
}

async function withStore<T>(config: ImapConfig, run: (store: AccountStore) => Promise<T>): Promise<T> {
  checkConfigFiles(config, { database: true });
  const store = openAccountStore(config);
  try {
    return await run(store);
  } finally {
    await store.close();
  }
}

async function addOrUpdate(a: Args, config: ImapConfig, user: string, host: string, password: Buffer | null): Promise<string> {
  const container = a.container === undefined ? undefined : checked('-C', a.container, containerName);
  const emails = a.emails === undefined ? undefined : emailsArg(a.emails);
  if (a.gateway) {
    const problem = gatewayNameProblem(a.gateway);
    if (problem) usage(`bad --gateway ${problem}`);
  }
  const publicKey = password ? loadPublicKey(config.pubkey) : null;
  return withStore(config, async (store) => {
    const [existing] = await store.findAccounts(user, host);
    const addresses = emails ?? existing?.emails ?? (user.includes('@') ? emailsArg(user) : undefined);
    if (!addresses) usage(`give the addresses of ${user} with -e: the user name is no e-mail address, and imported mail is filed for the account's addresses`);
    const { created } = await store.saveAccount({
      user,
      host,
      container: container ?? existing?.container ?? config.container,
      name: a.name,
      emails: addresses,
      gateway: a.gateway === undefined ? (existing ? undefined : config.gateway ?? null) : a.gateway || null,
      password: publicKey && password ? encryptPassword(publicKey, { user, host }, password) : undefined,
    });
    return `${created ? 'added' : 'updated'} ${user} on ${host}${password ? ', password stored' : ''}`;
  });
}

async function changePassword(config: ImapConfig, user: string, host: string | undefined, password: Buffer): Promise<string> {
  const publicKey = loadPublicKey(config.pubkey);
  return withStore(config, async (store) => {
    const found = await store.findAccounts(user, host);
    if (found.length === 0) throw new StoreError('not-found', `no account ${user}${host ? ` on ${host}` : ''}; add it with -u USER -i HOST`);
    if (found.length > 1) throw new StoreError('ambiguous', `${user} has accounts on ${found.map((f) => f.host).join(', ')}: name one with -i`);
    const account = found[0];
    await store.setPassword(account.user, account.host, encryptPassword(publicKey, { user: account.user, host: account.host }, password));
    return `password of ${account.user} on ${account.host} changed`;
  });
}

async function main(): Promise<void> {
  const a = parseArgs();
  const password = await readPassword(PROGRAM, a);
  const modes = [a.delete && '-D', a.list && '-l', a.genkey && '--genkey', a['init-db'] && '--init-db'].filter(Boolean);
  if (modes.length > 1) usage(`${modes.join(' and ')} cannot be combined`);
  let config: ImapConfig;
  try {
    config = readImapConfig(a.config);
  } catch (err) {
    if (err instanceof ConfigError) throw new Fatal(err.message, EX_CONFIG);
    throw err;
  }
  try {
    process.stdout.write(`${await run(a, config, password)}\n`);
  } catch (err) {
    if (err instanceof ConfigError) throw new Fatal(err.message, EX_CONFIG);
    if (err instanceof StoreError) throw new Fatal(err.message, STORE_EXIT[err.kind]);
    if (err instanceof KeyError) throw new Fatal(err.message, a.genkey ? EX_CANTCREAT : EX_CONFIG);
    if (err instanceof SecretError) throw new Fatal(err.message, EX_SOFTWARE);
    throw err;
  }
}

async function run(a: Args, config: ImapConfig, password: Buffer | null): Promise<string> {
  const fields = a.container !== undefined || a.name !== undefined || a.emails !== undefined || a.gateway !== undefined;
  if (a.genkey || a['init-db'] || a.list) {
    if (a.user !== undefined || a.host !== undefined || fields || password) usage(`${a.genkey ? '--genkey' : a.list ? '-l' : '--init-db'} takes no account options`);
    if (a.list) return withStore(config, async (store) => (await store.listAccounts()).map(accountLine).join('\n') || '# no accounts');
    if (a['init-db']) return withStore(config, async (store) => (await store.init(), `tables ready in the ${config.database.kind} database`));
    if (!config.keyfile) throw new ConfigError(`${config.source.file}: keyfile is not set: set it to where --genkey should write the private key`);
    generateKeyPair(config.pubkey, config.keyfile, { privateKeyGid: bennoGid() });
    return `wrote the public key ${config.pubkey} and the private key ${config.keyfile}`;
  }
  if (a.user === undefined || a.user === '') usage('name the account with -u USER');
  const host = a.host === undefined ? undefined : hostArg(a.host).spec;
  if (a.delete) {
    if (host === undefined) usage('-D needs -u USER and -i HOST: a user name may exist on several servers');
    if (fields || password) usage('-D takes only -u and -i');
    const gone = await withStore(config, (store) => store.deleteAccount(a.user!, host));
    if (!gone) throw new StoreError('not-found', `no account ${a.user} on ${host}`);
    return `deleted ${a.user} on ${host}`;
  }
  if (host !== undefined) return addOrUpdate(a, config, a.user, host, password);
  if (fields) usage('-i HOST is needed to add or change an account');
  if (!password) usage('give -i HOST to add an account, or a password (-p -, --password-file) to change one');
  return changePassword(config, a.user, undefined, password);
}

runMain(PROGRAM, main);
