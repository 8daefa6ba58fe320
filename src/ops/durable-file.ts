// Replacing a small file so that a crash at any moment leaves either the old
// or the new content, never a mix or nothing: the new content goes to a temp
// file beside it, is fsynced, renamed over the file, and the directory is
// fsynced so that the rename itself survives a power loss. The accounts
// database (SQLite) and the import programs' state files are written so.

import * as fs from 'node:fs';
import * as path from 'node:path';

export interface ReplaceOptions {
  /** Mode of a new file; 0600 unless given. prepare() may set another. */
  mode?: number;
  /** The temp file's name; FILE.tmp by default (the caller holds a lock that makes it its own). */
  tmp?: string;
  /** Runs on the temp file's descriptor before the content is written (owner, mode), with the old file's stat or null. */
  prepare?: (fd: number, old: fs.Stats | null) => void;
}

/** Replaces file by bytes durably: temp file, fsync, rename, directory fsync. The temp file is removed on failure. */
export function replaceFileDurably(file: string, bytes: Uint8Array, options: ReplaceOptions = {}): void {
  const tmp = options.tmp ?? `${file}.tmp`;
  let old: fs.Stats | null = null;
  try {
    old = fs.statSync(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  // Left by a writer that crashed while it held the caller's lock, which is ours now.
  fs.rmSync(tmp, { force: true });
  const fd = fs.openSync(tmp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, options.mode ?? 0o600);
  try {
    try {
      options.prepare?.(fd, old);
      for (let at = 0; at < bytes.length; ) at += fs.writeSync(fd, bytes, at);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, file);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw err;
  }
  const dir = fs.openSync(path.dirname(file), 'r');
  try {
    fs.fsyncSync(dir);
  } finally {
    fs.closeSync(dir);
  }
}
