/**
 * Event-loop delay of the broker process, for the admin endpoint: Node's
 * perf_hooks.monitorEventLoopDelay, read in windows of LAG_WINDOW_MS (a
 * window's figures are kept until the next one ends, so every reader, each
 * /metrics scraper and /status, sees the same numbers).
 */

import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { IntervalHistogram } from 'node:perf_hooks';

/** Length of one measuring window, ms. */
export const LAG_WINDOW_MS = 10_000;
/** Sampling resolution of the monitor, ms. */
const RESOLUTION_MS = 10;

/** Event-loop delay over one window, ms: how late the monitor's timer ran, beyond its own interval. */
export interface LagWindow {
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  /** Length of the window these figures cover, ms (shorter for the window still running before the first ends). */
  readonly windowMs: number;
}

/** Measures the event-loop delay until stopped. */
export class EventLoopLag {
  readonly #histogram: IntervalHistogram = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
  readonly #timer: NodeJS.Timeout;
  readonly #startedAt = performance.now();
  #last: LagWindow | undefined;

  constructor() {
    this.#histogram.enable();
    this.#timer = setInterval(() => {
      this.#last = this.#read(LAG_WINDOW_MS);
      this.#histogram.reset();
    }, LAG_WINDOW_MS);
    this.#timer.unref();
  }

  /** The last complete window, or the one running while none has ended. */
  current(): LagWindow {
    return this.#last ?? this.#read(performance.now() - this.#startedAt);
  }

  /** Stops measuring. */
  stop(): void {
    clearInterval(this.#timer);
    this.#histogram.disable();
  }

  #read(windowMs: number): LagWindow {
    const h = this.#histogram;
    // No sample yet: the histogram reports its empty state (min = 9.2e18); say 0.
    // The samples are the timer's whole interval: the delay is what exceeds the resolution.
    const ms = (ns: number): number => (h.count === 0 || !Number.isFinite(ns) ? 0 : Math.max(0, Math.round((ns / 1e6 - RESOLUTION_MS) * 100) / 100));
    return { p50Ms: ms(h.percentile(50)), p99Ms: ms(h.percentile(99)), maxMs: ms(h.max), windowMs: Math.round(windowMs) };
  }
}
