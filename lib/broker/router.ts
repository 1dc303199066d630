/**
 * Routing of pending requests (docs/architecture.md#how-a-broker-routes-a-request):
 * to the hinted worker, else round-robin to a worker with a credit, else into
 * the service's queue; DISPATCHED to clients at the end of the turn; errors
 * and hand-backs (REFUSED) to clients. Credits and queues are the
 * ServiceTable's, the bookkeeping is the PendingTable's; this is the I/O
 * between them and the sessions.
 */
import { MeshError } from '../errors.ts';
import type { ErrorCode } from '../errors.ts';
import { encodeKey } from '../crypto/keys.ts';
import { MAX_DISPATCHED } from '../protocol/messages.ts';
import type { BrokerCounters } from './broker-stats.ts';
import type { PendingRequest, PendingTable } from './pending-table.ts';
import type { QueueLimits, ServiceTable } from './service-table.ts';
import type { Session } from './session.ts';
import type { SessionDirectory } from './session-directory.ts';

/**
 * A request with a worker hint goes to that worker even without a free
 * credit while it has fewer than this many requests in flight here.
 */
export const MAX_HINTED_OVERDRAFT = 64;

/** What a {@link Router} works on. */
export interface RouterOptions {
  readonly sessions: SessionDirectory;
  readonly services: ServiceTable<PendingRequest>;
  readonly pending: PendingTable;
  readonly queueLimits: QueueLimits;
  /** The broker's monotonic clock, ms. */
  readonly now: () => number;
  /** Whether the registry lets this session serve the service (a hinted request goes only to a session that may). */
  readonly mayServe: (session: Session, service: string) => boolean;
  /** Counts how requests end and how often they are re-dispatched. */
  readonly stats: BrokerCounters;
}

/** Moves pending requests between clients, queues and workers. */
export class Router {
  readonly #sessions: SessionDirectory;
  readonly #services: ServiceTable<PendingRequest>;
  readonly #pending: PendingTable;
  readonly #queueLimits: QueueLimits;
  readonly #now: () => number;
  readonly #mayServe: (session: Session, service: string) => boolean;
  readonly #stats: BrokerCounters;
  /** Clients with DISPATCHED entries waiting for the end of the turn. */
  readonly #dispatchTo = new Set<Session>();
  #flushQueued = false;

  constructor(options: RouterOptions) {
    this.#sessions = options.sessions;
    this.#services = options.services;
    this.#pending = options.pending;
    this.#queueLimits = options.queueLimits;
    this.#now = options.now;
    this.#mayServe = options.mayServe;
    this.#stats = options.stats;
  }

  /** Sends a pending request to a worker (hint first, then round-robin), or queues it. */
  route(p: PendingRequest): void {
    if (p.deadline <= this.#now()) {
      this.fail(p, 'MESH_ERR_TIMEOUT', 'deadline passed before a worker took the request');
      return;
    }
    const service = this.#services.get(p.message.service);
    const hint = p.message.worker === undefined ? undefined : encodeKey(p.message.worker);
    if (hint !== undefined) {
      for (const s of this.#sessions.withKey(hint)) {
        if (!this.#mayServe(s, p.message.service)) continue;
        // Even a worker that withdrew the service (draining) still runs what
        // it has: it attaches the resend, or refuses it and we route again.
        if ((service?.credits(s.id) ?? 0) > 0 || this.#pending.inflightCount(s.id) < MAX_HINTED_OVERDRAFT) {
          service?.takeCredit(s.id);
          this.dispatch(p, s);
          return;
        }
      }
    }
    if (!service) {
      this.fail(p, 'MESH_ERR_NO_SERVICE', `no worker offers ${p.message.service} at this broker`);
      return;
    }
    const picked = service.pick();
    if (picked) {
      this.dispatch(p, this.#sessions.get(picked.id)!);
      return;
    }
    if (!service.enqueue({ item: p, bytes: p.message.payload.length }, this.#queueLimits)) {
      this.fail(p, 'MESH_ERR_BUSY', `queue of ${p.message.service} is full (${service.queueLength} requests, ${service.queueBytes} bytes)`);
      return;
    }
    this.#pending.watch(p.deadline);
  }

  /** Sends a pending request to this worker (its credit already taken) and, after the current callback, tells the client which worker has it (DISPATCHED). */
  dispatch(p: PendingRequest, worker: Session): void {
    if (p.message.payload.length > worker.connection.peerMaxPayload) {
      this.fail(p, 'MESH_ERR_ENVELOPE_TOO_LARGE', `payload of ${p.message.payload.length} bytes is over the worker's limit of ${worker.connection.peerMaxPayload}`);
      return;
    }
    this.#pending.assign(p, worker.id);
    if (!this.#sendRequest(p, worker)) return;
    worker.connection.setActive(true);
    const client = this.#sessions.get(p.clientId);
    if (client) {
      client.dispatched.push({ id: p.message.id, worker: worker.publicKey });
      this.#dispatchTo.add(client);
      if (!this.#flushQueued) {
        // After the current callback: the dispatches of this batch of input go
        // into as few DISPATCHED as fit, sealed with the rest of this turn's output.
        this.#flushQueued = true;
        queueMicrotask(this.#flushDispatched);
      }
    }
  }

  /** Sends the latest copy of a dispatched request (a resend: attempt, dup, ttl) to the worker that has it, which attaches it. */
  resend(p: PendingRequest, worker: Session): void {
    this.#sendRequest(p, worker);
  }

  /** Answers the client with an error and forgets the request. */
  fail(p: PendingRequest, code: ErrorCode, text: string): void {
    this.#pending.forget(p.reqKey);
    this.sendError(p, code, text);
  }

  /** Sends an ERROR about the request to its client (without forgetting it): the request's end, with that code. */
  sendError(p: PendingRequest, code: ErrorCode, text: string): void {
    this.#stats.ended(p.message.service, code);
    this.clientOf(p)?.sendError(code, text, p.message.id);
  }

  /** The session to answer a request on: the one it last came through, else any of its client's key. */
  clientOf(p: PendingRequest): Session | undefined {
    return this.#sessions.get(p.clientId) ?? this.#sessions.anyNode(p.clientKey);
  }

  /**
   * Where a worker's answer goes: the client of the request when it is
   * pending here, else (the worker's broker for it is gone) the client the
   * answer is addressed to (`to`), if connected here
   * (docs/protocol.md#6-messages, REPLY).
   */
  recipientOf(p: PendingRequest | undefined, to: Uint8Array | undefined): Session | undefined {
    if (p) return this.clientOf(p);
    return to ? this.#sessions.anyNode(encodeKey(to)) : undefined;
  }

  /** Slows the worker's heartbeat down once nothing is in flight on it. */
  idle(worker: Session): void {
    if (this.#pending.inflightCount(worker.id) === 0) worker.connection.setActive(false);
  }

  /** The worker no longer offers the service (CANCEL, or the registry took the right away). */
  withdraw(worker: Session, serviceName: string): void {
    worker.services.delete(serviceName);
    this.#services.get(serviceName)?.withdraw(worker.id);
    this.#services.prune(serviceName);
  }

  /** Empties every service queue, answering each request's client with REFUSED (not dispatched: resend elsewhere). */
  handBackQueued(): void {
    for (const service of this.#services.values()) {
      for (const e of service.removeWhere(() => true)) {
        if (!this.#pending.forgetRecord(e.item)) continue;
        this.#stats.ended(e.item.message.service, 'refused');
        this.clientOf(e.item)?.connection.send({ type: 'REFUSED', id: e.item.message.id });
      }
      this.#services.prune(service.name);
    }
  }

  /**
   * A session closed: it offers nothing any more, gets no DISPATCHED, and
   * the requests it sent that are still queued here are forgotten (the
   * client resends every attempt of a lost link elsewhere, with dup, so a
   * copy dispatched from here later would run a second time).
   */
  dropSession(session: Session): void {
    for (const name of this.#services.withdrawAll(session.id)) this.#services.prune(name);
    this.#dispatchTo.delete(session);
    for (const p of this.#pending.releaseClient(session.id)) this.#stats.ended(p.message.service, 'dropped');
  }

  /**
   * A worker session closed: the requests it was running go to other
   * workers, flagged dup, unless `stale` (this process was frozen: their
   * clients have resent them already), then they are forgotten.
   */
  rerouteInflight(session: Session, stale: boolean): void {
    for (const p of this.#pending.releaseWorker(session.id)) {
      p.message = { ...p.message, dup: true, worker: undefined };
      if (stale) {
        this.#pending.forget(p.reqKey);
        this.#stats.ended(p.message.service, 'dropped');
      } else {
        this.#stats.redispatched(p.message.service, 'worker-lost');
        this.route(p);
      }
    }
  }

  /**
   * Sends the request to its worker, with the time it has left. A request
   * the worker cannot take (its encoding is over the worker's HELLO limits)
   * is answered with that error (MESH_ERR_ENVELOPE_TOO_LARGE) to its client
   * and forgotten, instead of throwing here; false then.
   */
  #sendRequest(p: PendingRequest, worker: Session): boolean {
    try {
      // To the worker: the time left, and no worker field (the hint was for this broker).
      worker.connection.send({ ...p.message, ttl: Math.max(0, Math.floor(p.deadline - this.#now())), worker: undefined });
      return true;
    } catch (error) {
      if (!(error instanceof MeshError)) throw error;
      this.fail(p, error.code, error.message);
      this.idle(worker);
      return false;
    }
  }

  readonly #flushDispatched = (): void => {
    this.#flushQueued = false;
    for (const client of this.#dispatchTo) {
      const all = client.dispatched;
      client.dispatched = [];
      for (let i = 0; i < all.length; i += MAX_DISPATCHED) client.connection.send({ type: 'DISPATCHED', dispatched: all.slice(i, i + MAX_DISPATCHED) });
    }
    this.#dispatchTo.clear();
  };
}
