/**
 * The timers the broker's parts run on, behind a small interface: the
 * pending table's deadline sweep and the stall watchdog take one, so their
 * tests drive time by hand instead of waiting for it.
 */

/** Cancels a scheduled callback; calling it again does nothing. */
export type CancelTimer = () => void;

/** One-shot and repeating timers on the broker's clock. */
export interface BrokerTimers {
  /** Runs `fn` once, when the clock reaches `atMs` (and never sooner than 1 ms from now). */
  at(atMs: number, fn: () => void): CancelTimer;
  /** Runs `fn` every `intervalMs`. */
  every(intervalMs: number, fn: () => void): CancelTimer;
}

/**
 * Node's timers, with one-shot delays measured on `now` (the broker's
 * monotonic clock). They are unref'd: none keeps the process alive.
 */
export function nodeTimers(now: () => number): BrokerTimers {
  return {
    at(atMs, fn) {
      const timer = setTimeout(fn, Math.max(1, atMs - now()));
      timer.unref();
      return () => clearTimeout(timer);
    },
    every(intervalMs, fn) {
      const timer = setInterval(fn, intervalMs);
      timer.unref();
      return () => clearInterval(timer);
    },
  };
}
