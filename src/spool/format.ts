// The spool file format, defined here and nowhere else:
//
//   X-REAL-MAILFROM: <sender>          (null sender: <>; absent for some imports)
//   X-REAL-RCPTTO: <recipient>         (one line per recipient, SMTP order)
//   X-BENNO-GW: <gateway>              (optional: multi-import, see GatewayGate)
//   <message headers as received>
//   <empty line>
//   <body as received>
//
// CRLF line ends throughout. Addresses and content stay bytes.
//
// The envelope lines are a trust boundary: the exporter, benno-smtp and Benno
// itself read them as the SMTP envelope. Two rules keep a sender from writing
// them:
//
// 1. An address is written as the MTA gave it, except that a character that
//    could end the line for some reader, hide or reorder text (the set in
//    ops/text.ts) is written as \x{HEX}, and a byte that is not UTF-8 as
//    \xHH. The written form is valid UTF-8 and contains none of those
//    characters, so writing it again changes nothing.
// 2. A field inside the message whose name is one of ours (any case, any
//    spacing before the colon, at any line start of the header section) is
//    renamed with UNTRUSTED_PREFIX, its value kept (HeaderGuard). This is the
//    only change the milter and benno-smtp make to message bytes, besides
//    the gateway line they add.
// 4. A message imported from a mailbox (IMAP) has no SMTP envelope to
//    copy, so its block holds only what is known (importedEnvelope).
// 3. The gateway line is ours only right after the envelope lines, written
//    by the milter (--gateway), or kept by benno-smtp from a client it
//    trusts. Anywhere else an X-BENNO-GW field is renamed by rule 2.
//
// Bounds: an address is at most MAX_ADDRESS_OCTETS as written, a field name at
// most MAX_FIELD_NAME characters (so an envelope line stays within RFC 5322's
// 998), and the envelope block at most MAX_ENVELOPE_OCTETS.

import { codePointName, escapedCodePoint, isUnsafeCodePoint } from '../ops/text';

export const CRLF = Buffer.from('\r\n');

export interface EnvelopeNames {
  sender: string;
  recipient: string;
}

export const DEFAULT_ENVELOPE_NAMES: EnvelopeNames = {
  sender: 'X-REAL-MAILFROM',
  recipient: 'X-REAL-RCPTTO',
};

/** Benno's multi-import header: which gateway or tenant a message came through. */
export const GATEWAY_NAME = 'X-BENNO-GW';

/** Longest gateway name. */
export const MAX_GATEWAY_NAME = 64;

/** Why a gateway name cannot be used, or null: one token that container rules can match. */
export function gatewayNameProblem(name: string): string | null {
  if (name.length === 0 || name.length > MAX_GATEWAY_NAME || !/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name)) {
    return `"${name}" is not a gateway name: 1 to ${MAX_GATEWAY_NAME} letters, digits, '.', '_' or '-', starting with a letter or digit`;
  }
  return null;
}

/** The gateway line that follows the envelope lines (multi-import: container rules match it). */
export function gatewayLine(name: string): Buffer {
  return Buffer.from(`${GATEWAY_NAME}: ${name}\r\n`, 'latin1');
}

/** Put before the name of a field in a message that carries one of our names. */
export const UNTRUSTED_PREFIX = 'X-Untrusted-';

/** Longest envelope or gateway field name. */
export const MAX_FIELD_NAME = 64;
/** Longest address as written (RFC 5321 allows 256 octets for a whole path; Postfix takes more). */
export const MAX_ADDRESS_OCTETS = 900;
/** Largest envelope block: about 25,000 recipients of 40 bytes. */
export const MAX_ENVELOPE_OCTETS = 1024 * 1024;
/** Most recipients per message, for the milter and benno-smtp alike. */
export const DEFAULT_MAX_RECIPIENTS = 10_000;

/** RFC 5322 field name (printable ASCII except colon), at most MAX_FIELD_NAME characters. */
export function isFieldName(name: string): boolean {
  return name.length <= MAX_FIELD_NAME && /^[\x21-\x39\x3b-\x7e]+$/.test(name);
}

/** Why a pair of envelope names cannot be used, or null when they can. */
export function envelopeNamesProblem(names: EnvelopeNames): string | null {
  for (const name of [names.sender, names.recipient]) {
    if (!isFieldName(name)) return `"${name}" is not a header field name of at most ${MAX_FIELD_NAME} characters`;
    if (name.toLowerCase() === GATEWAY_NAME.toLowerCase()) return `"${name}" is Benno's gateway header`;
    if (name.toLowerCase().startsWith(UNTRUSTED_PREFIX.toLowerCase())) return `"${name}" starts with ${UNTRUSTED_PREFIX}, the prefix of renamed fields`;
  }
  if (names.sender.toLowerCase() === names.recipient.toLowerCase()) return 'the sender and recipient header names must differ';
  return null;
}

/** Field names no message may carry, lower case, ready for HeaderGuard. */
export interface ReservedNames {
  bytes: Buffer[];
  longest: number;
}

/**
 * The field names no message may carry: the configured envelope names, the
 * default ones (Benno's own configuration lists them), and the gateway name.
 */
export function reservedNames(names: EnvelopeNames): ReservedNames {
  const all = [names.sender, names.recipient, DEFAULT_ENVELOPE_NAMES.sender, DEFAULT_ENVELOPE_NAMES.recipient, GATEWAY_NAME];
  const bytes = [...new Set(all.map((n) => n.toLowerCase()))].map((n) => Buffer.from(n, 'latin1'));
  return { bytes, longest: Math.max(...bytes.map((n) => n.length)) };
}

const LT = 0x3c;
const GT = 0x3e;
const BACKSLASH_X = Buffer.from('\\x');

function isBlank(b: number): boolean {
  return b === 0x20 || b === 0x09;
}

/**
 * The address from a MAIL or RCPT argument: "<a@example.org>" → a@example.org,
 * "<>" → empty. ESMTP parameters arrive as separate arguments and are not
 * part of it. The bytes inside the brackets are kept as they are.
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
  return arg.subarray(start, end);
}

/** Length of the valid UTF-8 sequence at b[i] and its code point, or null when the byte there starts none. */
function utf8At(b: Buffer, i: number): { length: number; cp: number } | null {
  const c = b[i];
  if (c < 0x80) return { length: 1, cp: c };
  const cont = (k: number, lo = 0x80, hi = 0xbf) => i + k < b.length && b[i + k] >= lo && b[i + k] <= hi;
  if (c >= 0xc2 && c <= 0xdf) return cont(1) ? { length: 2, cp: ((c & 0x1f) << 6) | (b[i + 1] & 0x3f) } : null;
  if (c >= 0xe0 && c <= 0xef) {
    const lo = c === 0xe0 ? 0xa0 : 0x80;
    const hi = c === 0xed ? 0x9f : 0xbf;
    if (!cont(1, lo, hi) || !cont(2)) return null;
    return { length: 3, cp: ((c & 0x0f) << 12) | ((b[i + 1] & 0x3f) << 6) | (b[i + 2] & 0x3f) };
  }
  if (c >= 0xf0 && c <= 0xf4) {
    const lo = c === 0xf0 ? 0x90 : 0x80;
    const hi = c === 0xf4 ? 0x8f : 0xbf;
    if (!cont(1, lo, hi) || !cont(2) || !cont(3)) return null;
    return { length: 4, cp: ((c & 0x07) << 18) | ((b[i + 1] & 0x3f) << 12) | ((b[i + 2] & 0x3f) << 6) | (b[i + 3] & 0x3f) };
  }
  return null;
}

/**
 * An address as it is written into an envelope line (rule 1 above). Returns
 * the same buffer when nothing needs escaping, which is every address of
 * ordinary mail.
 */
export function writtenAddress(address: Buffer): Buffer {
  const parts: Buffer[] = [];
  let copied = 0;
  for (let i = 0; i < address.length; ) {
    const c = address[i];
    // Printable ASCII, nearly every byte of every address: nothing to decode.
    if (c >= 0x20 && c < 0x7f) {
      i++;
      continue;
    }
    const ch = utf8At(address, i);
    if (ch && !isUnsafeCodePoint(ch.cp)) {
      i += ch.length;
      continue;
    }
    parts.push(address.subarray(copied, i));
    if (ch) parts.push(Buffer.from(escapedCodePoint(ch.cp), 'latin1'));
    else parts.push(BACKSLASH_X, Buffer.from(address[i].toString(16).toUpperCase().padStart(2, '0'), 'latin1'));
    i += ch ? ch.length : 1;
    copied = i;
  }
  if (copied === 0) return address;
  parts.push(address.subarray(copied));
  return Buffer.concat(parts);
}

/**
 * The first character of an address that benno-smtp refuses (an unsafe
 * character in valid UTF-8), named as "U+202E"; null when there is none.
 * Bytes that are not UTF-8 are not refused here: they are written as \xHH.
 */
export function unsafeCharacter(address: Buffer): string | null {
  for (let i = 0; i < address.length; ) {
    if (address[i] >= 0x20 && address[i] < 0x7f) {
      i++;
      continue;
    }
    const ch = utf8At(address, i);
    if (ch && isUnsafeCodePoint(ch.cp)) return codePointName(ch.cp);
    i += ch ? ch.length : 1;
  }
  return null;
}

function envelopeLine(name: Buffer, written: Buffer): Buffer {
  return Buffer.concat([name, Buffer.from(': <'), written, Buffer.from('>\r\n')]);
}

/** The envelope lines that open a spool file, from bare addresses (see EnvelopeBuilder for the checked way). */
export function envelopeBlock(names: EnvelopeNames, sender: Buffer, recipients: Buffer[]): Buffer {
  const senderName = Buffer.from(names.sender, 'latin1');
  const recipientName = Buffer.from(names.recipient, 'latin1');
  const lines = [envelopeLine(senderName, writtenAddress(bareAddress(sender)))];
  for (const r of recipients) lines.push(envelopeLine(recipientName, writtenAddress(bareAddress(r))));
  return Buffer.concat(lines);
}

/** Why an address or a recipient cannot go into an envelope block. */
export interface EnvelopeProblem {
  kind: 'address-too-long' | 'too-many-recipients' | 'envelope-too-large';
  text: string;
}

/**
 * Collects one message's envelope within the bounds, as the milter and
 * benno-smtp both need it. Addresses are stored written (escaped) and copied,
 * so a stored address never holds on to a larger network buffer.
 */
export class EnvelopeBuilder {
  /** Written; null: no sender line (an import whose envelope sender is not known). */
  private sender: Buffer | null = Buffer.alloc(0);
  private readonly recipients: Buffer[] = [];
  private size: number;
  private readonly senderName: Buffer;
  private readonly recipientName: Buffer;

  constructor(
    names: EnvelopeNames,
    private readonly maxRecipients: number,
  ) {
    this.senderName = Buffer.from(names.sender, 'latin1');
    this.recipientName = Buffer.from(names.recipient, 'latin1');
    this.size = this.senderName.length + 6;
  }

  get recipientCount(): number {
    return this.recipients.length;
  }

  /** Bytes the block will take. */
  get bytes(): number {
    return this.size;
  }

  /** The sender's address as written (empty when there is no sender line). */
  get writtenSender(): Buffer {
    return this.sender ?? Buffer.alloc(0);
  }

  /** Sets the sender (a bare address); returns the problem when it cannot be written. */
  setSender(address: Buffer): EnvelopeProblem | null {
    const written = writtenAddress(address);
    const problem = tooLong(written);
    if (problem) return problem;
    this.size += written.length - (this.sender?.length ?? -(this.senderName.length + 6));
    this.sender = Buffer.from(written);
    return null;
  }

  /** No sender line at all: the sender is not known (see importedEnvelope). */
  dropSender(): void {
    if (this.sender === null) return;
    this.size -= this.senderName.length + 6 + this.sender.length;
    this.sender = null;
  }

  /** Adds a recipient (a bare address); returns the problem when it cannot be added. */
  addRecipient(address: Buffer): EnvelopeProblem | null {
    if (this.recipients.length >= this.maxRecipients) {
      return { kind: 'too-many-recipients', text: `more than ${this.maxRecipients} recipients` };
    }
    const written = writtenAddress(address);
    const problem = tooLong(written);
    if (problem) return problem;
    const line = this.recipientName.length + 6 + written.length;
    if (this.size + line > MAX_ENVELOPE_OCTETS) {
      return { kind: 'envelope-too-large', text: `envelope larger than ${MAX_ENVELOPE_OCTETS} bytes` };
    }
    this.recipients.push(Buffer.from(written));
    this.size += line;
    return null;
  }

  block(): Buffer {
    const lines = this.sender === null ? [] : [envelopeLine(this.senderName, this.sender)];
    for (const r of this.recipients) lines.push(envelopeLine(this.recipientName, r));
    return Buffer.concat(lines, this.size);
  }
}

/**
 * Rule 4: the envelope block of a message imported from a mailbox. Nothing
 * is guessed, because an auditor reads these lines as the SMTP envelope:
 *
 * - The sender line is the address of the message's Return-Path field,
 *   which the delivering server wrote (the first one: the last delivery),
 *   <> included. A message without one, such as a copy a mail client
 *   stored in Sent, has no sender line: From is the author, not the
 *   envelope sender, and <> would say it was a bounce.
 * - One recipient line per address of the account (benno-imapuser -e):
 *   the mailbox is theirs, which is how Benno shows its owner a message
 *   that reached the account only as Bcc.
 *
 * returnPathField is the message's header section, or just its
 * Return-Path fields (what IMAP's BODY[HEADER.FIELDS (RETURN-PATH)]
 * gives); null when the caller has neither. Returns the block, or the
 * problem when an address cannot be written (too long, too many).
 */
export function importedEnvelope(
  names: EnvelopeNames,
  returnPathField: Buffer | null,
  addresses: Buffer[],
  maxRecipients = DEFAULT_MAX_RECIPIENTS,
): { block: Buffer } | EnvelopeProblem {
  // benno-imapuser gives every account an address; an account without one must not be imported into nobody's view.
  if (addresses.length === 0) throw new RangeError('an imported message needs at least one address of its account');
  const envelope = new EnvelopeBuilder(names, maxRecipients);
  const sender = returnPathField && returnPath(returnPathField);
  const problem = sender ? envelope.setSender(sender) : (envelope.dropSender(), null);
  if (problem) return problem;
  for (const address of addresses) {
    const p = envelope.addRecipient(address);
    if (p) return p;
  }
  return { block: envelope.block() };
}

const RETURN_PATH = Buffer.from('return-path:', 'latin1');

/**
 * The address of the first Return-Path field in a header section ("<>"
 * gives an empty buffer); null when there is none, or when its value is not
 * one <address> (a malformed field is no fact about the envelope).
 */
export function returnPath(header: Buffer): Buffer | null {
  let at = 0;
  while (at < header.length) {
    let eol = header.indexOf(LF, at);
    if (eol < 0) eol = header.length;
    if (eol === at || (eol === at + 1 && header[at] === CR)) return null; // the empty line: end of the header section
    if (startsWithName(header, at, RETURN_PATH)) {
      // The field with its continuation lines, unfolded.
      let end = eol;
      while (end + 1 < header.length && isBlank(header[end + 1])) {
        const next = header.indexOf(LF, end + 1);
        end = next < 0 ? header.length : next;
      }
      const value = trimBlanks(unfold(header.subarray(at + RETURN_PATH.length, end)));
      if (value.length < 2 || value[0] !== LT || value[value.length - 1] !== GT) return null;
      return Buffer.from(value.subarray(1, -1));
    }
    at = eol + 1;
  }
  return null;
}

function startsWithName(buf: Buffer, at: number, lowerName: Buffer): boolean {
  if (buf.length - at < lowerName.length) return false;
  for (let k = 0; k < lowerName.length; k++) {
    const c = buf[at + k];
    if ((c >= 0x41 && c <= 0x5a ? c | 0x20 : c) !== lowerName[k]) return false;
  }
  return true;
}

/** Folding removed: CR and LF out, the blanks that follow them kept (RFC 5322 2.2.3). */
function unfold(b: Buffer): Buffer {
  return b.includes(LF) || b.includes(CR) ? Buffer.from(b.filter((c) => c !== CR && c !== LF)) : b;
}

function tooLong(written: Buffer): EnvelopeProblem | null {
  if (written.length <= MAX_ADDRESS_OCTETS) return null;
  return { kind: 'address-too-long', text: `an address longer than ${MAX_ADDRESS_OCTETS} bytes` };
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

const CR = 0x0d;
const LF = 0x0a;
const PREFIX = Buffer.from(UNTRUSTED_PREFIX, 'latin1');
const EMPTY = Buffer.alloc(0);

/**
 * Rule 2: renames fields that carry one of our names, in a stream of header
 * bytes. A line starts after LF, and after a CR that no LF follows (some
 * readers end lines there); a field is ours when its name, in any case, is
 * followed by a colon, a space or a tab. The header section ends at the
 * first empty line after CRLF (RFC 5322), or, for the milter, which gets the
 * headers one by one, when the caller says so. Bytes after the end pass
 * through untouched and without copying.
 *
 * At most the length of the longest name is held back between chunks, so the
 * guard costs no memory worth counting.
 */
export class HeaderGuard {
  private readonly names: Buffer[];
  private readonly longest: number;
  /** Bytes of a line start not yet decided on; null when not at a line start. */
  private held: Buffer | null = EMPTY;
  /** The line start being decided came after CRLF (or is the first line): an empty line there ends the section. */
  private afterCrlf = true;
  private pendingCr = false;
  private ended = false;
  /** push() had to insert or carry over bytes, so its output is not its input. */
  private changed = false;
  /** Fields renamed so far. */
  renamed = 0;

  constructor(
    reserved: ReservedNames,
    private readonly endAtEmptyLine: boolean,
  ) {
    this.names = reserved.bytes;
    this.longest = reserved.longest;
  }

  /** True once the header section has ended; from then on push() returns its input. */
  get done(): boolean {
    return this.ended;
  }

  /** The bytes to write for this chunk; a few bytes at its end may be held back for the next. */
  push(chunk: Buffer): Buffer {
    if (this.ended || chunk.length === 0) return chunk;
    this.changed = false;
    // Filled only when something changes; an untouched chunk is returned as it is.
    const out: Buffer[] = [];
    let from = 0; // start of the chunk's bytes not yet in out
    let i = 0;
    while (i < chunk.length && !this.ended) {
      if (this.pendingCr) {
        // CR LF: the line starts after the LF; a lone CR starts it here.
        this.pendingCr = false;
        const crlf = chunk[i] === LF;
        if (crlf) i++;
        this.startLine(crlf);
        continue;
      }
      if (this.held !== null) {
        // The common case first: nothing held, and the line plainly not one of ours.
        if (this.held.length === 0 && this.plainLine(chunk, i)) {
          this.held = null;
          continue;
        }
        out.push(chunk.subarray(from, i));
        from = i;
        if (this.decide(chunk, i, out)) return Buffer.concat(out);
        continue;
      }
      // Inside a line: jump to its end.
      const cr = chunk.indexOf(CR, i);
      const lf = chunk.indexOf(LF, i);
      const eol = cr < 0 ? lf : lf < 0 ? cr : Math.min(cr, lf);
      if (eol < 0) break;
      i = eol + 1;
      if (chunk[eol] === CR) this.pendingCr = true;
      else this.startLine(false);
    }
    // Nothing renamed and nothing carried over from the last chunk: the chunk as it is.
    if (!this.changed) return chunk;
    out.push(chunk.subarray(from));
    return Buffer.concat(out);
  }

  /** Ends the header section: returns what was held back. */
  end(): Buffer {
    const rest = this.held ?? Buffer.alloc(0);
    this.held = null;
    this.ended = true;
    return rest;
  }

  private startLine(afterCrlf: boolean): void {
    this.held = EMPTY;
    this.afterCrlf = afterCrlf;
  }

  /**
   * Decides the line start at chunk[i], together with what is held. Pushes
   * the held bytes (renamed or not) to out and leaves the chunk's bytes to the
   * caller's scan; or, when the chunk ends before a decision, holds the rest
   * of it and returns true.
   */
  private decide(chunk: Buffer, i: number, out: Buffer[]): boolean {
    const held = this.held!;
    const take = Math.min(chunk.length - i, this.longest + 1 - held.length);
    const view = held.length === 0 ? chunk.subarray(i, i + take) : Buffer.concat([held, chunk.subarray(i, i + take)]);
    if (view[0] === CR || view[0] === LF) {
      // An empty line, or the start of a line end.
      if (this.endAtEmptyLine && this.afterCrlf && view[0] === CR) {
        if (view.length < 2) return this.hold(view);
        if (view[1] === LF) this.ended = true;
      }
      this.held = null;
      if (held.length > 0) {
        // The held CR, not followed by LF: a line end, the next byte starts a line.
        out.push(held);
        this.changed = true;
        this.pendingCr = !this.ended;
      }
      return false;
    }
    const verdict = this.classify(view);
    if (verdict === 'more' && view.length <= this.longest) return this.hold(view);
    this.held = null;
    if (verdict === 'ours') {
      this.renamed++;
      out.push(PREFIX);
      this.changed = true;
    }
    if (held.length > 0) {
      out.push(held);
      this.changed = true;
    }
    return false;
  }

  private hold(view: Buffer): true {
    this.held = Buffer.from(view);
    return true;
  }

  /**
   * True when the line starting at chunk[i] can be passed on at once: the
   * chunk holds enough of it to see that it is neither an empty line nor
   * one of our fields. (Without allocating: this runs for every header line.)
   */
  private plainLine(chunk: Buffer, i: number): boolean {
    const c = chunk[i];
    if (c === CR || c === LF || chunk.length - i <= this.longest) return false;
    return this.classify(chunk, i, this.longest + 1) === 'no';
  }

  /** 'ours' when the bytes start with one of our names and a colon or blank; 'more' when they might. */
  private classify(buf: Buffer, at = 0, length = buf.length - at): 'ours' | 'more' | 'no' {
    let more = false;
    for (const name of this.names) {
      const n = Math.min(length, name.length);
      let same = true;
      for (let k = 0; k < n && same; k++) {
        let c = buf[at + k];
        if (c >= 0x41 && c <= 0x5a) c |= 0x20;
        same = c === name[k];
      }
      if (!same) continue;
      if (length <= name.length) more = true;
      else if (buf[at + name.length] === 0x3a || isBlank(buf[at + name.length])) return 'ours';
    }
    return more ? 'more' : 'no';
  }
}

/** Longest leading gateway line benno-smtp keeps (RFC 5322's line length). */
const MAX_GATEWAY_LINE = 1000;
const GATEWAY_PREFIX = Buffer.from(`${GATEWAY_NAME.toLowerCase()}:`, 'latin1');

/**
 * The start of a message from a client benno-smtp trusts (rule 3): a gateway
 * line the message starts with is kept, as our exporter sends the milter's;
 * a message without one gets the configured one, if any, in its place.
 * Everything else goes through the guard, which renames any other X-BENNO-GW
 * field. Holds at most one line.
 */
export class GatewayGate {
  /** Bytes of the first line not yet decided on; null once decided. */
  private head: Buffer | null = EMPTY;
  /** The value of the gateway line the message got (kept or added); null when none. */
  gateway: Buffer | null = null;

  constructor(
    private readonly guard: HeaderGuard,
    private readonly fallback: string | null,
  ) {}

  push(chunk: Buffer): Buffer {
    if (this.head === null) return this.guard.push(chunk);
    const head = this.head.length === 0 ? chunk : Buffer.concat([this.head, chunk]);
    const out = this.decide(head, false);
    if (out === null) this.head = Buffer.from(head);
    return out ?? EMPTY;
  }

  /** Ends the header section: what is held, through the guard. */
  end(): Buffer {
    const head = this.head;
    if (head === null) return this.guard.end();
    return Buffer.concat([this.decide(head, true)!, this.guard.end()]);
  }

  /** The bytes to write once the first line is decided; null while it is not. */
  private decide(head: Buffer, final: boolean): Buffer | null {
    const n = Math.min(head.length, GATEWAY_PREFIX.length);
    let same = true;
    for (let k = 0; k < n && same; k++) same = (head[k] >= 0x41 && head[k] <= 0x5a ? head[k] | 0x20 : head[k]) === GATEWAY_PREFIX[k];
    if (same) {
      const lf = head.indexOf(LF);
      if (lf >= 0 && lf < MAX_GATEWAY_LINE && n === GATEWAY_PREFIX.length) {
        this.head = null;
        this.gateway = Buffer.from(trimBlanks(head.subarray(GATEWAY_PREFIX.length, head[lf - 1] === CR ? lf - 1 : lf)));
        return Buffer.concat([head.subarray(0, lf + 1), this.guard.push(head.subarray(lf + 1))]);
      }
      if (!final && head.length < MAX_GATEWAY_LINE) return null;
    }
    // No gateway line of its own (or none we keep, which the guard renames): the configured one goes first.
    this.head = null;
    // Without a configured line the first chunk goes on as the guard returns it, uncopied.
    if (this.fallback === null) return this.guard.push(head);
    this.gateway = Buffer.from(this.fallback, 'latin1');
    return Buffer.concat([gatewayLine(this.fallback), this.guard.push(head)]);
  }
}

function trimBlanks(b: Buffer): Buffer {
  let from = 0;
  let to = b.length;
  while (from < to && isBlank(b[from])) from++;
  while (to > from && isBlank(b[to - 1])) to--;
  return b.subarray(from, to);
}

export interface ParsedEnvelope {
  /** Addresses as written in the file; sender null: the file has no sender line (an import, see importedEnvelope). */
  sender: Buffer | null;
  recipients: Buffer[];
  /** Offset of the first byte after the envelope lines: the message itself. */
  messageOffset: number;
}

/**
 * Reads the envelope block at the start of a spool file (or of its first
 * bytes), strictly as it is written: one "Sender: <addr>" line (which an
 * import may lack), then one or more "Recipient: <addr>" lines, names
 * exactly as configured, CRLF. Returns null when the file does not start
 * that way, or when the block is larger than MAX_ENVELOPE_OCTETS.
 */
export function parseEnvelope(head: Buffer, names: EnvelopeNames = DEFAULT_ENVELOPE_NAMES): ParsedEnvelope | null {
  const senderName = Buffer.from(`${names.sender}: <`, 'latin1');
  const recipientName = Buffer.from(`${names.recipient}: <`, 'latin1');
  let off = 0;
  let sender: Buffer | null = null;
  const recipients: Buffer[] = [];
  while (off < head.length) {
    const eol = head.indexOf(CRLF, off);
    if (eol < 0) break;
    const line = head.subarray(off, eol);
    const first = off === 0 ? envelopeValue(line, senderName) : null;
    const addr = first ?? envelopeValue(line, recipientName);
    if (!addr) break;
    if (first) sender = addr;
    else recipients.push(addr);
    off = eol + 2;
    // Larger than we ever write: taking part of it would archive the message with part of its envelope.
    if (off > MAX_ENVELOPE_OCTETS) return null;
  }
  if (recipients.length === 0) return null;
  return { sender, recipients, messageOffset: off };
}

/** "Name: <addr>" → addr, when the line starts exactly with that prefix and ends with ">". */
function envelopeValue(line: Buffer, prefix: Buffer): Buffer | null {
  if (line.length < prefix.length + 1 || !line.subarray(0, prefix.length).equals(prefix) || line[line.length - 1] !== GT) return null;
  const addr = line.subarray(prefix.length, -1);
  return addr.includes(CR) || addr.includes(LF) ? null : addr;
}
