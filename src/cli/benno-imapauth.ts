#!/usr/bin/env node
// benno_imapauth: an external authentication module of Benno's web interface
// (/etc/benno-web/auth.d/). Benno writes the user name and the password as
// two lines on stdin; the module checks them against the account's IMAP
// server and answers on stdout: the account's metadata ending in "AUTH OK",
// one line "ERROR <code>", or nothing at all for a user it does not know, so
// that the next module in auth.d is asked.
//
// After a login the IMAP server accepted, the password is stored encrypted
// with the public key: that is how benno-imapsync learns a changed password.
// The module never holds the private key and cannot read a stored password.

import * as crypto from 'node:crypto';
import { AUTH_CONFIG_KEYS, ConfigError, DEFAULT_AUTH_CONFIG_FILE, ImapConfig, checkConfigFiles, readImapAuthConfig, serverFor } from '../imap/config';
import { KeyError, MAX_PASSWORD_BYTES, encryptPassword, loadPublicKey } from '../imap/secret';
import { Account, AccountStore, StoreError } from '../imap/store';
import { SyncError, verifyLogin } from '../imap/sync';
import { Logger, createLogger } from '../ops/log';
import { UNSAFE_CHARACTER } from '../ops/text';
import { openAccountStore } from './imap-store';
import { StdinTooLarge, commandLine, readStdin, rejectRepeated } from './run';
import { EX_CONFIG, EX_DATAERR, EX_OK, EX_SOFTWARE, EX_UNAVAILABLE } from './sysexits';

const PROGRAM = 'benno_imapauth';

/** Most bytes read from stdin: a user name and a password, with room to spare. */
const MAX_INPUT = 2 * MAX_PASSWORD_BYTES;

/**
 * The symbolic codes of an "ERROR" answer; Benno shows its own text for each.
 * AUTH: the IMAP server refused the password (or none was given).
 * IMAP_UNAVAILABLE: the user's IMAP server could not be asked (down, too slow, TLS refused).
 * ACCOUNT: the account's data cannot be shown (a control character in its name or addresses).
 * INPUT: stdin was not a user name and a password.
 * CONFIG, DATABASE, INTERNAL: the module cannot work; the web server's error log says why.
 */
export type ErrorCode = 'ERR_AUTH' | 'ERR_IMAP_UNAVAILABLE' | 'ERR_ACCOUNT' | 'ERR_INPUT' | 'ERR_CONFIG' | 'ERR_DATABASE' | 'ERR_INTERNAL';

const EPILOG = `Benno's web interface runs it without arguments, with the user name and the
password as two lines on stdin:
  printf '%s\\n%s\\n' "$USER" "$PASS" | /usr/lib/benno-imap/benno_imapauth
Activate it with
  ln -s /usr/lib/benno-imap/benno_imapauth /etc/benno-web/auth.d/60_benno_imapauth

The user is looked up by user name in the accounts database (benno-imapuser -l). A user
it does not know gets no output and exit 0, so Benno asks the next module in auth.d.
A known user's password is checked by logging in to the account's IMAP server (as
benno-imapsync would: tls, port, cafile, timeout); when one user name has accounts on
several servers, all are asked at once
and the oldest account whose server takes the password answers. On success it prints ARCHIVE (the container),
ROLE USER, DISPLAYNAME, one MAIL per address, USERID and "AUTH OK", and stores the
password encrypted with the public key for benno-imapsync. Otherwise one line
"ERROR <code>": ERR_AUTH (wrong password; the stored one is left alone),
ERR_IMAP_UNAVAILABLE (server down, too slow or TLS refused), ERR_ACCOUNT, ERR_INPUT,
ERR_CONFIG, ERR_DATABASE, ERR_INTERNAL. Failures are logged on stderr (the web
server's error log), never with the password.

Exit status: 0 whenever it answered (AUTH OK, ERROR or nothing), 78 a bad configuration,
69 the database cannot be read, 65 bad input, 70 an internal error; those also print
their ERROR line.

Configuration keys of [${'imapauth'}]: ${AUTH_CONFIG_KEYS.join(', ')}.`;

class Answer extends Error {
  constructor(
    readonly code: ErrorCode,
    readonly exitCode: number,
    /** For stderr; null: nothing to log (the client's own mistake). */
    readonly detail: string | null,
  ) {
    super(detail ?? code);
  }
}

function parseArgs(): { config: string } {
  const a = commandLine(PROGRAM, `Usage: ${PROGRAM} [-c CONFIG] < USER-AND-PASSWORD`, EPILOG)
    .option('config', { alias: 'c', type: 'string', default: DEFAULT_AUTH_CONFIG_FILE, describe: 'configuration file' })
    .parseSync() as unknown as { config: string };
  rejectRepeated(PROGRAM, a as unknown as Record<string, unknown>, ['config']);
  return a;
}

/** stdin, at most MAX_INPUT bytes: more is not a login. */
async function readInput(): Promise<Buffer> {
  try {
    return await readStdin(MAX_INPUT);
  } catch (err) {
    if (!(err instanceof StdinTooLarge)) throw err;
    throw new Answer('ERR_INPUT', EX_DATAERR, `${err.message}; expected a user name and a password, one line each`);
  }
}

/** The two lines; a CR before the LF is no part of them. */
function userAndPassword(input: Buffer): { user: string; password: string } {
  const text = input.toString('utf8');
  const lines = text.split('\n').map((l) => (l.endsWith('\r') ? l.slice(0, -1) : l));
  const [user = '', password = ''] = lines;
  if (input.includes(0) || user === '' || /[\x00-\x1f\x7f]/.test(user)) {
    throw new Answer('ERR_INPUT', EX_DATAERR, 'stdin is not a user name and a password, one line each');
  }
  return { user, password };
}

/** The answer's lines; a value that would start a line of its own is refused, not sent. */
function metadata(account: Account): string {
  const emails = account.emails.split(',').map((e) => e.trim()).filter((e) => e !== '');
  const values = [account.container, account.name, account.user, ...emails];
  if (values.some((v) => UNSAFE_CHARACTER.test(v))) {
    throw new Answer('ERR_ACCOUNT', EX_OK, `${account.user} on ${account.host}: an unsafe character in the account's container, name or addresses; correct it with benno-imapuser`);
  }
  return [
    `ARCHIVE ${account.container}`,
    'ROLE USER',
    `DISPLAYNAME ${account.name || account.user}`,
    ...emails.map((e) => `MAIL ${e}`),
    `USERID ${account.user}`,
    'AUTH OK',
  ].join('\n');
}

/** Stores the accepted password for benno-imapsync; the login stands even when this fails. */
async function storePassword(store: AccountStore, publicKey: crypto.KeyObject, account: Account, password: string, config: ImapConfig): Promise<void> {
  try {
    await store.setPassword(account.user, account.host, encryptPassword(publicKey, account, Buffer.from(password, 'utf8')));
  } catch (err) {
    if (!(err instanceof StoreError)) throw err;
    const where = config.database.kind === 'sqlite' ? config.database.file : 'the MySQL database';
    log.warn(`${account.user} on ${account.host}: logged in, but the new password could not be stored (${err.message}); benno-imapsync goes on with the old one: let the web server's user write ${where}`);
  }
}

/**
 * Asks every server of the user's accounts at once: a wrong password costs a
 * server's failure delay (seconds on Dovecot and Cyrus), and the web page
 * must not wait for them one after the other. Of the servers that take the
 * password, the oldest account wins.
 */
async function authenticate(accounts: Account[], password: string, config: ImapConfig): Promise<Account> {
  const tries = await Promise.allSettled(accounts.map((a) => verifyLogin(serverFor(a.host, config), a.user, password, `${a.user}@${a.host}`)));
  let unavailable = false;
  for (const [i, t] of tries.entries()) {
    if (t.status === 'fulfilled') return accounts[i];
    if (!(t.reason instanceof SyncError)) throw t.reason;
    log.warn(t.reason.message);
    if (t.reason.kind !== 'login') unavailable = true;
  }
  // A server that could not be asked might have taken the password: that is no "wrong password".
  throw new Answer(unavailable ? 'ERR_IMAP_UNAVAILABLE' : 'ERR_AUTH', EX_OK, null);
}

/** Until the configuration says otherwise (log_level). */
let log: Logger = createLogger({ program: PROGRAM, level: 'info' });

async function answer(configFile: string): Promise<string> {
  let config: ImapConfig;
  let publicKey: crypto.KeyObject;
  try {
    config = readImapAuthConfig(configFile);
    checkConfigFiles(config, { publicKey: true, imap: true, database: true });
    publicKey = loadPublicKey(config.pubkey);
    log = createLogger({ program: PROGRAM, level: config.logLevel });
  } catch (err) {
    if (err instanceof ConfigError || err instanceof KeyError) throw new Answer('ERR_CONFIG', EX_CONFIG, err.message);
    throw err;
  }
  const { user, password } = userAndPassword(await readInput());
  let store: AccountStore | null = null;
  try {
    store = openAccountStore(config);
    const accounts = await store.findAccounts(user);
    if (accounts.length === 0) return '';
    if (password === '') throw new Answer('ERR_AUTH', EX_OK, null);
    // Each connection stage has its own timeout; this bounds the whole answer, all servers together.
    const deadline = config.timeout * 1000 + 2000;
    let timer: NodeJS.Timeout | undefined;
    const tooSlow = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Answer('ERR_IMAP_UNAVAILABLE', EX_OK, `${user}: no IMAP server answered within ${deadline / 1000} seconds (timeout in ${configFile})`)), deadline);
    });
    try {
      const account = await Promise.race([authenticate(accounts, password, config), tooSlow]);
      const lines = metadata(account);
      await storePassword(store, publicKey, account, password, config);
      return `${lines}\n`;
    } finally {
      clearTimeout(timer);
    }
  } catch (err) {
    if (err instanceof StoreError) throw new Answer('ERR_DATABASE', EX_UNAVAILABLE, err.message);
    throw err;
  } finally {
    await store?.close().catch(() => undefined);
  }
}

async function main(): Promise<void> {
  const a = parseArgs();
  let out: string;
  let exitCode: number = EX_OK;
  try {
    out = await answer(a.config);
  } catch (err) {
    const e = err instanceof Answer ? err : new Answer('ERR_INTERNAL', EX_SOFTWARE, `internal error: ${err instanceof Error ? err.stack ?? err.message : String(err)}`);
    if (e.detail) log.error(e.detail);
    out = `ERROR ${e.code}\n`;
    exitCode = e.exitCode;
  }
  process.stdout.write(out, () => process.exit(exitCode));
}

void main();
