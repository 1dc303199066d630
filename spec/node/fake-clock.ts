// A clock the test moves by hand, for the requester and the service runner
// (lib/node/clock.ts). Time stands still until advance() or fire(); timers
// run in due order, each at its own due time. Immediates model Node's check
// phase: they run after the timers of a turn, once input has been read, so a
// test can deliver a message between fire() and runImmediates() the way a
// socket read lands between an overdue timer and its setImmediate.
import type { Clock, TimerHandle } from '../../lib/node/clock.ts';

interface Timer {
  readonly due: number;
  readonly seq: number;
  readonly callback: () => void;
}

/** Node's timer range: a delay outside 1..2^31-1 (or NaN) becomes 1 ms. */
const TIMEOUT_MAX = 2 ** 31 - 1;

export class FakeClock implements Clock {
  #now: number;
  #seq = 0;
  readonly #timers = new Set<Timer>();
  #immediates: Array<() => void> = [];

  constructor(start = 1000) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  setTimeout(callback: () => void, ms: number): TimerHandle {
    const delay = ms >= 1 && ms <= TIMEOUT_MAX ? ms : 1;
    const timer: Timer = { due: this.#now + delay, seq: ++this.#seq, callback };
    this.#timers.add(timer);
    return timer;
  }

  clearTimeout(handle: TimerHandle | undefined): void {
    if (handle) this.#timers.delete(handle as Timer);
  }

  setImmediate(callback: () => void): void {
    this.#immediates.push(callback);
  }

  /** Timers not yet run. */
  get pendingTimers(): number {
    return this.#timers.size;
  }

  /** Due times of the pending timers, relative to now, sorted. */
  get pendingDelays(): number[] {
    return [...this.#timers].map((t) => t.due - this.#now).sort((a, b) => a - b);
  }

  /** Moves time forward by `ms`: each timer runs at its due time, followed by the immediates queued so far. */
  advance(ms: number): void {
    const target = this.#now + ms;
    this.runImmediates();
    for (let t = this.#next(target); t; t = this.#next(target)) {
      this.#timers.delete(t);
      this.#now = t.due;
      t.callback();
      this.runImmediates();
    }
    this.#now = target;
  }

  /** Jumps `ms` forward at once and runs every timer now due (a stalled process catching up), but no immediate. */
  fire(ms: number): void {
    this.#now += ms;
    for (let t = this.#next(this.#now); t; t = this.#next(this.#now)) {
      this.#timers.delete(t);
      t.callback();
    }
  }

  /** Runs the queued immediates (and those they queue). */
  runImmediates(): void {
    while (this.#immediates.length > 0) {
      const batch = this.#immediates;
      this.#immediates = [];
      for (const callback of batch) callback();
    }
  }

  #next(limit: number): Timer | undefined {
    let best: Timer | undefined;
    for (const t of this.#timers) {
      if (t.due > limit) continue;
      if (!best || t.due < best.due || (t.due === best.due && t.seq < best.seq)) best = t;
    }
    return best;
  }
}
