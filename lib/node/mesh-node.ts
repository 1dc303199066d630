/**
 * MeshNode: what an app embeds to call services and to offer them. It keeps
 * a link to every broker it knows (its seeds, then every broker it learns of
 * from BROKERS and WELCOME), sends requests round-robin across healthy
 * brokers, and runs its services' handlers (docs/api.md#meshnode).
 */
import { MeshError, isErrorCode } from '../errors.ts';
import type { ErrorCode } from '../errors.ts';
import type { CryptoSuite, KeyPair } from '../crypto/crypto-suite.ts';
import { resolveSuite } from '../crypto/suites.ts';
import type { SuiteName } from '../crypto/suites.ts';
import { encodeKey, readKeyFile } from '../crypto/keys.ts';
import { parseBrokerAddress, formatBrokerAddress } from '../protocol/broker-address.ts';
import { parseHostPort } from '../protocol/host-port.ts';
import { EventSource } from '../protocol/event-hub.ts';
import type { BrokerAddress } from '../protocol/broker-address.ts';
import type { RoleName } from '../protocol/hello.ts';
import type { ChannelOptions } from '../protocol/connection.ts';
import type { BrokerInfo, Message } from '../protocol/messages.ts';
import { SERVICE_NAME } from '../protocol/messages.ts';
import { BrokerLink, refusedOutright } from './broker-link.ts';
import type { LinkSettings } from './broker-link.ts';
import { Requester } from './requester.ts';
import type { PendingLimits, RequestOptions, RequesterCounts } from './requester.ts';
import { RequestNotTaken, ServiceRunner } from './service-runner.ts';
import type { Handler, IncomingRequest, RunnerCounts, ServeOptions, ServiceHandle } from './service-runner.ts';
import type { ReplyCacheLimits } from './reply-cache.ts';
import { systemClock } from './clock.ts';
import type { ClientPool, WorkerPool } from './link.ts';

/** Default deadline of {@link MeshNode.connect} to reach a first broker, ms. */
const DEFAULT_CONNECT_TIMEOUT = 5000;
/** Longest delay a Node timer can wait, ms (about 24.8 days). */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Options of {@link MeshNode.connect}. */
export interface MeshNodeOptions extends Pick<ChannelOptions, 'heartbeat' | 'maxPayload' | 'handshakeTimeout'> {
  /** Crypto suite: `'node'` (node:crypto), `'noble'` (pure JS) or a suite object (default: node where the runtime supports it). */
  readonly suite?: SuiteName | CryptoSuite | undefined;
  /** Seed brokers as `mesh://KEY@host:port` URLs (at least one). Seeds are never forgotten. */
  readonly brokers: readonly string[];
  /** This node's key pair, or the path of its key file. */
  readonly key: KeyPair | string;
  /** Name sent in HELLO (the broker's registry name is what others see). */
  readonly name?: string | undefined;
  /** Role sent in HELLO (default "node"); the registry decides what is allowed. */
  readonly role?: RoleName | undefined;
  /** Reply cache bounds (workers). */
  readonly replyCache?: Partial<ReplyCacheLimits> | undefined;
  /** Bounds of the requests awaiting an answer (default 65,536 requests, 256 MiB of payload); past them `request()` rejects with MESH_ERR_BUSY. */
  readonly pending?: Partial<PendingLimits> | undefined;
  /** Learn brokers from BROKERS lists (default true). */
  readonly discover?: boolean | undefined;
  /** Longest wait in close() for running handlers, ms (default 2000); then links close anyway. */
  readonly closeTimeout?: number | undefined;
  /** Aborts connect(). */
  readonly signal?: AbortSignal | undefined;
  /** Deadline for connect() to reach one broker: whole ms from 1 to 2^31 - 1 (default 5000), or `Infinity` to wait as long as it takes; anything else is MESH_ERR_CONFIG. */
  readonly timeout?: number | undefined;
  /** Monotonic clock, ms (default performance.now). */
  readonly now?: (() => number) | undefined;
  /** Random source for backoff jitter (default Math.random). */
  readonly random?: (() => number) | undefined;
}

/**
 * The events of a MeshNode (`node.on(type, listener)`): one object per
 * event, with a kebab-case `type` (the `meshd serve` log event names);
 * `broker` is the broker's mesh:// URL.
 */
export type MeshNodeEvent =
  /** A link to a broker is up (WELCOME received), at start or again later. */
  | { readonly type: 'broker-up'; readonly broker: string }
  /** A link to a broker went down; the node redials it. */
  | { readonly type: 'broker-down'; readonly broker: string; readonly error: MeshError | undefined }
  /** A broker announced it is draining (DRAIN): no new work goes to it. */
  | { readonly type: 'broker-draining'; readonly broker: string }
  /** The set of known brokers changed: one was learned or forgotten. `brokers` is all of them. */
  | { readonly type: 'brokers'; readonly brokers: string[] }
  /** A broker reported a connection-level error that keeps the link up (e.g. MESH_ERR_FORBIDDEN for a service the registry does not let this node serve). */
  | { readonly type: 'broker-error'; readonly broker: string; readonly error: MeshError };

/** The type of a MeshNode event. */
export type MeshNodeEventType = MeshNodeEvent['type'];

/**
 * What {@link MeshNode.stats} returns: the node's counters since it
 * connected, as a client and as a worker, and its links now
 * (docs/api.md#counters-nodestats).
 */
export interface MeshNodeStats {
  /** As a client: the requests it sent. */
  readonly client: {
    /** Requests accepted by `request()` (options checked). `sent` = `replied` + all `failed` + `pending`. */
    readonly sent: number;
    /** Requests answered with a reply. */
    readonly replied: number;
    /** Requests that ended with an error, by code (e.g. `MESH_ERR_TIMEOUT`, `MESH_ERR_NO_SERVICE`; codes that never happened are left out). */
    readonly failed: Readonly<Partial<Record<ErrorCode, number>>>;
    /** Attempts resent after a failed attempt, each using one retry. */
    readonly retries: number;
    /** Attempts resent after a broker handed the request back (REFUSED, DRAIN), using no retry. */
    readonly handbacks: number;
    /** Attempts whose own deadline passed without an answer (each then resent, or waited out). */
    readonly attemptsTimedOut: number;
    /** Requests awaiting an answer now. */
    readonly pending: number;
  };
  /** As a worker: the requests brokers gave it. */
  readonly worker: {
    /** Requests whose handler answered. */
    readonly served: number;
    /** Requests whose handler threw or rejected. */
    readonly handlerErrors: number;
    /** Requests handed back to their broker (REFUSED) without running: every slot busy, the service withdrawn, the node draining, or left unpulled by a `requests()` loop. */
    readonly refused: number;
    /** Requests that arrived with no time left (ttl 0: written late by a frozen or starved broker) and were answered MESH_ERR_TIMEOUT without running. */
    readonly expired: number;
    /** Resent requests attached to the execution already running here (no second run). */
    readonly attached: number;
    /** Resent requests answered from the reply cache. */
    readonly replayed: number;
    /** Handlers running now. */
    readonly running: number;
  };
  /** Its links to brokers now. */
  readonly links: {
    /** Brokers known (seeds and learned). */
    readonly known: number;
    /** Links up (welcomed; possibly draining). */
    readonly up: number;
    /** Links that take new requests. */
    readonly healthy: number;
  };
}

/** A node of the mesh: client and worker. */
export class MeshNode extends EventSource<MeshNodeEvent> {
  readonly #links = new Map<string, BrokerLink>();
  /** The latest broker list each broker sent (WELCOME, BROKERS), as keys. */
  readonly #lists = new Map<string, Set<string>>();
  readonly #settings: LinkSettings;
  readonly #options: MeshNodeOptions;
  readonly #requester: Requester;
  readonly #runner: ServiceRunner;
  #healthyWaiters = new Set<() => void>();
  #attemptWatcher: (() => void) | undefined;
  #closing: Promise<void> | undefined;

  private constructor(options: MeshNodeOptions, keyPair: KeyPair, seeds: BrokerAddress[]) {
    super();
    this.#options = options;
    const clock = systemClock(options.now);
    this.#settings = {
      keyPair,
      suite: resolveSuite(options.suite),
      role: options.role ?? 'node',
      name: options.name,
      heartbeat: options.heartbeat,
      maxPayload: options.maxPayload,
      handshakeTimeout: options.handshakeTimeout,
      random: options.random ?? Math.random,
    };
    const pool: ClientPool & WorkerPool = {
      healthy: () => {
        const out: BrokerLink[] = [];
        for (const l of this.#links.values()) if (l.healthy) out.push(l);
        return out;
      },
      up: () => [...this.#links.values()].filter((l) => l.up),
      find: (broker: string) => this.#links.get(broker) ?? [...this.#links.values()].find((l) => l.address.url === broker),
      whenHealthy: (callback: () => void) => {
        this.#healthyWaiters.add(callback);
        return () => this.#healthyWaiters.delete(callback);
      },
    };
    this.#requester = new Requester(pool, clock, options.pending);
    this.#runner = new ServiceRunner(pool, clock, options.replyCache);
    for (const address of seeds) this.#addLink(address, true);
  }

  /**
   * Connects to the mesh: resolves once one broker has welcomed this node.
   * Rejects with the brokers' verdict when every seed refused it
   * (MESH_ERR_UNAUTHORIZED, or MESH_ERR_HANDSHAKE when the key in the
   * address is not the broker's: any error that is not retryable), MESH_ERR_TIMEOUT after `timeout`, MESH_ERR_ABORTED on
   * `signal`. Links keep reconnecting in the background afterwards.
   */
  static async connect(options: MeshNodeOptions): Promise<MeshNode> {
    if (options.brokers.length === 0) throw new MeshError('MESH_ERR_CONFIG', 'at least one broker address is needed');
    const timeout = options.timeout ?? DEFAULT_CONNECT_TIMEOUT;
    if (timeout !== Infinity && !(Number.isSafeInteger(timeout) && timeout >= 1 && timeout <= MAX_TIMER_MS)) {
      throw new MeshError('MESH_ERR_CONFIG', `timeout must be a whole number of ms from 1 to ${MAX_TIMER_MS}, or Infinity; got ${String(timeout)}`);
    }
    const seeds = options.brokers.map((b) => parseBrokerAddress(b));
    const keyPair = typeof options.key === 'string' ? await readKeyFile(options.key) : options.key;
    const node = new MeshNode(options, keyPair, seeds);
    try {
      await node.#waitForFirstBroker(timeout, options.signal);
    } catch (error) {
      await node.close();
      throw error;
    }
    return node;
  }

  /** Known brokers, as mesh:// URLs. */
  get brokers(): string[] {
    return [...this.#links.values()].map((l) => l.address.url);
  }

  /** Brokers this node is connected to and that take new requests. */
  get healthyBrokers(): string[] {
    return [...this.#links.values()].filter((l) => l.healthy).map((l) => l.address.url);
  }

  /** Requests awaiting a reply. */
  get pendingRequests(): number {
    return this.#requester.size;
  }

  /**
   * The node's counters since it connected, as a client (requests sent,
   * replied, failed by code, retries, hand-backs, attempts timed out) and as
   * a worker (served, refused, handler errors, resends attached or replayed,
   * running now), and its links to brokers now. Each call makes a new
   * snapshot; counting costs an integer increment per event.
   */
  stats(): MeshNodeStats {
    const client: RequesterCounts = this.#requester.counts();
    const worker: RunnerCounts = this.#runner.counts();
    const links = [...this.#links.values()];
    return {
      client,
      worker,
      links: { known: links.length, up: links.filter((l) => l.up).length, healthy: links.filter((l) => l.healthy).length },
    };
  }

  /**
   * Sends a request and resolves with the reply bytes, or rejects with a
   * MeshError (stable `code`). Retries through other brokers as
   * docs/api.md#calling-a-service describes, within `timeout` (default
   * 1000 ms) and `retries` (default 2).
   */
  request(service: string, payload: Uint8Array | string = new Uint8Array(0), options: RequestOptions = {}): Promise<Buffer> {
    if (this.#closing) return Promise.reject(new MeshError('MESH_ERR_CLOSED', 'node is closed'));
    return this.#requester.request(service, typeof payload === 'string' ? Buffer.from(payload) : payload, options);
  }

  /**
   * Offers a service. The handler gets `{ id, payload, sender, broker,
   * attempt, dup, service, trace, ttl, signal }` and returns bytes or a string (or a promise of
   * them); a thrown error reaches the client as MESH_ERR_HANDLER with its
   * message. At most `concurrency` (default 16) requests run at once.
   * The returned handle's `close()` (or `await using`), or aborting
   * `options.signal`, withdraws the service; an already aborted signal
   * throws MESH_ERR_ABORTED.
   */
  serve(service: string, handler: Handler, options: ServeOptions = {}): ServiceHandle {
    if (this.#closing) throw new MeshError('MESH_ERR_CLOSED', 'node is closed');
    if (!SERVICE_NAME.test(service)) throw new MeshError('MESH_ERR_CONFIG', `invalid service name ${JSON.stringify(service)}`);
    return this.#runner.add(service, handler, options);
  }

  /**
   * Offers a service as an async iterator of requests, each answered with
   * `reply(bytes)` or `fail(error)`. Leaving the loop, or aborting
   * `options.signal` (which also ends the loop), withdraws the service.
   */
  requests(service: string, options: ServeOptions = {}): AsyncIterableIterator<IncomingRequest & { reply(payload: Uint8Array | string): void; fail(error: Error): void }> {
    type Item = IncomingRequest & { reply(payload: Uint8Array | string): void; fail(error: Error): void };
    const ready: Item[] = [];
    const waiting: Array<(r: IteratorResult<Item>) => void> = [];
    let done = false;
    const handle = this.serve(
      service,
      (request) =>
        new Promise<Uint8Array | string>((resolve, reject) => {
          // Listed, not spread: a spread would read `signal` (and start its timer) for every request.
          const item: Item = {
            id: request.id,
            payload: request.payload,
            sender: request.sender,
            broker: request.broker,
            attempt: request.attempt,
            dup: request.dup,
            service: request.service,
            trace: request.trace,
            ttl: request.ttl,
            get signal() {
              return request.signal;
            },
            reply: resolve,
            fail: reject,
          };
          const w = waiting.shift();
          if (w) w({ value: item, done: false });
          else ready.push(item);
        }),
      options,
    );
    const signal = options.signal;
    const onAbort = (): void => void finish();
    signal?.addEventListener('abort', onAbort, { once: true });
    const finish = async (): Promise<IteratorResult<Item>> => {
      if (!done) {
        done = true;
        signal?.removeEventListener('abort', onAbort);
        // Withdraw first (CANCEL), so the requests handed back below are not sent here again.
        const closed = handle.close();
        for (const item of ready.splice(0)) item.fail(new RequestNotTaken(`${service} withdrawn before the request was pulled`));
        for (const w of waiting.splice(0)) w({ value: undefined, done: true });
        await closed;
      }
      return { value: undefined, done: true };
    };
    return {
      next: () => {
        if (done) return Promise.resolve({ value: undefined, done: true });
        const item = ready.shift();
        if (item) return Promise.resolve({ value: item, done: false });
        return new Promise((resolve) => waiting.push(resolve));
      },
      return: finish,
      [Symbol.asyncIterator]() {
        return this;
      },
    };
  }

  /** Stops taking work (CANCEL everywhere) and waits for running handlers. */
  async drain(): Promise<void> {
    await this.#runner.drain();
  }

  /**
   * Closes the node (idempotent): pending requests reject with
   * MESH_ERR_CLOSED, handlers still running get up to `closeTimeout` ms to
   * finish and send their replies; then the signals of those still running
   * abort with MESH_ERR_CLOSED and every link closes.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#requester.close();
      let timer: NodeJS.Timeout | undefined;
      const closeTimeout = this.#options.closeTimeout ?? 2000;
      const limit = new Promise<void>((resolve) => (timer = setTimeout(resolve, closeTimeout)));
      await Promise.race([this.#runner.drain(), limit]);
      clearTimeout(timer);
      // Handlers still running past closeTimeout are no longer waited for (none when drain won).
      this.#runner.abortRunning(new MeshError('MESH_ERR_CLOSED', `node closed after waiting ${closeTimeout} ms for the handler`));
      for (const link of this.#links.values()) link.close();
      this.#healthyWaiters.clear();
    })();
    return this.#closing;
  }

  /** `await using node = await MeshNode.connect(...)`. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  // ------------------------------------------------------------ internals

  #addLink(address: BrokerAddress, seed: boolean): void {
    // One link per broker key: a second address for the same key is tried after the first fails.
    const known = this.#links.get(encodeKey(address.publicKey));
    if (known) {
      known.addAddress(address);
      return;
    }
    const link = new BrokerLink(address, seed, this.#settings, {
      onUp: (l) => {
        this.#runner.onLinkUp();
        this.emit({ type: 'broker-up', broker: l.address.url });
        for (const w of [...this.#healthyWaiters]) {
          this.#healthyWaiters.delete(w);
          w();
        }
        this.#requester.onWritable();
      },
      onDown: (l, error) => {
        this.#requester.onLinkDown(l, error);
        // Its resends may have queued behind held requests that another link can take now.
        this.#requester.onWritable();
        this.#runner.onLinkDown(l);
        this.emit({ type: 'broker-down', broker: l.address.url, error });
      },
      onDrain: () => this.#requester.onWritable(),
      onMessage: (l, message) => this.#onMessage(l, message),
      onAttemptFailed: () => this.#attemptWatcher?.(),
    });
    this.#links.set(link.key, link);
  }

  #onMessage(link: BrokerLink, message: Message): void {
    switch (message.type) {
      case 'REQUEST':
        this.#runner.onRequest(link, message);
        return;
      case 'WELCOME':
      case 'BROKERS':
        this.#learn(link, message.brokers);
        return;
      case 'DRAIN':
        this.#requester.onLinkDraining(link);
        this.#runner.onLinkDown(link);
        this.emit({ type: 'broker-draining', broker: link.address.url });
        return;
      case 'ERROR':
        if (message.id === undefined) {
          const code = isErrorCode(message.code) ? message.code : 'MESH_ERR_PROTOCOL';
          this.emit({ type: 'broker-error', broker: link.address.url, error: new MeshError(code, message.text, { retryable: message.retryable }) });
          return;
        }
        this.#requester.onMessage(link, message);
        return;
      default:
        this.#requester.onMessage(link, message);
    }
  }

  /**
   * Adds links for brokers learned from an authenticated broker (never from
   * an unauthenticated source: docs/architecture.md#how-nodes-learn-and-forget-brokers), and
   * forgets learned brokers that are down and that no broker still lists.
   */
  #learn(from: BrokerLink, brokers: readonly BrokerInfo[]): void {
    if (this.#options.discover === false || this.#closing) return;
    this.#lists.set(from.key, new Set(brokers.map((b) => encodeKey(b.id))));
    let changed = this.#prune();
    for (const b of brokers) {
      const hostPort = parseHostPort(b.addresses[0] ?? '');
      if (!hostPort) continue;
      let parsed: BrokerAddress;
      try {
        parsed = parseBrokerAddress(formatBrokerAddress({ publicKey: b.id, ...hostPort }));
      } catch {
        continue; // an address this node cannot use (e.g. port out of range): skip it, keep the rest
      }
      const known = this.#links.get(parsed.key);
      if (known) {
        // A learned broker that moved (restarted elsewhere, same key): follow it while the old address is down.
        if (known.seed || known.up || known.address.url === parsed.url) continue;
        known.close();
        this.#links.delete(known.key);
      }
      this.#addLink(parsed, false);
      changed = true;
    }
    if (changed) this.emit({ type: 'brokers', brokers: this.brokers });
  }

  /** Closes learned links that are not up and that no broker that is up lists; seeds stay. */
  #prune(): boolean {
    const listed = new Set<string>();
    let anyUp = false;
    for (const [key, list] of this.#lists) {
      if (!this.#links.get(key)?.up) continue;
      anyUp = true;
      for (const k of list) listed.add(k);
    }
    if (!anyUp) return false;
    let changed = false;
    for (const link of [...this.#links.values()]) {
      if (link.seed || link.up || listed.has(link.key)) continue;
      link.close();
      this.#links.delete(link.key);
      this.#lists.delete(link.key);
      changed = true;
    }
    return changed;
  }

  #waitForFirstBroker(timeout: number, signal: AbortSignal | undefined): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const done = (error?: MeshError): void => {
        clearTimeout(timer);
        this.#attemptWatcher = undefined;
        signal?.removeEventListener('abort', onAbort);
        this.#healthyWaiters.delete(onHealthy);
        if (error) reject(error);
        else resolve();
      };
      const onHealthy = (): void => done();
      const onAbort = (): void => done(new MeshError('MESH_ERR_ABORTED', 'connect aborted', { cause: signal?.reason }));
      const timer = Number.isFinite(timeout) ? setTimeout(() => {
        const errors = [...this.#links.values()].map((l) => l.lastError).filter((e): e is MeshError => e !== undefined);
        const last = errors[errors.length - 1];
        done(new MeshError('MESH_ERR_TIMEOUT', `no broker accepted this node within ${timeout} ms${last ? ` (last error: ${last.code}: ${last.message})` : ''}`, { cause: last }));
      }, timeout) : undefined;
      // Every seed refused us outright (an unknown key, the wrong broker key in the address): no point waiting.
      this.#attemptWatcher = () => {
        const links = [...this.#links.values()];
        const fatal = links.map((l) => l.lastError).filter((e) => refusedOutright(e));
        if (fatal.length === links.length && fatal[0]) done(fatal[0]);
      };
      if (signal?.aborted) return onAbort();
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#healthyWaiters.add(onHealthy);
      if ([...this.#links.values()].some((l) => l.healthy)) done();
    });
  }
}
