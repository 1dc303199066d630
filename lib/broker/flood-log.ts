/**
 * FloodLog: decides which failed handshakes a broker reports one by one,
 * and sums up the rest. Under a flood of bad connections a line per failure
 * would be a denial of service on the log itself, so within each window
 * only the first failure per (source address, code) is reported, at most
 * `maxReports` in all; the others, and connections evicted or closed at
 * accept, are counted and returned once per window by `flush`. A state
 * machine with no I/O and no clock of its own.
 */

/** Bounds of a FloodLog. */
export interface FloodLogLimits {
  /** Length of a window, ms. */
  readonly windowMs: number;
  /** Failures reported one by one per window, in all. */
  readonly maxReports: number;
  /** Sources tracked by name per window; more are counted under "other". */
  readonly maxSources: number;
}

/** Default bounds: a 10 s window, 10 reports, 1,024 sources. */
export const DEFAULT_FLOOD_LOG_LIMITS: FloodLogLimits = { windowMs: 10_000, maxReports: 10, maxSources: 1024 };

/** What a window held beyond what was reported one by one. */
export interface FloodSummary {
  readonly windowMs: number;
  /** Failed handshakes not reported one by one. */
  readonly failed: number;
  /** Connections evicted from a full handshake table. */
  readonly evicted: number;
  /** Connections closed at accept over a bound. */
  readonly refused: number;
  /** The sources with the most of these, most first (at most 5), with their counts. */
  readonly sources: ReadonlyArray<{ readonly source: string; readonly count: number }>;
}

/** How the broker met one unwanted connection. */
export type FloodKind = 'failed' | 'evicted' | 'refused';

const OTHER = 'other';
const TOP_SOURCES = 5;

/** Rate limit and summary of handshake failures, evictions and refusals. */
export class FloodLog {
  readonly #limits: FloodLogLimits;
  #windowStart: number | undefined;
  #reported = 0;
  readonly #reportedKeys = new Set<string>();
  #counts = { failed: 0, evicted: 0, refused: 0 };
  readonly #bySource = new Map<string, number>();

  constructor(limits: FloodLogLimits = DEFAULT_FLOOD_LOG_LIMITS) {
    this.#limits = limits;
  }

  /** When the current window ends (the broker flushes then), or undefined when nothing is pending. */
  get due(): number | undefined {
    return this.#windowStart === undefined ? undefined : this.#windowStart + this.#limits.windowMs;
  }

  /**
   * Notes one unwanted connection. True when a failure is to be reported
   * on its own now; false when it is only counted for the summary.
   */
  note(kind: FloodKind, source: string, code: string, now: number): boolean {
    this.#windowStart ??= now;
    if (kind === 'failed') {
      const key = `${source} ${code}`;
      if (this.#reported < this.#limits.maxReports && !this.#reportedKeys.has(key) && this.#reportedKeys.size < this.#limits.maxSources) {
        this.#reported++;
        this.#reportedKeys.add(key);
        return true;
      }
    }
    this.#counts[kind]++;
    const name = this.#bySource.has(source) || this.#bySource.size < this.#limits.maxSources ? source : OTHER;
    this.#bySource.set(name, (this.#bySource.get(name) ?? 0) + 1);
    return false;
  }

  /**
   * Ends the window: the summary of what was only counted (undefined when
   * nothing was), and a fresh window.
   */
  flush(): FloodSummary | undefined {
    const { failed, evicted, refused } = this.#counts;
    const summary: FloodSummary | undefined =
      failed + evicted + refused === 0
        ? undefined
        : {
            windowMs: this.#limits.windowMs,
            failed,
            evicted,
            refused,
            sources: [...this.#bySource]
              .sort((a, b) => b[1] - a[1])
              .slice(0, TOP_SOURCES)
              .map(([source, count]) => ({ source, count })),
          };
    this.#windowStart = undefined;
    this.#reported = 0;
    this.#reportedKeys.clear();
    this.#counts = { failed: 0, evicted: 0, refused: 0 };
    this.#bySource.clear();
    return summary;
  }
}
