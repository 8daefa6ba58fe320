// The byte-level SMTP forms the exporter's client needs (RFC 5321): server
// replies, and the message in DATA. Both work on chunks as TCP delivers them,
// so nothing depends on where a read or a file chunk happens to end.

const CR = 0x0d;
const LF = 0x0a;
const DOT = 0x2e;

/** One server reply: its code and the text of each line (after "250-" / "250 "). */
export interface Reply {
  code: number;
  lines: string[];
}

/** A reply as one line for logs and outcomes: "250 first line second line". */
export function replyText(r: Reply): string {
  return `${r.code} ${r.lines.join(' ')}`.trim();
}

/** A server that does not speak SMTP: the connection cannot be trusted any further. */
export class ProtocolError extends Error {
  override name = 'ProtocolError';
}

/** Longest reply line we wait for; RFC 5321 allows 512 octets, servers send more in EHLO. */
const MAX_LINE = 16 * 1024;
/** Most lines in one reply (an EHLO reply has a dozen or two). */
const MAX_LINES = 1000;
const LINE = /^(\d{3})([ -]|$)/;

/**
 * Splits the server's bytes into replies: "250-a" lines continue a reply,
 * "250 b" (or a bare "250") ends it. Read as latin1, so that no byte the
 * server sends can fail to decode; the text only ever goes to logs.
 */
export class ReplyParser {
  private partial = '';
  private code = 0;
  private lines: string[] = [];

  /** The replies this chunk completes; throws ProtocolError on what is not a reply. */
  push(chunk: Buffer): Reply[] {
    const out: Reply[] = [];
    const text = this.partial + chunk.toString('latin1');
    let start = 0;
    let nl: number;
    while ((nl = text.indexOf('\n', start)) >= 0) {
      const line = text.slice(start, nl > start && text[nl - 1] === '\r' ? nl - 1 : nl);
      start = nl + 1;
      const m = LINE.exec(line);
      if (!m) throw new ProtocolError(`not an SMTP reply: "${line.slice(0, 80)}"`);
      const code = Number(m[1]);
      if (this.lines.length > 0 && code !== this.code) throw new ProtocolError(`reply lines with different codes: ${this.code} and ${code}`);
      if (this.lines.length >= MAX_LINES) throw new ProtocolError(`a reply of more than ${MAX_LINES} lines`);
      this.code = code;
      this.lines.push(line.slice(4));
      if (m[2] !== '-') {
        out.push({ code, lines: this.lines });
        this.lines = [];
      }
    }
    if (text.length - start > MAX_LINE) throw new ProtocolError(`a reply line longer than ${MAX_LINE} bytes`);
    this.partial = text.slice(start);
    return out;
  }

  /** Bytes received that are not yet a whole reply. */
  get pending(): boolean {
    return this.partial.length > 0 || this.lines.length > 0;
  }
}

const CR_BYTE = Buffer.from([CR]);
const DOT_BYTE = Buffer.from([DOT]);
const END = Buffer.from('.\r\n');
const CRLF_END = Buffer.from('\r\n.\r\n');

/**
 * The message as DATA carries it (RFC 5321 4.5.2): a line that starts with
 * "." gets one more, a bare LF becomes CRLF, and the end is CRLF "." CRLF,
 * with a CRLF added when the message does not end with one. A bare CR stays
 * as it is (it ends no line on the wire, so a "." after it is no line start).
 * Everything else passes unchanged, and a chunk that needs no change is
 * returned as it is.
 */
export class DataEncoder {
  /** Last byte of the previous chunk; LF at the start, where a line starts. */
  private prev = LF;

  push(chunk: Buffer): Buffer {
    if (chunk.length === 0) return chunk;
    let parts: Buffer[] | null = null;
    let from = 0;
    let pos = 0;
    let lineStart = this.prev === LF;
    for (;;) {
      if (lineStart && chunk[pos] === DOT) {
        (parts ??= []).push(chunk.subarray(from, pos), DOT_BYTE);
        from = pos;
      }
      const lf = chunk.indexOf(LF, pos);
      if (lf < 0) break;
      if ((lf > 0 ? chunk[lf - 1] : this.prev) !== CR) {
        (parts ??= []).push(chunk.subarray(from, lf), CR_BYTE);
        from = lf;
      }
      pos = lf + 1;
      if (pos === chunk.length) break;
      lineStart = true;
    }
    this.prev = chunk[chunk.length - 1];
    if (!parts) return chunk;
    parts.push(chunk.subarray(from));
    return Buffer.concat(parts);
  }

  /** The end of DATA. */
  end(): Buffer {
    return this.prev === LF ? END : CRLF_END;
  }
}
