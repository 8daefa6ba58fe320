// The spool file format, defined here and nowhere else:
//
//   X-REAL-MAILFROM: <sender>          (null sender: <>)
//   X-REAL-RCPTTO: <recipient>         (one line per recipient, SMTP order)
//   <message headers as received>
//   <empty line>
//   <body as received>
//
// CRLF line ends throughout. Addresses and content stay bytes.

export const CRLF = Buffer.from('\r\n');

export interface EnvelopeNames {
  sender: string;
  recipient: string;
}

export const DEFAULT_ENVELOPE_NAMES: EnvelopeNames = {
  sender: 'X-REAL-MAILFROM',
  recipient: 'X-REAL-RCPTTO',
};

/** RFC 5322 field name: printable ASCII except colon. */
export function isFieldName(name: string): boolean {
  return /^[\x21-\x39\x3b-\x7e]+$/.test(name);
}

const LT = 0x3c;
const GT = 0x3e;

function isBlank(b: number): boolean {
  return b === 0x20 || b === 0x09;
}

function isLineBreakOrNul(b: number): boolean {
  return b === 0x0d || b === 0x0a || b === 0x00;
}

/**
 * The address from a MAIL or RCPT argument: "<a@example.org>" → a@example.org,
 * "<>" → empty. ESMTP parameters arrive as separate arguments and are not
 * part of it. CR, LF and NUL cannot be part of an address and would break the
 * file's line structure, so they are dropped.
 */
export function bareAddress(arg: Buffer): Buffer {
  let start = 0;
  let end = arg.length;
  while (start < end && isBlank(arg[start])) start++;
  while (end > start && isBlank(arg[end - 1])) end--;
  if (end - start >= 2 && arg[start] === LT && arg[end - 1] === GT) {
    start++;
    end--;
  }
  const addr = arg.subarray(start, end);
  return addr.some(isLineBreakOrNul) ? Buffer.from(addr.filter((b) => !isLineBreakOrNul(b))) : addr;
}

function envelopeLine(name: Buffer, address: Buffer): Buffer[] {
  return [name, Buffer.from(': <'), address, Buffer.from('>\r\n')];
}

/** The envelope lines that open a spool file. */
export function envelopeBlock(names: EnvelopeNames, sender: Buffer, recipients: Buffer[]): Buffer {
  const senderName = Buffer.from(names.sender, 'latin1');
  const recipientName = Buffer.from(names.recipient, 'latin1');
  const parts = envelopeLine(senderName, bareAddress(sender));
  for (const r of recipients) parts.push(...envelopeLine(recipientName, bareAddress(r)));
  return Buffer.concat(parts);
}

const COLON = Buffer.from(':');

/**
 * One header as it stood in the message: name, colon, the value with its
 * leading white space, CRLF. Milter peers fold continuation lines with bare LF;
 * those become CRLF so the file keeps one line-end convention.
 */
export function headerLine(name: Buffer, value: Buffer): Buffer {
  return Buffer.concat([name, COLON, toCrlf(value), CRLF]);
}

/** Bare LF → CRLF; a buffer without bare LF is returned as it is. */
export function toCrlf(b: Buffer): Buffer {
  let bare = 0;
  for (let i = b.indexOf(0x0a); i >= 0; i = b.indexOf(0x0a, i + 1)) if (i === 0 || b[i - 1] !== 0x0d) bare++;
  if (bare === 0) return b;
  const out = Buffer.allocUnsafe(b.length + bare);
  let o = 0;
  for (let i = 0; i < b.length; i++) {
    if (b[i] === 0x0a && (i === 0 || b[i - 1] !== 0x0d)) out[o++] = 0x0d;
    out[o++] = b[i];
  }
  return out;
}

export interface ParsedEnvelope {
  sender: Buffer;
  recipients: Buffer[];
  /** Offset of the first byte after the envelope lines: the message itself. */
  messageOffset: number;
}

/**
 * Reads the envelope lines at the start of a spool file (or of its first
 * bytes). Returns null when the file does not start with a sender line
 * followed by at least one recipient line.
 */
export function parseEnvelope(head: Buffer, names: EnvelopeNames = DEFAULT_ENVELOPE_NAMES): ParsedEnvelope | null {
  let off = 0;
  let sender: Buffer | undefined;
  const recipients: Buffer[] = [];
  for (;;) {
    const eol = head.indexOf(CRLF, off);
    if (eol < 0) break;
    const addr = envelopeValue(head.subarray(off, eol), sender === undefined ? names.sender : names.recipient);
    if (!addr) break;
    if (sender === undefined) sender = addr;
    else recipients.push(addr);
    off = eol + 2;
  }
  if (sender === undefined || recipients.length === 0) return null;
  return { sender, recipients, messageOffset: off };
}

/** "Name: <addr>" → addr, when the line has that field name (case-insensitive). */
function envelopeValue(line: Buffer, name: string): Buffer | null {
  const colon = line.indexOf(0x3a);
  if (colon !== name.length || line.toString('latin1', 0, colon).toLowerCase() !== name.toLowerCase()) return null;
  const rest = line.subarray(colon + 1);
  let s = 0;
  while (s < rest.length && isBlank(rest[s])) s++;
  const v = rest.subarray(s);
  if (v.length < 2 || v[0] !== LT || v[v.length - 1] !== GT) return null;
  return v.subarray(1, -1);
}
