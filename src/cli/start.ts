// What both daemons do at start, and how each failure maps to one line and
// a sysexits code: the spool directory is checked before the first
// connection is accepted, and the socket is bound.

import * as os from 'node:os';
import type { Logger } from '../ops/log';
import type { SpoolWriter } from '../spool/writer';
import { EX_CANTCREAT, EX_IOERR, EX_OSERR, EX_UNAVAILABLE, Fatal } from './sysexits';

/** How a program names its spool directory, and how the administrator names another. */
export interface SpoolPlace {
  /** "spool directory", "inbox". */
  noun: string;
  /** "pass -o", "set inbox in /etc/benno-smtp/benno-smtp.conf". */
  elsewhere: string;
}

/**
 * Checks that files can be created, synced and renamed in the writer's
 * directory, so that a wrong path or mode stops the program now and not as
 * a tempfail on the first message, and removes temp files a crashed process
 * left.
 */
export async function prepareSpool(writer: SpoolWriter, place: SpoolPlace, log: Logger): Promise<void> {
  try {
    await writer.check();
    const { removed } = writer.cleanStale();
    if (removed.length > 0) log.info(`removed ${removed.length} temp file(s) left by an earlier process in ${writer.dir}`);
  } catch (err) {
    throw spoolProblem(err as NodeJS.ErrnoException, writer.dir, place);
  }
}

function spoolProblem(err: NodeJS.ErrnoException, dir: string, place: SpoolPlace): Fatal {
  const user = os.userInfo().username;
  switch (err.code) {
    case 'ENOENT':
      return new Fatal(`${place.noun} ${dir} does not exist; create it (owner ${user}, mode 0750) or ${place.elsewhere}`, EX_CANTCREAT);
    case 'ENOTDIR':
      return new Fatal(`${place.noun} ${dir} is not a directory`, EX_CANTCREAT);
    case 'EACCES':
    case 'EPERM':
    case 'EROFS':
      return new Fatal(`cannot create files in ${place.noun} ${dir} as user ${user} (${err.code})`, EX_CANTCREAT);
    default:
      return new Fatal(`${place.noun} ${dir}: ${err.code ?? ''} ${err.message}`, EX_IOERR);
  }
}

/** Binds the socket; "in use" (another instance) is 69, anything else 71. */
export async function listenOrExit(listen: () => Promise<void>, where: string): Promise<void> {
  try {
    await listen();
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'EADDRINUSE' || /another process/.test(e.message)) {
      throw new Fatal(`cannot listen on ${where}: ${e.message.replace(/^listen /, '')}`, EX_UNAVAILABLE);
    }
    throw new Fatal(`cannot listen on ${where}: ${e.message}`, EX_OSERR);
  }
}
