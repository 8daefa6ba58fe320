// How the account database's refusals end benno-imapuser and benno-imapsync alike.

import type { StoreErrorKind } from '../imap/store';
import { EX_CONFIG, EX_DATAERR, EX_NOUSER, EX_TEMPFAIL, EX_UNAVAILABLE, EX_USAGE } from './sysexits';

export const STORE_EXIT: Record<StoreErrorKind, number> = {
  config: EX_CONFIG,
  'not-found': EX_NOUSER,
  ambiguous: EX_USAGE,
  invalid: EX_DATAERR,
  locked: EX_TEMPFAIL,
  database: EX_UNAVAILABLE,
};
