/**
 * Reconnect backoff shared by node→broker links (DESIGN §8: 100 ms doubling
 * to 5 s, full jitter) and broker→broker peer connections (capped at two
 * gossip rounds instead). Pure: the random source is passed in.
 */

/** Reconnect backoff bounds, ms. */
export const RECONNECT_MIN_MS = 100;
export const RECONNECT_MAX_MS = 5000;

/** Full-jitter exponential backoff: uniform in [0, min(max, min · 2^failures)], never below min/4. */
export function backoffDelay(failures: number, random: () => number, min = RECONNECT_MIN_MS, max = RECONNECT_MAX_MS): number {
  const ceiling = Math.min(max, min * 2 ** Math.min(failures, 16));
  return Math.max(min / 4, random() * ceiling);
}
