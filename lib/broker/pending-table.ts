/**
 * The requests a broker has accepted and not yet answered
 * (docs/architecture.md#how-a-broker-routes-a-request). Each is keyed by its
 * client's key and its id, counted against its client's bound, tracked on
 * the client session it came through and, once dispatched, on its worker
 * session. A sweep runs on the deadlines: a request still queued when its
 * deadline passes is forgotten and answered MESH_ERR_TIMEOUT (through
 * `onExpired`), and a dispatched one whose reply never came here (answered
 * through another broker, or lost) is forgotten PENDING_GRACE after its
 * deadline. No I/O: the clock and the timer are injected.
 */
import type { RequestMessage } from '../protocol/messages.ts';
import { encodeKey } from '../crypto/keys.ts';
import { hexOf } from '../protocol/request-ids.ts';
import type { BrokerTimers, CancelTimer } from './broker-timers.ts';
import type { ServiceTable } from './service-table.ts';

/** A request the broker has accepted and not yet answered. */
export interface PendingRequest {
  /** `clientKey:idHex` ({@link requestKey}): unique per client and request id. */
  readonly reqKey: string;
  /** The stamped request as it goes to workers (attempt and dup updated on resends). */
  message: RequestMessage;
  /** The client session to answer (the latest one the request arrived on; see {@link PendingTable.moveClient}). */
  clientId: number;
  /** The client's static key (base64url), to find it again after a reconnect. */
  readonly clientKey: string;
  /** Absolute deadline on the broker's clock (a resend may extend it). */
  deadline: number;
  /** When the broker read the first REQUEST for it, on its clock (for the latency of its reply). */
  readonly receivedAt: number;
  /** The worker session it went to, while dispatched (set by {@link PendingTable.assign}). */
  workerId: number | undefined;
  /** Refusals so far (bounded, so a request cannot bounce forever). */
  refusals: number;
}

/** How long a dispatched request is remembered after its deadline, ms, for a reply that never comes here. */
export const PENDING_GRACE = 1000;

/** Default most requests one client key may have pending at a broker. */
export const DEFAULT_MAX_PENDING_PER_CLIENT = 10_000;

/** The key of a request: `clientKey:idHex`, unique per client key and request id. */
export function requestKey(clientKey: string, id: Uint8Array): string {
  return `${clientKey}:${hexOf(id)}`;
}

/** Settings and callbacks of a {@link PendingTable}. */
export interface PendingTableOptions {
  /** The broker's monotonic clock, ms. */
  readonly now: () => number;
  /** Runs the deadline sweep. */
  readonly timers: Pick<BrokerTimers, 'at'>;
  /** The service queues: the sweep takes expired requests out of them. */
  readonly services: ServiceTable<PendingRequest>;
  /** Most requests one client key may have pending (default {@link DEFAULT_MAX_PENDING_PER_CLIENT}). */
  readonly maxPerClient?: number | undefined;
  /** A queued request's deadline passed: it is forgotten now; answer its client MESH_ERR_TIMEOUT. */
  readonly onExpired: (request: PendingRequest) => void;
  /** A dispatched request was forgotten PENDING_GRACE after its deadline and taken off worker `workerId`. */
  readonly onAbandoned: (request: PendingRequest, workerId: number) => void;
}

/** The pending requests of one broker. */
export class PendingTable {
  /** Most requests one client key may have pending. */
  readonly maxPerClient: number;
  readonly #options: PendingTableOptions;
  readonly #requests = new Map<string, PendingRequest>();
  readonly #perClient = new Map<string, number>();
  /** Request keys by the client session they were last sent through. */
  readonly #sentBy = new Map<number, Set<string>>();
  /** Dispatched requests by worker session, in dispatch order. */
  readonly #inflight = new Map<number, Map<string, PendingRequest>>();
  #cancelSweep: CancelTimer | undefined;
  #sweepAt = Infinity;
  #stopped = false;

  constructor(options: PendingTableOptions) {
    this.#options = options;
    this.maxPerClient = options.maxPerClient ?? DEFAULT_MAX_PENDING_PER_CLIENT;
  }

  /** How many requests are pending. */
  get size(): number {
    return this.#requests.size;
  }

  /** The pending request with this key. */
  get(reqKey: string): PendingRequest | undefined {
    return this.#requests.get(reqKey);
  }

  /** Whether a request with this key is pending. */
  has(reqKey: string): boolean {
    return this.#requests.has(reqKey);
  }

  /**
   * Whether this very record is still the pending one. A queue entry can
   * outlive its record (forgotten when its client's link closed) while the
   * client resends the same id, which makes a new record under the same
   * key: the old entry must then be dropped, not dispatched a second time.
   */
  isLive(request: PendingRequest): boolean {
    return this.#requests.get(request.reqKey) === request;
  }

  /** Forgets this record if it is still the pending one (see {@link isLive}); false otherwise. */
  forgetRecord(request: PendingRequest): boolean {
    return this.isLive(request) && this.forget(request.reqKey);
  }

  /** How many requests the client with this key has pending. */
  countFor(clientKey: string): number {
    return this.#perClient.get(clientKey) ?? 0;
  }

  /**
   * Takes in a new request, sent through client session `request.clientId`.
   * False, taking nothing, when its client already has
   * {@link PendingTable.maxPerClient} pending.
   */
  add(request: PendingRequest): boolean {
    const count = this.countFor(request.clientKey);
    if (count >= this.maxPerClient) return false;
    this.#perClient.set(request.clientKey, count + 1);
    this.#requests.set(request.reqKey, request);
    this.#sentOf(request.clientId).add(request.reqKey);
    return true;
  }

  /** A resend came through another client session: answer the request there from now on. */
  moveClient(request: PendingRequest, clientId: number): void {
    if (request.clientId === clientId) return;
    this.#sentBy.get(request.clientId)?.delete(request.reqKey);
    request.clientId = clientId;
    this.#sentOf(clientId).add(request.reqKey);
  }

  /** Forgets a pending request (and takes it off its worker); false when it was not pending. */
  forget(reqKey: string): boolean {
    const p = this.#requests.get(reqKey);
    if (!p) return false;
    this.#requests.delete(reqKey);
    this.#sentBy.get(p.clientId)?.delete(reqKey);
    if (p.workerId !== undefined) this.#inflight.get(p.workerId)?.delete(reqKey);
    const n = this.countFor(p.clientKey) - 1;
    if (n <= 0) this.#perClient.delete(p.clientKey);
    else this.#perClient.set(p.clientKey, n);
    return true;
  }

  /**
   * The request went to worker session `workerId`: it is in flight there
   * until answered, refused or abandoned (the sweep forgets it
   * PENDING_GRACE after its deadline).
   */
  assign(request: PendingRequest, workerId: number): void {
    request.workerId = workerId;
    let running = this.#inflight.get(workerId);
    if (!running) this.#inflight.set(workerId, (running = new Map<string, PendingRequest>()));
    running.set(request.reqKey, request);
    this.watch(request.deadline + PENDING_GRACE);
  }

  /** How many requests are in flight on worker session `workerId`. */
  inflightCount(workerId: number): number {
    return this.#inflight.get(workerId)?.size ?? 0;
  }

  /**
   * Takes the request a worker answered (REPLY or ERROR) off the table and
   * returns it. With `to` (the reply is addressed to that client) it is
   * looked up by client key and id, wherever it was dispatched; without, by
   * id among the worker's own requests in flight. Undefined when there is
   * none (already answered, forgotten, or pending at another broker).
   */
  takeInflight(workerId: number, id: Uint8Array, to: Uint8Array | undefined): PendingRequest | undefined {
    if (to) {
      const reqKey = requestKey(encodeKey(to), id);
      const p = this.#requests.get(reqKey);
      if (p) {
        this.#inflight.get(workerId)?.delete(reqKey);
        this.forget(reqKey);
      }
      return p;
    }
    const found = this.#findInflight(workerId, id);
    if (found) this.forget(found.reqKey);
    return found;
  }

  /**
   * The worker refused the request with this id: it is taken off the worker
   * and stays pending, to be routed again. Undefined when the worker has no
   * such request in flight.
   */
  unassign(workerId: number, id: Uint8Array): PendingRequest | undefined {
    const p = this.#findInflight(workerId, id);
    if (!p) return undefined;
    this.#inflight.get(workerId)?.delete(p.reqKey);
    p.workerId = undefined;
    return p;
  }

  /**
   * A client session closed: the requests it sent that are not dispatched
   * are forgotten (its client resends every attempt of a lost link
   * elsewhere) and returned. Dispatched ones stay, answered through another
   * session of the same key if one opens.
   */
  releaseClient(sessionId: number): PendingRequest[] {
    const sent = this.#sentBy.get(sessionId);
    if (!sent) return [];
    this.#sentBy.delete(sessionId);
    const forgotten: PendingRequest[] = [];
    for (const reqKey of sent) {
      const p = this.#requests.get(reqKey);
      if (p && p.clientId === sessionId && p.workerId === undefined) {
        this.forget(reqKey);
        forgotten.push(p);
      }
    }
    return forgotten;
  }

  /**
   * A worker session closed: returns the requests it had in flight, in
   * dispatch order, now undispatched and still pending (route or forget each).
   */
  releaseWorker(sessionId: number): PendingRequest[] {
    const running = this.#inflight.get(sessionId);
    if (!running) return [];
    this.#inflight.delete(sessionId);
    const requests = [...running.values()];
    for (const p of requests) p.workerId = undefined;
    return requests;
  }

  /** Every pending request (queued, being routed, or dispatched). */
  values(): IterableIterator<PendingRequest> {
    return this.#requests.values();
  }

  /** Makes sure the sweep runs by `deadline` (a request was queued, or its deadline extended). */
  watch(deadline: number): void {
    if (this.#stopped || deadline >= this.#sweepAt) return;
    this.#cancelSweep?.();
    this.#sweepAt = deadline;
    this.#cancelSweep = this.#options.timers.at(deadline, this.#sweep);
  }

  /** Stops the sweep for good (the broker is closing). */
  stop(): void {
    this.#stopped = true;
    this.#cancelSweep?.();
    this.#cancelSweep = undefined;
  }

  #sentOf(clientId: number): Set<string> {
    let sent = this.#sentBy.get(clientId);
    if (!sent) this.#sentBy.set(clientId, (sent = new Set()));
    return sent;
  }

  #findInflight(workerId: number, id: Uint8Array): PendingRequest | undefined {
    const suffix = `:${Buffer.from(id).toString('hex')}`;
    for (const [reqKey, p] of this.#inflight.get(workerId) ?? []) {
      if (reqKey.endsWith(suffix)) return p;
    }
    return undefined;
  }

  readonly #sweep = (): void => {
    this.#cancelSweep = undefined;
    this.#sweepAt = Infinity;
    const now = this.#options.now();
    const services = this.#options.services;
    let next = Infinity;
    // Queued requests past their deadline (and leftovers already forgotten).
    for (const service of services.values()) {
      for (const e of service.removeWhere((x) => x.item.deadline <= now || !this.isLive(x.item))) {
        if (this.forgetRecord(e.item)) this.#options.onExpired(e.item);
      }
      next = Math.min(next, service.earliestDeadline());
      services.prune(service.name);
    }
    // Dispatched requests long past their deadline (the client gave up).
    for (const p of this.#requests.values()) {
      if (p.workerId === undefined) continue;
      if (p.deadline + PENDING_GRACE <= now) {
        const workerId = p.workerId;
        this.forget(p.reqKey);
        this.#options.onAbandoned(p, workerId);
      } else {
        next = Math.min(next, p.deadline + PENDING_GRACE);
      }
    }
    if (next < Infinity) this.watch(next);
  };
}
