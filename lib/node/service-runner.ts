/**
 * The worker half of a node: runs handlers for the services it offers,
 * splits its free slots as credits across brokers (never more credits than
 * free slots), dedups resent requests through the reply cache, and sends
 * each reply back through the broker the request came from, or any other
 * broker, addressed to the client's key, when that one is gone
 * (docs/api.md#offering-a-service).
 */
import { MeshError } from '../errors.ts';
import { encodeKey } from '../crypto/keys.ts';
import type { RequestMessage } from '../protocol/messages.ts';
import type { BrokerLink } from './broker-link.ts';
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
  /** The attempt that reached this worker first. */
  readonly attempt: number;
  /** Set when an earlier attempt may have run somewhere. */
  readonly dup: boolean;
  /** The service name. */
  readonly service: string;
  /** Time left until the client's deadline when it arrived, ms. */
  readonly ttl: number;
}

/** A handler's result: bytes or a string (sent as UTF-8). */
export type HandlerResult = Uint8Array | string;

/** A service handler. A thrown error reaches the client as MESH_ERR_HANDLER. */
export type Handler = (request: IncomingRequest) => HandlerResult | Promise<HandlerResult>;

/** Options of `serve`. */
export interface ServeOptions {
  /** Most requests run at once (default 16). */
  readonly concurrency?: number | undefined;
}

/** Default handlers run at once per service. */
export const DEFAULT_CONCURRENCY = 16;

/** Which links a runner can use. */
export interface WorkerPool {
  /** Links that are up (possibly draining): can carry replies. */
  up(): BrokerLink[];
  /** Links that take new work. */
  healthy(): BrokerLink[];
}

interface ServiceState {
  readonly name: string;
  readonly handler: Handler;
  readonly concurrency: number;
  running: number;
  readonly granted: Map<BrokerLink, number>;
  cancelled: boolean;
  idle: Array<() => void>;
}

/** Runs the node's services. */
export class ServiceRunner {
  readonly #pool: WorkerPool;
  readonly #now: () => number;
  readonly #services = new Map<string, ServiceState>();
  readonly #cache: ReplyCache<BrokerLink>;
  #draining = false;

  constructor(pool: WorkerPool, now: () => number, cacheLimits: Partial<ReplyCacheLimits> = {}) {
    this.#pool = pool;
    this.#now = now;
    this.#cache = new ReplyCache<BrokerLink>(cacheLimits);
  }

  /** Executions running across all services. */
  get running(): number {
    let n = 0;
    for (const s of this.#services.values()) n += s.running;
    return n;
  }

  /** Starts offering a service. */
  add(service: string, handler: Handler, options: ServeOptions = {}): void {
    if (this.#services.has(service)) throw new MeshError('MESH_ERR_CONFIG', `service ${service} is already served by this node`);
    const concurrency = options.concurrency ?? DEFAULT_CONCURRENCY;
    if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 65535) throw new MeshError('MESH_ERR_CONFIG', `concurrency must be an integer in 1..65535, got ${concurrency}`);
    this.#services.set(service, { name: service, handler, concurrency, running: 0, granted: new Map(), cancelled: false, idle: [] });
    this.#grant(this.#services.get(service)!);
  }

  /** Stops offering a service: CANCEL to every broker; running requests finish. */
  async remove(service: string): Promise<void> {
    const s = this.#services.get(service);
    if (!s) return;
    s.cancelled = true;
    for (const link of this.#pool.up()) link.send({ type: 'CANCEL', service });
    s.granted.clear();
    if (s.running > 0) await new Promise<void>((resolve) => s.idle.push(resolve));
    this.#services.delete(service);
  }

  /** Stops taking work everywhere and waits for running requests. */
  async drain(): Promise<void> {
    this.#draining = true;
    await Promise.all([...this.#services.keys()].map((name) => this.remove(name)));
  }

  /** A link came up: give it credits, moving some from other brokers when every slot is granted already. */
  onLinkUp(): void {
    for (const s of this.#services.values()) {
      this.#grant(s);
      this.#rebalance(s);
    }
  }

  /** A link went down: the credits it held are free again. */
  onLinkDown(link: BrokerLink): void {
    for (const s of this.#services.values()) {
      s.granted.delete(link);
      this.#grant(s);
    }
  }

  /** A REQUEST arrived from a broker. */
  onRequest(link: BrokerLink, m: RequestMessage): void {
    const s = this.#services.get(m.service);
    if (!m.sender) {
      link.send({ type: 'ERROR', id: m.id, code: 'MESH_ERR_PROTOCOL', retryable: false, text: 'request without a sender stamp' });
      return;
    }
    const senderKey = encodeKey(m.sender);
    const key = ReplyCache.key(senderKey, m.id);
    // The broker took a credit for this request if we had granted one there.
    const credits = s?.granted.get(link) ?? 0;
    if (s && credits > 0) s.granted.set(link, credits - 1);
    const cached = this.#cache.begin(key, link, this.#now());
    if (cached.state !== 'new') {
      // A resend: the running execution answers on the newest path, or the
      // finished one is replayed. No slot is used, so the credit goes back.
      if (cached.state === 'replay') this.#deliver(m, [link], cached.outcome);
      if (s) this.#grant(s);
      return;
    }
    // Every slot busy (requests a broker dispatched before it read a CANCEL
    // of a credit rebalance, or a resend to the wrong worker): refuse, and
    // the broker dispatches it to another worker. Concurrency is a hard bound.
    if (!s || s.cancelled || this.#draining || s.running >= s.concurrency) {
      this.#cache.abandon(key);
      link.send({ type: 'REFUSED', id: m.id });
      if (s) this.#grant(s);
      return;
    }
    s.running++;
    link.retain();
    const request: IncomingRequest = {
      id: m.id,
      payload: Buffer.from(m.payload.buffer, m.payload.byteOffset, m.payload.byteLength),
      sender: { key: senderKey, name: m.senderName ?? '' },
      attempt: m.attempt,
      dup: m.dup,
      service: m.service,
      ttl: m.ttl,
    };
    // A handler that throws synchronously is treated like one that rejects.
    new Promise<HandlerResult>((resolve) => resolve(s.handler(request))).then(
      (value) => this.#complete(s, m, key, link, { ok: true, payload: typeof value === 'string' ? Buffer.from(value) : value }),
      (error: unknown) => {
        const text = error instanceof Error ? error.message : String(error);
        this.#complete(s, m, key, link, { ok: false, code: 'MESH_ERR_HANDLER', retryable: false, text: text.slice(0, 1024) });
      },
    );
  }

  #complete(s: ServiceState, m: RequestMessage, key: string, link: BrokerLink, outcome: Outcome): void {
    if (outcome.ok && !(outcome.payload instanceof Uint8Array)) {
      outcome = { ok: false, code: 'MESH_ERR_HANDLER', retryable: false, text: 'handler returned neither bytes nor a string' };
    }
    try {
      const entry = this.#cache.finish(key, outcome, this.#now());
      this.#deliver(m, entry ? entry.paths : [link], outcome);
    } finally {
      link.release();
      s.running--;
      if (s.running === 0) for (const resolve of s.idle.splice(0)) resolve();
      this.#grant(s);
    }
  }

  /** Sends the outcome on the newest path still up, else through any broker addressed to the client. */
  #deliver(m: RequestMessage, paths: readonly BrokerLink[], outcome: Outcome): void {
    const to = m.sender!;
    const message = outcome.ok
      ? ({ type: 'REPLY', id: m.id, to, payload: outcome.payload } as const)
      : ({ type: 'ERROR', id: m.id, to, code: outcome.code, retryable: outcome.retryable, text: outcome.text } as const);
    const fits = (l: BrokerLink): boolean => message.type !== 'REPLY' || message.payload.length <= l.peerMaxPayload;
    const tooLarge = { type: 'ERROR', id: m.id, to, code: 'MESH_ERR_ENVELOPE_TOO_LARGE', retryable: false, text: 'the reply is over the broker\'s payload limit' } as const;
    const send = (l: BrokerLink): boolean => l.up && l.send(fits(l) ? message : tooLarge);
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
  #rebalance(s: ServiceState): void {
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
  #grant(s: ServiceState): void {
    if (s.cancelled || this.#draining) return;
    const links = this.#pool.healthy();
    if (links.length === 0) return;
    for (const l of [...s.granted.keys()]) if (!links.includes(l)) s.granted.delete(l);
    let outstanding = 0;
    for (const c of s.granted.values()) outstanding += c;
    let free = s.concurrency - s.running - outstanding;
    if (free <= 0) return;
    const add = new Map<BrokerLink, number>();
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
