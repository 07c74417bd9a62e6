/** Reconnection delays: full-jitter exponential backoff. */
export interface BackoffOptions {
  /** The cap of the first delay, in ms (default 1000). */
  initialDelayMs?: number;
  /** The largest cap, in ms (default 30000). */
  maxDelayMs?: number;
}

/**
 * The delay before retry number `attempt` (1 for the first): a uniformly
 * random time between 0 and min(max, initial * 2^(attempt - 1)), so that
 * many clients that lost the same server do not come back together.
 */
export function fullJitter(attempt: number, { initialDelayMs = 1000, maxDelayMs = 30000 }: BackoffOptions = {}, random = Math.random): number {
  const cap = Math.min(maxDelayMs, initialDelayMs * 2 ** Math.max(0, Math.min(attempt - 1, 30)));
  return Math.floor(random() * cap);
}
