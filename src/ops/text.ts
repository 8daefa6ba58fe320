// Characters a peer must not be able to slip into a line we write, whether a
// log line or an envelope line of a spool file. One definition, used by the
// logger, the spool format and the SMTP receiver.
//
// The set: C0 controls and DEL (CR, LF, but also VT, FF and the separators
// FS, GS, RS, which some readers take as line breaks), C1 controls (NEL is
// a line break for Unicode-aware readers, CSI an escape for terminals), the
// Unicode line and paragraph separators U+2028 and U+2029, the invisible
// characters U+200B, U+2060 and U+FEFF, and the bidirectional controls that
// reorder what a reader sees (U+061C, U+200E, U+200F, U+202A–U+202E,
// U+2066–U+2069, as in CVE-2021-42574).

export const UNSAFE_CHARACTER = /[\x00-\x1f\x7f-\x9f\u061c\u200b\u200e\u200f\u2028\u2029\u202a-\u202e\u2060\u2066-\u2069\ufeff]/;
const UNSAFE_GLOBAL = new RegExp(UNSAFE_CHARACTER.source, 'g');

/** Whether a code point is in the unsafe set (the same set as UNSAFE_CHARACTER, without building a string). */
export function isUnsafeCodePoint(cp: number): boolean {
  if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f)) return true;
  if (cp < 0x61c) return false;
  return (
    cp === 0x61c ||
    cp === 0x200b ||
    cp === 0x200e ||
    cp === 0x200f ||
    cp === 0x2028 ||
    cp === 0x2029 ||
    (cp >= 0x202a && cp <= 0x202e) ||
    cp === 0x2060 ||
    (cp >= 0x2066 && cp <= 0x2069) ||
    cp === 0xfeff
  );
}

/** "\x{2028}": how an unsafe character is written wherever we write one (the style of RFC 6533). */
export function escapedCodePoint(cp: number): string {
  return `\\x{${cp.toString(16).toUpperCase().padStart(2, '0')}}`;
}

/** "U+202E", for messages that name a character. */
export function codePointName(cp: number): string {
  return `U+${cp.toString(16).toUpperCase().padStart(4, '0')}`;
}

/**
 * Text from a peer made safe for one log line: every unsafe character
 * becomes \x{HEX}, so nothing a peer sends can split a line, forge one or
 * play tricks on the terminal that shows it.
 */
export function printable(s: string): string {
  return s.replace(UNSAFE_GLOBAL, (c) => escapedCodePoint(c.codePointAt(0)!));
}
