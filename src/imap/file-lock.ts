// An exclusive lock between processes, as a file: FILE.lock exists while
// someone holds it. Node has no flock(2) without a native module; link(2)
// onto an existing name fails atomically (EEXIST) on every local Linux
// filesystem and on NFS, so creating the name is taking the lock.
//
// The file names its holder: "pid host start-time". A holder that died
// (SIGKILL, power loss) leaves the file behind; on the same host a lock whose
// process is gone, or whose pid now belongs to a younger process (pid reuse,
// told apart by the start time in /proc/PID/stat), is stale and taken over.
// A lock of another host is never judged: we cannot see its processes.
//
// Taking over is where naive lock files break: two waiters both see the
// stale file, one removes it and takes the lock, the other then removes the
// new holder's file. So removal is itself serialised by FILE.lock.break
// (held for a few system calls) and the stale lock is examined again, by
// inode and content, under it. Only a crash inside those few calls leaves a
// stale break file; it is cleared by the same rule, unguarded.

import * as fs from 'node:fs';
import * as os from 'node:os';
import { processAlive } from '../ops/processes';

export class LockTimeout extends Error {
  constructor(
    readonly file: string,
    readonly holder: string,
  ) {
    super(`${file} is held by ${holder || 'an unknown process'}`);
    this.name = 'LockTimeout';
  }
}

/** When a process started, in clock ticks since boot (field 22 of /proc/PID/stat), or '' where unknown. */
function startTime(pid: number): string {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'latin1');
    // The command name (field 2) may contain spaces and parentheses: count from its end.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? '';
  } catch {
    return '';
  }
}

function ownTag(): string {
  return `${process.pid} ${os.hostname()} ${startTime(process.pid)}\n`;
}

/** Whether a lock file's content names a process of this host that no longer runs. */
export function holderGone(content: string): boolean {
  const [pidText, host, started] = content.trim().split(' ');
  const pid = Number(pidText);
  if (host !== os.hostname() || !Number.isInteger(pid) || pid <= 0) return false;
  if (!processAlive(pid)) return true;
  const now = startTime(pid);
  return started !== undefined && started !== '' && now !== '' && now !== started;
}

function readLock(file: string): { content: string; ino: number } | null {
  try {
    const fd = fs.openSync(file, 'r');
    try {
      return { content: fs.readFileSync(fd, 'utf8'), ino: fs.fstatSync(fd).ino };
    } finally {
      fs.closeSync(fd);
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

/**
 * Creates file with our tag; false if it exists. The tag is written to a
 * private file first and hard-linked into place (link(2) fails on an existing
 * name as O_EXCL does), so a lock file never exists without its holder in it,
 * not even for the moment between create and write.
 */
function tryCreate(file: string, mode: number): boolean {
  const own = `${file}.${process.pid}`;
  fs.rmSync(own, { force: true });
  fs.writeFileSync(own, ownTag(), { mode });
  // open() applied the umask; the other writers of the database must be
  // able to read the holder, whatever our umask is (removing needs only the
  // directory).
  fs.chmodSync(own, mode);
  try {
    fs.linkSync(own, file);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  } finally {
    fs.unlinkSync(own);
  }
}

function unlinkIfSame(file: string, seen: { content: string; ino: number }): void {
  const now = readLock(file);
  if (now && now.ino === seen.ino && now.content === seen.content) fs.unlinkSync(file);
}

/** Removes file if its holder is gone; the caller then tries to take it again. */
function breakStale(file: string, seen: { content: string; ino: number }, mode: number): void {
  const guard = `${file}.break`;
  if (!tryCreate(guard, mode)) {
    const other = readLock(guard);
    if (other && holderGone(other.content)) unlinkIfSame(guard, other);
    return;
  }
  try {
    unlinkIfSame(file, seen);
  } finally {
    fs.unlinkSync(guard);
  }
}

export interface LockOptions {
  /** How long to wait for another holder; default 30 s. */
  timeoutMs?: number;
  /** Mode of the lock file; default 0644: it holds no secret. */
  mode?: number;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Runs work while holding the lock file, then removes it. Waits (polling
 * with growing pauses, up to 50 ms) while another live process holds it.
 */
export async function withFileLock<T>(file: string, work: () => Promise<T>, options: LockOptions = {}): Promise<T> {
  const mode = options.mode ?? 0o644;
  const deadline = Date.now() + (options.timeoutMs ?? 30_000);
  for (let pause = 1; !tryCreate(file, mode); pause = Math.min(pause * 2, 50)) {
    const seen = readLock(file);
    // No `continue` after a break: a break guard held elsewhere must not make this loop spin past its deadline.
    if (seen && holderGone(seen.content)) breakStale(file, seen, mode);
    if (Date.now() > deadline) throw new LockTimeout(file, seen?.content.trim() ?? '');
    await sleep(pause);
  }
  try {
    return await work();
  } finally {
    fs.rmSync(file, { force: true });
  }
}
