/**
 * Broker: accepts authenticated connections, keeps a session per connection,
 * and routes REQUEST → worker → REPLY
 * (docs/architecture.md#how-a-broker-routes-a-request,
 * docs/registry.md#checks-at-the-broker). Routing state lives in ServiceTable
 * (pure); this file wires it to connections and timers.
 */
import { randomBytes } from 'node:crypto';
import { MeshError } from '../errors.ts';
import { listen } from '../framing/listener.ts';
import type { AcceptedSocket, Listener } from '../framing/listener.ts';
import type { CryptoSuite, KeyPair } from '../crypto/crypto-suite.ts';
import { resolveSuite } from '../crypto/suites.ts';
import type { SuiteName } from '../crypto/suites.ts';
import { encodeKey, readKeyFile } from '../crypto/keys.ts';
import { formatBrokerAddress, parseBrokerAddress } from '../crypto/broker-address.ts';
import { Connection } from '../protocol/connection.ts';
import type { ChannelOptions } from '../protocol/connection.ts';
import type { Message, MessageTypeName, RequestMessage, BrokerInfo } from '../protocol/messages.ts';
import { DEFAULT_MAX_PAYLOAD } from '../protocol/envelope-codec.ts';
import type { Registry } from './registry.ts';
import { RegistryWatcher } from './registry-file.ts';
import { DEFAULT_QUEUE_LIMITS, ServiceTable } from './service-table.ts';
import type { QueueLimits } from './service-table.ts';
import { Session } from './session.ts';
import type { PendingRequest } from './session.ts';
import { makeBootId } from './membership.ts';
import { PeerMesh } from './peer-mesh.ts';
import type { PeerEvent } from './peer-mesh.ts';

/** Options of {@link Broker.start}. */
export interface BrokerOptions extends Omit<ChannelOptions, 'suite'> {
  /** Crypto suite: `'node'` (node:crypto), `'noble'` (pure JS) or a suite object (default: node where the runtime supports it). */
  readonly suite?: SuiteName | CryptoSuite | undefined;
  /** The broker's static key pair, or the path of its key file. */
  readonly key: KeyPair | string;
  /** Registry: a parsed Registry, or the path of the YAML file (watched and reloaded). */
  readonly registry: Registry | string;
  /** Listen host (default 127.0.0.1). */
  readonly host?: string | undefined;
  /** Listen port (default 0: any free port). */
  readonly port?: number | undefined;
  /** Name in HELLO and logs (default "broker"). */
  readonly name?: string | undefined;
  /** Most handshakes in progress at once (default 256); more are dropped at accept. */
  readonly maxHandshakes?: number | undefined;
  /** Most established connections (default 10 000). */
  readonly maxConnections?: number | undefined;
  /** Most requests one client key may have pending at this broker (default 10 000). */
  readonly maxPendingPerClient?: number | undefined;
  /** Per-service queue bounds. */
  readonly queue?: Partial<QueueLimits> | undefined;
  /** Longest wait for in-flight replies when draining, ms (default 5000). */
  readonly drainTimeout?: number | undefined;
  /** Peer brokers to join, as `mesh://KEY@host:port` URLs (docs/architecture.md#the-broker-mesh). */
  readonly peers?: readonly string[] | undefined;
  /** Quorum round interval, ms (default 1000). */
  readonly gossipInterval?: number | undefined;
  /** How long dead and leaving brokers are remembered, ms (default 30 000). */
  readonly tombstone?: number | undefined;
  /** `host:port` announced to peers and nodes (default: the listen address). */
  readonly advertise?: string | undefined;
  /** Receives broker events (for logs); must not throw. */
  readonly onEvent?: ((event: BrokerEvent) => void) | undefined;
  /** Monotonic clock, ms (default performance.now). */
  readonly now?: (() => number) | undefined;
}

/** Something worth logging. */
export type BrokerEvent =
  | { type: 'connected'; key: string; name: string; role: string; remote: string }
  | { type: 'disconnected'; key: string; name: string; error?: MeshError | undefined }
  | { type: 'handshake-failed'; remote: string; error: MeshError }
  | { type: 'registry-reloaded'; entries: number; removed: number }
  | { type: 'registry-error'; error: MeshError }
  | { type: 'forbidden'; key: string; name: string; what: string }
  | { type: 'draining' }
  | { type: 'stalled'; ms: number }
  | PeerEvent
  | { type: 'closed' };

/** A snapshot of broker state for /status and tests. */
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
}

/** Default longest wait for in-flight replies when draining, ms. */
export const DEFAULT_DRAIN_TIMEOUT = 5000;

/** Most requests a worker may hold beyond its credits through worker hints. */
const MAX_HINTED_OVERDRAFT = 64;
/** Messages only a party that may serve can send. */
const WORKER_MESSAGES: ReadonlySet<MessageTypeName> = new Set(['REPLY', 'REFUSED', 'CANCEL']);
/** Most messages kept from a connection before its session is set up. */
const MAX_EARLY_MESSAGES = 1024;
/** Most refusals a request may collect before the client is told BUSY. */
const MAX_REFUSALS = 8;
/** How long an answered-or-lost request record may outlive its deadline, ms. */
const PENDING_GRACE = 1000;
/** Interval of the stall watchdog, ms. */
const TICK_MS = 100;
/**
 * Event-loop silence after which input is treated as stale, ms: the process
 * was frozen (SIGSTOP) or starved, and its peers have given up on it.
 */
const STALL_MS = 1000;
/**
 * After a stall is seen, input stays suspect this long, ms. Node may run the
 * overdue watchdog tick before the socket reads that were buffered during
 * the freeze, so the tick itself marks the window.
 */
const STALE_WINDOW_MS = 500;


type Handler = (session: Session, message: Message) => void;

/** A meshd broker. Create with {@link Broker.start}. */
export class Broker {
  readonly #options: BrokerOptions;
  readonly #keyPair: KeyPair;
  readonly #suite: CryptoSuite;
  readonly #now: () => number;
  readonly #bootId = makeBootId(Date.now(), randomBytes(16));
  readonly #queueLimits: QueueLimits;
  readonly #services = new ServiceTable<PendingRequest>((p) => p.deadline);
  readonly #sessions = new Map<number, Session>();
  readonly #byKey = new Map<string, Set<Session>>();
  readonly #pending = new Map<string, PendingRequest>();
  readonly #pendingByClient = new Map<string, number>();
  readonly #handlers: Partial<Record<MessageTypeName, Handler>>;
  #registry: Registry;
  #watcher: RegistryWatcher | undefined;
  #listener: Listener | undefined;
  #nextId = 1;
  #handshakes = 0;
  #dispatchFlush = false;
  readonly #dispatchTo = new Set<Session>();
  #sweepTimer: NodeJS.Timeout | undefined;
  #sweepAt = Infinity;
  #draining = false;
  #closing: Promise<void> | undefined;
  #peers: PeerMesh | undefined;
  #tick: NodeJS.Timeout | undefined;
  #lastTick = 0;
  #staleUntil = 0;

  private constructor(options: BrokerOptions, keyPair: KeyPair, registry: Registry) {
    this.#options = options;
    this.#keyPair = keyPair;
    this.#registry = registry;
    this.#suite = resolveSuite(options.suite);
    this.#now = options.now ?? (() => performance.now());
    this.#queueLimits = { ...DEFAULT_QUEUE_LIMITS, ...options.queue };
    this.#handlers = {
      REQUEST: (s, m) => this.#onRequest(s, m as RequestMessage),
      READY: (s, m) => m.type === 'READY' && this.#onReady(s, m.service, m.credits),
      CANCEL: (s, m) => m.type === 'CANCEL' && this.#onCancel(s, m.service),
      REPLY: (s, m) => m.type === 'REPLY' && this.#onReply(s, m),
      ERROR: (s, m) => m.type === 'ERROR' && this.#onWorkerError(s, m),
      REFUSED: (s, m) => m.type === 'REFUSED' && this.#onRefused(s, m.id),
    };
  }

  /** Starts a broker: loads key and registry, listens, and resolves when ready. */
  static async start(options: BrokerOptions): Promise<Broker> {
    const seeds = (options.peers ?? []).map((url) => parseBrokerAddress(url));
    const advertisedPort = options.advertise === undefined ? 1 : Number(/:(\d{1,5})$/.exec(options.advertise)?.[1] ?? 0);
    if (options.advertise !== undefined && (!/^(\[[0-9A-Fa-f:.]+\]|[^\s:/@[\]]+):\d{1,5}$/.test(options.advertise) || advertisedPort < 1 || advertisedPort > 65535)) {
      throw new MeshError('MESH_ERR_CONFIG', `advertise address must be HOST:PORT or [IPV6]:PORT, got ${JSON.stringify(options.advertise)}`);
    }
    const keyPair = typeof options.key === 'string' ? await readKeyFile(options.key) : options.key;
    let registry: Registry;
    let watcher: RegistryWatcher | undefined;
    const holder: { broker?: Broker } = {};
    if (typeof options.registry === 'string') {
      watcher = new RegistryWatcher(options.registry, {
        onChange: (next) => holder.broker?.setRegistry(next),
        onError: (error) => options.onEvent?.({ type: 'registry-error', error }),
      });
      registry = await watcher.start();
    } else {
      registry = options.registry;
    }
    const broker = new Broker(options, keyPair, registry);
    holder.broker = broker;
    broker.#watcher = watcher;
    try {
      broker.#listener = await listen({ host: options.host ?? '127.0.0.1', port: options.port ?? 0 }, (socket) => broker.#accept(socket));
    } catch (error) {
      watcher?.close();
      throw error;
    }
    broker.#startMesh(seeds);
    return broker;
  }

  #startMesh(seeds: ReturnType<typeof parseBrokerAddress>[]): void {
    const o = this.#options;
    this.#peers = new PeerMesh({
      keyPair: this.#keyPair,
      suite: this.#suite,
      name: o.name ?? 'broker',
      bootId: this.#bootId,
      addresses: [o.advertise ?? this.#listenAddress()],
      seeds,
      roundMs: o.gossipInterval,
      tombstoneMs: o.tombstone,
      handshakeTimeout: o.handshakeTimeout,
      maxOutboundBytes: o.maxOutboundBytes,
      stallTimeout: o.stallTimeout,
      now: this.#now,
      isBroker: (key) => this.#registry.getByKey(key)?.role === 'broker',
      onLiveChange: (live) => this.#pushBrokers(live),
      onRound: (live) => this.#pushBrokers(live),
      onEvent: (event) => this.#emit(event),
    });
    this.#peers.start();
    this.#lastTick = this.#now();
    this.#tick = setInterval(() => {
      const now = this.#now();
      const silent = now - this.#lastTick;
      this.#lastTick = now;
      if (silent > STALL_MS) this.#openStaleWindow(now, silent);
    }, TICK_MS);
    this.#tick.unref();
  }

  /** Sends the agreed broker list to every node (BROKERS). */
  #pushBrokers(live: readonly BrokerInfo[]): void {
    if (this.#draining) return;
    for (const s of this.#sessions.values()) {
      if (s.entry.role !== 'broker') s.connection.send({ type: 'BROKERS', brokers: live });
    }
  }

  /**
   * Whether input read now may be stale: the event loop was silent over
   * STALL_MS (the process was frozen or starved) just before, so its peers
   * have likely given up on it and resent elsewhere.
   */
  #stalled(): boolean {
    if (this.#tick === undefined) return false;
    const now = this.#now();
    // Read before the overdue tick ran: open the window here.
    if (now - this.#lastTick > STALL_MS && now >= this.#staleUntil) this.#openStaleWindow(now, now - this.#lastTick);
    return now < this.#staleUntil;
  }

  /**
   * After a stall: input is suspect for STALE_WINDOW_MS, and every request
   * still queued is handed back (REFUSED): its client has most likely
   * resent it elsewhere, and a READY read now must not dispatch it.
   */
  #openStaleWindow(now: number, silent: number): void {
    if (now < this.#staleUntil) return;
    this.#staleUntil = now + STALE_WINDOW_MS;
    this.#emit({ type: 'stalled', ms: Math.round(silent) });
    this.#handBackQueued();
  }

  /** Empties every service queue, answering each request's client with REFUSED (not dispatched: resend elsewhere). */
  #handBackQueued(): void {
    for (const service of this.#services.values()) {
      for (const e of service.removeWhere(() => true)) {
        if (!this.#forget(e.item.reqKey)) continue;
        const client = this.#sessions.get(e.item.clientId) ?? this.#anySession(e.item.clientKey);
        client?.connection.send({ type: 'REFUSED', id: e.item.message.id });
      }
      this.#services.prune(service.name);
    }
  }

  /** This broker's address, `mesh://KEY@host:port`. */
  get address(): string {
    const l = this.#listener!;
    return formatBrokerAddress({ publicKey: this.#keyPair.publicKey, host: l.host, port: l.port });
  }

  /** The broker's static public key, base64url. */
  get key(): string {
    return encodeKey(this.#keyPair.publicKey);
  }

  /** The registry in force. */
  get registry(): Registry {
    return this.#registry;
  }

  /** Whether close() has begun. */
  get draining(): boolean {
    return this.#draining;
  }

  /** A snapshot of sessions, services and queues. */
  status(): BrokerSnapshot {
    return {
      address: this.address,
      sessions: this.#sessions.size,
      handshakes: this.#handshakes,
      pending: this.#pending.size,
      services: [...this.#services.values()].map((s) => ({ name: s.name, workers: s.workers.length, credits: s.totalCredits, queued: s.queueLength, queuedBytes: s.queueBytes })),
      brokers: this.#peers?.membership.liveKeys() ?? [],
      peers: this.#peers?.connectedPeers() ?? [],
    };
  }

  /** Re-reads the registry file now (what SIGHUP does). */
  async reloadRegistry(): Promise<void> {
    await this.#watcher?.reload();
  }

  /**
   * Puts a new registry in force: connections of removed keys are closed
   * with MESH_ERR_UNAUTHORIZED, and services a changed key may no longer
   * offer are withdrawn.
   */
  setRegistry(next: Registry): void {
    const previous = this.#registry;
    this.#registry = next;
    const { removed, changed } = previous.diff(next);
    for (const key of removed) {
      for (const s of [...(this.#byKey.get(key) ?? [])]) {
        s.connection.close(new MeshError('MESH_ERR_UNAUTHORIZED', 'key revoked from the registry'), { notify: true });
      }
    }
    for (const key of [...removed, ...changed]) this.#peers?.revoke(key);
    for (const key of changed) {
      const entry = next.getByKey(key);
      for (const s of this.#byKey.get(key) ?? []) {
        if (!entry) continue;
        s.entry = entry;
        for (const service of [...s.services]) {
          if (!next.mayServe(entry, service)) this.#withdraw(s, service);
        }
      }
    }
    this.#emit({ type: 'registry-reloaded', entries: next.size, removed: removed.length });
  }

  /**
   * Drains and closes (idempotent): stops accepting, sends DRAIN to nodes,
   * hands queued requests back as REFUSED, waits (bounded) for replies to
   * requests in flight, then closes every connection.
   */
  close(): Promise<void> {
    this.#closing ??= this.#drainAndClose();
    return this.#closing;
  }

  /** `await using broker = await Broker.start(...)`. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  // ------------------------------------------------------------ accept

  #emit(event: BrokerEvent): void {
    this.#options.onEvent?.(event);
  }

  #accept(socket: AcceptedSocket): void {
    const max = this.#options.maxHandshakes ?? 256;
    const maxConnections = this.#options.maxConnections ?? 10_000;
    if (this.#draining || this.#handshakes >= max || this.#sessions.size >= maxConnections) {
      socket.destroy();
      return;
    }
    this.#handshakes++;
    const remote = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
    let session: Session | undefined;
    const early: Message[] = [];
    Connection.accept(
      socket,
      {
        keyPair: this.#keyPair,
        suite: this.#suite,
        role: 'broker',
        name: this.#options.name ?? 'broker',
        bootId: this.#bootId,
        heartbeat: this.#options.heartbeat,
        maxPayload: this.#options.maxPayload ?? DEFAULT_MAX_PAYLOAD,
        handshakeTimeout: this.#options.handshakeTimeout,
        maxOutboundBytes: this.#options.maxOutboundBytes,
        stallTimeout: this.#options.stallTimeout,
        now: this.#now,
        authorize: (key) => (this.#registry.get(key) ? undefined : new MeshError('MESH_ERR_UNAUTHORIZED', `key ${encodeKey(key)} is not in the registry`)),
      },
      {
        onMessage: (message, connection) => {
          if (session) return this.#onMessage(session, message);
          // Messages that came with handshake message 3, before the session
          // exists (it is set up one microtask later): keep them, bounded.
          if (early.length >= MAX_EARLY_MESSAGES) connection.close(new MeshError('MESH_ERR_LIMIT', 'too many messages before the session was set up'), { notify: true });
          else early.push(message);
        },
        onClose: (error) => session && this.#onClose(session, error),
      },
    ).then(
      (connection) => {
        this.#handshakes--;
        const key = encodeKey(connection.remoteKey);
        const entry = this.#registry.getByKey(key);
        if (!entry || this.#draining) {
          connection.close(new MeshError(entry ? 'MESH_ERR_DRAINING' : 'MESH_ERR_UNAUTHORIZED', entry ? 'broker is draining' : 'key revoked'), { notify: true });
          return;
        }
        session = new Session(this.#nextId++, connection, key, entry);
        this.#sessions.set(session.id, session);
        let set = this.#byKey.get(key);
        if (!set) this.#byKey.set(key, (set = new Set()));
        set.add(session);
        this.#emit({ type: 'connected', key, name: entry.name, role: entry.role, remote });
        // A peer broker gets GOSSIP instead of WELCOME.
        if (entry.role === 'broker') this.#peers!.attachInbound(key, connection);
        else connection.send({ type: 'WELCOME', brokerId: this.#keyPair.publicKey, bootId: this.#bootId, brokers: this.#peers!.live });
        for (const message of early.splice(0)) {
          if (!connection.closed) this.#onMessage(session, message);
        }
      },
      (error: MeshError) => {
        this.#handshakes--;
        this.#emit({ type: 'handshake-failed', remote, error });
      },
    );
  }

  #listenAddress(): string {
    const l = this.#listener!;
    const host = l.host.includes(':') ? `[${l.host}]` : l.host;
    return `${host}:${l.port}`;
  }

  #onMessage(session: Session, message: Message): void {
    const role = session.entry.role;
    if (role === 'broker' || message.type === 'GOSSIP') {
      // Brokers talk to brokers in GOSSIP only (and connection-level ERRORs).
      if (role === 'broker' && message.type === 'GOSSIP') this.#peers?.onGossip(session.key, message);
      else if (!(role === 'broker' && message.type === 'ERROR' && message.id === undefined)) {
        session.connection.close(new MeshError('MESH_ERR_PROTOCOL', `${message.type} may not be sent to a broker by a ${role}`), { notify: true });
      }
      return;
    }
    const handler = this.#handlers[message.type];
    const serves = role === 'worker' || role === 'node';
    if (!handler || (!serves && (WORKER_MESSAGES.has(message.type) || (message.type === 'ERROR' && message.id !== undefined)))) {
      session.connection.close(new MeshError('MESH_ERR_PROTOCOL', `${message.type} may not be sent to a broker by a ${session.entry.role}`), { notify: true });
      return;
    }
    handler(session, message);
  }

  #onClose(session: Session, error: MeshError | undefined): void {
    if (!this.#sessions.delete(session.id)) return;
    session.markClosed();
    const set = this.#byKey.get(session.key);
    set?.delete(session);
    if (set?.size === 0) this.#byKey.delete(session.key);
    // (Whatever its role is now: a registry reload may have changed it.)
    this.#peers?.detachInbound(session.key, session.connection, error);
    for (const name of this.#services.withdrawAll(session.id)) this.#services.prune(name);
    this.#dispatchTo.delete(session);
    // Its requests still queued here are forgotten: the client resends every
    // attempt of a lost link elsewhere (with dup), so a copy dispatched from
    // here later would run again without dup.
    for (const reqKey of session.sent) {
      const p = this.#pending.get(reqKey);
      if (p && p.clientId === session.id && p.workerId === undefined) this.#forget(reqKey);
    }
    session.sent.clear();
    // Requests this worker was running go to another worker, flagged dup,
    // unless this process was frozen: then its clients have resent them.
    const stale = this.#stalled();
    for (const p of session.inflight.values()) {
      p.workerId = undefined;
      p.message = { ...p.message, dup: true, worker: undefined };
      if (stale) this.#forget(p.reqKey);
      else this.#route(p);
    }
    session.inflight.clear();
    this.#emit({ type: 'disconnected', key: session.key, name: session.name, error });
  }

  // ------------------------------------------------------------ requests

  #onRequest(client: Session, m: RequestMessage): void {
    const reply = (code: ConstructorParameters<typeof MeshError>[0], text: string): void => {
      const e = new MeshError(code, text);
      client.connection.send({ type: 'ERROR', id: m.id, code, retryable: e.retryable, text });
    };
    if (!this.#registry.mayCall(client.entry, m.service)) {
      this.#emit({ type: 'forbidden', key: client.key, name: client.name, what: `call ${m.service}` });
      reply('MESH_ERR_FORBIDDEN', `${client.name} may not call ${m.service}`);
      return;
    }
    if (this.#draining || this.#stalled()) {
      // Handed back, never dispatched: the client resends it elsewhere. After
      // a freeze, a request read now may be one the client has long resent.
      client.connection.send({ type: 'REFUSED', id: m.id });
      return;
    }
    if (m.ttl <= 0) {
      reply('MESH_ERR_TIMEOUT', 'request arrived with no time left');
      return;
    }
    const reqKey = `${client.key}:${Buffer.from(m.id).toString('hex')}`;
    const existing = this.#pending.get(reqKey);
    if (existing) {
      // A resend through this broker: answer on the latest path, and let the
      // worker that has it attach (it dedups by sender and id).
      if (existing.clientId !== client.id) {
        this.#sessions.get(existing.clientId)?.sent.delete(reqKey);
        existing.clientId = client.id;
        client.sent.add(reqKey);
      }
      existing.message = { ...existing.message, attempt: Math.max(existing.message.attempt, m.attempt), dup: existing.message.dup || m.dup };
      existing.deadline = Math.max(existing.deadline, this.#now() + m.ttl);
      if (existing.workerId === undefined) this.#armSweep(existing.deadline);
      const worker = existing.workerId === undefined ? undefined : this.#sessions.get(existing.workerId);
      if (worker) {
        // The worker counts a credit for every REQUEST it receives: take one here too.
        this.#services.get(m.service)?.takeCredit(worker.id);
        this.#send(worker, this.#forWorker(existing));
      }
      return;
    }
    const service = this.#services.get(m.service);
    if (!service && !(m.worker && this.#byKey.has(encodeKey(m.worker)))) {
      reply('MESH_ERR_NO_SERVICE', `no worker offers ${m.service} at this broker`);
      return;
    }
    const maxPending = this.#options.maxPendingPerClient ?? 10_000;
    const count = this.#pendingByClient.get(client.key) ?? 0;
    if (count >= maxPending) {
      reply('MESH_ERR_BUSY', `${client.name} has ${count} requests pending at this broker (limit ${maxPending})`);
      return;
    }
    this.#pendingByClient.set(client.key, count + 1);
    const pending: PendingRequest = {
      reqKey,
      message: { ...m, sender: client.publicKey, senderName: client.name },
      clientId: client.id,
      clientKey: client.key,
      deadline: this.#now() + m.ttl,
      workerId: undefined,
      refusals: 0,
    };
    this.#pending.set(reqKey, pending);
    client.sent.add(reqKey);
    this.#route(pending);
  }

  /** Sends a pending request to a worker (hint first, then round-robin), or queues it. */
  #route(p: PendingRequest): void {
    const now = this.#now();
    if (p.deadline <= now) {
      this.#fail(p, 'MESH_ERR_TIMEOUT', 'deadline passed before a worker took the request');
      return;
    }
    const service = this.#services.get(p.message.service);
    const hint = p.message.worker === undefined ? undefined : encodeKey(p.message.worker);
    if (hint !== undefined) {
      for (const s of this.#byKey.get(hint) ?? []) {
        // Even a worker that withdrew the service (draining) still runs what
        // it has: it attaches the resend, or refuses it and we route again.
        if ((service?.credits(s.id) ?? 0) > 0 || s.inflight.size < MAX_HINTED_OVERDRAFT) {
          service?.takeCredit(s.id);
          this.#dispatch(p, s);
          return;
        }
      }
    }
    if (!service) {
      this.#fail(p, 'MESH_ERR_NO_SERVICE', `no worker offers ${p.message.service} at this broker`);
      return;
    }
    const picked = service.pick();
    if (picked) {
      this.#dispatch(p, this.#sessions.get(picked.id)!);
      return;
    }
    if (!service.enqueue({ item: p, bytes: p.message.payload.length }, this.#queueLimits)) {
      this.#fail(p, 'MESH_ERR_BUSY', `queue of ${p.message.service} is full (${service.queueLength} requests, ${service.queueBytes} bytes)`);
      return;
    }
    this.#armSweep(p.deadline);
  }

  #forWorker(p: PendingRequest): RequestMessage {
    return { ...p.message, ttl: Math.max(0, Math.floor(p.deadline - this.#now())) };
  }

  #dispatch(p: PendingRequest, worker: Session): void {
    if (p.message.payload.length > worker.connection.peerMaxPayload) {
      this.#fail(p, 'MESH_ERR_ENVELOPE_TOO_LARGE', `payload of ${p.message.payload.length} bytes is over the worker's limit of ${worker.connection.peerMaxPayload}`);
      return;
    }
    p.workerId = worker.id;
    worker.inflight.set(p.reqKey, p);
    this.#send(worker, this.#forWorker(p));
    worker.connection.setActive(true);
    // Forget it if no reply ever comes (e.g. it was answered through another broker).
    this.#armSweep(p.deadline + PENDING_GRACE);
    const client = this.#sessions.get(p.clientId);
    if (client) {
      client.dispatched.push({ id: p.message.id, worker: worker.publicKey });
      this.#dispatchTo.add(client);
      if (!this.#dispatchFlush) {
        // After the current callback: every dispatch of this batch of input
        // goes into one DISPATCHED, sealed with the rest of this turn's output.
        this.#dispatchFlush = true;
        queueMicrotask(this.#flushDispatched);
      }
    }
  }

  readonly #flushDispatched = (): void => {
    this.#dispatchFlush = false;
    for (const client of this.#dispatchTo) {
      const all = client.dispatched;
      client.dispatched = [];
      for (let i = 0; i < all.length; i += 1024) client.connection.send({ type: 'DISPATCHED', dispatched: all.slice(i, i + 1024) });
    }
    this.#dispatchTo.clear();
  };

  /** Answers the client with an error and forgets the request. */
  #fail(p: PendingRequest, code: ConstructorParameters<typeof MeshError>[0], text: string): void {
    this.#forget(p.reqKey);
    const client = this.#sessions.get(p.clientId) ?? this.#anySession(p.clientKey);
    const e = new MeshError(code, text);
    client?.connection.send({ type: 'ERROR', id: p.message.id, code, retryable: e.retryable, text });
  }

  /**
   * Sends to a session. A message the peer cannot take (a payload over its
   * HELLO limit) is answered, when it concerns a request, with
   * MESH_ERR_ENVELOPE_TOO_LARGE to its sender instead of ever throwing here.
   */
  #send(session: Session, message: Message): boolean {
    try {
      return session.connection.send(message);
    } catch (error) {
      if (!(error instanceof MeshError)) throw error;
      return false;
    }
  }

  /** Forgets a pending request; false when it was not pending. */
  #forget(reqKey: string): boolean {
    const p = this.#pending.get(reqKey);
    if (!p) return false;
    this.#pending.delete(reqKey);
    this.#sessions.get(p.clientId)?.sent.delete(reqKey);
    const n = (this.#pendingByClient.get(p.clientKey) ?? 1) - 1;
    if (n <= 0) this.#pendingByClient.delete(p.clientKey);
    else this.#pendingByClient.set(p.clientKey, n);
    return true;
  }

  /** Any open session of a node with this key (never a peer broker's). */
  #anySession(key: string): Session | undefined {
    for (const s of this.#byKey.get(key) ?? []) {
      if (s.entry.role !== 'broker') return s;
    }
    return undefined;
  }

  // ------------------------------------------------------------ workers

  #onReady(worker: Session, serviceName: string, credits: number): void {
    if (!this.#registry.mayServe(worker.entry, serviceName)) {
      this.#emit({ type: 'forbidden', key: worker.key, name: worker.name, what: `serve ${serviceName}` });
      worker.connection.send({ type: 'ERROR', code: 'MESH_ERR_FORBIDDEN', retryable: false, text: `${worker.name} may not serve ${serviceName}` });
      return;
    }
    const service = this.#services.ensure(serviceName);
    worker.services.add(serviceName);
    service.offer({ id: worker.id, key: worker.key }, credits);
    // Waiting requests first, oldest first.
    while (service.queueLength > 0) {
      const picked = service.pick();
      if (!picked) break;
      const entry = service.dequeue()!;
      const p = entry.item;
      if (!this.#pending.has(p.reqKey)) {
        service.offer({ id: picked.id, key: picked.key }, 1); // give the credit back
        continue;
      }
      if (p.deadline <= this.#now()) {
        service.offer({ id: picked.id, key: picked.key }, 1);
        this.#fail(p, 'MESH_ERR_TIMEOUT', 'deadline passed in the queue');
        continue;
      }
      this.#dispatch(p, this.#sessions.get(picked.id)!);
    }
  }

  #onCancel(worker: Session, serviceName: string): void {
    if (!worker.services.has(serviceName)) return;
    this.#withdraw(worker, serviceName);
  }

  #withdraw(worker: Session, serviceName: string): void {
    worker.services.delete(serviceName);
    this.#services.get(serviceName)?.withdraw(worker.id);
    this.#services.prune(serviceName);
  }

  #takeInflight(worker: Session, id: Uint8Array, to: Uint8Array | undefined): PendingRequest | undefined {
    const idHex = Buffer.from(id).toString('hex');
    if (to) {
      const reqKey = `${encodeKey(to)}:${idHex}`;
      const p = this.#pending.get(reqKey);
      if (p) {
        worker.inflight.delete(reqKey);
        if (p.workerId !== undefined && p.workerId !== worker.id) this.#sessions.get(p.workerId)?.inflight.delete(reqKey);
        this.#forget(reqKey);
      }
      return p;
    }
    for (const [reqKey, p] of worker.inflight) {
      if (reqKey.endsWith(idHex)) {
        worker.inflight.delete(reqKey);
        this.#forget(reqKey);
        return p;
      }
    }
    return undefined;
  }

  #idle(worker: Session): void {
    if (worker.inflight.size === 0) worker.connection.setActive(false);
  }

  #onReply(worker: Session, m: Extract<Message, { type: 'REPLY' }>): void {
    const p = this.#takeInflight(worker, m.id, m.to);
    this.#idle(worker);
    // The request came through this broker, or the worker's broker for it is
    // gone and the reply is addressed (`to`) to a client connected here
    // (docs/protocol.md#6-messages, REPLY).
    const client = p ? (this.#sessions.get(p.clientId) ?? this.#anySession(p.clientKey)) : m.to ? this.#anySession(encodeKey(m.to)) : undefined;
    if (!client) return;
    if (m.payload.length > client.connection.peerMaxPayload) {
      const text = `reply of ${m.payload.length} bytes is over the client's limit of ${client.connection.peerMaxPayload}`;
      client.connection.send({ type: 'ERROR', id: m.id, code: 'MESH_ERR_ENVELOPE_TOO_LARGE', retryable: false, text });
      return;
    }
    client.connection.send({ type: 'REPLY', id: m.id, worker: worker.publicKey, payload: m.payload });
  }

  #onWorkerError(worker: Session, m: Extract<Message, { type: 'ERROR' }>): void {
    if (m.id === undefined) return; // a worker's connection-level notice; fatal ones close inside Connection
    const p = this.#takeInflight(worker, m.id, m.to);
    this.#idle(worker);
    const client = p ? (this.#sessions.get(p.clientId) ?? this.#anySession(p.clientKey)) : m.to ? this.#anySession(encodeKey(m.to)) : undefined;
    client?.connection.send({ type: 'ERROR', id: m.id, code: m.code, retryable: m.retryable, text: m.text });
  }

  #onRefused(worker: Session, id: Uint8Array): void {
    const idHex = Buffer.from(id).toString('hex');
    for (const [reqKey, p] of worker.inflight) {
      if (!reqKey.endsWith(idHex)) continue;
      worker.inflight.delete(reqKey);
      this.#idle(worker);
      p.workerId = undefined;
      p.message = { ...p.message, worker: undefined };
      if (++p.refusals > MAX_REFUSALS) {
        this.#fail(p, 'MESH_ERR_BUSY', `refused by ${MAX_REFUSALS} workers`);
        return;
      }
      this.#route(p);
      return;
    }
  }

  // ------------------------------------------------------------ deadlines

  #armSweep(deadline: number): void {
    if (deadline >= this.#sweepAt) return;
    if (this.#sweepTimer) clearTimeout(this.#sweepTimer);
    this.#sweepAt = deadline;
    this.#sweepTimer = setTimeout(this.#sweep, Math.max(1, deadline - this.#now()));
    this.#sweepTimer.unref();
  }

  readonly #sweep = (): void => {
    this.#sweepTimer = undefined;
    this.#sweepAt = Infinity;
    const now = this.#now();
    let next = Infinity;
    for (const service of this.#services.values()) {
      for (const e of service.removeWhere((x) => x.item.deadline <= now || !this.#pending.has(x.item.reqKey))) {
        if (this.#pending.has(e.item.reqKey)) this.#fail(e.item, 'MESH_ERR_TIMEOUT', 'deadline passed in the queue');
      }
      next = Math.min(next, service.earliestDeadline());
      this.#services.prune(service.name);
    }
    // Forget dispatched requests long past their deadline (the client gave up).
    for (const p of this.#pending.values()) {
      if (p.workerId !== undefined && p.deadline + PENDING_GRACE <= now) {
        this.#forget(p.reqKey);
        const w = this.#sessions.get(p.workerId);
        w?.inflight.delete(p.reqKey);
        if (w) this.#idle(w);
      } else if (p.workerId !== undefined) {
        next = Math.min(next, p.deadline + PENDING_GRACE);
      }
    }
    if (next < Infinity) this.#armSweep(next);
  };

  // ------------------------------------------------------------ drain

  async #drainAndClose(): Promise<void> {
    this.#draining = true;
    this.#emit({ type: 'draining' });
    this.#peers?.leave();
    // Stop accepting now; the server's close completes once every connection is gone.
    const listenerClosed = this.#listener?.close();
    this.#watcher?.close();
    for (const s of this.#sessions.values()) {
      if (s.entry.role !== 'broker') s.connection.send({ type: 'DRAIN' });
    }
    // Queued requests go back to their clients: not dispatched, resend elsewhere.
    this.#handBackQueued();
    const deadline = this.#now() + (this.#options.drainTimeout ?? DEFAULT_DRAIN_TIMEOUT);
    while (this.#pending.size > 0 && this.#now() < deadline && this.#sessions.size > 0) {
      await new Promise((r) => setTimeout(r, 10));
    }
    if (this.#sweepTimer) clearTimeout(this.#sweepTimer);
    if (this.#tick) clearInterval(this.#tick);
    this.#tick = undefined;
    this.#peers?.close();
    const closed = [...this.#sessions.values()].map((s) => {
      s.connection.close();
      return s.closed;
    });
    await Promise.race([Promise.all(closed), new Promise((r) => setTimeout(r, 2000).unref())]);
    await Promise.race([listenerClosed, new Promise((r) => setTimeout(r, 1000).unref())]);
    this.#emit({ type: 'closed' });
  }
}
