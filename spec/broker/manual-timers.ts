// BrokerTimers on a clock moved by hand, for the unit specs of the pending
// table and the stall watchdog: `advance` lets time pass with every timer
// firing when due; `freeze` moves the clock with nothing running (a process
// stopped by SIGSTOP), and `runDue` then fires what is overdue, once each,
// as Node does when the process resumes.
import type { BrokerTimers, CancelTimer } from '../../lib/broker/broker-timers.ts';

interface Task {
  due: number;
  readonly fn: () => void;
  readonly interval: number | undefined;
}

/** Timers on a hand-driven clock that starts at 0. */
export class ManualTimers implements BrokerTimers {
  #now = 0;
  readonly #tasks = new Set<Task>();

  /** The clock, ms. */
  readonly now = (): number => this.#now;

  at(atMs: number, fn: () => void): CancelTimer {
    return this.#add({ due: Math.max(atMs, this.#now + 1), fn, interval: undefined });
  }

  every(intervalMs: number, fn: () => void): CancelTimer {
    return this.#add({ due: this.#now + intervalMs, fn, interval: intervalMs });
  }

  /** How many timers are armed. */
  get armed(): number {
    return this.#tasks.size;
  }

  /** The earliest time a timer is due, or undefined. */
  get nextDue(): number | undefined {
    let next: number | undefined;
    for (const t of this.#tasks) if (next === undefined || t.due < next) next = t.due;
    return next;
  }

  /** Lets `ms` pass, firing each timer when it falls due, in order. */
  advance(ms: number): void {
    const end = this.#now + ms;
    for (;;) {
      const task = this.#earliest();
      if (!task || task.due > end) break;
      this.#now = task.due;
      this.#fire(task);
    }
    this.#now = end;
  }

  /** Moves the clock `ms` ahead with nothing running (the process was frozen). */
  freeze(ms: number): void {
    this.#now += ms;
  }

  /** Fires every overdue timer once, earliest first; an interval then keeps its period from now. */
  runDue(): void {
    const due = [...this.#tasks].filter((t) => t.due <= this.#now).sort((a, b) => a.due - b.due);
    for (const task of due) if (this.#tasks.has(task)) this.#fire(task);
  }

  #add(task: Task): CancelTimer {
    this.#tasks.add(task);
    return () => this.#tasks.delete(task);
  }

  #earliest(): Task | undefined {
    let first: Task | undefined;
    for (const t of this.#tasks) if (!first || t.due < first.due) first = t;
    return first;
  }

  #fire(task: Task): void {
    if (task.interval === undefined) this.#tasks.delete(task);
    else task.due = this.#now + task.interval;
    task.fn();
  }
}
