/**
 * Retry budget: a token bucket that stops retry storms
 * (docs/architecture.md#what-is-guaranteed-and-what-is-not). Each
 * retry takes one token; tokens come back at a fixed rate and with every
 * request that succeeds, so retries stay a bounded fraction of traffic when a
 * whole service is failing. Pure: the clock is passed in.
 */

/** Settings of a retry budget. */
interface RetryBudgetOptions {
  /** Most tokens held (default 100). */
  readonly capacity: number;
  /** Tokens added per second (default 10). */
  readonly refillPerSecond: number;
  /** Tokens added per successful request (default 0.2). */
  readonly perSuccess: number;
}

/** Defaults: bursts of 100 retries, then 10/s plus 20 % of successes. */
const DEFAULT_RETRY_BUDGET: RetryBudgetOptions = { capacity: 100, refillPerSecond: 10, perSuccess: 0.2 };

/** A token bucket for retries. */
export class RetryBudget {
  readonly #options: RetryBudgetOptions;
  #tokens: number;
  #last: number;

  constructor(now: number, options: Partial<RetryBudgetOptions> = {}) {
    this.#options = { ...DEFAULT_RETRY_BUDGET, ...options };
    this.#tokens = this.#options.capacity;
    this.#last = now;
  }

  #refill(now: number): void {
    const elapsed = Math.max(0, now - this.#last) / 1000;
    this.#last = now;
    this.#tokens = Math.min(this.#options.capacity, this.#tokens + elapsed * this.#options.refillPerSecond);
  }

  /** Tokens available now. */
  tokens(now: number): number {
    this.#refill(now);
    return this.#tokens;
  }

  /** Takes a token for one retry; false when the budget is spent. */
  tryRetry(now: number): boolean {
    this.#refill(now);
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }

  /** A request succeeded. */
  success(): void {
    this.#tokens = Math.min(this.#options.capacity, this.#tokens + this.#options.perSuccess);
  }
}
