// Where the audit reads the mail log: files (plain or gzip-compressed),
// a log together with its rotated siblings (mail.log.3.gz … mail.log.1,
// mail.log), or the journal through journalctl. Every source is streamed
// line by line; a line longer than MAX_LINE is cut there (the rest up to
// its end is dropped), so no line, however hostile, costs more memory than
// that. Several sources are merged by time.

import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Readable, Transform, TransformCallback, pipeline } from 'node:stream';
import * as zlib from 'node:zlib';
import { MILTER_TAG } from './audit-events';
import { LogLine, YearGuess, parseLogLine } from './audit-lines';

/** Longer than any syslog line (rsyslog cuts at 8 KiB by default). */
export const MAX_LINE = 64 * 1024;

export const MAIL_LOG = '/var/log/mail.log';

/** A log that cannot be read: missing, no permission, not gzip data, journalctl failing. */
export class LogUnreadable extends Error {
  constructor(
    message: string,
    /** 'missing': the file or program is not there or not readable; 'corrupt': its content cannot be decoded; 'failed': the program failed. */
    readonly reason: 'missing' | 'corrupt' | 'failed',
  ) {
    super(message);
  }
}

export interface LogSource {
  /** How the report names it. */
  name: string;
  lines(): AsyncIterable<LogLine>;
}

/**
 * Splits bytes into lines at LF only, each cut at MAX_LINE bytes (what is
 * beyond, up to the line end, is dropped). Not readline: it also ends a
 * line at a bare CR, U+2028 and U+2029, which a sender can put into an
 * address that the MTA logs as it is; what follows would then pass for a
 * line of its own, a forged "archived" line of the milter's included.
 */
class LineSplitter extends Transform {
  private parts: Buffer[] = [];
  private length = 0;

  constructor() {
    super({ readableObjectMode: true });
  }

  private keep(b: Buffer): void {
    const room = MAX_LINE - this.length;
    if (room <= 0) return;
    const part = b.length > room ? b.subarray(0, room) : b;
    // A part of a large chunk is copied, so that the chunk itself is not kept alive by it.
    this.parts.push(Buffer.from(part));
    this.length += part.length;
  }

  private pushKept(): void {
    let line = this.parts.length === 1 ? this.parts[0] : Buffer.concat(this.parts);
    if (line[line.length - 1] === 0x0d) line = line.subarray(0, -1);
    this.parts = [];
    this.length = 0;
    this.push(line.toString('utf8'));
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    let from = 0;
    for (let lf = chunk.indexOf(0x0a); lf >= 0; lf = chunk.indexOf(0x0a, from)) {
      if (this.length === 0 && lf - from <= MAX_LINE) {
        let end = lf;
        if (end > from && chunk[end - 1] === 0x0d) end--;
        this.push(chunk.toString('utf8', from, end));
      } else {
        this.keep(chunk.subarray(from, lf));
        this.pushKept();
      }
      from = lf + 1;
    }
    if (from < chunk.length) this.keep(chunk.subarray(from));
    done();
  }

  override _flush(done: TransformCallback): void {
    if (this.length > 0) this.pushKept();
    done();
  }
}

/** The lines of a byte stream that are log lines; `fail` turns a stream error into the error to throw. */
async function* logLines(input: Readable, years: YearGuess, fail: (err: Error) => Error): AsyncGenerator<LogLine> {
  const lines = new LineSplitter();
  // pipeline: an error of the input (a file, gunzip, journalctl's stdout) destroys the splitter with it, which ends the loop below.
  pipeline(input, lines, () => undefined);
  try {
    for await (const text of lines as AsyncIterable<string>) {
      const line = parseLogLine(text, years);
      if (line) yield line;
    }
  } catch (err) {
    throw fail(err as Error);
  } finally {
    input.destroy();
  }
}

async function openFile(file: string): Promise<{ stream: Readable; mtime: number }> {
  const handle = await fs.promises.open(file, 'r').catch((err: NodeJS.ErrnoException) => {
    throw new LogUnreadable(`cannot read ${file}: ${err.code ?? err.message}`, 'missing');
  });
  const st = await handle.stat();
  if (!st.isFile()) {
    await handle.close();
    throw new LogUnreadable(`cannot read ${file}: not a file`, 'missing');
  }
  const raw = handle.createReadStream();
  if (!file.endsWith('.gz')) return { stream: raw, mtime: st.mtimeMs };
  const gunzip = zlib.createGunzip();
  raw.on('error', (err) => gunzip.destroy(err));
  return { stream: raw.pipe(gunzip), mtime: st.mtimeMs };
}

/** One file, or several read one after the other (a log and its rotated siblings, oldest first). */
export function fileSource(files: string[]): LogSource {
  return {
    name: files.join(', '),
    lines: async function* () {
      for (const file of files) {
        const { stream, mtime } = await openFile(file);
        yield* logLines(stream, new YearGuess(mtime), (err) => {
          const e = err as NodeJS.ErrnoException;
          return e.code?.startsWith('Z_')
            ? new LogUnreadable(`cannot read ${file}: not gzip data or cut short (${e.message})`, 'corrupt')
            : new LogUnreadable(`cannot read ${file}: ${e.code ?? e.message}`, 'missing');
        });
      }
    },
  };
}

/**
 * A log with its rotated siblings, oldest first: logrotate's numbered
 * names (mail.log.2.gz, mail.log.1) or its dateext names
 * (mail.log-20261122.gz), then the log itself.
 */
export function rotatedSiblings(log: string): string[] {
  const dir = path.dirname(log);
  const base = path.basename(log);
  const numbered: [number, string][] = [];
  const dated: [string, string][] = [];
  let names: string[] = [];
  try {
    names = fs.readdirSync(dir);
  } catch {
    // the log's own absence is reported when it is opened
  }
  for (const name of names) {
    if (!name.startsWith(base)) continue;
    const m = /^[.-](\d+)(?:\.gz)?$/.exec(name.slice(base.length));
    if (!m) continue;
    if (m[1].length >= 8) dated.push([m[1], name]);
    else numbered.push([Number(m[1]), name]);
  }
  numbered.sort((a, b) => b[0] - a[0]);
  dated.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  return [...numbered.map((n) => n[1]), ...dated.map((d) => d[1]), base].map((n) => path.join(dir, n));
}

/** Whether systemd runs this host (sd_booted(3)'s test), so that the journal holds the mail log. */
export function systemdRuns(): boolean {
  return fs.existsSync('/run/systemd/system');
}

/** The unit benno-milter runs under; its lines in the journal are the milter's beyond doubt. */
export const MILTER_UNIT = 'benno-milter.service';

/** The journal's time range: a margin around the period lets the matcher see each message whole. */
export function journalArguments(since: number | null, until: number | null, marginMs: number): string[] {
  const args = ['--no-pager', '--quiet', '--output=short-iso-precise'];
  if (since !== null) args.push(`--since=@${Math.floor((since - marginMs) / 1000)}`);
  if (until !== null) args.push(`--until=@${Math.ceil((until + marginMs) / 1000)}`);
  return args;
}

/**
 * The journal as two sources, merged by time: the MTA's lines (facility
 * mail: Postfix and Sendmail through syslog) and the milter's (its unit's
 * output). Any local user can write to syslog under the milter's name
 * (logger -p mail.info -t benno-milter), and such a line, "archived", would
 * hide a gap; so the milter's lines count only from its unit, and the mail
 * facility's lines under its name are dropped. `files`: journal files to
 * read instead of the system's (journalctl --file).
 */
export function journalSources(since: number | null, until: number | null, marginMs: number, files: string[] = [], command = 'journalctl'): LogSource[] {
  const args = [...journalArguments(since, until, marginMs), ...files.map((f) => `--file=${f}`)];
  return [
    journalSource([...args, 'SYSLOG_FACILITY=2'], command, (line) => line.tag !== MILTER_TAG),
    journalSource([...args, `_SYSTEMD_UNIT=${MILTER_UNIT}`], command),
  ];
}

export function journalSource(args: string[], command = 'journalctl', keep: (line: LogLine) => boolean = () => true): LogSource {
  return {
    name: `${command} ${args.join(' ')}`,
    lines: async function* () {
      const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => {
        if (stderr.length < 1000) stderr += d.toString('utf8');
      });
      const exited = new Promise<number | null>((resolve, reject) => {
        child.on('error', (err: NodeJS.ErrnoException) => reject(new LogUnreadable(`cannot run ${command}: ${err.code ?? err.message}`, 'missing')));
        child.on('close', (code) => resolve(code));
      });
      exited.catch(() => undefined); // awaited below
      // Journal times carry their offset: the year guess is never asked.
      for await (const line of logLines(child.stdout, new YearGuess(Date.now()), (err) => new LogUnreadable(`${command}: ${err.message}`, 'failed'))) {
        if (keep(line)) yield line;
      }
      const code = await exited;
      if (code !== 0) throw new LogUnreadable(`${command} exited ${code}: ${stderr.trim().split('\n')[0] ?? ''}`, 'failed');
    },
  };
}

/** The lines of all sources in time order (each source is in time order itself); equal times keep the sources' order. */
export async function* mergedLines(sources: LogSource[]): AsyncGenerator<LogLine> {
  if (sources.length === 1) {
    yield* sources[0].lines();
    return;
  }
  const its = sources.map((s) => s.lines()[Symbol.asyncIterator]());
  const heads = await Promise.all(its.map((it) => it.next()));
  for (;;) {
    let best = -1;
    for (let i = 0; i < heads.length; i++) {
      const h = heads[i];
      if (!h.done && (best < 0 || h.value.time < (heads[best].value as LogLine).time)) best = i;
    }
    if (best < 0) return;
    yield heads[best].value as LogLine;
    heads[best] = await its[best].next();
  }
}
