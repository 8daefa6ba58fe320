// Writes spool files durably and atomically:
//   .<host>.<pid>.<seq>.tmp  (O_EXCL, mode 0640)  → data → fdatasync → close
//   → rename to <sha256 of the content><suffix> → fsync of the directory.
// Only after all of that may the caller acknowledge the message. Content is
// buffered in memory up to a small bound and streamed to the temp file beyond
// it, so a 100 MB message costs no more memory than a 100 KB one.
//
// What waits for the disk (writes, syncs) runs on libuv's thread pool; the
// cheap metadata calls (create, close, rename, unlink) run inline, because
// handing each to a pool thread cost more CPU than the call itself (about
// 50 µs of futex and context switches per hand-off on a busy 2-core machine,
// measured under Postfix load: see docs/BENCHMARKS.md). A message that fits
// in memory is then one O_DSYNC write plus a share of one directory fsync.

import { createHash, Hash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { hostTag, sweepLeftovers } from './leftovers';
import { DEFAULT_SUFFIX, finalName, tempName, tempOwner } from './names';

const fsp = {
  writev: promisify(fs.writev),
  fdatasync: promisify(fs.fdatasync),
  fsync: promisify(fs.fsync),
};

export interface SpoolWriterOptions {
  /** Suffix of final names, ".eml" by default (what Benno's inbox imports). */
  suffix?: string;
  /** Mode of spool files; 0640: the archive's user reads them, nobody else. */
  fileMode?: number;
  /** Bytes kept in memory before they go to the temp file. */
  bufferBytes?: number;
  /** Unwritten bytes at which writers are asked to wait. */
  highWaterBytes?: number;
  /** For benchmarks that measure everything but the disk; never in production. */
  sync?: boolean;
}

export interface CommittedFile {
  /** File name inside the spool directory. */
  name: string;
  size: number;
}

const MAX_IOV = 1024;

/** fsync(2) of a directory, shared by every rename that happened before it started. */
class DirectorySync {
  private current: Promise<void> | null = null;
  private next: Promise<void> | null = null;

  constructor(private readonly dir: string) {}

  /** Resolves once a directory fsync that began after this call has completed. */
  sync(): Promise<void> {
    if (this.next) return this.next;
    if (!this.current) return this.start();
    this.next = this.current
      .catch(() => undefined)
      .then(() => {
        this.next = null;
        return this.start();
      });
    return this.next;
  }

  private start(): Promise<void> {
    const run: Promise<void> = (async () => {
      await fsp.fsync(this.directoryFd());
    })().finally(() => {
      if (this.current === run) this.current = null;
    });
    this.current = run;
    return run;
  }

  /**
   * The directory's descriptor, kept open between syncs. A cheap stat of the
   * path checks that it is still the same directory (an administrator may
   * have replaced it); otherwise it is opened anew.
   */
  private fd: number | null = null;
  private identity = '';

  close(): void {
    if (this.fd !== null) fs.closeSync(this.fd);
    this.fd = null;
  }

  private directoryFd(): number {
    const st = fs.statSync(this.dir);
    const identity = `${st.dev}:${st.ino}`;
    if (this.fd !== null && identity === this.identity) return this.fd;
    if (this.fd !== null) fs.closeSync(this.fd);
    this.fd = null;
    this.fd = fs.openSync(this.dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
    this.identity = identity;
    return this.fd;
  }
}

export class SpoolWriter {
  readonly dir: string;
  readonly suffix: string;
  private readonly fileMode: number;
  private readonly bufferBytes: number;
  private readonly highWaterBytes: number;
  private readonly sync: boolean;
  private readonly host = hostTag();
  private readonly dirSync: DirectorySync;
  private seq = 0;

  constructor(dir: string, options: SpoolWriterOptions = {}) {
    this.dir = path.resolve(dir);
    this.suffix = options.suffix ?? DEFAULT_SUFFIX;
    this.fileMode = options.fileMode ?? 0o640;
    this.bufferBytes = options.bufferBytes ?? 256 * 1024;
    this.highWaterBytes = options.highWaterBytes ?? 1024 * 1024;
    this.sync = options.sync ?? true;
    this.dirSync = new DirectorySync(this.dir);
  }

  /**
   * Checks at start-up that the directory exists and that we can create,
   * sync, rename and remove files in it, so that a wrong path or mode shows
   * up now and not as a tempfail on the first message.
   */
  async check(): Promise<void> {
    const st = fs.statSync(this.dir);
    if (!st.isDirectory()) throw Object.assign(new Error(`${this.dir} is not a directory`), { code: 'ENOTDIR' });
    const probe = this.begin();
    probe.write(Buffer.from('probe\r\n'));
    const tmp = await probe.flushForProbe();
    fs.unlinkSync(tmp);
  }

  /** Removes temp files left by crashed processes (see leftovers.ts). */
  cleanStale(): { removed: string[] } {
    const removed = sweepLeftovers(this.dir, tempOwner, (full) => fs.unlinkSync(full));
    return { removed };
  }

  begin(): SpoolFile {
    const name = tempName({ host: this.host, pid: process.pid }, ++this.seq);
    return new SpoolFile(this, path.join(this.dir, name));
  }

  /** @internal */
  settings() {
    return { bufferBytes: this.bufferBytes, highWaterBytes: this.highWaterBytes, sync: this.sync };
  }

  /**
   * @internal Creates the temp file. With dsync every write is durable when
   * it returns (O_DSYNC), which saves a separate fdatasync for a message
   * written in one go.
   */
  create(tempPath: string, dsync = false): number {
    const flags = fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | (dsync ? fs.constants.O_DSYNC : 0);
    return fs.openSync(tempPath, flags, this.fileMode);
  }

  /** @internal */
  rename(tempPath: string, name: string): void {
    fs.renameSync(tempPath, path.join(this.dir, name));
  }

  /** Releases the directory descriptor kept for syncs (at shutdown, or before unmounting in tests). */
  close(): void {
    this.dirSync.close();
  }

  /** @internal */
  syncDirectory(): Promise<void> {
    return this.sync ? this.dirSync.sync() : Promise.resolve();
  }
}

/**
 * One file being written. write() never throws: the first error is kept and
 * reported by commit(), which is where the caller decides what to answer.
 */
export class SpoolFile {
  private readonly hash: Hash = createHash('sha256');
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private size = 0;
  private fd: number | null = null;
  private flushing: Promise<void> | null = null;
  private error: Error | null = null;
  private done = false;
  private readonly cfg: ReturnType<SpoolWriter['settings']>;

  constructor(
    private readonly writer: SpoolWriter,
    readonly tempPath: string,
  ) {
    this.cfg = writer.settings();
  }

  /**
   * Adds bytes. Returns a promise when the caller should wait before writing
   * more (the disk is behind), otherwise undefined.
   */
  write(chunk: Buffer): Promise<void> | undefined {
    if (this.done || this.error || chunk.length === 0) return undefined;
    this.hash.update(chunk);
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    this.size += chunk.length;
    if (this.pendingBytes >= this.cfg.bufferBytes && !this.flushing) this.startFlush();
    if (this.flushing && this.pendingBytes >= this.cfg.highWaterBytes) return this.flushing;
    return undefined;
  }

  /** Bytes written so far, envelope included. */
  get bytes(): number {
    return this.size;
  }

  private startFlush(): void {
    this.flushing = this.flushAll().then(
      () => {
        this.flushing = null;
      },
      (err: Error) => {
        this.flushing = null;
        this.error ??= err;
      },
    );
  }

  private async flushAll(): Promise<void> {
    if (this.fd === null) this.fd = this.writer.create(this.tempPath);
    while (this.pendingBytes > 0 && !this.done) {
      const batch = this.pending.splice(0, MAX_IOV);
      let bytes = 0;
      for (const b of batch) bytes += b.length;
      this.pendingBytes -= bytes;
      await writevAll(this.fd, batch, bytes);
    }
  }

  /**
   * Makes the file durable under its final name and returns that name.
   * On any error the temp file is removed and the error thrown.
   */
  async commit(): Promise<CommittedFile> {
    if (this.done) throw new Error('spool file already finished');
    try {
      if (this.flushing) await this.flushing;
      if (this.error) throw this.error;
      // Still all in memory (most messages): one O_DSYNC write makes it durable.
      const oneWrite = this.fd === null && this.cfg.sync;
      if (oneWrite) this.fd = this.writer.create(this.tempPath, true);
      await this.flushAll();
      this.done = true;
      const fd = this.fd!;
      if (this.cfg.sync && !oneWrite) await fsp.fdatasync(fd);
      this.fd = null;
      fs.closeSync(fd);
      const name = finalName(this.hash.digest('hex'), this.writer.suffix);
      this.writer.rename(this.tempPath, name);
      await this.writer.syncDirectory();
      return { name, size: this.size };
    } catch (err) {
      this.done = true;
      await this.cleanup();
      throw err;
    }
  }

  /** Drops the message: the temp file goes, nothing appears in the spool. */
  discard(): Promise<void> {
    if (this.done) return Promise.resolve();
    this.done = true;
    this.pending = [];
    this.pendingBytes = 0;
    return (this.flushing ?? Promise.resolve()).then(() => this.cleanup());
  }

  /** For SpoolWriter.check(): writes and closes the temp file, returns its path. */
  async flushForProbe(): Promise<string> {
    await this.flushAll();
    if (this.cfg.sync) await fsp.fdatasync(this.fd!);
    fs.closeSync(this.fd!);
    this.fd = null;
    this.done = true;
    return this.tempPath;
  }

  private async cleanup(): Promise<void> {
    if (this.fd !== null) {
      const fd = this.fd;
      this.fd = null;
      try {
        fs.closeSync(fd);
      } catch {
        // the descriptor is gone either way
      }
    }
    try {
      fs.unlinkSync(this.tempPath);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
}

/** writev until every byte is written (short writes happen on full disks and signals). */
async function writevAll(fd: number, buffers: Buffer[], total: number): Promise<void> {
  let written = (await fsp.writev(fd, buffers)).bytesWritten;
  if (written === total) return;
  let rest = Buffer.concat(buffers).subarray(written);
  while (rest.length > 0) {
    written = (await fsp.writev(fd, [rest])).bytesWritten;
    if (written === 0) throw Object.assign(new Error('write returned 0 bytes'), { code: 'EIO' });
    rest = rest.subarray(written);
  }
}
