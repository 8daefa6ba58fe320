// The audit's core: the MTA's events and the milter's, matched by queue id
// and time order, into what the MTA accepted and what it accepted without an
// archived file.
//
// A queue id names one message only for a while: Postfix uses a short id
// again once the message has left the queue. So the events of a queue id are
// cut into messages (instances) in the order they were logged: smtpd's
// client= or pickup's line begins one; after qmgr's "removed" the next event
// begins another. The milter answers before the MTA queues the message, so
// its line belongs to the message that is open; when logs from several
// files are merged, a line of whole seconds sorts after the milter's lines
// of that second (audit-lines.ts), which keeps that order.
//
// A queue id's events are judged once it has been quiet for GRACE_MS of log
// time, so that a slow message (client= at RCPT, the milter's line at the end
// of a long DATA) stays one message, and the link a content filter's
// re-injection leaves ("queued as QID2" in the first message's delivery)
// reaches both sides first. Only queue ids with recent events are held:
// memory follows the mail in flight, not the length of the log.

import type { AuditEvent } from './audit-events';

export const GRACE_MS = 3600_000;

/** How many entries of each list the report keeps; counts stay exact beyond it. */
export const LIST_LIMIT = 1000;

export interface Finding {
  time: number;
  queueId: string;
  sender: string;
  /** The log line that shows the MTA accepted it. */
  line: string;
  /** Why it is listed: the milter's own line, the linked queue id. */
  note?: string;
}

/** A count with the first LIST_LIMIT entries. */
export class Listing {
  count = 0;
  readonly items: Finding[] = [];
  add(f: Finding): void {
    this.count++;
    if (this.items.length < LIST_LIMIT) this.items.push(f);
  }
}

export interface AuditResult {
  since: number | null;
  until: number | null;
  /** Messages the MTA accepted in the period. */
  accepted: number;
  /** The milter's archived lines in the period. */
  archived: number;
  /** Accepted messages without an archived file: the gaps. */
  missing: Listing;
  /** Of those, the ones the milter refused or tempfailed (the MTA accepted them anyway). */
  failedButAccepted: Listing;
  /** A message archived more than once (one queue id twice, or again after a content filter). */
  twice: Listing;
  /** Accepted without an archived file of its own, archived under the queue id it is linked to (content filter re-injection, Sendmail's MSP). */
  linked: Listing;
  /** Archived lines whose queue id the MTA's log does not show (the MTA's log missing, or another MTA). */
  archivedUnknown: number;
}

interface Message {
  queueId: string;
  started: boolean;
  accepted?: Extract<AuditEvent, { kind: 'accepted' }>;
  rejected: boolean;
  removed: boolean;
  archived: number;
  firstArchived?: number;
  skipped?: Extract<AuditEvent, { kind: 'skipped' }>;
  failed?: Extract<AuditEvent, { kind: 'failed' }>;
  parent?: Message;
  children: Message[];
}

interface QueueId {
  id: string;
  last: number;
  current: Message;
  /** Messages of this id that are over and waiting to be judged with it. */
  done: Message[];
}

function newMessage(queueId: string): Message {
  return { queueId, started: false, rejected: false, removed: false, archived: 0, children: [] };
}

/** Anything of the MTA's seen for it: a new start means a new message. */
const mtaSeen = (m: Message) => m.started || m.accepted !== undefined || m.removed;

/**
 * The milter's line and the MTA's reach the log by different ways (the
 * journal's stream from our stderr, syslog's socket from Postfix), so the
 * milter's can come a little after qmgr's, even after "removed". A queue id
 * is never used again within seconds (Postfix's short ids hold the
 * microseconds), so within this much a milter line still belongs to the
 * message just removed.
 */
const LATE_MILTER_MS = 2000;

/** Whether a milter line at `time` begins the next message under this id rather than belonging to m. */
function afterMessage(m: Message, time: number): boolean {
  if (!m.removed) return false;
  const verdict = m.archived > 0 || m.skipped !== undefined || m.failed !== undefined;
  return verdict || !m.accepted || time - m.accepted.time > LATE_MILTER_MS;
}

export class AuditMatcher {
  /** Queue ids with events in the last GRACE_MS, oldest activity first (a Map keeps insertion order). */
  private readonly open = new Map<string, QueueId>();
  private watermark = -Infinity;
  private readonly result: AuditResult;

  constructor(
    private readonly since: number | null,
    private readonly until: number | null,
  ) {
    this.result = {
      since,
      until,
      accepted: 0,
      archived: 0,
      missing: new Listing(),
      failedButAccepted: new Listing(),
      twice: new Listing(),
      linked: new Listing(),
      archivedUnknown: 0,
    };
  }

  private inPeriod(t: number): boolean {
    return (this.since === null || t >= this.since) && (this.until === null || t < this.until);
  }

  /** The queue id's entry, moved to the end of the activity order. */
  private touch(id: string, time: number): QueueId {
    let q = this.open.get(id);
    if (q) this.open.delete(id);
    else q = { id, last: time, current: newMessage(id), done: [] };
    q.last = Math.max(q.last, time);
    this.open.set(id, q);
    return q;
  }

  private next(q: QueueId): Message {
    q.done.push(q.current);
    q.current = newMessage(q.id);
    return q.current;
  }

  push(e: AuditEvent): void {
    if (e.time > this.watermark) {
      this.watermark = e.time;
      this.expire(this.watermark - GRACE_MS);
    }
    if (e.kind === 'link') return this.link(e);
    const q = this.touch(e.queueId, e.time);
    let m = q.current;
    switch (e.kind) {
      case 'start':
        if (mtaSeen(m)) m = this.next(q);
        m.started = true;
        return;
      case 'accepted':
        if (m.removed) m = this.next(q);
        // Postfix's qmgr logs from= again each time a deferred message is retried.
        if (!m.accepted) m.accepted = e;
        if (e.mta === 'sendmail') m.started = true;
        return;
      case 'rejected':
        m.rejected = true;
        return;
      case 'removed':
        m.removed = true;
        return;
      case 'archived':
        if (afterMessage(m, e.time)) m = this.next(q);
        if (this.inPeriod(e.time)) this.result.archived++;
        m.archived++;
        m.firstArchived ??= e.time;
        return;
      case 'skipped':
        if (afterMessage(m, e.time)) m = this.next(q);
        m.skipped = e;
        return;
      case 'failed':
        if (afterMessage(m, e.time)) m = this.next(q);
        m.failed = e;
        return;
    }
  }

  /** Both ends are the messages open under their ids when the line is logged: the child was queued just before. */
  private link(e: Extract<AuditEvent, { kind: 'link' }>): void {
    const child = this.open.get(e.child);
    if (!child) return; // another host's queue id, or before the logs
    const parent = this.touch(e.queueId, e.time).current;
    this.touch(e.child, e.time);
    child.current.parent = parent;
    parent.children.push(child.current);
  }

  private expire(before: number): void {
    for (const q of this.open.values()) {
      if (q.last >= before) break;
      this.open.delete(q.id);
      this.judge(q);
    }
  }

  private judge(q: QueueId): void {
    for (const m of [...q.done, q.current]) this.judgeMessage(m);
  }

  private judgeMessage(m: Message): void {
    const r = this.result;
    const a = m.accepted;
    if (!a || m.rejected || !m.started) {
      // Archived, and the MTA never said so: its log is not among the sources (or the message began before them).
      if (m.archived > 0 && !mtaSeen(m) && this.inPeriod(m.firstArchived!)) r.archivedUnknown++;
      return;
    }
    if (!this.inPeriod(a.time)) return;
    r.accepted++;
    const finding = (note?: string): Finding => ({ time: a.time, queueId: m.queueId, sender: a.sender, line: a.line, note });
    if (m.archived > 1) r.twice.add(finding(`archived ${m.archived} times under this queue id`));
    if (m.archived > 0) {
      if (m.parent && m.parent.archived > 0) {
        r.twice.add(finding(`archived again after ${m.parent.queueId} came back from the content filter (start the milter with --skip-daemon for the re-injection smtpd)`));
      }
      return;
    }
    if (m.parent && m.parent.archived > 0) {
      r.linked.add(finding(`re-injected; archived as ${m.parent.queueId}${m.skipped ? ` (skipped: daemon_name=${m.skipped.daemon})` : ''}`));
      return;
    }
    const archivedChild = m.children.find((c) => c.archived > 0);
    if (archivedChild) {
      r.linked.add(finding(`passed on as ${archivedChild.queueId}, archived there`));
      return;
    }
    if (m.failed) {
      const f = finding(`the milter ${m.failed.how} it: ${m.failed.line}`);
      r.failedButAccepted.add(f);
      r.missing.add(f);
      return;
    }
    if (m.skipped) {
      const why = m.parent ? `its first queue id ${m.parent.queueId} was not archived` : 'no first queue id links to it';
      r.missing.add(finding(`skipped (daemon_name=${m.skipped.daemon} is in --skip-daemon), but ${why}`));
      return;
    }
    if (!a.viaMilter) {
      r.missing.add(finding('taken in from a local program, where the MTA runs no milter, and not passed on'));
      return;
    }
    r.missing.add(finding());
  }

  /** Judges everything still open: the end of the logs. */
  finish(): AuditResult {
    this.expire(Infinity);
    return this.result;
  }
}
