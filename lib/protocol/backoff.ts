/**
 * Reconnect backoff shared by node→broker links (100 ms doubling to 500 ms,
 * full jitter: docs/architecture.md#timers) and broker→broker peer
 * connections (capped at two gossip rounds instead). Pure: the random source
 * is passed in.
 *
 * The node's cap is short on purpose: a worker whose only broker restarts
 * must be back within a second of the broker listening again, however long
 * the broker was gone. An attempt at a broker that is down costs one refused
 * TCP connect (or one connect that times out, which delays the next attempt
 * by itself), so two attempts a second per broker are cheap.
 */

/** Reconnect backoff bounds of node→broker links, ms. */
export const RECONNECT_MIN_MS = 100;
export const RECONNECT_MAX_MS = 500;
/**
 * Cap after a broker refused the node (MESH_ERR_UNAUTHORIZED, a version
 * mismatch): each attempt is a full handshake and a log line at the broker,
 * and only a registry change can make the next one succeed.
 */
export const REFUSED_RECONNECT_MAX_MS = 5000;

/** Full-jitter exponential backoff: uniform in [0, min(max, min · 2^failures)], never below min/4. */
export function backoffDelay(failures: number, random: () => number, min = RECONNECT_MIN_MS, max = RECONNECT_MAX_MS): number {
  const ceiling = Math.min(max, min * 2 ** Math.min(failures, 16));
  return Math.max(min / 4, random() * ceiling);
}
