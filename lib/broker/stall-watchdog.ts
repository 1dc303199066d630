/**
 * The stall watchdog (docs/architecture.md#a-frozen-broker-sigstop): a
 * broker whose event loop was silent for over STALL_MS (frozen by SIGSTOP,
 * or starved) treats the input it reads for the next STALE_WINDOW_MS as
 * stale, since its peers have most likely given up on it and resent
 * elsewhere. A tick every STALL_TICK_MS measures the silence; the clock and
 * the interval are injected.
 */
import type { BrokerTimers, CancelTimer } from './broker-timers.ts';

/** Interval of the watchdog tick, ms. */
export const STALL_TICK_MS = 100;

/**
 * Event-loop silence after which input is treated as stale, ms: the process
 * was frozen (SIGSTOP) or starved, and its peers have given up on it.
 */
export const STALL_MS = 1000;

/**
 * After a stall is seen, input stays suspect this long, ms. Node may run the
 * overdue watchdog tick before the socket reads that were buffered during
 * the freeze, so the tick itself opens the window.
 */
export const STALE_WINDOW_MS = 500;

/** Clock, interval and the stall callback of a {@link StallWatchdog}. */
export interface StallWatchdogOptions {
  /** The broker's monotonic clock, ms. */
  readonly now: () => number;
  /** Runs the tick. */
  readonly timers: Pick<BrokerTimers, 'every'>;
  /** A stale window opened (once per window): the event loop was silent `silentMs` (rounded). */
  readonly onStall: (silentMs: number) => void;
}

/** Notices event-loop stalls and says whether input read now may be stale. */
export class StallWatchdog {
  readonly #options: StallWatchdogOptions;
  #cancel: CancelTimer | undefined;
  #lastTick = 0;
  #staleUntil = 0;

  constructor(options: StallWatchdogOptions) {
    this.#options = options;
  }

  /** Starts the tick (idempotent). */
  start(): void {
    if (this.#cancel) return;
    this.#lastTick = this.#options.now();
    this.#cancel = this.#options.timers.every(STALL_TICK_MS, this.#tick);
  }

  /** Stops the tick; {@link StallWatchdog.stalled} is false from now on. */
  stop(): void {
    this.#cancel?.();
    this.#cancel = undefined;
  }

  /**
   * Whether input read now may be stale: the event loop was silent over
   * STALL_MS just before (the process was frozen or starved), so its peers
   * have likely given up on it and resent elsewhere. False while stopped.
   */
  stalled(): boolean {
    if (!this.#cancel) return false;
    const now = this.#options.now();
    // Read before the overdue tick ran: open the window here.
    if (now - this.#lastTick > STALL_MS && now >= this.#staleUntil) this.#openStaleWindow(now, now - this.#lastTick);
    return now < this.#staleUntil;
  }

  readonly #tick = (): void => {
    const now = this.#options.now();
    const silent = now - this.#lastTick;
    this.#lastTick = now;
    if (silent > STALL_MS) this.#openStaleWindow(now, silent);
  };

  #openStaleWindow(now: number, silent: number): void {
    if (now < this.#staleUntil) return;
    this.#staleUntil = now + STALE_WINDOW_MS;
    this.#options.onStall(Math.round(silent));
  }
}
