/**
 * Admission: which pre-authentication connections a broker keeps when a
 * flood of them arrives. A state machine with no I/O: the SessionAcceptor
 * tells it about accepts, handshake progress and ends, and closes the
 * connections it names.
 *
 * A real initiator sends its preamble and handshake message 1 in its first
 * write, so a connection that has said nothing since the broker last read
 * its sockets is worth least. The bounds stay (handshakes in progress, in
 * all and per source address); when one is reached, the newcomer takes the
 * place of the connection with the least progress, the oldest first,
 * instead of being turned away. Connections accepted in the current turn of
 * the event loop are never evicted: their first bytes may not have been
 * read yet (a burst of honest reconnects arrives in one turn).
 */

/** One connection in its handshake. */
export interface Candidate<T> {
  readonly value: T;
  /** Source address (no port). */
  readonly source: string;
  /** 0: nothing useful read yet; 1: message 1 read, message 2 sent. */
  stage: 0 | 1;
  /** When it was accepted or last made progress, ms. */
  since: number;
  /** The event-loop turn of that moment. */
  turn: number;
}

/** Bounds of Admission. */
export interface AdmissionLimits {
  /** Most handshakes in progress in all. */
  readonly maxHandshakes: number;
  /** Most handshakes in progress from one source address. */
  readonly maxPerSource: number;
}

/** What `admit` decided: keep the newcomer (after closing `evict`, if set), or turn it away. */
export type AdmitResult<T> = { readonly admitted: Candidate<T>; readonly evict: Candidate<T> | undefined } | { readonly admitted: undefined; readonly reason: 'limit' | 'source-limit' };

/** Pre-authentication connections by stage, oldest first, in all and per source. */
export class Admission<T> {
  readonly #limits: AdmissionLimits;
  /** Per stage, in the order of `since` (insertion order of a Set). */
  readonly #stages: [Set<Candidate<T>>, Set<Candidate<T>>] = [new Set(), new Set()];
  readonly #bySource = new Map<string, [Set<Candidate<T>>, Set<Candidate<T>>]>();
  #turn = 0;
  /** The turn of the latest accept or progress. */
  #lastNews = 0;

  constructor(limits: AdmissionLimits) {
    this.#limits = limits;
  }

  /** Connections in their handshake. */
  get size(): number {
    return this.#stages[0].size + this.#stages[1].size;
  }

  /** Connections in their handshake from this source. */
  sizeOf(source: string): number {
    const s = this.#bySource.get(source);
    return s ? s[0].size + s[1].size : 0;
  }

  /**
   * The event loop has been through one more turn (the acceptor calls this
   * from setImmediate): candidates of two turns ago have had their bytes
   * read, if they sent any.
   */
  nextTurn(): void {
    this.#turn++;
  }

  /** The current turn. */
  get turn(): number {
    return this.#turn;
  }

  /** True when some candidate is still too new to be evicted (the acceptor keeps turning while so). */
  get hasFresh(): boolean {
    return this.size > 0 && this.#turn < this.#lastNews + 2;
  }

  /** A connection was accepted from `source` at `now`. */
  admit(value: T, source: string, now: number): AdmitResult<T> {
    let evict: Candidate<T> | undefined;
    const own = this.#bySource.get(source);
    if (own && own[0].size + own[1].size >= this.#limits.maxPerSource) {
      // The source's own least-progress connection makes room, or the newcomer goes.
      evict = this.#victim(own);
      if (!evict) return { admitted: undefined, reason: 'source-limit' };
    } else if (this.size >= this.#limits.maxHandshakes) {
      evict = this.#victim(this.#stages);
      if (!evict) return { admitted: undefined, reason: 'limit' };
    }
    if (evict) this.release(evict);
    const c: Candidate<T> = { value, source, stage: 0, since: now, turn: this.#turn };
    this.#lastNews = this.#turn;
    this.#add(c);
    return { admitted: c, evict };
  }

  /** Handshake message 1 was read from this connection. */
  progressed(c: Candidate<T>, now: number): void {
    if (c.stage === 1 || !this.#stages[0].has(c)) return;
    this.#remove(c);
    c.stage = 1;
    c.since = now;
    c.turn = this.#turn;
    this.#lastNews = this.#turn;
    this.#add(c);
  }

  /** The connection left its handshake (done, failed or closed). Idempotent. */
  release(c: Candidate<T>): void {
    this.#remove(c);
  }

  /** Every connection in its handshake. */
  all(): Array<Candidate<T>> {
    return [...this.#stages[0], ...this.#stages[1]];
  }

  /** When the oldest connection still at stage 0 was accepted, ms; undefined when there is none. */
  get oldestSilent(): number | undefined {
    for (const c of this.#stages[0]) return c.since;
    return undefined;
  }

  /**
   * Connections still at stage 0 that were accepted at or before `before`
   * and whose first bytes have had the chance to be read: the acceptor
   * closes them for saying nothing in time.
   */
  silentSince(before: number): Array<Candidate<T>> {
    const out: Array<Candidate<T>> = [];
    for (const c of this.#stages[0]) {
      if (c.since > before || !this.#settled(c)) break; // in order of `since`
      out.push(c);
    }
    return out;
  }

  /** Two turns have passed since the candidate's last news. */
  #settled(c: Candidate<T>): boolean {
    return this.#turn >= c.turn + 2;
  }

  /** The candidate to evict: least progress, oldest, and settled; undefined when none is. */
  #victim(stages: readonly [Set<Candidate<T>>, Set<Candidate<T>>]): Candidate<T> | undefined {
    for (const set of stages) {
      for (const c of set) {
        if (this.#settled(c)) return c;
        break; // the oldest of this stage is not settled: no other one is
      }
    }
    return undefined;
  }

  #add(c: Candidate<T>): void {
    this.#stages[c.stage].add(c);
    let own = this.#bySource.get(c.source);
    if (!own) this.#bySource.set(c.source, (own = [new Set(), new Set()]));
    own[c.stage].add(c);
  }

  #remove(c: Candidate<T>): void {
    if (!this.#stages[c.stage].delete(c)) return;
    const own = this.#bySource.get(c.source);
    if (!own) return;
    own[c.stage].delete(c);
    if (own[0].size + own[1].size === 0) this.#bySource.delete(c.source);
  }
}
