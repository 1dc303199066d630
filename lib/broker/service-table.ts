/**
 * Routing state of one broker, as pure data structures (no I/O, no timers):
 * per service, the workers offering it with their credits, a round-robin
 * cursor (the next pick starts after the last worker chosen), and a bounded
 * queue of requests waiting for credit
 * (docs/architecture.md#how-a-broker-routes-a-request).
 */

/** A worker as the routing table sees it. */
export interface WorkerRef {
  /** Session id, unique per connection. */
  readonly id: number;
  /** The worker's static key (base64url). */
  readonly key: string;
}

/** A request waiting in a service queue. */
export interface QueuedRequest<T> {
  readonly item: T;
  readonly bytes: number;
}

/** Reads an item's current deadline (a resend may extend it while it waits). */
export type DeadlineOf<T> = (item: T) => number;

/** Queue bounds per service. */
export interface QueueLimits {
  /** Most requests waiting per service (default 1000). */
  readonly maxCount: number;
  /** Most payload bytes waiting per service (default 16 MiB). */
  readonly maxBytes: number;
}

/** Default queue bounds (docs/limits.md). */
export const DEFAULT_QUEUE_LIMITS: QueueLimits = { maxCount: 1000, maxBytes: 16 * 1024 * 1024 };

/** One service: its workers, credits, cursor and queue. */
export class ServiceState<T> {
  readonly name: string;
  /** Workers offering the service, in the order they first offered it. */
  readonly workers: WorkerRef[] = [];
  readonly #credits = new Map<number, number>();
  #cursor = 0;
  #queue: QueuedRequest<T>[] = [];
  #queueHead = 0;
  #queueBytes = 0;

  readonly #deadlineOf: DeadlineOf<T>;

  constructor(name: string, deadlineOf: DeadlineOf<T>) {
    this.name = name;
    this.#deadlineOf = deadlineOf;
  }

  /** Credits a worker holds for this service. */
  credits(workerId: number): number {
    return this.#credits.get(workerId) ?? 0;
  }

  /** Total credits across workers. */
  get totalCredits(): number {
    let n = 0;
    for (const c of this.#credits.values()) n += c;
    return n;
  }

  /** Adds a worker (if new) and grants it credits. */
  offer(worker: WorkerRef, credits: number): void {
    if (!this.#credits.has(worker.id)) {
      this.workers.push(worker);
      this.#credits.set(worker.id, 0);
    }
    this.#credits.set(worker.id, this.credits(worker.id) + credits);
  }

  /** Removes a worker (CANCEL or disconnect). */
  withdraw(workerId: number): void {
    const i = this.workers.findIndex((w) => w.id === workerId);
    if (i < 0) return;
    this.workers.splice(i, 1);
    this.#credits.delete(workerId);
    if (this.#cursor > i) this.#cursor--;
    if (this.#cursor >= this.workers.length) this.#cursor = 0;
  }

  /** Whether the worker offers this service. */
  has(workerId: number): boolean {
    return this.#credits.has(workerId);
  }

  /**
   * Picks the next worker with credit, round-robin from the one after the
   * last chosen, and takes one credit from it. Undefined when none has credit.
   */
  pick(): WorkerRef | undefined {
    const n = this.workers.length;
    for (let k = 0; k < n; k++) {
      const i = (this.#cursor + k) % n;
      const w = this.workers[i]!;
      const c = this.#credits.get(w.id)!;
      if (c > 0) {
        this.#credits.set(w.id, c - 1);
        this.#cursor = (i + 1) % n;
        return w;
      }
    }
    return undefined;
  }

  /** Takes a credit from a specific worker if it has one (hinted dispatch). */
  takeCredit(workerId: number): void {
    const c = this.#credits.get(workerId);
    if (c !== undefined && c > 0) this.#credits.set(workerId, c - 1);
  }

  /** Requests waiting. */
  get queueLength(): number {
    return this.#queue.length - this.#queueHead;
  }

  /** Payload bytes waiting. */
  get queueBytes(): number {
    return this.#queueBytes;
  }

  /** Appends to the queue; false when a bound would be passed. */
  enqueue(entry: QueuedRequest<T>, limits: QueueLimits): boolean {
    if (this.queueLength >= limits.maxCount || this.#queueBytes + entry.bytes > limits.maxBytes) return false;
    this.#queue.push(entry);
    this.#queueBytes += entry.bytes;
    return true;
  }

  /** Takes the oldest waiting request. */
  dequeue(): QueuedRequest<T> | undefined {
    if (this.#queueHead >= this.#queue.length) return undefined;
    const entry = this.#queue[this.#queueHead]!;
    this.#queue[this.#queueHead] = undefined as never;
    this.#queueHead++;
    this.#queueBytes -= entry.bytes;
    if (this.#queueHead > 1024 && this.#queueHead * 2 > this.#queue.length) {
      this.#queue = this.#queue.slice(this.#queueHead);
      this.#queueHead = 0;
    }
    return entry;
  }

  /** Removes and returns every waiting request matching `pred` (expired, or of a gone client). */
  removeWhere(pred: (entry: QueuedRequest<T>) => boolean): QueuedRequest<T>[] {
    const removed: QueuedRequest<T>[] = [];
    const kept: QueuedRequest<T>[] = [];
    for (let i = this.#queueHead; i < this.#queue.length; i++) {
      const e = this.#queue[i]!;
      if (pred(e)) removed.push(e);
      else kept.push(e);
    }
    if (removed.length > 0) {
      this.#queue = kept;
      this.#queueHead = 0;
      this.#queueBytes = kept.reduce((n, e) => n + e.bytes, 0);
    }
    return removed;
  }

  /** The earliest deadline among waiting requests, or Infinity. */
  earliestDeadline(): number {
    let d = Infinity;
    for (let i = this.#queueHead; i < this.#queue.length; i++) d = Math.min(d, this.#deadlineOf(this.#queue[i]!.item));
    return d;
  }
}

/** All services of a broker. */
export class ServiceTable<T> {
  readonly #services = new Map<string, ServiceState<T>>();
  readonly #deadlineOf: DeadlineOf<T>;

  constructor(deadlineOf: DeadlineOf<T>) {
    this.#deadlineOf = deadlineOf;
  }

  /** The service, if any worker ever offered it here. */
  get(name: string): ServiceState<T> | undefined {
    return this.#services.get(name);
  }

  /** The service, created on first offer. */
  ensure(name: string): ServiceState<T> {
    let s = this.#services.get(name);
    if (!s) {
      s = new ServiceState<T>(name, this.#deadlineOf);
      this.#services.set(name, s);
    }
    return s;
  }

  /** Every service. */
  values(): IterableIterator<ServiceState<T>> {
    return this.#services.values();
  }

  /**
   * Forgets a service nobody offers and nothing waits for, so the table is
   * bounded by what is offered now (requests for it then get NO_SERVICE).
   */
  prune(name: string): void {
    const s = this.#services.get(name);
    if (s && s.workers.length === 0 && s.queueLength === 0) this.#services.delete(name);
  }

  /** Removes a worker from every service it offers; returns the names. */
  withdrawAll(workerId: number): string[] {
    const names: string[] = [];
    for (const s of this.#services.values()) {
      if (s.has(workerId)) {
        s.withdraw(workerId);
        names.push(s.name);
      }
    }
    return names;
  }
}
