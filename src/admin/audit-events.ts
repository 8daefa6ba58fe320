// What the audit needs from a mail log line: the events in the life of one
// queue id, from Postfix's, Sendmail's and benno-milter's own lines. The
// patterns were taken from real runs (test/unit/audit-fixtures.ts holds the
// recorded lines). Every pattern is anchored at both ends with greedy fields,
// so that text a sender controls (an address, a Message-ID) cannot pass for
// a later field: the real field is the last one on the line. The patterns
// are dotAll ('s'): a field may hold U+2028 or U+2029, which `.` would not match.

import type { LogLine } from './audit-lines';

export type AuditEvent =
  /** Postfix's smtpd or pickup took the message in (a new message, also after the id was used before). */
  | { kind: 'start'; queueId: string; time: number }
  /**
   * The MTA queued the message: Postfix's qmgr saw it (or cleanup held it),
   * Sendmail logged its from= line. viaMilter false: Sendmail took it from a
   * local program, where no milter runs.
   */
  | { kind: 'accepted'; queueId: string; time: number; sender: string; line: string; viaMilter: boolean; mta: 'postfix' | 'sendmail' }
  /** Sendmail's milter verdict refused the message after its from= line. */
  | { kind: 'rejected'; queueId: string; time: number }
  /** Postfix is done with the queue id; it may be used again. */
  | { kind: 'removed'; queueId: string; time: number }
  /** The message was handed to a content filter or the MTA on this host and came back (or on) as `child`. */
  | { kind: 'link'; queueId: string; time: number; child: string }
  | { kind: 'archived'; queueId: string; time: number }
  | { kind: 'skipped'; queueId: string; time: number; daemon: string }
  | { kind: 'failed'; queueId: string; time: number; how: 'refused' | 'tempfailed'; line: string };

const QUEUE_ID = '[0-9A-Za-z]{5,32}';

/** What the report keeps of a line or a sender: enough to recognise it, bounded whatever the log holds. */
const KEPT_LINE = 2000;
const KEPT_SENDER = 500;

/** At most n characters, copied: a slice of a long line would keep all of it alive. */
function keep(s: string, n: number): string {
  return s.length <= n ? s : Buffer.from(s.slice(0, n), 'utf8').toString('utf8') + '…';
}

const POSTFIX_TAG = /^[\w.-]+(?:\/[\w.-]+)*\/(smtpd|pickup|qmgr|cleanup|smtp|lmtp|postsuper)$/;
const SENDMAIL_TAGS = new Set(['sm-mta', 'sendmail', 'sm-msp-queue']);
export const MILTER_TAG = 'benno-milter';

const P_START = new RegExp(`^(${QUEUE_ID}): (?:client=|uid=\\d+ from=<)`, 's');
const P_QUEUED = new RegExp(`^(${QUEUE_ID}): from=<(.*)>, size=\\d+, nrcpt=\\d+ \\(queue active\\)$`, 's');
const P_HOLD = new RegExp(`^(${QUEUE_ID}): hold: .*; from=<(.*?)> to=<`, 's');
const P_REMOVED = new RegExp(`^(${QUEUE_ID}): removed$`, 's');
/** Delivered to an SMTP/LMTP server that queued it under its own id: a content filter's re-injection when that server is this host. */
const P_SENT = new RegExp(`^(${QUEUE_ID}): to=<.*>, relay=([^,\\s]+), .*status=sent \\(.*queued as (${QUEUE_ID})\\)$`, 's');

const S_FROM = new RegExp(`^(${QUEUE_ID}): from=(.*), size=\\d+, class=-?\\d+, nrcpts=\\d+(.*)$`, 's');
const S_MILTER_REJECT = new RegExp(`^(${QUEUE_ID}): Milter: data, (?:reject=|discard)`, 's');
const S_SENT = new RegExp(`^(${QUEUE_ID}): to=.*, relay=(\\S+) .*, stat=Sent \\((${QUEUE_ID}) Message accepted for delivery\\)$`, 's');

const M_LEVEL = /^(?:error|warn|info|debug): /;
const M_ARCHIVED = new RegExp(`^(${QUEUE_ID}): archived from=<.*> rcpts=\\d+ size=\\d+ file=\\S+ ms=`, 's');
const M_SKIPPED = new RegExp(`^(${QUEUE_ID}): not archived: daemon_name=(.*) is in --skip-daemon `, 's');
const M_REFUSED = new RegExp(`^(${QUEUE_ID}): not archived, refused: `, 's');
const M_FAILED = new RegExp(`^(${QUEUE_ID}): archiving failed: `, 's');

/** A relay on this host: loopback by address or name ("127.0.0.1[127.0.0.1]:10024", "[127.0.0.1]", "localhost"). */
function localRelay(relay: string): boolean {
  return /^(?:localhost|[\w.-]*\[?(?:127\.\d+\.\d+\.\d+|::1|ipv6:::1)\]?)(?:\[(?:127\.\d+\.\d+\.\d+|::1)\])?(?::\d+)?$/i.test(relay);
}

/** The sender as the MTA logged it, without the angle brackets Sendmail leaves off for local senders. */
function bare(sender: string): string {
  return sender.startsWith('<') && sender.endsWith('>') ? sender.slice(1, -1) : sender;
}

function postfixEvent(program: string, msg: string, line: LogLine): AuditEvent | null {
  const time = line.time;
  let m: RegExpExecArray | null;
  switch (program) {
    case 'smtpd':
    case 'pickup':
      return (m = P_START.exec(msg)) ? { kind: 'start', queueId: m[1], time } : null;
    case 'qmgr':
      if ((m = P_QUEUED.exec(msg))) return { kind: 'accepted', queueId: m[1], time, sender: keep(m[2], KEPT_SENDER), line: keep(line.text, KEPT_LINE), viaMilter: true, mta: 'postfix' };
      return (m = P_REMOVED.exec(msg)) ? { kind: 'removed', queueId: m[1], time } : null;
    case 'cleanup':
      return (m = P_HOLD.exec(msg)) ? { kind: 'accepted', queueId: m[1], time, sender: keep(m[2], KEPT_SENDER), line: keep(line.text, KEPT_LINE), viaMilter: true, mta: 'postfix' } : null;
    case 'postsuper':
      return (m = P_REMOVED.exec(msg)) ? { kind: 'removed', queueId: m[1], time } : null;
    default: // smtp, lmtp
      m = P_SENT.exec(msg);
      return m && localRelay(m[2]) ? { kind: 'link', queueId: m[1], time, child: m[3] } : null;
  }
}

function sendmailEvent(msg: string, line: LogLine): AuditEvent | null {
  const time = line.time;
  let m = S_FROM.exec(msg);
  // A message that came in over a DAEMON_OPTIONS socket passed the milters; one from a local program did not.
  if (m) return { kind: 'accepted', queueId: m[1], time, sender: keep(bare(m[2]), KEPT_SENDER), line: keep(line.text, KEPT_LINE), viaMilter: /, daemon=[^,\s]+/.test(m[3]), mta: 'sendmail' };
  if ((m = S_MILTER_REJECT.exec(msg))) return { kind: 'rejected', queueId: m[1], time };
  m = S_SENT.exec(msg);
  return m && localRelay(m[2]) ? { kind: 'link', queueId: m[1], time, child: m[3] } : null;
}

function milterEvent(message: string, line: LogLine): AuditEvent | null {
  const msg = message.replace(M_LEVEL, '');
  const time = line.time;
  let m = M_ARCHIVED.exec(msg);
  // NOQUEUE: the MTA sent no queue id; nothing of the MTA's log can be matched with it.
  if (m?.[1] === 'NOQUEUE') return null;
  if (m) return { kind: 'archived', queueId: m[1], time };
  if ((m = M_SKIPPED.exec(msg))) return { kind: 'skipped', queueId: m[1], time, daemon: keep(m[2], KEPT_SENDER) };
  if ((m = M_REFUSED.exec(msg))) return { kind: 'failed', queueId: m[1], time, how: 'refused', line: keep(line.text, KEPT_LINE) };
  if ((m = M_FAILED.exec(msg))) return { kind: 'failed', queueId: m[1], time, how: 'tempfailed', line: keep(line.text, KEPT_LINE) };
  return null;
}

/** The event a log line records, or null for a line the audit does not need. */
export function auditEvent(line: LogLine): AuditEvent | null {
  if (line.tag === MILTER_TAG) return milterEvent(line.message, line);
  if (SENDMAIL_TAGS.has(line.tag)) return sendmailEvent(line.message, line);
  const p = POSTFIX_TAG.exec(line.tag);
  return p ? postfixEvent(p[1], line.message, line) : null;
}
