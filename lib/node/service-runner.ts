/**
 * The worker half of a node: runs handlers for the services it offers,
 * splits its free slots as credits across brokers (never more credits than
 * free slots), dedups resent requests through the reply cache, and sends
 * each reply back through the broker the request came from, or any other
 * broker, addressed to the client's key, when that one is gone
 * (docs/api.md#offering-a-service). Each handler gets an AbortSignal that
 * aborts when the request's ttl runs out or the node stops waiting for it.
 */
import { ErrorCodes, MeshError } from '../errors.ts';
import { encodeKey } from '../crypto/keys.ts';
import { MAX_ERROR_TEXT, truncateUtf8 } from '../protocol/messages.ts';
import type { RequestMessage } from '../protocol/messages.ts';
import type { Clock, TimerHandle } from './clock.ts';
import type { WorkerLink, WorkerPool } from './link.ts';
import { ReplyCache } from './reply-cache.ts';
import type { Outcome, ReplyCacheLimits } from './reply-cache.ts';

/** What a handler receives. */
export interface IncomingRequest {
  /** The request id (16 bytes, the same on every attempt). */
  readonly id: Uint8Array;
  /** The request payload. */
  readonly payload: Buffer;
  /** Who sent it, as authenticated and stamped by the broker. */
  readonly sender: { readonly key: string; readonly name: string };
  /**
   * The public key (base64url) of the broker it arrived through: the key in
   * that broker's `mesh://KEY@HOST:PORT` address and in the node's broker
   * events. The reply goes back through it while it is up.
   */
  readonly broker: string;
  /** The attempt that reached this worker first. */
  readonly attempt: number;
  /** Set when an earlier attempt may have run somewhere. */
  readonly dup: boolean;
  /** The service name. */
  readonly service: string;
  /** The client's trace context (e.g. a W3C `traceparent`), untouched; undefined when it sent none. It goes back in the REPLY. */
  readonly trace: string | undefined;
  /**
   * The request's ttl when it arrived, ms: the time the attempt that brought
   * it may still take (for the client's last attempt, the time left until
   * its deadline). Always more than 0: a request that arrives with none is
   * answered MESH_ERR_TIMEOUT without running (`stats().worker.expired`).
   */
  readonly ttl: number;
  /**
   * Aborted when the answer is no longer awaited: with a MeshError
   * `MESH_ERR_TIMEOUT` when the request's ttl runs out (a resend of the same
   * request that reaches this execution pushes that later, to its own ttl),
   * or `MESH_ERR_CLOSED` when the node closes and stops waiting for running
   * handlers (`closeTimeout`). Never aborted once the handler has answered.
   */
  readonly signal: AbortSignal;
}

/** A handler's result: bytes or a string (sent as UTF-8). */
export type HandlerResult = Uint8Array | string;

/** A service handler. A thrown error reaches the client as MESH_ERR_HANDLER. */
export type Handler = (request: IncomingRequest) => HandlerResult | Promise<HandlerResult>;

/** Options of `serve`. */
export interface ServeOptions {
  /** Most requests run at once (default 16). */
  readonly concurrency?: number | undefined;
  /** Withdraws the service when aborted, as `close()` on its handle does. */
  readonly signal?: AbortSignal | undefined;
}

/** What `serve` returns: the way to withdraw the service. */
export interface ServiceHandle {
  /**
   * Withdraws the service (CANCEL to every broker; requests still arriving
   * are refused and go to other workers) and resolves once the requests it
   * was running have finished. Idempotent.
   */
  close(): Promise<void>;
  /** `await using handle = node.serve(...)`: the same as `close()`. */
  [Symbol.asyncDispose](): Promise<void>;
}

/** Default handlers run at once per service. */
export const DEFAULT_CONCURRENCY = 16;

/**
 * How long after its ttl a running request's signal aborts, ms. When an
 * attempt times out at the client it is resent with the worker hint and
 * reaches this worker a little after the attempt's ttl ran out here (the
 * ttl sent is up to 25 ms shorter than the client's timer, plus the trip);
 * the resend then extends the deadline, so a handler that honours its signal
 * is not stopped while its client still waits for it.
 */
export const RESEND_GRACE_MS = 250;

/**
 * What a handler rejects with for a request the app never looked at (an
 * iterator left before pulling it): the request is handed back to the
 * broker (REFUSED) for another worker, instead of failing at the client.
 */
export class RequestNotTaken extends Error {
  override readonly name = 'RequestNotTaken';
}

/** A service this node offers, and the credits it granted per broker (not the broker's view of a service). */
interface OfferedService {
  readonly name: string;
  readonly handler: Handler;
  readonly concurrency: number;
  running: number;
  readonly granted: Map<WorkerLink, number>;
  cancelled: boolean;
  /** A grant is queued for the end of this microtask checkpoint (#grantSoon). */
  grantQueued: boolean;
  idle: Array<() => void>;
  /** The withdrawal, once begun. */
  closing: Promise<void> | undefined;
  /** Removes the listener on the `signal` option. */
  unlisten: (() => void) | undefined;
}

/** One execution of a request: until when it is awaited, and the signal its handler reads. */
interface Execution {
  /** Arrival + ttl, pushed later by resends that attach. */
  deadline: number;
  /** Made when the handler first reads `signal` (most never do: no timer for them). */
  controller: AbortController | undefined;
  /** Aborts the controller at the deadline. */
  timer: TimerHandle | undefined;
  /** Why the node stopped waiting (abortRunning): also the reason of a signal made after that. */
  reason: MeshError | undefined;
  /** The handler has answered. */
  finished: boolean;
}

/** What a service runner counted since it was made (see MeshNode.stats()). */
export interface RunnerCounts {
  /** Requests whose handler answered (the reply was sent and cached). */
  readonly served: number;
  /** Requests whose handler threw or rejected (answered MESH_ERR_HANDLER, or given up after its signal aborted). */
  readonly handlerErrors: number;
  /** Requests handed back to their broker (REFUSED) without running: every slot busy, the service withdrawn or the node draining, or left unpulled by a `requests()` loop. */
  readonly refused: number;
  /** Requests that arrived with no time left (ttl 0) and were answered MESH_ERR_TIMEOUT without running. */
  readonly expired: number;
  /** Resent requests attached to the execution already running here. */
  readonly attached: number;
  /** Resent requests answered from the reply cache. */
  readonly replayed: number;
  /** Handlers running now, across all services. */
  readonly running: number;
}

/** Runs the node's services. */
export class ServiceRunner {
  readonly #pool: WorkerPool;
  readonly #clock: Clock;
  readonly #services = new Map<string, OfferedService>();
  readonly #cache: ReplyCache<WorkerLink>;
  /** Running executions by reply cache key. */
  readonly #executions = new Map<string, Execution>();
  #draining = false;
  #lastSender: { readonly bytes: Buffer; readonly key: string } | undefined;
  #served = 0;
  #handlerErrors = 0;
  #refused = 0;
  #expired = 0;
  #attached = 0;
  #replayed = 0;

  constructor(pool: WorkerPool, clock: Clock, cacheLimits: Partial<ReplyCacheLimits> = {}) {
    this.#pool = pool;
    this.#clock = clock;
    this.#cache = new ReplyCache<WorkerLink>(cacheLimits);
  }

  /** Executions running across all services. */
  get running(): number {
    let n = 0;
    for (const s of this.#services.values()) n += s.running;
    return n;
  }

  /** The counters since this runner was made. */
  counts(): RunnerCounts {
    return { served: this.#served, handlerErrors: this.#handlerErrors, refused: this.#refused, expired: this.#expired, attached: this.#attached, replayed: this.#replayed, running: this.running };
  }

  /**
   * Starts offering a service: READY with credits to the healthy brokers.
   * Throws MESH_ERR_CONFIG for a name already served or a bad concurrency,
   * MESH_ERR_ABORTED when `options.signal` is already aborted.
   */
  add(service: string, handler: Handler, options: ServeOptions = {}): ServiceHandle {
    if (this.#draining) throw new MeshError('MESH_ERR_DRAINING', `cannot serve ${service}: the node is draining and takes no new services`);
    if (this.#services.has(service)) throw new MeshError('MESH_ERR_CONFIG', `service ${service} is already served by this node`);
    const concurrency = options.concurrency ?? DEFAULT_CONCURRENCY;
    if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 65535) throw new MeshError('MESH_ERR_CONFIG', `concurrency must be an integer in 1..65535, got ${concurrency}`);
    const signal = options.signal;
    if (signal?.aborted) throw new MeshError('MESH_ERR_ABORTED', `serve ${service} aborted`, { cause: signal.reason });
    const s: OfferedService = { name: service, handler, concurrency, running: 0, granted: new Map(), cancelled: false, grantQueued: false, idle: [], closing: undefined, unlisten: undefined };
    this.#services.set(service, s);
    if (signal) {
      const onAbort = (): void => void this.#withdraw(s);
      signal.addEventListener('abort', onAbort, { once: true });
      s.unlisten = () => signal.removeEventListener('abort', onAbort);
    }
    this.#grant(s);
    const close = (): Promise<void> => this.#withdraw(s);
    return { close, [Symbol.asyncDispose]: close };
  }

  /** Stops taking work everywhere and waits for running requests. */
  async drain(): Promise<void> {
    this.#draining = true;
    await Promise.all([...this.#services.values()].map((s) => this.#withdraw(s)));
  }

  /** Aborts the signal of every running handler with `reason` (the node stopped waiting for them). */
  abortRunning(reason: MeshError): void {
    for (const e of this.#executions.values()) {
      if (e.reason || e.controller?.signal.aborted) continue;
      e.reason = reason;
      this.#clock.clearTimeout(e.timer);
      e.timer = undefined;
      e.controller?.abort(reason);
    }
  }

  /** A link came up: give it credits, moving some from other brokers when every slot is granted already. */
  onLinkUp(): void {
    for (const s of this.#services.values()) {
      this.#grant(s);
      this.#rebalance(s);
    }
  }

  /** A link went down (or is draining): the credits it held are free again. */
  onLinkDown(link: WorkerLink): void {
    for (const s of this.#services.values()) {
      s.granted.delete(link);
      this.#grant(s);
    }
  }

  /** The sender's key as text; the last one is remembered (most requests come from a few clients). */
  #senderKeyOf(sender: Uint8Array): string {
    const last = this.#lastSender;
    if (last !== undefined && Buffer.from(sender.buffer, sender.byteOffset, sender.byteLength).equals(last.bytes)) return last.key;
    const key = encodeKey(sender);
    this.#lastSender = { bytes: Buffer.from(sender), key };
    return key;
  }

  /** A REQUEST arrived from a broker. */
  onRequest(link: WorkerLink, m: RequestMessage): void {
    const s = this.#services.get(m.service);
    if (!m.sender) {
      link.send({ type: 'ERROR', id: m.id, code: 'MESH_ERR_PROTOCOL', retryable: false, text: 'request without a sender stamp' });
      return;
    }
    const senderKey = this.#senderKeyOf(m.sender);
    const key = ReplyCache.key(senderKey, m.id);
    // The broker took a credit for this request if we had granted one there.
    const credits = s?.granted.get(link) ?? 0;
    if (s && credits > 0) s.granted.set(link, credits - 1);
    const now = this.#clock.now();
    const cached = this.#cache.begin(key, link, now);
    if (cached.state !== 'new') {
      // A resend: the running execution answers on the newest path (and is
      // awaited until this copy's ttl too), or the finished one is replayed.
      // No slot is used, so the credit goes back.
      if (cached.state === 'replay') {
        this.#replayed++;
        this.#deliver(m, [link], cached.outcome);
      } else {
        this.#attached++;
        this.#extend(key, now + m.ttl);
      }
      if (s) this.#grant(s);
      return;
    }
    // Written to us after its attempt was over (its broker was frozen or
    // starved between dispatching and writing it): the client has resent it,
    // maybe to a worker that runs it now, so running it here too could run
    // it twice without dup. Answered, never run.
    if (m.ttl <= 0) {
      this.#cache.abandon(key);
      this.#expired++;
      link.send({ type: 'ERROR', id: m.id, code: 'MESH_ERR_TIMEOUT', retryable: true, text: 'request reached the worker with no time left' });
      if (s) this.#grant(s);
      return;
    }
    // Every slot busy (requests a broker dispatched before it read a CANCEL
    // of a credit rebalance, or a resend to the wrong worker): refuse, and
    // the broker dispatches it to another worker. Concurrency is a hard bound.
    if (!s || s.cancelled || this.#draining || s.running >= s.concurrency) {
      this.#cache.abandon(key);
      this.#refused++;
      link.send({ type: 'REFUSED', id: m.id });
      if (s) this.#grant(s);
      return;
    }
    s.running++;
    link.retain();
    const e: Execution = { deadline: now + m.ttl, controller: undefined, timer: undefined, reason: undefined, finished: false };
    this.#executions.set(key, e);
    const signalOf = (): AbortSignal => this.#signal(e);
    const request: IncomingRequest = {
      id: m.id,
      payload: Buffer.from(m.payload.buffer, m.payload.byteOffset, m.payload.byteLength),
      sender: { key: senderKey, name: m.senderName ?? '' },
      broker: link.key,
      attempt: m.attempt,
      dup: m.dup,
      service: m.service,
      trace: m.trace,
      ttl: m.ttl,
      get signal() {
        return signalOf();
      },
    };
    // A handler that throws synchronously is treated like one that rejects.
    new Promise<HandlerResult>((resolve) => resolve(s.handler(request))).then(
      (value) => {
        // A value that is neither bytes nor a string is answered MESH_ERR_HANDLER (#complete).
        if (typeof value === 'string' || value instanceof Uint8Array) this.#served++;
        else this.#handlerErrors++;
        this.#complete(s, m, key, link, e, { ok: true, payload: typeof value === 'string' ? Buffer.from(value) : value }, true);
      },
      (error: unknown) => {
        // Failing after the signal it read aborted is giving up, not an
        // answer: the client gets the reason (when its code may travel:
        // MESH_ERR_TIMEOUT does, MESH_ERR_CLOSED does not), and nothing is
        // cached, so a resend runs the request again.
        if (error instanceof RequestNotTaken) {
          // Never looked at by the app (an iterator left before pulling it): another worker may take it.
          this.#refused++;
          this.#notTaken(s, m, key, link, e);
          return;
        }
        this.#handlerErrors++;
        const aborted = e.controller?.signal.aborted === true ? (e.controller.signal.reason as MeshError) : undefined;
        if (aborted) {
          const told = ErrorCodes[aborted.code].wire ? ({ ok: false, code: aborted.code, retryable: aborted.retryable, text: aborted.message } as const) : undefined;
          this.#complete(s, m, key, link, e, told, false);
          return;
        }
        const text = error instanceof Error ? error.message : String(error);
        this.#complete(s, m, key, link, e, { ok: false, code: 'MESH_ERR_HANDLER', retryable: false, text: truncateUtf8(text, MAX_ERROR_TEXT) }, true);
      },
    );
  }

  // ------------------------------------------------------------ internals

  /** Withdraws one offered service (once): CANCEL everywhere, then wait for its running requests. */
  #withdraw(s: OfferedService): Promise<void> {
    s.closing ??= (async () => {
      s.cancelled = true;
      s.unlisten?.();
      for (const link of this.#pool.up()) link.send({ type: 'CANCEL', service: s.name });
      s.granted.clear();
      if (s.running > 0) await new Promise<void>((resolve) => s.idle.push(resolve));
      if (this.#services.get(s.name) === s) this.#services.delete(s.name);
    })();
    return s.closing;
  }

  /** The execution's signal, made on first use, aborting at its deadline. */
  #signal(e: Execution): AbortSignal {
    if (!e.controller) {
      e.controller = new AbortController();
      if (e.reason) e.controller.abort(e.reason);
      else this.#arm(e);
    }
    return e.controller.signal;
  }

  /** (Re)starts the timer that aborts the execution's signal at its deadline (plus the resend grace). */
  #arm(e: Execution): void {
    this.#clock.clearTimeout(e.timer);
    e.timer = undefined;
    const controller = e.controller;
    if (!controller || controller.signal.aborted || e.finished) return;
    const abort = (): void => {
      e.timer = undefined;
      controller.abort(new MeshError('MESH_ERR_TIMEOUT', 'the request\'s ttl ran out before the handler answered'));
    };
    const left = e.deadline + RESEND_GRACE_MS - this.#clock.now();
    if (left <= 0) abort();
    else e.timer = this.#clock.setTimeout(abort, left);
  }

  /** A resend attached to a running execution: it is awaited until the later of the two deadlines. */
  #extend(key: string, deadline: number): void {
    const e = this.#executions.get(key);
    if (!e || deadline <= e.deadline) return;
    e.deadline = deadline;
    if (e.timer !== undefined) this.#arm(e);
  }

  /**
   * The handler answered: send `outcome` (none: tell nobody) on the request's
   * paths, and keep it in the reply cache for resends when `cache` is set
   * (else the entry is dropped, so a resend runs the request again).
   */
  #complete(s: OfferedService, m: RequestMessage, key: string, link: WorkerLink, e: Execution, outcome: Outcome | undefined, cache: boolean): void {
    if (outcome?.ok && !(outcome.payload instanceof Uint8Array)) {
      outcome = { ok: false, code: 'MESH_ERR_HANDLER', retryable: false, text: 'handler returned neither bytes nor a string' };
    }
    e.finished = true;
    this.#clock.clearTimeout(e.timer);
    e.timer = undefined;
    this.#executions.delete(key);
    try {
      const entry = cache && outcome ? this.#cache.finish(key, outcome, this.#clock.now()) : this.#cache.abandon(key);
      if (outcome) this.#deliver(m, entry ? entry.paths : [link], outcome);
    } finally {
      link.release();
      s.running--;
      if (s.running === 0) for (const resolve of s.idle.splice(0)) resolve();
      this.#grantSoon(s);
    }
  }

  /**
   * Grants the slots freed by completions once the completions of this
   * microtask checkpoint are all in: handlers that answer together (the
   * requests of one read) free their slots in one READY, not one each.
   */
  #grantSoon(s: OfferedService): void {
    if (s.grantQueued) return;
    s.grantQueued = true;
    queueMicrotask(() => {
      s.grantQueued = false;
      this.#grant(s);
    });
  }

  /** Ends an execution the app never looked at: no answer, nothing cached, the request goes back to the broker. */
  #notTaken(s: OfferedService, m: RequestMessage, key: string, link: WorkerLink, e: Execution): void {
    this.#complete(s, m, key, link, e, undefined, false);
    if (link.up) link.send({ type: 'REFUSED', id: m.id });
  }

  /** Sends the outcome on the newest path still up, else through any broker addressed to the client. */
  #deliver(m: RequestMessage, paths: readonly WorkerLink[], outcome: Outcome): void {
    const to = m.sender!;
    const message = outcome.ok
      ? ({ type: 'REPLY', id: m.id, to, trace: m.trace, payload: outcome.payload } as const)
      : ({ type: 'ERROR', id: m.id, to, code: outcome.code, retryable: outcome.retryable, text: outcome.text } as const);
    const fits = (l: WorkerLink): boolean => message.type !== 'REPLY' || message.payload.length <= l.peerMaxPayload;
    const tooLarge = { type: 'ERROR', id: m.id, to, code: 'MESH_ERR_ENVELOPE_TOO_LARGE', retryable: false, text: 'the reply is over the broker\'s payload limit' } as const;
    const send = (l: WorkerLink): boolean => l.up && l.send(fits(l) ? message : tooLarge);
    for (let i = paths.length - 1; i >= 0; i--) {
      if (send(paths[i]!)) return;
    }
    // No broker up: the client's resend will find the cached outcome.
    for (const link of this.#pool.up()) {
      if (send(link)) return;
    }
  }

  /**
   * Moves credits to healthy links that hold none, from the link that holds
   * the most: a broker cannot give credits back, so the rich link gets CANCEL
   * then READY with what it keeps (both in one Noise message), and the poor
   * one READY with the rest. Without this, a broker that joins after the
   * worker granted every slot would get no work until requests finish.
   */
  #rebalance(s: OfferedService): void {
    if (s.cancelled || this.#draining) return;
    const links = this.#pool.healthy();
    for (const poor of links) {
      if ((s.granted.get(poor) ?? 0) > 0) continue;
      let rich = poor;
      for (const l of links) if ((s.granted.get(l) ?? 0) > (s.granted.get(rich) ?? 0)) rich = l;
      const had = s.granted.get(rich) ?? 0;
      if (had < 2) return;
      const move = Math.floor(had / 2);
      if (!rich.send({ type: 'CANCEL', service: s.name })) continue;
      s.granted.set(rich, 0);
      if (rich.send({ type: 'READY', service: s.name, credits: had - move })) s.granted.set(rich, had - move);
      if (poor.send({ type: 'READY', service: s.name, credits: move })) s.granted.set(poor, move);
    }
  }

  /** Grants free slots as credits, spread over healthy links (fewest first). */
  #grant(s: OfferedService): void {
    if (s.cancelled || this.#draining) return;
    const links = this.#pool.healthy();
    if (links.length === 0) return;
    for (const l of [...s.granted.keys()]) if (!links.includes(l)) s.granted.delete(l);
    let outstanding = 0;
    for (const c of s.granted.values()) outstanding += c;
    let free = s.concurrency - s.running - outstanding;
    if (free <= 0) return;
    const add = new Map<WorkerLink, number>();
    while (free > 0) {
      let best = links[0]!;
      for (const l of links) if ((s.granted.get(l) ?? 0) < (s.granted.get(best) ?? 0)) best = l;
      s.granted.set(best, (s.granted.get(best) ?? 0) + 1);
      add.set(best, (add.get(best) ?? 0) + 1);
      free--;
    }
    for (const [link, credits] of add) {
      if (!link.send({ type: 'READY', service: s.name, credits })) s.granted.set(link, (s.granted.get(link) ?? 0) - credits);
    }
  }
}
