/**
 * The worker's reply cache (docs/api.md#offering-a-service), keyed by
 * (sender key, request id):
 * a resent request attaches to the execution still running, or gets the
 * finished reply replayed, so a request is executed once however many times
 * it arrives. Bounded in entries, bytes and age. Pure: the clock is passed in.
 */
import { hexOf } from '../protocol/request-ids.ts';

/** What a finished execution produced. */
export type Outcome =
  | { readonly ok: true; readonly payload: Uint8Array }
  | { readonly ok: false; readonly code: string; readonly retryable: boolean; readonly text: string };

/** Bounds of the cache. */
export interface ReplyCacheLimits {
  /** Most finished entries kept (default 10 000). */
  readonly maxEntries: number;
  /** Most reply bytes kept (default 64 MiB). */
  readonly maxBytes: number;
  /** How long a finished reply is kept, ms (default 60 000). */
  readonly maxAgeMs: number;
}

/** Default bounds (docs/limits.md). */
export const DEFAULT_REPLY_CACHE_LIMITS: ReplyCacheLimits = { maxEntries: 10_000, maxBytes: 64 * 1024 * 1024, maxAgeMs: 60_000 };

/** One execution: running (with the paths to answer on) or finished. */
interface CacheEntry<P> {
  readonly key: string;
  /** Return paths, newest last; the reply goes to the newest one still usable. */
  readonly paths: P[];
  outcome: Outcome | undefined;
  finishedAt: number;
  bytes: number;
}

/** Slack a kept reply may pin beyond its own bytes before it is copied out of the buffer it is a view of. */
const VIEW_SLACK = 1024;

/**
 * The reply itself, not the buffer it may be a view of: an echoed payload is
 * a view into a decrypted frame that can hold many envelopes, and the cache
 * counts (and bounds) reply bytes, so it must hold no more than those.
 */
function ownBytes(payload: Uint8Array): Uint8Array {
  return payload.buffer.byteLength > payload.byteLength + VIEW_SLACK ? new Uint8Array(payload) : payload;
}

/** The reply cache. `P` is whatever identifies a return path. */
export class ReplyCache<P> {
  readonly #limits: ReplyCacheLimits;
  readonly #running = new Map<string, CacheEntry<P>>();
  readonly #finished = new Map<string, CacheEntry<P>>();
  #bytes = 0;

  constructor(limits: Partial<ReplyCacheLimits> = {}) {
    this.#limits = { ...DEFAULT_REPLY_CACHE_LIMITS, ...limits };
  }

  /** Cache key of a request. */
  static key(senderKey: string, id: Uint8Array): string {
    return `${senderKey}:${hexOf(id)}`;
  }

  /** Finished entries held. */
  get size(): number {
    return this.#finished.size;
  }

  /** Executions running. */
  get running(): number {
    return this.#running.size;
  }

  /** Reply bytes held. */
  get bytes(): number {
    return this.#bytes;
  }

  /**
   * Looks a request up. `new`: start executing (the entry is now running);
   * `attached`: already running, the path was added; `replay`: finished, the
   * outcome is returned for this path.
   */
  begin(key: string, path: P, now: number): { state: 'new' | 'attached'; entry: CacheEntry<P> } | { state: 'replay'; entry: CacheEntry<P>; outcome: Outcome } {
    this.#expire(now);
    const running = this.#running.get(key);
    if (running) {
      running.paths.push(path);
      if (running.paths.length > 8) running.paths.shift();
      return { state: 'attached', entry: running };
    }
    const done = this.#finished.get(key);
    if (done?.outcome) return { state: 'replay', entry: done, outcome: done.outcome };
    const entry: CacheEntry<P> = { key, paths: [path], outcome: undefined, finishedAt: 0, bytes: 0 };
    this.#running.set(key, entry);
    return { state: 'new', entry };
  }

  /** Records the outcome of a running execution; returns the entry with its paths. */
  finish(key: string, outcome: Outcome, now: number): CacheEntry<P> | undefined {
    const entry = this.#running.get(key);
    if (!entry) return undefined;
    this.#running.delete(key);
    entry.outcome = outcome.ok ? { ok: true, payload: ownBytes(outcome.payload) } : outcome;
    entry.finishedAt = now;
    entry.bytes = (outcome.ok ? outcome.payload.length : outcome.text.length) + key.length + 64;
    if (entry.bytes <= this.#limits.maxBytes) {
      this.#finished.set(key, entry);
      this.#bytes += entry.bytes;
    }
    this.#evict();
    return entry;
  }

  /** Drops a running entry without an outcome (e.g. the execution was abandoned); returns it, with its paths. */
  abandon(key: string): CacheEntry<P> | undefined {
    const entry = this.#running.get(key);
    this.#running.delete(key);
    return entry;
  }

  #expire(now: number): void {
    for (const [key, e] of this.#finished) {
      if (now - e.finishedAt < this.#limits.maxAgeMs) break; // insertion order = finish order
      this.#finished.delete(key);
      this.#bytes -= e.bytes;
    }
  }

  #evict(): void {
    while (this.#finished.size > this.#limits.maxEntries || this.#bytes > this.#limits.maxBytes) {
      const first = this.#finished.entries().next().value;
      if (!first) break;
      this.#finished.delete(first[0]);
      this.#bytes -= first[1].bytes;
    }
  }
}
