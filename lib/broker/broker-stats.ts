/**
 * What a broker reports about itself: `status()` (BrokerSnapshot) and its
 * counters (docs/api.md#counters-brokerstats): how the requests it took in
 * ended, per service, their latency (REQUEST read → REPLY forwarded) in fixed
 * buckets, resends and re-dispatches, failed handshakes and quorum rounds.
 * The broker's router and handlers bump them where things happen;
 * `Broker.stats()` adds the gauges (connections, queues, requests in flight)
 * read from its tables at that moment ({@link assembleStats}).
 *
 * Cheap on the hot path: a counter is a slot of a typed array allocated once
 * per service, found with one Map lookup; nothing is allocated per request.
 * The number of services tracked is bounded (service names come from the
 * network); the rest are counted together under {@link OTHER_SERVICES}.
 * Plain code: no I/O, the clock is injected.
 */
import { ErrorCodes, isErrorCode } from '../errors.ts';
import type { ErrorCode } from '../errors.ts';
import type { RoleName } from '../protocol/hello.ts';
import type { PendingRequest } from './pending-table.ts';
import type { PeerStatus } from './peer-mesh.ts';
import type { ServiceState } from './service-table.ts';
import type { Session } from './session.ts';

/** How a request that ended without an error code ended. */
export const REQUEST_END_STATES = ['replied', 'timed-out', 'refused', 'dropped'] as const;

/**
 * How a request this broker took in ended:
 * - `replied`: the worker's REPLY was forwarded to the client;
 * - a `MESH_ERR_*` code: the client got an ERROR with that code, from this
 *   broker (e.g. `MESH_ERR_NO_SERVICE`, `MESH_ERR_BUSY`, `MESH_ERR_TIMEOUT` for
 *   a deadline that passed in the queue) or from the worker (`MESH_ERR_HANDLER`);
 * - `timed-out`: it was dispatched, and no answer came back through this
 *   broker by its deadline (plus 1 s): the worker was too slow, or answered
 *   through another broker;
 * - `refused`: handed back to its client (REFUSED) before any worker saw it:
 *   the broker was draining or had just stalled;
 * - `dropped`: forgotten unanswered: its client's connection closed while it
 *   waited, or its worker was lost while this broker was stalled.
 */
export type RequestOutcome = (typeof REQUEST_END_STATES)[number] | ErrorCode;

/** Why a request went to another worker: its worker's connection closed, or the worker refused it. */
export type RedispatchReason = 'worker-lost' | 'refused';

/** Upper bounds of the latency buckets, ms. */
export const LATENCY_BUCKETS_MS: readonly number[] = Object.freeze([1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000]);

/** Default most services counted one by one; the others are counted together. */
export const DEFAULT_MAX_STATS_SERVICES = 1000;

/** The name under which services past the bound are counted (not a valid service name, so it cannot clash). */
export const OTHER_SERVICES = '~other';

/** A latency histogram with fixed buckets. */
export interface LatencyHistogram {
  /** The buckets' upper bounds, ms, ascending. */
  readonly boundsMs: readonly number[];
  /**
   * Requests per bucket, not cumulative: `counts[i]` took more than
   * `boundsMs[i - 1]` and at most `boundsMs[i]` ms; the last entry (there is
   * one more count than bounds) took longer than the last bound.
   */
  readonly counts: readonly number[];
  /** Requests observed (the sum of `counts`). */
  readonly count: number;
  /** Their latencies added up, ms. */
  readonly sumMs: number;
}

/** The counters of one service. */
export interface ServiceCounts {
  readonly name: string;
  /** Requests by how they ended (outcomes that never happened are left out). */
  readonly requests: Readonly<Partial<Record<RequestOutcome, number>>>;
  /** REQUESTs for a request still pending here (a client's resend through the same broker): not counted as new requests. */
  readonly resends: number;
  /** Requests sent to another worker after their worker was lost or refused them. */
  readonly redispatches: { readonly workerLost: number; readonly refused: number };
  /** REQUEST read → REPLY forwarded, for `replied` requests. */
  readonly latency: LatencyHistogram;
}

/** What {@link BrokerCounters.snapshot} returns. */
export interface CountersSnapshot {
  /** Time since the counters were created (the broker started), ms. */
  readonly uptimeMs: number;
  /** Quorum rounds completed. */
  readonly gossipRounds: number;
  /** Connections refused before they became a session, by error code. */
  readonly handshakesFailed: Readonly<Partial<Record<ErrorCode, number>>>;
  /** Connections in their handshake closed to make room for a newcomer. */
  readonly handshakesEvicted: number;
  /** Per service, in the order first seen. */
  readonly services: readonly ServiceCounts[];
}

const OUTCOMES: readonly RequestOutcome[] = [...REQUEST_END_STATES, ...(Object.keys(ErrorCodes) as ErrorCode[])];
const OUTCOME_INDEX: ReadonlyMap<string, number> = new Map(OUTCOMES.map((o, i) => [o, i]));
const CODES = Object.keys(ErrorCodes) as ErrorCode[];
const CODE_INDEX: ReadonlyMap<string, number> = new Map(CODES.map((c, i) => [c, i]));

/** The live counters of one service. */
class ServiceCounters {
  readonly outcomes = new Float64Array(OUTCOMES.length);
  readonly buckets = new Float64Array(LATENCY_BUCKETS_MS.length + 1);
  readonly name: string;
  sumMs = 0;
  resends = 0;
  workerLost = 0;
  refused = 0;

  constructor(name: string) {
    this.name = name;
  }

  snapshot(): ServiceCounts {
    const requests: Partial<Record<RequestOutcome, number>> = {};
    this.outcomes.forEach((n, i) => {
      if (n > 0) requests[OUTCOMES[i]!] = n;
    });
    const counts = [...this.buckets];
    return {
      name: this.name,
      requests,
      resends: this.resends,
      redispatches: { workerLost: this.workerLost, refused: this.refused },
      latency: { boundsMs: LATENCY_BUCKETS_MS, counts, count: counts.reduce((a, b) => a + b, 0), sumMs: this.sumMs },
    };
  }
}

/** Options of {@link BrokerCounters}. */
export interface BrokerCountersOptions {
  /** The broker's monotonic clock, ms. */
  readonly now: () => number;
  /** Most services counted one by one (default {@link DEFAULT_MAX_STATS_SERVICES}). */
  readonly maxServices?: number | undefined;
}

/** The counters of one broker. */
export class BrokerCounters {
  readonly #now: () => number;
  readonly #startedAt: number;
  readonly #maxServices: number;
  readonly #services = new Map<string, ServiceCounters>();
  readonly #handshakesFailed = new Float64Array(CODES.length);
  #other: ServiceCounters | undefined;
  #rounds = 0;
  #evicted = 0;

  constructor(options: BrokerCountersOptions) {
    this.#now = options.now;
    this.#startedAt = options.now();
    this.#maxServices = options.maxServices ?? DEFAULT_MAX_STATS_SERVICES;
  }

  /** The counters of a service nothing was counted for yet: all zero. */
  static empty(name: string): ServiceCounts {
    return new ServiceCounters(name).snapshot();
  }

  /** Quorum rounds completed. */
  get gossipRounds(): number {
    return this.#rounds;
  }

  /** A request of `service` ended with `outcome` (not `replied`: see {@link BrokerCounters.replied}). */
  ended(service: string, outcome: RequestOutcome): void {
    this.#service(service).outcomes[OUTCOME_INDEX.get(outcome)!]!++;
  }

  /**
   * A request of `service` ended with an ERROR of this code to its client. A
   * code meshd does not know (from another implementation's worker) counts
   * as MESH_ERR_PROTOCOL, as a meshd client reads it.
   */
  failed(service: string, code: string): void {
    this.ended(service, isErrorCode(code) ? code : 'MESH_ERR_PROTOCOL');
  }

  /** A worker's REPLY to a request of `service`, read by this broker at `receivedAt` (its clock), was forwarded to the client. */
  replied(service: string, receivedAt: number): void {
    const s = this.#service(service);
    s.outcomes[0]!++;
    const ms = Math.max(0, this.#now() - receivedAt);
    s.sumMs += ms;
    let i = 0;
    while (i < LATENCY_BUCKETS_MS.length && ms > LATENCY_BUCKETS_MS[i]!) i++;
    s.buckets[i]!++;
  }

  /** A client resent a request of `service` that is still pending here. */
  resent(service: string): void {
    this.#service(service).resends++;
  }

  /** A request of `service` goes to another worker. */
  redispatched(service: string, reason: RedispatchReason): void {
    const s = this.#service(service);
    if (reason === 'worker-lost') s.workerLost++;
    else s.refused++;
  }

  /** A connection was refused before it became a session. */
  handshakeFailed(code: ErrorCode): void {
    this.#handshakesFailed[CODE_INDEX.get(code)!]!++;
  }

  /** A connection in its handshake was closed to make room for a newcomer. */
  handshakeEvicted(): void {
    this.#evicted++;
  }

  /** A quorum round completed. */
  round(): void {
    this.#rounds++;
  }

  /** A copy of every counter now. */
  snapshot(): CountersSnapshot {
    const handshakesFailed: Partial<Record<ErrorCode, number>> = {};
    this.#handshakesFailed.forEach((n, i) => {
      if (n > 0) handshakesFailed[CODES[i]!] = n;
    });
    const services = [...this.#services.values()];
    if (this.#other) services.push(this.#other);
    return {
      uptimeMs: this.#now() - this.#startedAt,
      gossipRounds: this.#rounds,
      handshakesFailed,
      handshakesEvicted: this.#evicted,
      services: services.map((s) => s.snapshot()),
    };
  }

  #service(name: string): ServiceCounters {
    const s = this.#services.get(name);
    if (s) return s;
    if (this.#services.size >= this.#maxServices) return (this.#other ??= new ServiceCounters(OTHER_SERVICES));
    const created = new ServiceCounters(name);
    this.#services.set(name, created);
    return created;
  }
}

/** A snapshot of broker state, for tools and tests. */
export interface BrokerSnapshot {
  readonly address: string;
  readonly sessions: number;
  readonly handshakes: number;
  readonly pending: number;
  readonly services: ReadonlyArray<{ name: string; workers: number; credits: number; queued: number; queuedBytes: number }>;
  /** Keys of the live brokers this broker agrees on (itself included), sorted. */
  readonly brokers: readonly string[];
  /** Keys of the peer brokers it has a connection to. */
  readonly peers: readonly string[];
  /**
   * Every other broker in this broker's view of the mesh: its status there
   * (`alive`, `suspect`, `leaving` or `dead`), the addresses it announced, and
   * whether this broker has a connection to it now. Sorted by key.
   */
  readonly view: readonly PeerStatus[];
}

/** One service in {@link BrokerStats}: its counters, and its workers, queue and requests in flight now. */
export interface BrokerServiceStats extends ServiceCounts {
  /** Workers connected to this broker that offer the service now. */
  readonly workers: number;
  /** Requests waiting in its queue for a worker with a free credit. */
  readonly queued: number;
  /** Requests dispatched to a worker and not answered yet. */
  readonly inFlight: number;
}

/**
 * What `Broker.stats()` returns: the broker's counters since it started and
 * its gauges now (docs/api.md#counters-brokerstats).
 */
export interface BrokerStats {
  /** Time since the broker started, ms. */
  readonly uptimeMs: number;
  /** Quorum rounds completed (the first one makes the broker ready, as the admin endpoint's /readyz reports). */
  readonly gossipRounds: number;
  /** Brokers in the agreed live list, this one included. */
  readonly brokers: number;
  /** Open sessions by the role in the registry (peer brokers under `broker`). */
  readonly connections: Readonly<Record<RoleName, number>>;
  /** Handshakes in progress. */
  readonly handshakes: number;
  /**
   * Connections turned away before they became a session, by error code:
   * failed handshakes (e.g. MESH_ERR_UNAUTHORIZED for a key not in the
   * registry, MESH_ERR_HANDSHAKE_TIMEOUT) and connections closed at accept
   * (MESH_ERR_LIMIT over a bound, MESH_ERR_DRAINING while draining).
   */
  readonly handshakesFailed: Readonly<Partial<Record<ErrorCode, number>>>;
  /**
   * Connections in their handshake closed to make room for a newcomer
   * (the one with the least progress, when the handshake bounds were full):
   * a sign of a flood of connections that say nothing.
   */
  readonly handshakesEvicted: number;
  /** Requests accepted and not answered yet (queued, being routed or in flight). */
  readonly pending: number;
  /**
   * Per service: every service offered here now and every service a request
   * was counted for (at most 1000 by name, the rest together as `~other`),
   * sorted by name.
   */
  readonly services: readonly BrokerServiceStats[];
}

/** The broker's tables that {@link assembleStats} reads its gauges from. */
export interface StatsSources {
  readonly sessions: Iterable<Session>;
  readonly services: Iterable<ServiceState<PendingRequest>>;
  readonly pending: Iterable<PendingRequest>;
  readonly pendingCount: number;
  readonly handshakes: number;
  /** Brokers in the agreed live list. */
  readonly brokers: number;
}

/** The counters with the gauges read now from the broker's tables: what `Broker.stats()` returns. */
export function assembleStats(counters: CountersSnapshot, from: StatsSources): BrokerStats {
  const connections: Record<RoleName, number> = { broker: 0, client: 0, worker: 0, node: 0 };
  for (const s of from.sessions) connections[s.entry.role]++;
  const inFlight = new Map<string, number>();
  for (const p of from.pending) {
    if (p.workerId !== undefined) inFlight.set(p.message.service, (inFlight.get(p.message.service) ?? 0) + 1);
  }
  const live = new Map<string, ServiceState<PendingRequest>>();
  for (const s of from.services) live.set(s.name, s);
  const counted = new Map<string, ServiceCounts>(counters.services.map((s) => [s.name, s]));
  const names = [...new Set([...counted.keys(), ...live.keys()])].sort();
  const services = names.map((name): BrokerServiceStats => {
    const state = live.get(name);
    return { ...(counted.get(name) ?? BrokerCounters.empty(name)), workers: state?.workers.length ?? 0, queued: state?.queueLength ?? 0, inFlight: inFlight.get(name) ?? 0 };
  });
  return {
    uptimeMs: counters.uptimeMs,
    gossipRounds: counters.gossipRounds,
    brokers: from.brokers,
    connections,
    handshakes: from.handshakes,
    handshakesFailed: counters.handshakesFailed,
    handshakesEvicted: counters.handshakesEvicted,
    pending: from.pendingCount,
    services,
  };
}
