// benno-milter-admin audit: the mail log read from its sources, each line's
// event matched, the result for the period.

import { auditEvent } from './audit-events';
import { AuditMatcher, AuditResult, GRACE_MS } from './audit-matcher';
import { LogSource, mergedLines } from './audit-sources';

export interface AuditRun extends AuditResult {
  sources: string[];
  /** Log lines read (with a time we know), and of those in the period. */
  lines: number;
  linesInPeriod: number;
}

export async function runAudit(sources: LogSource[], since: number | null, until: number | null): Promise<AuditRun> {
  const matcher = new AuditMatcher(since, until);
  let lines = 0;
  let linesInPeriod = 0;
  // Past this, nothing can change what the period holds: every message in it has been quiet for GRACE_MS.
  const stopAt = until === null ? Infinity : until + 2 * GRACE_MS;
  for await (const line of mergedLines(sources)) {
    if (line.time > stopAt) break;
    lines++;
    if ((since === null || line.time >= since) && (until === null || line.time < until)) linesInPeriod++;
    const e = auditEvent(line);
    if (e) matcher.push(e);
  }
  return { ...matcher.finish(), sources: sources.map((s) => s.name), lines, linesInPeriod };
}
