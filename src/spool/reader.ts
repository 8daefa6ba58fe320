// Taking files out of a spool, for the exporter. A file is claimed by
// renaming it to a dot name that carries our host and pid: rename is atomic,
// so of two exporters running at once exactly one gets each file, and a
// claim left by a crashed exporter is recognisable and is put back.
//
//   <name>                                   waiting
//   .<name>.<host>.<pid>.sending             claimed by one exporter
//   <name>.err                               not a spool file: no envelope block at its
//                                            start, or not a regular file (as Benno marks failures)

import * as fs from 'node:fs';
import * as path from 'node:path';
import { hostTag, sweepLeftovers } from './leftovers';
import { DEFAULT_SUFFIX, claimName, failedName, isWaitingName, parseClaimName } from './names';
import { DEFAULT_ENVELOPE_NAMES, EnvelopeNames, MAX_ENVELOPE_OCTETS, ParsedEnvelope, parseEnvelope } from './format';

/** The envelope block is read in pieces of this size, up to one piece beyond the largest block. */
const HEAD_CHUNK = 64 * 1024;
const MAX_HEAD = MAX_ENVELOPE_OCTETS + HEAD_CHUNK;

export interface SpoolEntry {
  name: string;
  path: string;
  size: number;
  mtimeMs: number;
}

export class SpoolReader {
  readonly dir: string;
  private readonly host = hostTag();

  constructor(
    dir: string,
    readonly suffix = DEFAULT_SUFFIX,
  ) {
    this.dir = path.resolve(dir);
  }

  /**
   * Files waiting to be sent, oldest first: regular files only. Anything else
   * under a spool name (a symbolic link, a directory, a FIFO) is passed to
   * skipped and left alone: a link planted in the spool must not make us
   * send the file it points to.
   */
  list(skipped?: (name: string, what: string) => void): SpoolEntry[] {
    const out: SpoolEntry[] = [];
    for (const name of fs.readdirSync(this.dir)) {
      if (!isWaitingName(name, this.suffix)) continue;
      const full = path.join(this.dir, name);
      try {
        const st = fs.lstatSync(full);
        if (st.isFile()) out.push({ name, path: full, size: st.size, mtimeMs: st.mtimeMs });
        else skipped?.(name, fileKind(st));
      } catch {
        // taken by another exporter between readdir and lstat
      }
    }
    return out.sort((a, b) => a.mtimeMs - b.mtimeMs || (a.name < b.name ? -1 : 1));
  }

  /** Claims a waiting file; null if another exporter was faster. */
  claim(name: string): ClaimedFile | null {
    const claimed = path.join(this.dir, claimName(name, { host: this.host, pid: process.pid }));
    try {
      fs.renameSync(path.join(this.dir, name), claimed);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
    return new ClaimedFile(this.dir, name, claimed);
  }

  /** Puts back files claimed by exporters that died (see leftovers.ts); returns their names. */
  recoverStale(): string[] {
    return sweepLeftovers(this.dir, parseClaimName, (full, name) => fs.renameSync(full, path.join(this.dir, parseClaimName(name)!.name))).map(
      (name) => parseClaimName(name)!.name,
    );
  }
}

/** "a symbolic link", "a directory", ...: what a file that is not a regular one is. */
export function fileKind(st: fs.Stats): string {
  if (st.isFile()) return 'a regular file';
  if (st.isSymbolicLink()) return 'a symbolic link';
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isSocket()) return 'a socket';
  return 'a device';
}

export interface FileEnvelope extends ParsedEnvelope {
  /** Size of the whole file. */
  size: number;
}

/** A claimed file's envelope, or why the file is no spool file. */
export type EnvelopeRead = { ok: true; envelope: FileEnvelope } | { ok: false; why: string };

// O_NOFOLLOW: a symbolic link swapped in for the file is refused (ELOOP), not
// followed. O_NONBLOCK: a FIFO swapped in does not block the open.
const OPEN_FLAGS = fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK;

/**
 * A file this process has claimed; it ends sent, put back, or failed. It is
 * opened once: the envelope and the message are read from the same
 * descriptor, so what is sent is what was checked, whatever happens to the
 * name meanwhile.
 */
export class ClaimedFile {
  private fd: number | null = null;

  constructor(
    readonly dir: string,
    readonly name: string,
    readonly path: string,
  ) {}

  /**
   * Opens the file and reads the envelope block at its start, without
   * loading the message. Not ok when the file is not a regular file or does
   * not start with a valid envelope block; other errors (EACCES, EIO) throw.
   */
  readEnvelope(names: EnvelopeNames = DEFAULT_ENVELOPE_NAMES): EnvelopeRead {
    this.close();
    try {
      this.fd = fs.openSync(this.path, OPEN_FLAGS);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      // ELOOP: a symbolic link; ENXIO: a socket.
      if (code === 'ELOOP' || code === 'ENXIO') return { ok: false, why: `not a regular file (${code === 'ELOOP' ? 'a symbolic link' : 'a socket'})` };
      throw err;
    }
    const st = fs.fstatSync(this.fd);
    if (!st.isFile()) {
      this.close();
      return { ok: false, why: `not a regular file (${fileKind(st)})` };
    }
    const size = st.size;
    let head = Buffer.alloc(0);
    for (;;) {
      const piece = Buffer.allocUnsafe(Math.min(HEAD_CHUNK, size - head.length));
      const n = piece.length > 0 ? fs.readSync(this.fd, piece, 0, piece.length, head.length) : 0;
      head = Buffer.concat([head, piece.subarray(0, n)]);
      const parsed = parseEnvelope(head, names);
      // The envelope is complete once a line follows it that is not part of it.
      const complete = parsed && (head.indexOf('\r\n', parsed.messageOffset) >= 0 || head.length === size);
      if (complete || n === 0 || head.length >= MAX_HEAD) {
        if (parsed) return { ok: true, envelope: { ...parsed, size } };
        return { ok: false, why: `no valid ${names.sender}/${names.recipient} lines at its start, or more than ${MAX_ENVELOPE_OCTETS} bytes of them` };
      }
    }
  }

  /**
   * The message after the envelope lines, streamed from the descriptor
   * readEnvelope opened; the stream owns it from now on and closes it.
   */
  stream(offset: number): fs.ReadStream {
    const fd = this.fd;
    if (fd === null) throw new Error(`${this.name}: stream() before readEnvelope()`);
    this.fd = null;
    return fs.createReadStream(this.path, { fd, start: offset, autoClose: true, highWaterMark: 256 * 1024 });
  }

  /** Sent: the file goes. */
  done(): void {
    this.close();
    fs.unlinkSync(this.path);
  }

  /** Not sent this time: back under its name for the next run. */
  release(): void {
    this.close();
    fs.renameSync(this.path, path.join(this.dir, this.name));
  }

  /** Not a spool file: renamed to <name>.err, never retried. Returns the new name. */
  fail(): string {
    this.close();
    const failed = failedName(this.name);
    fs.renameSync(this.path, path.join(this.dir, failed));
    return failed;
  }

  private close(): void {
    if (this.fd === null) return;
    fs.closeSync(this.fd);
    this.fd = null;
  }
}
