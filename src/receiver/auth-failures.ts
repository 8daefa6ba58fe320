// What failed AUTH attempts cost the client that makes them. On one
// connection, the third failure ends it (421). Per client address, every
// failure is answered only after a delay that doubles with that address's
// recent failures (1 s, 2 s, 4 s … 30 s); an address is forgiven 15 minutes
// after its last failure. A success is never delayed. The delay comes after
// the password check, so an honest client's first typo costs it one second,
// and a client guessing passwords gets a few guesses a minute.

/** Failed attempts on one connection; the last of them is answered 421 and the connection closed. */
export const MAX_AUTH_FAILURES_PER_CONNECTION = 3;
/** How long an address's failures are remembered after its last one. */
export const AUTH_FAILURE_MEMORY_MS = 15 * 60_000;
export const FIRST_FAILURE_DELAY_MS = 1_000;
export const MAX_FAILURE_DELAY_MS = 30_000;

export class AuthFailures {
  private readonly clients = new Map<string, { count: number; last: number }>();

  /** Addresses remembered at most; the one with the oldest failure goes first. */
  constructor(private readonly maxClients = 10_000) {}

  /** Failures from this address within the memory window. */
  recent(client: string, now = Date.now()): number {
    const entry = this.clients.get(client);
    if (!entry) return 0;
    if (now - entry.last <= AUTH_FAILURE_MEMORY_MS) return entry.count;
    this.clients.delete(client);
    return 0;
  }

  /** Counts a failure; returns the address's recent failures and how long to wait before answering. */
  record(client: string, now = Date.now()): { count: number; delayMs: number } {
    const count = this.recent(client, now) + 1;
    // Delete and set again: the first key in the map is then the one with the oldest failure.
    this.clients.delete(client);
    this.clients.set(client, { count, last: now });
    if (this.clients.size > this.maxClients) this.clients.delete(this.clients.keys().next().value as string);
    return { count, delayMs: failureDelay(count) };
  }
}

/** 1 s for an address's first recent failure, doubling up to 30 s. */
export function failureDelay(count: number): number {
  return Math.min(MAX_FAILURE_DELAY_MS, FIRST_FAILURE_DELAY_MS * 2 ** Math.min(count - 1, 30));
}
