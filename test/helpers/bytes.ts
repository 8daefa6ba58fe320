// Bytes written as strings in tests: b() keeps every char code as one byte
// (latin1, so "\xff" is the byte 0xff), u() encodes UTF-8.

export const b = (s: string): Buffer => Buffer.from(s, 'latin1');
export const u = (s: string): Buffer => Buffer.from(s, 'utf8');
