// What benno-imapuser and benno-imapsync share about the accounts database:
// opening it with the password from database_password_file, and how its
// refusals end the program.

import * as fs from 'node:fs';
import type { ImapConfig } from '../imap/config';
import { openStore } from '../imap/open-store';
import type { AccountStore, StoreErrorKind } from '../imap/store';
import { firstLine } from './run';
import { EX_CONFIG, EX_DATAERR, EX_NOUSER, EX_TEMPFAIL, EX_UNAVAILABLE, EX_USAGE } from './sysexits';

export const STORE_EXIT: Record<StoreErrorKind, number> = {
  config: EX_CONFIG,
  'not-found': EX_NOUSER,
  ambiguous: EX_USAGE,
  invalid: EX_DATAERR,
  locked: EX_TEMPFAIL,
  database: EX_UNAVAILABLE,
};

/** The configuration's database; a MySQL password comes from the first line of database_password_file. */
export function openAccountStore(config: ImapConfig): AccountStore {
  const file = config.database.kind === 'mysql' ? config.databasePasswordFile : undefined;
  return openStore(config.database, { password: file ? firstLine(fs.readFileSync(file)).toString('utf8') : undefined });
}
