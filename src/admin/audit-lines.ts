// One line of a mail log, split into its time, the program that wrote it and
// the message: the syslog forms rsyslog writes (traditional "Nov 24
// 10:00:00 host tag[pid]: msg" without a year, RFC 3339 as Debian 12 writes
// it), journalctl's short-iso-precise, and benno-milter's own form outside
// systemd ("ISO-TIME benno-milter[PID]: info: msg", no host).

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const MONTH = new Map(MONTHS.map((m, i) => [m, i]));

const TRADITIONAL = /^([A-Z][a-z]{2}) ([ \d]?\d) (\d\d):(\d\d):(\d\d)(?:\.(\d{1,6}))? /;
const ISO = /^(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)(?:[.,](\d{1,9}))?(Z|[+-]\d\d:?\d\d)? /;
/** "tag[pid]: " or "tag: "; a tag has no blank, bracket or colon. */
const TAG = /^([^\s[\]:]+)(?:\[\d+\])?: /;

export interface LogLine {
  /** Milliseconds since the epoch. */
  time: number;
  /** The program, as syslog names it: "postfix/qmgr", "sm-mta", "benno-milter". */
  tag: string;
  /** What the program said. */
  message: string;
  /** The whole line, for the report. */
  text: string;
}

/** A day within which a line without a year is taken to be in the past rather than next year (clocks, time zones). */
const FUTURE_SLACK_MS = 24 * 3600_000;

/**
 * Traditional syslog time has no year. A line is taken to be from the
 * latest year that does not put it more than a day after `reference` (the
 * time the file was last written): a log read in January keeps its December
 * lines in the year before, and a log rotated a year ago keeps its year as
 * long as its modification time is kept.
 */
export class YearGuess {
  constructor(private readonly reference: number) {}

  time(month: number, day: number, h: number, m: number, s: number, ms: number): number {
    const year = new Date(this.reference).getFullYear();
    const t = new Date(year, month, day, h, m, s, ms).getTime();
    return t > this.reference + FUTURE_SLACK_MS ? new Date(year - 1, month, day, h, m, s, ms).getTime() : t;
  }
}

/**
 * A time of whole seconds is the second's last millisecond: merged with a
 * log that has milliseconds (benno-milter's own), a line of second S then
 * comes after everything else logged within S, which is where the MTA's
 * verdict belongs relative to the milter's (see audit-matcher.ts).
 */
function fraction(digits: string | undefined): number {
  return digits === undefined ? 999 : Number(digits.slice(0, 3).padEnd(3, '0'));
}

/** Date.UTC would carry month 13 into the next year: such a field is no time. */
function validTime(month: number, day: number, h: number, m: number, s: number): boolean {
  return month >= 1 && month <= 12 && day >= 1 && day <= 31 && h <= 23 && m <= 59 && s <= 60;
}

function offsetMs(zone: string): number {
  if (zone === 'Z') return 0;
  const sign = zone[0] === '-' ? -1 : 1;
  const digits = zone.slice(1).replace(':', '');
  return sign * (Number(digits.slice(0, 2)) * 60 + Number(digits.slice(2, 4))) * 60_000;
}

/** The time at the start of a line and the rest after it; null when the line starts with no time we know. */
export function lineTime(line: string, years: YearGuess): { time: number; rest: string } | null {
  let m = TRADITIONAL.exec(line);
  if (m) {
    const month = MONTH.get(m[1]);
    if (month === undefined) return null;
    const time = years.time(month, Number(m[2]), Number(m[3]), Number(m[4]), Number(m[5]), fraction(m[6]));
    return { time, rest: line.slice(m[0].length) };
  }
  m = ISO.exec(line);
  if (m) {
    const [y, mo, d, h, mi, s] = [1, 2, 3, 4, 5, 6].map((i) => Number(m![i]));
    if (!validTime(mo, d, h, mi, s)) return null;
    const ms = fraction(m[7]);
    const time = m[8] === undefined ? new Date(y, mo - 1, d, h, mi, s, ms).getTime() : Date.UTC(y, mo - 1, d, h, mi, s, ms) - offsetMs(m[8]);
    return Number.isNaN(time) ? null : { time, rest: line.slice(m[0].length) };
  }
  return null;
}

/** A line split into time, tag and message; null for a line that is not a log line (a continuation, garbage). */
export function parseLogLine(line: string, years: YearGuess): LogLine | null {
  const t = lineTime(line, years);
  if (!t) return null;
  // With a host ("host tag[pid]: ") or without (benno-milter's own form: "tag[pid]: ").
  let m = TAG.exec(t.rest);
  if (!m) {
    const blank = t.rest.indexOf(' ');
    if (blank <= 0) return null;
    m = TAG.exec(t.rest.slice(blank + 1));
    if (!m) return null;
    return { time: t.time, tag: m[1], message: t.rest.slice(blank + 1 + m[0].length), text: line };
  }
  return { time: t.time, tag: m[1], message: t.rest.slice(m[0].length), text: line };
}

/**
 * A point in time as --since and --until take it: "2026-11-24",
 * "2026-11-24 10:00", "2026-11-24T10:00:00+01:00" (local time without an
 * offset), "today", "yesterday", "now", or "-24h", "-7d", "-30m" before now.
 */
export function parseTimeArgument(text: string, now: number): number | null {
  const s = text.trim();
  const startOfDay = (t: number) => {
    const d = new Date(t);
    return new Date(d.getFullYear(), d.getMonth(), d.getDate()).getTime();
  };
  if (s === 'now') return now;
  if (s === 'today') return startOfDay(now);
  if (s === 'yesterday') return startOfDay(startOfDay(now) - 12 * 3600_000);
  const rel = /^-(\d+)([smhd])$/.exec(s);
  if (rel) return now - Number(rel[1]) * { s: 1000, m: 60_000, h: 3600_000, d: 86_400_000 }[rel[2] as 's' | 'm' | 'h' | 'd'];
  const m = /^(\d{4})-(\d\d)-(\d\d)(?:[T ](\d\d):(\d\d)(?::(\d\d)(?:\.(\d{1,3}))?)?)?(Z|[+-]\d\d:?\d\d)?$/.exec(s);
  if (!m) return null;
  const [y, mo, d] = [1, 2, 3].map((i) => Number(m[i]));
  const [h, mi, sec] = [4, 5, 6].map((i) => Number(m[i] ?? 0));
  const ms = Number((m[7] ?? '0').padEnd(3, '0'));
  if (!validTime(mo, d, h, mi, sec)) return null;
  return m[8] === undefined ? new Date(y, mo - 1, d, h, mi, sec, ms).getTime() : Date.UTC(y, mo - 1, d, h, mi, sec, ms) - offsetMs(m[8]);
}
