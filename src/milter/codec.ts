// The milter wire format, both directions: framing (uint32 big-endian length
// of command byte + data), the payload of every MTA command, and the filter's
// replies. No I/O here; the session and the test/benchmark client build on it.

import * as C from './constants';

/** A packet that breaks the protocol; the connection that sent it is closed. */
export class MilterProtocolError extends Error {
  override name = 'MilterProtocolError';
}

export interface Packet {
  cmd: number;
  data: Buffer;
}

/**
 * Largest packet (command byte + data) a peer may send us. Postfix sends body
 * chunks of 65,536 bytes, but one header is one packet and Postfix allows
 * headers up to header_size_limit (100 KiB by default), so the bound sits well
 * above both while still capping what one connection can make us buffer.
 */
export const DEFAULT_MAX_PACKET = 1024 * 1024;

/**
 * Splits a byte stream into packets. Handles packets split over several reads
 * and several packets in one read; a packet inside one read is returned as a
 * view of it, without copying.
 */
export class PacketDecoder {
  private chunks: Buffer[] = [];
  private offset = 0; // consumed bytes of chunks[0]
  private buffered = 0; // unconsumed bytes over all chunks

  constructor(private readonly maxPacket = DEFAULT_MAX_PACKET) {}

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.buffered += chunk.length;
  }

  /** Bytes received but not yet returned as packets. */
  get pending(): number {
    return this.buffered;
  }

  /** The next complete packet, or null until more bytes arrive. */
  next(): Packet | null {
    if (this.buffered < 4) return null;
    const length = this.peekLength();
    if (length === 0) throw new MilterProtocolError('packet of length 0 (no command byte)');
    if (length > this.maxPacket) {
      throw new MilterProtocolError(`packet of ${length} bytes exceeds the limit of ${this.maxPacket}`);
    }
    if (this.buffered < 4 + length) return null;
    const raw = this.take(4 + length);
    return { cmd: raw[4], data: raw.subarray(5) };
  }

  private peekLength(): number {
    const first = this.chunks[0];
    if (first.length - this.offset >= 4) return first.readUInt32BE(this.offset);
    const head = Buffer.alloc(4);
    let filled = 0;
    for (let i = 0, off = this.offset; filled < 4; i++, off = 0) {
      filled += this.chunks[i].copy(head, filled, off, Math.min(this.chunks[i].length, off + 4 - filled));
    }
    return head.readUInt32BE(0);
  }

  private take(n: number): Buffer {
    const first = this.chunks[0];
    if (first.length - this.offset >= n) {
      const view = first.subarray(this.offset, this.offset + n);
      this.advance(n);
      return view;
    }
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      const chunk = this.chunks[0];
      const count = Math.min(chunk.length - this.offset, n - filled);
      chunk.copy(out, filled, this.offset, this.offset + count);
      filled += count;
      this.advance(count);
    }
    return out;
  }

  private advance(n: number): void {
    this.offset += n;
    this.buffered -= n;
    if (this.offset === this.chunks[0].length) {
      this.chunks.shift();
      this.offset = 0;
    }
  }
}

// ---------------------------------------------------------------- MTA → filter

export type MilterCommand =
  | { type: 'optneg'; version: number; actions: number; protocol: number; macroLists: Map<number, string> }
  | { type: 'macro'; stage: number; macros: Map<string, string> }
  | { type: 'connect'; hostname: Buffer; family: number; port: number; address: Buffer }
  | { type: 'helo'; name: Buffer }
  | { type: 'mail'; args: Buffer[] }
  | { type: 'rcpt'; args: Buffer[] }
  | { type: 'data' }
  | { type: 'header'; name: Buffer; value: Buffer }
  | { type: 'eoh' }
  | { type: 'body'; chunk: Buffer }
  | { type: 'eom'; chunk: Buffer }
  | { type: 'abort' }
  | { type: 'quit' }
  | { type: 'quit_nc' }
  | { type: 'unknown'; command: Buffer };

/**
 * Splits NUL-terminated strings. A payload must end with its terminator; the
 * strings are views of the payload.
 */
export function splitStrings(data: Buffer, what: string): Buffer[] {
  if (data.length === 0 || data[data.length - 1] !== 0) {
    throw new MilterProtocolError(`${what}: string not NUL-terminated`);
  }
  const out: Buffer[] = [];
  let start = 0;
  for (;;) {
    const end = data.indexOf(0, start);
    out.push(data.subarray(start, end));
    start = end + 1;
    if (start >= data.length) return out;
  }
}

/** Macro names arrive as "i" or "{i}"; one spelling makes lookups simple. */
export function macroName(name: string): string {
  return name.length > 2 && name.startsWith('{') && name.endsWith('}') ? name.slice(1, -1) : name;
}

/** Commands that carry nothing: one object each, shared by every decode. */
const BARE_COMMANDS = new Map<number, Readonly<MilterCommand>>([
  [C.SMFIC_DATA, { type: 'data' }],
  [C.SMFIC_EOH, { type: 'eoh' }],
  [C.SMFIC_ABORT, { type: 'abort' }],
  [C.SMFIC_QUIT, { type: 'quit' }],
  [C.SMFIC_QUIT_NC, { type: 'quit_nc' }],
]);

export function decodeCommand(packet: Packet): MilterCommand {
  const { cmd, data } = packet;
  const what = C.commandName(cmd);
  switch (cmd) {
    case C.SMFIC_OPTNEG: {
      if (data.length < 12) throw new MilterProtocolError(`${what}: ${data.length} bytes, need 12`);
      return {
        type: 'optneg',
        version: data.readUInt32BE(0),
        actions: data.readUInt32BE(4),
        protocol: data.readUInt32BE(8),
        macroLists: decodeMacroLists(data.subarray(12), what),
      };
    }
    case C.SMFIC_MACRO: {
      if (data.length < 1) throw new MilterProtocolError(`${what}: no stage byte`);
      const macros = new Map<string, string>();
      if (data.length > 1) {
        const parts = splitStrings(data.subarray(1), what);
        // An odd count means a name without value; libmilter drops it, so do we.
        for (let i = 0; i + 1 < parts.length; i += 2) {
          macros.set(macroName(parts[i].toString('latin1')), parts[i + 1].toString('latin1'));
        }
      }
      return { type: 'macro', stage: data[0], macros };
    }
    case C.SMFIC_CONNECT: {
      const nul = data.indexOf(0);
      if (nul < 0 || nul + 1 >= data.length) throw new MilterProtocolError(`${what}: truncated`);
      const hostname = data.subarray(0, nul);
      const family = data[nul + 1];
      if (family === C.SMFIA_UNKNOWN) {
        return { type: 'connect', hostname, family, port: 0, address: Buffer.alloc(0) };
      }
      if (data.length < nul + 4) throw new MilterProtocolError(`${what}: truncated port`);
      const port = data.readUInt16BE(nul + 2);
      const [address] = splitStrings(data.subarray(nul + 4), what);
      return { type: 'connect', hostname, family, port, address };
    }
    case C.SMFIC_HELO:
      return { type: 'helo', name: splitStrings(data, what)[0] };
    case C.SMFIC_MAIL:
      return { type: 'mail', args: splitStrings(data, what) };
    case C.SMFIC_RCPT:
      return { type: 'rcpt', args: splitStrings(data, what) };
    case C.SMFIC_HEADER: {
      const parts = splitStrings(data, what);
      if (parts.length !== 2) throw new MilterProtocolError(`${what}: ${parts.length} strings, need name and value`);
      return { type: 'header', name: parts[0], value: parts[1] };
    }
    case C.SMFIC_BODY:
      return { type: 'body', chunk: data };
    case C.SMFIC_BODYEOB:
      return { type: 'eom', chunk: data };
    case C.SMFIC_UNKNOWN:
      return { type: 'unknown', command: data.length > 0 && data[data.length - 1] === 0 ? data.subarray(0, -1) : data };
    default: {
      const bare = BARE_COMMANDS.get(cmd);
      if (bare) return bare;
      throw new MilterProtocolError(`unknown ${what}`);
    }
  }
}

function decodeMacroLists(data: Buffer, what: string): Map<number, string> {
  const lists = new Map<number, string>();
  let off = 0;
  while (off + 4 < data.length) {
    const stage = data.readUInt32BE(off);
    const end = data.indexOf(0, off + 4);
    if (end < 0) throw new MilterProtocolError(`${what}: macro list not NUL-terminated`);
    lists.set(stage, data.toString('latin1', off + 4, end));
    off = end + 1;
  }
  return lists;
}

// ---------------------------------------------------------------- encoding

/** One packet: length, command byte, the parts concatenated. */
export function encodePacket(cmd: number, ...parts: Buffer[]): Buffer {
  let size = 0;
  for (const p of parts) size += p.length;
  const out = Buffer.allocUnsafe(5 + size);
  out.writeUInt32BE(size + 1, 0);
  out[4] = cmd;
  let off = 5;
  for (const p of parts) off += p.copy(out, off);
  return out;
}

/** A NUL-terminated string. */
export function cstr(s: string | Buffer): Buffer {
  const b = typeof s === 'string' ? Buffer.from(s, 'latin1') : s;
  const out = Buffer.allocUnsafe(b.length + 1);
  b.copy(out, 0);
  out[b.length] = 0;
  return out;
}

function uint32s(...values: number[]): Buffer {
  const out = Buffer.allocUnsafe(4 * values.length);
  values.forEach((v, i) => out.writeUInt32BE(v >>> 0, 4 * i));
  return out;
}

/** SMFIC_OPTNEG from the MTA, or SMFIR_OPTNEG from the filter with optional macro lists. */
export function encodeOptneg(version: number, actions: number, protocol: number, macroLists?: Map<number, string>): Buffer {
  const parts: Buffer[] = [uint32s(version, actions, protocol)];
  for (const [stage, names] of macroLists ?? []) parts.push(uint32s(stage), cstr(names));
  return encodePacket(C.SMFIC_OPTNEG, ...parts);
}

export function encodeMacros(stage: number, macros: Record<string, string>): Buffer {
  const parts: Buffer[] = [Buffer.from([stage])];
  for (const [name, value] of Object.entries(macros)) parts.push(cstr(name), cstr(value));
  return encodePacket(C.SMFIC_MACRO, ...parts);
}

export function encodeConnect(hostname: string, family: number, port: number, address: string): Buffer {
  if (family === C.SMFIA_UNKNOWN) return encodePacket(C.SMFIC_CONNECT, cstr(hostname), Buffer.from([family]));
  const p = Buffer.allocUnsafe(2);
  p.writeUInt16BE(port, 0);
  return encodePacket(C.SMFIC_CONNECT, cstr(hostname), Buffer.from([family]), p, cstr(address));
}

/** MAIL, RCPT, HELO: a list of NUL-terminated strings. */
export function encodeStrings(cmd: number, args: (string | Buffer)[]): Buffer {
  return encodePacket(cmd, ...args.map(cstr));
}

export function encodeHeader(name: string | Buffer, value: string | Buffer): Buffer {
  return encodePacket(C.SMFIC_HEADER, cstr(name), cstr(value));
}

// ---------------------------------------------------------------- replies

export type MilterReply =
  | { type: 'continue' }
  | { type: 'accept' }
  | { type: 'reject' }
  | { type: 'tempfail' }
  | { type: 'discard' }
  /** SMTP reply text such as "451 4.3.0 Try again later" (4xx or 5xx). */
  | { type: 'replycode'; text: string };

export const CONTINUE: MilterReply = { type: 'continue' };
export const ACCEPT: MilterReply = { type: 'accept' };
export const TEMPFAIL: MilterReply = { type: 'tempfail' };

const REPLY_CMD: Record<Exclude<MilterReply['type'], 'replycode'>, number> = {
  continue: C.SMFIR_CONTINUE,
  accept: C.SMFIR_ACCEPT,
  reject: C.SMFIR_REJECT,
  tempfail: C.SMFIR_TEMPFAIL,
  discard: C.SMFIR_DISCARD,
};

/** The replies that carry nothing, by command byte, for the MTA side. */
const BARE_REPLIES = new Map<number, MilterReply>(
  (Object.entries(REPLY_CMD) as [Exclude<MilterReply['type'], 'replycode'>, number][]).map(([type, cmd]) => [cmd, { type }]),
);

const FIXED_REPLIES = new Map<number, Buffer>(
  Object.values(REPLY_CMD).map((cmd) => [cmd, encodePacket(cmd)]),
);

export function encodeReply(reply: MilterReply): Buffer {
  if (reply.type === 'replycode') {
    if (!/^[45]\d\d[ -]/.test(reply.text) || /[\0\r\n]/.test(reply.text)) {
      throw new Error(`SMFIR_REPLYCODE text must be one 4xx/5xx line: ${JSON.stringify(reply.text)}`);
    }
    return encodePacket(C.SMFIR_REPLYCODE, cstr(reply.text));
  }
  return FIXED_REPLIES.get(REPLY_CMD[reply.type])!;
}

/** Decodes a filter reply (MTA side: the test client and benchmarks). */
export function decodeReply(packet: Packet):
  | MilterReply
  | { type: 'optneg'; version: number; actions: number; protocol: number; macroLists: Map<number, string> }
  | { type: 'progress' }
  | { type: 'other'; cmd: number; data: Buffer } {
  switch (packet.cmd) {
    case C.SMFIR_OPTNEG: {
      const c = decodeCommand(packet);
      if (c.type !== 'optneg') throw new MilterProtocolError('bad SMFIR_OPTNEG');
      return c;
    }
    case C.SMFIR_PROGRESS:
      return { type: 'progress' };
    case C.SMFIR_REPLYCODE:
      return { type: 'replycode', text: splitStrings(packet.data, 'SMFIR_REPLYCODE')[0].toString('latin1') };
    default:
      return BARE_REPLIES.get(packet.cmd) ?? { type: 'other', cmd: packet.cmd, data: packet.data };
  }
}
