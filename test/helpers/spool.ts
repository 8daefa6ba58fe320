// What tests and benchmarks see in a spool (or an inbox, which has the same
// layout): final files, temp files, and everything but the exporter's status
// file, recognised by src/spool/names.ts as the programs recognise them.
// Every listing is sorted.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DEFAULT_SUFFIX, EXPORT_STATUS_FILE, finalName, isWaitingName, tempOwner } from '../../src/spool/names';
import { SpoolFile, SpoolWriter } from '../../src/spool/writer';
import { sha256 } from './daemon';

/** Every name in dir, dotfiles (temp, claimed, status files) included. */
export function allFiles(dir: string): string[] {
  return fs.readdirSync(dir).sort();
}

/** Final spool files with the default suffix. */
export function spoolFiles(dir: string): string[] {
  return allFiles(dir).filter((n) => isWaitingName(n, DEFAULT_SUFFIX));
}

/** Files still being written. */
export function tempFiles(dir: string): string[] {
  return allFiles(dir).filter((n) => tempOwner(n) !== null);
}

/** Everything in a spool but the exporter's status file: what an export leaves behind. */
export function inSpool(dir: string): string[] {
  return allFiles(dir).filter((n) => n !== EXPORT_STATUS_FILE);
}

/** A spool file's content, asserting that its name is the SHA-256 of it, i.e. that it was written whole. */
export function readWhole(dir: string, name: string): Buffer {
  const content = fs.readFileSync(path.join(dir, name));
  assert.equal(finalName(sha256(content), DEFAULT_SUFFIX), name, `${name} is whole`);
  return content;
}

/**
 * Runs one of our programs (node BIN ARGS, INPUT on stdin) until its first
 * new file is in inbox, then SIGKILLs it; resolves once it is gone. Woken by
 * the directory's own events, not by polling.
 */
export async function killAtFirstNewFile(bin: string, args: string[], inbox: string, input = ''): Promise<void> {
  const before = spoolFiles(inbox).length;
  const watcher = fs.watch(inbox);
  const p = spawn(process.execPath, [bin, ...args], { stdio: ['pipe', 'ignore', 'pipe'] });
  p.stdin.end(input);
  const closed = new Promise<number | null>((resolve) => p.on('close', (code) => resolve(code)));
  try {
    await new Promise<void>((resolve, reject) => {
      watcher.on('change', () => {
        if (spoolFiles(inbox).length > before) {
          p.kill('SIGKILL');
          resolve();
        }
      });
      closed.then((code) => reject(new Error(`${path.basename(bin)} ended (${code}) before it could be killed`)));
    });
  } finally {
    watcher.close();
  }
  await closed;
}

/** A writer whose nth commit fails with the given error code (counted from 1, over the writer's life). */
export class FailingWriter extends SpoolWriter {
  private begun = 0;
  constructor(dir: string, private readonly failAt: number, private readonly code: string) {
    super(dir);
  }
  override begin(): SpoolFile {
    const file = super.begin();
    if (++this.begun === this.failAt) {
      const code = this.code;
      file.commit = async () => {
        await file.discard();
        throw Object.assign(new Error(`${code} (injected)`), { code });
      };
    }
    return file;
  }
}
