// Throwaway directories and small filesystems for fault tests. Mounting needs
// root; the tests that use it say so instead of skipping.

import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export function tempDir(prefix = 'benno-test-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** parent/name, made if it is not there yet. */
export function subdir(parent: string, name: string): string {
  const dir = path.join(parent, name);
  fs.mkdirSync(dir, { recursive: true });
  return dir;
}

export function removeTree(dir: string): void {
  fs.rmSync(dir, { recursive: true, force: true });
}

export function requireRoot(what: string): void {
  if (process.getuid?.() !== 0) throw new Error(`${what} needs root (it mounts a filesystem); run the tests as root, as CI does`);
}

/** A tmpfs of the given size at a fresh directory; returns it and an unmount function. */
export function mountTmpfs(sizeKiB: number, readOnly = false): { dir: string; unmount: () => void } {
  requireRoot('this test');
  const dir = tempDir('benno-tmpfs-');
  const opts = [`size=${sizeKiB}k`, 'mode=0755'];
  if (readOnly) opts.push('ro');
  execFileSync('mount', ['-t', 'tmpfs', '-o', opts.join(','), 'tmpfs', dir]);
  return {
    dir,
    unmount: () => {
      execFileSync('umount', [dir]);
      fs.rmdirSync(dir);
    },
  };
}

/**
 * A small ext4 file system on a loop device: for faults tmpfs cannot make,
 * such as an immutable directory (chattr +i), which refuses even root.
 */
export function mountExt4(sizeMiB = 16): { dir: string; unmount: () => void } {
  requireRoot('this test');
  const image = path.join(tempDir('benno-ext4-'), 'fs.img');
  fs.chmodSync(path.dirname(image), 0o755); // daemons running as other users (postfix) pass through
  const dir = `${image}.d`;
  execFileSync('truncate', ['-s', `${sizeMiB}M`, image]);
  execFileSync('mkfs.ext4', ['-q', '-F', image]);
  fs.mkdirSync(dir);
  execFileSync('mount', ['-o', 'loop', image, dir]);
  return {
    dir,
    unmount: () => {
      execFileSync('umount', [dir]);
      removeTree(path.dirname(image));
    },
  };
}
