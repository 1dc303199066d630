/**
 * The time source and timers of a node's requester and service runner,
 * passed in (docs/architecture.md#layers: state machines take the clock as a
 * parameter), so that their retries, deadlines and aborts are tested with a
 * clock the test moves by hand.
 */

/** A scheduled timer, as {@link Clock.setTimeout} returns it; only ever passed back to {@link Clock.clearTimeout}. */
export type TimerHandle = object;

/** A monotonic clock with timers. */
export interface Clock {
  /** The time, ms (monotonic). */
  now(): number;
  /** Calls `callback` once after `ms` milliseconds. */
  setTimeout(callback: () => void, ms: number): TimerHandle;
  /** Cancels a timer (a handle that already fired, or undefined, is ignored). */
  clearTimeout(handle: TimerHandle | undefined): void;
  /** Calls `callback` once, after the input already waiting has been read (Node's check phase). */
  setImmediate(callback: () => void): void;
}

/** The process's clock: `now` (default performance.now) and Node's own timers. */
export function systemClock(now: () => number = () => performance.now()): Clock {
  return {
    now,
    setTimeout: (callback, ms) => setTimeout(callback, ms),
    clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout | undefined),
    setImmediate: (callback) => void setImmediate(callback),
  };
}
