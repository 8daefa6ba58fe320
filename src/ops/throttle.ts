// Log lines a peer can cause must not let that peer flood the log: at most
// one line per key (a client address) per interval, and the next line says
// how many were held back. Nothing is lost but the repetition.

export class LogThrottle {
  /** key → when its last line was written and how many lines were held back since. */
  private readonly keys = new Map<string, { at: number; held: number }>();

  constructor(
    private readonly intervalMs = 60_000,
    /** Keys remembered at most; the oldest is forgotten first, so many peers cannot grow the map. */
    private readonly maxKeys = 10_000,
  ) {}

  /**
   * Whether a line for this key may be written now. Returns null when it
   * must be held back (and counts it), otherwise the number held back since
   * the key's last line.
   */
  admit(key: string, now = Date.now()): number | null {
    const entry = this.keys.get(key);
    if (entry && now - entry.at < this.intervalMs) {
      entry.held++;
      return null;
    }
    const held = entry?.held ?? 0;
    // Delete and set again: Map keeps insertion order, so the first key is the least recently logged.
    this.keys.delete(key);
    this.keys.set(key, { at: now, held: 0 });
    if (this.keys.size > this.maxKeys) this.keys.delete(this.keys.keys().next().value as string);
    return held;
  }
}

/** " (3 similar lines not logged)" after a line that admit() let through with held > 0. */
export function heldBackNote(held: number): string {
  return held > 0 ? ` (${held} similar line${held === 1 ? '' : 's'} not logged since the last one)` : '';
}
