/**
 * The client half of a node: sends requests, tracks every attempt, and
 * retries through another broker on a failed attempt (same id, attempt+1,
 * dup unless refused before dispatch, the worker hint from DISPATCHED),
 * within the request's deadline, its retries and the retry budget
 * (docs/api.md#calling-a-service).
 */
import { randomFillSync } from 'node:crypto';
import { channel } from 'node:diagnostics_channel';
import { MeshError, isErrorCode } from '../errors.ts';
import { encodeKey } from '../crypto/keys.ts';
import type { ErrorCode } from '../errors.ts';
import type { Message } from '../protocol/messages.ts';
import { MAX_ATTEMPT, MAX_TRACE_LENGTH, SERVICE_NAME, TRACE } from '../protocol/messages.ts';
import type { ClientLink, ClientPool } from './link.ts';
import type { Clock, TimerHandle } from './clock.ts';
import { RetryBudget } from './retry-budget.ts';
import { hexOf, requestIdSource } from '../protocol/request-ids.ts';

/**
 * The name of the diagnostics channel (node:diagnostics_channel) on which a
 * client publishes a {@link DispatchedMessage} each time a broker tells it
 * which worker has one of its requests.
 */
export const DISPATCHED_CHANNEL = 'meshd:request:dispatched';

/** What a client publishes on {@link DISPATCHED_CHANNEL}. */
export interface DispatchedMessage {
  /** The request id (16 bytes, the same on every attempt). */
  readonly id: Uint8Array;
  readonly service: string;
  /** The public key (base64url) of the broker that dispatched it. */
  readonly broker: string;
  /** The public key (base64url) of the worker that has it: a resend goes to it first. */
  readonly worker: string;
}

const dispatchedChannel = channel(DISPATCHED_CHANNEL);

/** Options of one request. */
export interface RequestOptions {
  /** Whole-request deadline, ms (default 1000). */
  readonly timeout?: number | undefined;
  /** Extra attempts after the first (default 2). */
  readonly retries?: number | undefined;
  /** Deadline of one attempt, ms (default timeout / (retries + 1)). */
  readonly attemptTimeout?: number | undefined;
  /** Aborts the request: rejects with MESH_ERR_ABORTED. */
  readonly signal?: AbortSignal | undefined;
  /** Send through this broker (its mesh:// URL or base64url key) first. */
  readonly broker?: string | undefined;
  /**
   * Trace context carried untouched to the worker (`req.trace`), e.g. a W3C
   * `traceparent`: 1 to 256 printable ASCII characters, no space.
   */
  readonly trace?: string | undefined;
}

/** Longest delay a Node timer can wait, ms (about 24.8 days): the largest timeout a request may have. */
const MAX_TIMER_MS = 2 ** 31 - 1;
/** Default request deadline, ms. */
export const DEFAULT_REQUEST_TIMEOUT = 1000;
/** Default retries. */
export const DEFAULT_RETRIES = 2;
/** Most hand-backs (REFUSED, DRAIN) a request may take without using a retry. */
const MAX_HANDBACKS = 8;
/**
 * After a broker answers MESH_ERR_NO_SERVICE for a service, new requests
 * for it go to other brokers for this long, ms (a broker that just
 * restarted has no workers yet; without this every request would spend a
 * retry there, and the retry budget would run dry).
 */
const NO_SERVICE_AVOID_MS = 1000;
/** Most (broker, service) pairs remembered as lacking the service. */
const MAX_NO_SERVICE_MARKS = 4096;
/** Longest pause before resending a request handed back more than once, ms (10, 20, 40, ... up to this). */
const HANDBACK_BACKOFF_MAX_MS = 250;
/** How much shorter than the attempt timer the ttl sent with a non-final attempt is, at most, ms. */
const TTL_MARGIN_MS = 25;

interface Outstanding {
  readonly id: Uint8Array;
  readonly idHex: string;
  readonly service: string;
  readonly payload: Uint8Array;
  readonly deadline: number;
  readonly attemptTimeout: number;
  readonly preferred: string | undefined;
  readonly trace: string | undefined;
  retriesLeft: number;
  handbacks: number;
  attempt: number;
  dup: boolean;
  dispatched: boolean;
  hint: Uint8Array | undefined;
  link: ClientLink | undefined;
  lastError: MeshError | undefined;
  timer: TimerHandle | undefined;
  cancelWait: (() => void) | undefined;
  /** Waiting in the node for a link whose outbound backlog is under its mark (see Requester.onWritable). */
  held: boolean;
  resolve(payload: Buffer): void;
  reject(error: MeshError): void;
  cleanup(): void;
}

/** What a requester counted since it was made (see MeshNode.stats()). */
export interface RequesterCounts {
  /** Requests accepted by `request()` (after their options were checked). */
  readonly sent: number;
  /** Requests answered with a reply. */
  readonly replied: number;
  /** Requests that ended with an error, by code (codes that never happened are left out). */
  readonly failed: Readonly<Partial<Record<ErrorCode, number>>>;
  /** Attempts resent after a failed attempt, each using one retry. */
  readonly retries: number;
  /** Attempts resent after a broker handed the request back (REFUSED, DRAIN), using no retry. */
  readonly handbacks: number;
  /** Attempts whose own deadline passed without an answer. */
  readonly attemptsTimedOut: number;
  /** Requests awaiting an answer now. */
  readonly pending: number;
}

/** Bounds of the requests a node has awaiting an answer. */
export interface PendingLimits {
  /** Most requests awaiting an answer at once (default 65,536). */
  readonly maxRequests: number;
  /** Most payload bytes of those requests (default 256 MiB). */
  readonly maxBytes: number;
}

/** Default bounds (docs/limits.md#node). */
export const DEFAULT_PENDING_LIMITS: PendingLimits = { maxRequests: 65_536, maxBytes: 256 * 1024 * 1024 };

/** Sends requests and matches replies. */
export class Requester {
  readonly #pool: ClientPool;
  readonly #clock: Clock;
  readonly #budget: RetryBudget;
  readonly #outstanding = new Map<string, Outstanding>();
  readonly #nextId = requestIdSource(randomFillSync);
  /** `brokerKey service` → until when that broker is known to lack the service. */
  readonly #noService = new Map<string, number>();
  /**
   * Requests waiting, in order, for a link that is not congested: a burst
   * larger than the sockets take at once waits here instead of overrunning
   * the connection's outbound cap. Each is still bound by its deadline.
   */
  readonly #held = new Set<Outstanding>();
  #cursor = 0;
  #closed = false;
  readonly #limits: PendingLimits;
  /** Payload bytes of the outstanding requests. */
  #pendingBytes = 0;
  #sent = 0;
  #replied = 0;
  readonly #failed = new Map<ErrorCode, number>();
  #retries = 0;
  #handbacks = 0;
  #attemptsTimedOut = 0;

  constructor(pool: ClientPool, clock: Clock, limits: Partial<PendingLimits> = {}) {
    this.#pool = pool;
    this.#clock = clock;
    this.#limits = { ...DEFAULT_PENDING_LIMITS, ...limits };
    for (const [name, value] of Object.entries(this.#limits)) {
      if (!Number.isSafeInteger(value) || value < 1) throw new MeshError('MESH_ERR_CONFIG', `pending.${name} must be a positive whole number, got ${String(value)}`);
    }
    this.#budget = new RetryBudget(clock.now());
  }

  /** Requests awaiting an answer. */
  get size(): number {
    return this.#outstanding.size;
  }

  /** The counters since this requester was made. */
  counts(): RequesterCounts {
    return {
      sent: this.#sent,
      replied: this.#replied,
      failed: Object.fromEntries(this.#failed),
      retries: this.#retries,
      handbacks: this.#handbacks,
      attemptsTimedOut: this.#attemptsTimedOut,
      pending: this.#outstanding.size,
    };
  }

  /** Sends a request; resolves with the reply payload or rejects with a MeshError. */
  request(service: string, payload: Uint8Array, options: RequestOptions = {}): Promise<Buffer> {
    if (this.#closed) return Promise.reject(new MeshError('MESH_ERR_CLOSED', 'node is closed'));
    if (!SERVICE_NAME.test(service)) return Promise.reject(new MeshError('MESH_ERR_CONFIG', `invalid service name ${JSON.stringify(service)}`));
    const timeout = options.timeout ?? DEFAULT_REQUEST_TIMEOUT;
    const retries = options.retries ?? DEFAULT_RETRIES;
    const attemptTimeout = options.attemptTimeout;
    const inTimerRange = (ms: unknown): boolean => typeof ms === 'number' && Number.isFinite(ms) && ms > 0 && ms <= MAX_TIMER_MS;
    if (!inTimerRange(timeout) || !Number.isInteger(retries) || retries < 0 || retries > MAX_ATTEMPT - 1 || (attemptTimeout !== undefined && !inTimerRange(attemptTimeout))) {
      return Promise.reject(
        new MeshError('MESH_ERR_CONFIG', `invalid request options: timeout ${String(timeout)} and attemptTimeout ${String(attemptTimeout)} must be ms in (0, ${MAX_TIMER_MS}], retries ${String(retries)} an integer in 0..${MAX_ATTEMPT - 1}`),
      );
    }
    if (options.trace !== undefined && (typeof options.trace !== 'string' || !TRACE.test(options.trace))) {
      return Promise.reject(new MeshError('MESH_ERR_CONFIG', `invalid trace ${JSON.stringify(String(options.trace).slice(0, 64))}: 1 to ${MAX_TRACE_LENGTH} printable ASCII characters without spaces`));
    }
    const signal = options.signal;
    if (signal?.aborted) return Promise.reject(new MeshError('MESH_ERR_ABORTED', `request to ${service} aborted`, { cause: signal.reason }));
    if (this.#outstanding.size >= this.#limits.maxRequests || this.#pendingBytes + payload.length > this.#limits.maxBytes) {
      const what = this.#outstanding.size >= this.#limits.maxRequests ? `${this.#outstanding.size} requests (maxRequests ${this.#limits.maxRequests})` : `${this.#pendingBytes} payload bytes (maxBytes ${this.#limits.maxBytes})`;
      return Promise.reject(new MeshError('MESH_ERR_BUSY', `request to ${service} refused: this node already awaits answers to ${what}; try again once some are answered`));
    }
    return new Promise<Buffer>((resolve, reject) => {
      const id = this.#nextId();
      const now = this.#clock.now();
      const deadlineTimer = this.#clock.setTimeout(() => this.#finishWithError(o, new MeshError('MESH_ERR_TIMEOUT', `request to ${service} timed out after ${timeout} ms (${o.attempt} attempt${o.attempt === 1 ? '' : 's'}${o.lastError ? `; last: ${o.lastError.code}` : ''})`)), timeout);
      const onAbort = (): void => this.#finishWithError(o, new MeshError('MESH_ERR_ABORTED', `request to ${service} aborted`, { cause: signal?.reason }));
      signal?.addEventListener('abort', onAbort, { once: true });
      const o: Outstanding = {
        id,
        idHex: id.toString('hex'),
        service,
        payload,
        deadline: now + timeout,
        attemptTimeout: options.attemptTimeout ?? timeout / (retries + 1),
        preferred: options.broker,
        trace: options.trace,
        retriesLeft: retries,
        handbacks: 0,
        attempt: 0,
        dup: false,
        dispatched: false,
        hint: undefined,
        link: undefined,
        lastError: undefined,
        timer: undefined,
        cancelWait: undefined,
        held: false,
        resolve,
        reject,
        cleanup: () => {
          this.#clock.clearTimeout(deadlineTimer);
          signal?.removeEventListener('abort', onAbort);
        },
      };
      this.#outstanding.set(o.idHex, o);
      this.#pendingBytes += payload.length;
      this.#sent++;
      this.#send(o, undefined);
    });
  }

  /** Handles REPLY, ERROR, DISPATCHED and REFUSED from a broker. */
  onMessage(link: ClientLink, message: Message): void {
    switch (message.type) {
      case 'REPLY': {
        const o = this.#outstanding.get(hexOf(message.id));
        if (!o) return;
        if (o.attempt === 1) this.#budget.success();
        this.#replied++;
        this.#finish(o);
        o.resolve(Buffer.from(message.payload.buffer, message.payload.byteOffset, message.payload.byteLength));
        return;
      }
      case 'ERROR': {
        if (message.id === undefined) return;
        const o = this.#outstanding.get(hexOf(message.id));
        if (!o) return;
        const code: ErrorCode = isErrorCode(message.code) ? message.code : 'MESH_ERR_PROTOCOL';
        // A broker's TIMEOUT ends the attempt it knew of, which may be an
        // older one than the current: the client's own timers decide.
        if (code === 'MESH_ERR_TIMEOUT') return;
        const error = new MeshError(code, message.text, { retryable: message.retryable });
        if (!error.retryable) {
          this.#finishWithError(o, error);
          return;
        }
        if (code === 'MESH_ERR_NO_SERVICE') this.#markNoService(link, o.service);
        // BUSY, NO_SERVICE, DRAINING come before dispatch: no dup needed.
        this.#retry(o, link, error, false);
        return;
      }
      case 'DISPATCHED':
        for (const d of message.dispatched) {
          const o = this.#outstanding.get(hexOf(d.id));
          // The current attempt's broker, or any broker while no worker is known yet.
          if (o && (o.link === link || o.hint === undefined)) {
            o.dispatched = true;
            o.hint = d.worker;
            if (dispatchedChannel.hasSubscribers) dispatchedChannel.publish({ id: d.id, service: o.service, broker: link.key, worker: encodeKey(d.worker) } satisfies DispatchedMessage);
          }
        }
        return;
      case 'REFUSED': {
        const o = this.#outstanding.get(hexOf(message.id));
        if (!o || o.link !== link) return;
        this.#handback(o, new MeshError('MESH_ERR_DRAINING', 'broker handed the request back'));
        return;
      }
      default:
        return;
    }
  }

  /** A link went down: every attempt on it is resent elsewhere, flagged dup. */
  onLinkDown(link: ClientLink, error: MeshError | undefined): void {
    for (const o of [...this.#outstanding.values()]) {
      if (o.link === link) this.#retry(o, link, error ?? new MeshError('MESH_ERR_CONNECTION', 'broker connection lost'), true);
    }
  }

  /**
   * A link drained its outbound backlog, or came up: requests held back
   * while every link was congested go out, oldest first, for as long as a
   * link takes them.
   */
  onWritable(): void {
    for (const o of this.#held) {
      const link = this.#pick(o, undefined, undefined);
      if (link === undefined || link.congested) return;
      this.#held.delete(o);
      o.held = false;
      this.#sendOn(o, link, undefined);
    }
  }

  /** A broker sent DRAIN: attempts on it that were not dispatched yet go elsewhere. */
  onLinkDraining(link: ClientLink): void {
    for (const o of [...this.#outstanding.values()]) {
      if (o.link === link && !o.dispatched) this.#handback(o, new MeshError('MESH_ERR_DRAINING', 'broker is draining'));
    }
  }

  /** Rejects every outstanding request with MESH_ERR_CLOSED. */
  close(): void {
    this.#closed = true;
    for (const o of [...this.#outstanding.values()]) this.#finishWithError(o, new MeshError('MESH_ERR_CLOSED', 'node closed before the reply arrived'));
  }

  // ------------------------------------------------------------ internals

  #pick(o: Outstanding, avoid: ClientLink | undefined, tried: ReadonlySet<ClientLink> | undefined): ClientLink | undefined {
    if (o.preferred !== undefined && o.attempt === 0) {
      const l = this.#pool.find(o.preferred);
      if (l?.healthy && !tried?.has(l)) return l;
    }
    let healthy = this.#pool.healthy();
    if (tried !== undefined) healthy = healthy.filter((l) => !tried.has(l));
    if (healthy.length === 0) return undefined;
    if (this.#noService.size > 0 && healthy.length > 1) {
      // Brokers that just said they lack this service go last (all of them: keep them all).
      const now = this.#clock.now();
      const having = healthy.filter((l) => (this.#noService.get(`${l.key} ${o.service}`) ?? 0) <= now);
      if (having.length > 0) healthy = having;
    }
    const candidates = healthy.length > 1 && avoid ? healthy.filter((l) => l !== avoid) : healthy;
    this.#cursor = (this.#cursor + 1) % candidates.length;
    const chosen = candidates[this.#cursor % candidates.length];
    if (chosen?.congested !== true) return chosen;
    // Its outbound backlog is over the mark: any other link that is not.
    for (const l of candidates) if (!l.congested) return l;
    return chosen;
  }

  #markNoService(link: ClientLink, service: string): void {
    const now = this.#clock.now();
    if (this.#noService.size >= MAX_NO_SERVICE_MARKS) {
      for (const [k, until] of this.#noService) if (until <= now) this.#noService.delete(k);
      if (this.#noService.size >= MAX_NO_SERVICE_MARKS) this.#noService.clear();
    }
    this.#noService.set(`${link.key} ${service}`, now + NO_SERVICE_AVOID_MS);
  }

  #send(o: Outstanding, avoid: ClientLink | undefined, tried?: Set<ClientLink>): void {
    if (this.#held.size > 0 && tried === undefined) {
      // Others are waiting for the links to drain: wait behind them.
      this.#hold(o);
      return;
    }
    const link = this.#pick(o, avoid, tried);
    if (!link) {
      // No healthy broker now: wait for one until the deadline.
      o.cancelWait = this.#pool.whenHealthy(() => {
        o.cancelWait = undefined;
        if (this.#outstanding.has(o.idHex)) this.#send(o, undefined);
      });
      return;
    }
    if (link.congested) {
      this.#hold(o);
      return;
    }
    this.#sendOn(o, link, tried);
  }

  #hold(o: Outstanding): void {
    o.held = true;
    this.#held.add(o);
  }

  /** Sends the next attempt of `o` on `link` and starts its attempt timer. */
  #sendOn(o: Outstanding, link: ClientLink, tried: Set<ClientLink> | undefined): void {
    const ttl = Math.floor(o.deadline - this.#clock.now());
    if (ttl <= 0) return; // the deadline timer answers
    if (o.payload.length > link.peerMaxPayload) {
      this.#finishWithError(o, new MeshError('MESH_ERR_ENVELOPE_TOO_LARGE', `payload of ${o.payload.length} bytes is over the broker's limit of ${link.peerMaxPayload}`));
      return;
    }
    // The attempt's own deadline travels as ttl: a copy left in a queue at
    // this broker is dropped when the attempt is over, so it cannot run
    // later, without dup, after a resend elsewhere already ran.
    // The last attempt gets all the time that is left.
    const attemptMs = o.retriesLeft === 0 ? ttl : Math.max(1, Math.floor(Math.min(o.attemptTimeout, ttl)));
    // The broker starts the ttl when it reads the request, one hop after we
    // start the attempt timer: send a little less, so its copy is dropped
    // before we resend elsewhere (the last attempt is never resent).
    const wireTtl = o.retriesLeft === 0 ? attemptMs : Math.max(1, attemptMs - Math.min(TTL_MARGIN_MS, Math.floor(attemptMs / 10)));
    o.attempt++;
    o.link = link;
    link.retain();
    const sent = link.send({ type: 'REQUEST', id: o.id, service: o.service, attempt: o.attempt, dup: o.dup, ttl: wireTtl, worker: o.hint, trace: o.trace, payload: o.payload });
    if (!sent) {
      link.release();
      o.link = undefined;
      o.attempt--;
      this.#send(o, link, (tried ?? new Set()).add(link));
      return;
    }
    const timer = this.#clock.setTimeout(() => {
      // Decide after the input already waiting has been read (setImmediate
      // runs after this turn's socket reads): when this process was starved,
      // the overdue timer runs before the reads, and the reply or the
      // DISPATCHED that names the worker may be sitting right there.
      this.#clock.setImmediate(() => {
        if (o.timer !== timer) return; // answered, or moved on, meanwhile
        o.timer = undefined;
        this.#attemptsTimedOut++;
        this.#retry(o, link, new MeshError('MESH_ERR_TIMEOUT', `attempt ${o.attempt} timed out after ${Math.round(attemptMs)} ms`), true);
      });
    }, attemptMs);
    o.timer = timer;
  }

  #detach(o: Outstanding): void {
    if (o.held) {
      o.held = false;
      this.#held.delete(o);
    }
    this.#clock.clearTimeout(o.timer);
    o.timer = undefined;
    o.cancelWait?.();
    o.cancelWait = undefined;
    o.link?.release();
    o.link = undefined;
  }

  /** A failed attempt: resend elsewhere if retries, budget and deadline allow. */
  #retry(o: Outstanding, from: ClientLink, error: MeshError, mayHaveRun: boolean): void {
    if (o.link !== from) return; // an old attempt's news
    this.#detach(o);
    o.lastError = error;
    if (mayHaveRun || o.dispatched) o.dup = true;
    const left = o.deadline - this.#clock.now();
    if (o.retriesLeft <= 0 || left <= 1 || o.attempt >= MAX_ATTEMPT || !this.#budget.tryRetry(this.#clock.now())) {
      // Out of attempts. After an attempt timeout a late reply may still
      // come (it is matched by id on any broker): wait for the deadline.
      if (error.code === 'MESH_ERR_TIMEOUT' && left > 1) return;
      this.#finishWithError(o, error);
      return;
    }
    o.retriesLeft--;
    this.#retries++;
    this.#send(o, from);
  }

  /** Handed back before dispatch: resend without using a retry (bounded). */
  #handback(o: Outstanding, error: MeshError): void {
    const from = o.link;
    this.#detach(o);
    o.lastError = error;
    if (o.dispatched) o.dup = true; // an earlier attempt reached a worker
    // Attempt numbers end at MAX_ATTEMPT: a broker refuses a higher one as a protocol error.
    if (++o.handbacks > MAX_HANDBACKS || o.attempt >= MAX_ATTEMPT) {
      this.#finishWithError(o, error);
      return;
    }
    this.#handbacks++;
    if (o.handbacks === 1) {
      this.#send(o, from);
      return;
    }
    // Handed back again (every broker draining, or all just back from a
    // stall): back off a little, so the hand-backs spread over time instead
    // of being spent in a burst.
    o.timer = this.#clock.setTimeout(() => {
      o.timer = undefined;
      if (this.#outstanding.has(o.idHex)) this.#send(o, from);
    }, Math.min(HANDBACK_BACKOFF_MAX_MS, 10 * 2 ** (o.handbacks - 2)));
  }

  #finish(o: Outstanding): void {
    if (this.#outstanding.delete(o.idHex)) this.#pendingBytes -= o.payload.length;
    this.#detach(o);
    o.cleanup();
  }

  #finishWithError(o: Outstanding, error: MeshError): void {
    if (!this.#outstanding.has(o.idHex)) return;
    this.#failed.set(error.code, (this.#failed.get(error.code) ?? 0) + 1);
    this.#finish(o);
    o.reject(error);
  }
}
