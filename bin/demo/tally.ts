/**
 * The bookkeeping of `meshd demo`: what the client reported about each
 * request and what the workers reported about each execution, turned into
 * live rates and the final summary. Pure: no processes, no clock of its own
 * (times are passed in).
 */

import type { ResultTuple } from './ipc.ts';

/** The p-th percentile (0 to 100, nearest rank) of sorted values; 0 for none. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!;
}

/** The client's counters at one of its reports, for live rates. */
interface ClientSample {
  /** ms since the client started its load, by its own clock. */
  readonly at: number;
  /** Requests settled. */
  readonly settled: number;
  /** First attempts sent through each broker. */
  readonly perBroker: readonly number[];
}

/** Rates over the last second, per second. */
export interface Rates {
  /** Requests settled. */
  readonly settled: number;
  /** First attempts sent through each broker. */
  readonly perBroker: readonly number[];
}

/** The window of live rates, ms. */
const RATE_WINDOW_MS = 1000;

/** What one request came to. */
interface Fate {
  readonly broker: number;
  readonly ms: number;
  readonly outcome: string;
  readonly worker: string;
  readonly attempt: number;
}

/** Per-broker numbers of the summary. */
export interface BrokerCount {
  readonly name: string;
  /** Requests whose first attempt the client sent through this broker. */
  readonly firstAttempts: number;
  /** Of those, replied by a worker that got the request from that first attempt. */
  readonly repliedFromFirstAttempt: number;
}

/** Per-worker numbers of the summary. */
export interface WorkerCount {
  readonly name: string;
  /** Executions the worker reported. */
  readonly executions: number;
  /** Replies the client got from it. */
  readonly replies: number;
}

/** The request numbers of the summary. */
export interface RequestCounts {
  /** Requests the client started. */
  readonly sent: number;
  /** Answered with the right reply. */
  readonly replied: number;
  /** Ended with a MESH_ERR_* error. */
  readonly failed: number;
  readonly failedCodes: Readonly<Record<string, number>>;
  /** Neither a reply nor an error by the end, or a reply that was not the request's. */
  readonly lost: number;
  /** Of `lost`: replies that were not the request's own. */
  readonly wrongReplies: number;
  /** Requests executed more than once by the workers. */
  readonly duplicates: number;
  /** Executions beyond the first of those requests. */
  readonly extraExecutions: number;
  /** Replies from an attempt after the first (the first attempt failed: a failover). */
  readonly repliedAfterRetry: number;
  /** Replies for which no worker reported an execution. */
  readonly repliedUnexecuted: number;
}

/** Latency of the replied requests, ms. */
export interface Latency {
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
}

/** The numbers `meshd demo` reports. */
export class Tally {
  readonly #brokers: readonly string[];
  readonly #workers: readonly string[];
  readonly #fates = new Map<number, Fate>();
  /** Executions per request seq, from every worker. */
  readonly #executions = new Map<number, number>();
  readonly #executionsPerWorker: number[];
  /** The client's recent reports, oldest first (the last two seconds or so). */
  readonly #history: ClientSample[] = [];
  #sent = 0;
  #inFlight = 0;
  /** Latencies of replies since the last call of takeRecentLatencies(). */
  #recent: number[] = [];

  constructor(brokers: readonly string[], workers: readonly string[]) {
    this.#brokers = brokers;
    this.#workers = workers;
    this.#executionsPerWorker = workers.map(() => 0);
  }

  /**
   * A client report: when (ms since its load started, by its clock),
   * requests started so far, first attempts per broker, in flight now, and
   * newly settled ones.
   */
  addBatch(at: number, sent: number, perBroker: readonly number[], inFlight: number, results: readonly ResultTuple[]): void {
    this.#sent = Math.max(this.#sent, sent);
    this.#inFlight = inFlight;
    for (const [seq, broker, ms, outcome, worker, attempt] of results) {
      if (this.#fates.has(seq)) continue;
      this.#fates.set(seq, { broker, ms, outcome, worker, attempt });
      if (outcome === 'ok') this.#recent.push(ms);
    }
    if (perBroker.length !== this.#brokers.length) return;
    this.#history.push({ at, settled: this.#fates.size, perBroker });
    // Keep one sample at least a window older than the newest, and nothing older.
    while (this.#history.length > 2 && this.#history[1]!.at <= at - RATE_WINDOW_MS) this.#history.shift();
  }

  /**
   * Rates over the client's last second, by the client's clock (so a report
   * that reached the demo late does not smear one second into the next).
   */
  rates(): Rates {
    const last = this.#history[this.#history.length - 1];
    if (last === undefined) return { settled: 0, perBroker: this.#brokers.map(() => 0) };
    const base = [...this.#history].reverse().find((h) => h.at <= last.at - RATE_WINDOW_MS) ?? this.#history[0]!;
    const seconds = Math.max(RATE_WINDOW_MS, last.at - base.at) / 1000;
    return { settled: (last.settled - base.settled) / seconds, perBroker: last.perBroker.map((n, i) => (n - (base.perBroker[i] ?? 0)) / seconds) };
  }

  /** The client's last word: every loop has ended. */
  clientDone(): void {
    this.#inFlight = 0;
  }

  /** The seqs of the requests started but not reported settled. */
  unsettled(): number[] {
    const out: number[] = [];
    for (let seq = 0; seq < this.#sent; seq++) if (!this.#fates.has(seq)) out.push(seq);
    return out;
  }

  /** A worker report: the requests it started executing. */
  addExecutions(worker: number, seqs: readonly number[]): void {
    if (worker >= 0 && worker < this.#executionsPerWorker.length) this.#executionsPerWorker[worker]! += seqs.length;
    for (const seq of seqs) this.#executions.set(seq, (this.#executions.get(seq) ?? 0) + 1);
  }

  get sent(): number {
    return this.#sent;
  }

  get inFlight(): number {
    return this.#inFlight;
  }

  /** Executions each worker reported so far. */
  executionsPerWorker(): number[] {
    return [...this.#executionsPerWorker];
  }

  /** The latencies of the replies reported since the last call, sorted; then forgets them. */
  takeRecentLatencies(): number[] {
    const out = this.#recent.sort((a, b) => a - b);
    this.#recent = [];
    return out;
  }

  /** The request counts. */
  counts(): RequestCounts {
    let replied = 0;
    let failed = 0;
    let wrong = 0;
    let afterRetry = 0;
    let unexecuted = 0;
    const failedCodes: Record<string, number> = {};
    for (const [seq, f] of this.#fates) {
      if (f.outcome === 'ok') {
        replied++;
        if (f.attempt > 1) afterRetry++;
        if (!this.#executions.has(seq)) unexecuted++;
      } else if (f.outcome === 'wrong') {
        wrong++;
      } else {
        failed++;
        failedCodes[f.outcome] = (failedCodes[f.outcome] ?? 0) + 1;
      }
    }
    // Started but never reported settled (the client's `done` lists them too; a client that died cannot).
    const unsettled = this.unsettled().length;
    let duplicates = 0;
    let extra = 0;
    for (const n of this.#executions.values()) {
      if (n > 1) {
        duplicates++;
        extra += n - 1;
      }
    }
    return {
      sent: this.#sent,
      replied,
      failed,
      failedCodes,
      lost: unsettled + wrong,
      wrongReplies: wrong,
      duplicates,
      extraExecutions: extra,
      repliedAfterRetry: afterRetry,
      repliedUnexecuted: unexecuted,
    };
  }

  /** Latency of every replied request. */
  latency(): Latency {
    const all = [...this.#fates.values()].filter((f) => f.outcome === 'ok').map((f) => f.ms);
    all.sort((a, b) => a - b);
    return { p50: percentile(all, 50), p99: percentile(all, 99), max: all.length === 0 ? 0 : all[all.length - 1]! };
  }

  /** Per-broker counts. */
  perBroker(): BrokerCount[] {
    const first = this.#brokers.map(() => 0);
    const replied = this.#brokers.map(() => 0);
    for (const f of this.#fates.values()) {
      if (f.broker < 0 || f.broker >= first.length) continue;
      first[f.broker]!++;
      if (f.outcome === 'ok' && f.attempt === 1) replied[f.broker]!++;
    }
    return this.#brokers.map((name, i) => ({ name, firstAttempts: first[i]!, repliedFromFirstAttempt: replied[i]! }));
  }

  /** Requests settled whose first attempt had no healthy broker to go to (the node picked one when one came up). */
  withoutBroker(): number {
    let n = 0;
    for (const f of this.#fates.values()) if (f.broker < 0) n++;
    return n;
  }

  /** Per-worker counts. */
  perWorker(): WorkerCount[] {
    const replies = this.#workers.map(() => 0);
    for (const f of this.#fates.values()) {
      const i = f.outcome === 'ok' ? this.#workers.indexOf(f.worker) : -1;
      if (i >= 0) replies[i]!++;
    }
    return this.#workers.map((name, i) => ({ name, executions: this.#executionsPerWorker[i]!, replies: replies[i]! }));
  }
}
