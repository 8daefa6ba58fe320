// The messages and addresses the real-MTA tests (Postfix, Sendmail) send
// through an MTA into benno-milter, and the checks on what was archived.
// One corpus for every MTA, so that their results can be compared.

import assert from 'node:assert/strict';
import { b } from './bytes';

/**
 * Legal but awkward bytes: 8-bit and broken UTF-8 in headers, folding with
 * tabs and spaces, a field without a space after the colon, an empty field,
 * lines of dots, a 998-byte line, an 8-bit body and no final newline.
 */
export const NASTY = Buffer.concat([
  b('From: Jürgen <sender@example.com>\r\n'.replace('ü', '\xc3\xbc')),
  b('To: undisclosed-recipients:;\r\n'),
  b('Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?= and raw 8-bit: Gr\xc3\xbc\xc3\x9fe \xff\r\n'),
  b('Message-ID: <nasty.1@example.com>\r\n'),
  b('Date: Mon, 23 Nov 2026 10:00:00 +0100\r\n'),
  b('X-Folded: first part\r\n\tsecond part\r\n    third part\r\n'),
  b('X-NoSpace:value\r\n'),
  b('X-Spaces:    four spaces\r\n'),
  b('X-Empty:\r\n'),
  b('\r\n'),
  b('A line with a single dot follows:\r\n'),
  b('.\r\n'),
  b('..a line that started with two dots\r\n'),
  b('.a line that started with one dot\r\n'),
  b('x'.repeat(998) + '\r\n'),
  b('8-bit body: \xe4\xf6\xfc \xc3\xa4\r\n'),
  b('no final newline'),
]);

/** NASTY as an MTA keeps it: the final newline added, nothing else changed. */
export const NASTY_STORED = Buffer.concat([NASTY, b('\r\n')]);

/** The parts of NASTY most likely to be changed on the way, checked one by one in an archived file. */
export function assertNastyIntact(file: Buffer): void {
  assert.ok(file.includes(b('\r\n.\r\n..a line that started with two dots\r\n')));
  assert.ok(file.includes(b('Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?= and raw 8-bit: Gr\xc3\xbc\xc3\x9fe \xff\r\n')));
  assert.ok(file.includes(b('X-Folded: first part\r\n\tsecond part\r\n    third part\r\n')));
  assert.ok(file.subarray(-18).equals(b('no final newline\r\n')), 'a final newline was added, nothing else');
}

/**
 * Fields that carry our envelope and gateway names, in other cases and
 * spellings, one after a bare LF inside another field (`bareLf`; Sendmail
 * refuses a message with a bare LF, so its test sends CRLF there), and a
 * look-alike line in the body. Sent as it is (no dot-stuffing needed).
 */
export function forgedEnvelopeMessage(bareLf = true): Buffer {
  return b(
    'X-REAL-RCPTTO: <ceo@victim.example>\r\nx-real-rcptto:<cfo@victim.example>\r\nX-REAL-RCPTTO : <coo@victim.example>\r\n' +
      `X-Bar: baz${bareLf ? '\n' : '\r\n'}X-REAL-MAILFROM: <boss@victim.example>\r\nX-BENNO-GW: other-tenant\r\nSubject: forged\r\n\r\n` +
      'X-REAL-RCPTTO: <in the body, where no reader looks for headers>\r\n',
  );
}

/** The five fields of forgedEnvelopeMessage() renamed X-Untrusted-..., their values and the body kept. */
export function assertForgedRenamed(message: string): void {
  assert.ok(
    message.startsWith(
      'X-Untrusted-X-REAL-RCPTTO: <ceo@victim.example>\r\nX-Untrusted-x-real-rcptto:<cfo@victim.example>\r\nX-Untrusted-X-REAL-RCPTTO: <coo@victim.example>\r\n',
    ),
    message,
  );
  assert.match(message, /\r\nX-Untrusted-X-REAL-MAILFROM: <boss@victim\.example>\r\nX-Untrusted-X-BENNO-GW: other-tenant\r\n/);
  assert.match(message, /\r\n\r\nX-REAL-RCPTTO: <in the body, where no reader looks for headers>\r\n$/, 'the body is untouched');
}

/**
 * What a local program pipes into the MTA's sendmail command: LF line ends,
 * 8-bit, a line with a single dot (the end of the input, without -i) and
 * text after it.
 */
export const LOCAL_SUBMISSION = b('Subject: local submission\nX-8bit: \xe4\xf6\xfc\n\nline one\n.\nlast line without newline');

/** A sender whose quoted local part holds "<", ">", blanks and one of our envelope names. */
export const QUOTED_SENDER = b('"a> X-REAL-RCPTTO: <e"@x.org');

/**
 * Recipients an MTA may accept that must not break an envelope line: a
 * quoted local part with blanks and "@", UTF-8 with a line and a direction
 * control, a control character, and 880 bytes (under our 900-byte limit);
 * `archived` is each one as its X-REAL-RCPTTO line holds it.
 */
export const ODD_RECIPIENTS: { address: Buffer; archived: string }[] = [
  { address: b('"a b @ c"@example.org'), archived: '"a b @ c"@example.org' },
  { address: Buffer.from('r\u2028x\u202e@example.org', 'utf8'), archived: 'r\\x{2028}x\\x{202E}@example.org' },
  { address: b('c\x01ontrol@example.org'), archived: 'c\\x{01}ontrol@example.org' },
  { address: b('x'.repeat(880) + '@example.org'), archived: 'x'.repeat(880) + '@example.org' },
];

/** An address over the milter's 900 bytes: refused 554 5.1.3 at end of message if the MTA lets it through. */
export const TOO_LONG_RECIPIENT = b('y'.repeat(1000) + '@example.org');
