// Taking files out of a spool, for the exporter. A file is claimed by
// renaming it to a dot name that carries our host and pid: rename is atomic,
// so of two exporters running at once exactly one gets each file, and a
// claim left by a crashed exporter is recognisable and is put back.
//
//   <name>                                   waiting
//   .<name>.<host>.<pid>.sending             claimed by one exporter
//   <name>.err                               refused for good (as Benno marks failures)

import * as fs from 'node:fs';
import * as path from 'node:path';
import { hostTag, sweepLeftovers } from './leftovers';
import { DEFAULT_ENVELOPE_NAMES, EnvelopeNames, ParsedEnvelope, parseEnvelope } from './format';

export const FAILED_SUFFIX = '.err';
const CLAIM_RE = /^\.(.+)\.([A-Za-z0-9_-]+)\.(\d+)\.sending$/;
/** The envelope block is read in pieces of this size, up to MAX_ENVELOPE. */
const HEAD_CHUNK = 64 * 1024;
const MAX_ENVELOPE = 4 * 1024 * 1024;

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
    readonly suffix = '.eml',
  ) {
    this.dir = path.resolve(dir);
  }

  /** Files waiting to be sent, oldest first. */
  list(): SpoolEntry[] {
    const out: SpoolEntry[] = [];
    for (const name of fs.readdirSync(this.dir)) {
      if (name.startsWith('.') || !name.endsWith(this.suffix)) continue;
      const full = path.join(this.dir, name);
      try {
        const st = fs.statSync(full);
        if (st.isFile()) out.push({ name, path: full, size: st.size, mtimeMs: st.mtimeMs });
      } catch {
        // taken by another exporter between readdir and stat
      }
    }
    return out.sort((a, b) => a.mtimeMs - b.mtimeMs || (a.name < b.name ? -1 : 1));
  }

  /** Claims a waiting file; null if another exporter was faster. */
  claim(name: string): ClaimedFile | null {
    const claimed = path.join(this.dir, `.${name}.${this.host}.${process.pid}.sending`);
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
    return sweepLeftovers(
      this.dir,
      CLAIM_RE,
      (m) => ({ host: m[2], pid: Number(m[3]) }),
      (full, m) => fs.renameSync(full, path.join(this.dir, m[1])),
    ).map((entry) => CLAIM_RE.exec(entry)![1]);
  }
}

export interface FileEnvelope extends ParsedEnvelope {
  /** Size of the whole file. */
  size: number;
}

/** A file this process has claimed; it ends sent, put back, or failed. */
export class ClaimedFile {
  constructor(
    readonly dir: string,
    readonly name: string,
    readonly path: string,
  ) {}

  /**
   * The envelope lines at the start of the file, read without loading the
   * message. Null when the file does not start with valid envelope lines.
   */
  readEnvelope(names: EnvelopeNames = DEFAULT_ENVELOPE_NAMES): FileEnvelope | null {
    const fd = fs.openSync(this.path, 'r');
    try {
      const size = fs.fstatSync(fd).size;
      let head = Buffer.alloc(0);
      for (;;) {
        const piece = Buffer.allocUnsafe(Math.min(HEAD_CHUNK, size - head.length));
        const n = piece.length > 0 ? fs.readSync(fd, piece, 0, piece.length, head.length) : 0;
        head = Buffer.concat([head, piece.subarray(0, n)]);
        const parsed = parseEnvelope(head, names);
        // The envelope is complete once a line follows it that is not part of it.
        const complete = parsed && (head.indexOf('\r\n', parsed.messageOffset) >= 0 || head.length === size);
        if (complete || n === 0 || head.length >= MAX_ENVELOPE) return parsed ? { ...parsed, size } : null;
      }
    } finally {
      fs.closeSync(fd);
    }
  }

  /** The message after the envelope lines, streamed from disk. */
  stream(offset: number): fs.ReadStream {
    return fs.createReadStream(this.path, { start: offset, highWaterMark: 256 * 1024 });
  }

  /** Sent: the file goes. */
  done(): void {
    fs.unlinkSync(this.path);
  }

  /** Not sent this time: back under its name for the next run. */
  release(): void {
    fs.renameSync(this.path, path.join(this.dir, this.name));
  }

  /** Refused for good: renamed to <name>.err, never retried. Returns the new name. */
  fail(): string {
    const failed = this.name + FAILED_SUFFIX;
    fs.renameSync(this.path, path.join(this.dir, failed));
    return failed;
  }
}
