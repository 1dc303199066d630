/**
 * Broker: accepts authenticated connections, keeps a session per connection,
 * and routes REQUEST → worker → REPLY
 * (docs/architecture.md#how-a-broker-routes-a-request,
 * docs/registry.md#checks-at-the-broker). This file is the orchestrator: it
 * starts the listener and the peer mesh, opens and closes sessions, applies
 * registry changes, and drains. Each message goes to its handler
 * (handlers/handle-message.ts); the pending requests are kept in a
 * PendingTable, moved by the Router, and the StallWatchdog says when input
 * may be stale.
 */
import { randomBytes } from 'node:crypto';
import { MeshError } from '../errors.ts';
import { listen } from '../framing/listener.ts';
import type { Listener } from '../framing/listener.ts';
import type { CryptoSuite, KeyPair } from '../crypto/crypto-suite.ts';
import { resolveSuite } from '../crypto/suites.ts';
import { encodeKey, readKeyFile } from '../crypto/keys.ts';
import { formatBrokerAddress, parseBrokerAddress } from '../protocol/broker-address.ts';
import { checkHostPort, formatHostPort } from '../protocol/host-port.ts';
import { EventSource } from '../protocol/event-hub.ts';
import type { BrokerInfo } from '../protocol/messages.ts';
import { DEFAULT_MAX_PAYLOAD } from '../protocol/envelope-codec.ts';
import type { BrokerEvent } from './broker-event.ts';
import type { BrokerOptions } from './broker-options.ts';
import { BrokerCounters, assembleStats } from './broker-stats.ts';
import type { BrokerSnapshot, BrokerStats } from './broker-stats.ts';
import { nodeTimers } from './broker-timers.ts';
import { handleMessage } from './handlers/handle-message.ts';
import type { HandlerContext } from './handlers/handler-context.ts';
import { makeBootId } from './membership.ts';
import { PendingTable } from './pending-table.ts';
import type { PendingRequest } from './pending-table.ts';
import { PeerMesh } from './peer-mesh.ts';
import type { Registry } from './registry.ts';
import { RegistryWatcher } from './registry-file.ts';
import { Router } from './router.ts';
import { DEFAULT_QUEUE_LIMITS, ServiceTable } from './service-table.ts';
import type { QueueLimits } from './service-table.ts';
import type { Session } from './session.ts';
import { SessionAcceptor } from './session-acceptor.ts';
import { FloodLog } from './flood-log.ts';
import type { FloodKind } from './flood-log.ts';
import { SessionDirectory } from './session-directory.ts';
import { StallWatchdog } from './stall-watchdog.ts';

export type { BrokerEvent, BrokerEventType } from './broker-event.ts';
export { BROKER_EVENT_TYPES } from './broker-event.ts';
export type { BrokerOptions } from './broker-options.ts';
export type { BrokerServiceStats, BrokerSnapshot, BrokerStats, LatencyHistogram, RequestOutcome } from './broker-stats.ts';

/** Default longest wait for in-flight replies when draining, ms. */
export const DEFAULT_DRAIN_TIMEOUT = 5000;

/**
 * Rounds between two pushes of an unchanged broker list to the nodes (a
 * changed list goes out at once). Every round would cost 1,000 idle nodes a
 * sealed message and a write each, every second, for nothing new.
 */
const BROKERS_REFRESH_ROUNDS = 30;

/** A meshd broker. Create with {@link Broker.start}. */
export class Broker extends EventSource<BrokerEvent> {
  readonly #options: BrokerOptions;
  readonly #keyPair: KeyPair;
  readonly #suite: CryptoSuite;
  readonly #now: () => number;
  readonly #bootId = makeBootId(Date.now(), randomBytes(16));
  readonly #services = new ServiceTable<PendingRequest>((p) => p.deadline);
  readonly #sessions = new SessionDirectory();
  readonly #pending: PendingTable;
  readonly #router: Router;
  readonly #watchdog: StallWatchdog;
  readonly #context: HandlerContext;
  readonly #stats: BrokerCounters;
  #registry: Registry;
  #watcher: RegistryWatcher | undefined;
  #listener: Listener | undefined;
  #draining = false;
  /** Rounds since the broker list was last pushed to the nodes. */
  #roundsSincePush = 0;
  #closing: Promise<void> | undefined;
  #peers: PeerMesh | undefined;
  readonly #acceptor: SessionAcceptor;
  readonly #floodLog = new FloodLog();
  #floodTimer: NodeJS.Timeout | undefined;

  private constructor(options: BrokerOptions, keyPair: KeyPair, registry: Registry) {
    super();
    this.#options = options;
    // What happens during start() reaches listeners attached right after it resolves.
    this.holdEvents();
    this.#keyPair = keyPair;
    this.#registry = registry;
    this.#suite = resolveSuite(options.suite);
    const now = (this.#now = options.now ?? (() => performance.now()));
    const timers = nodeTimers(now);
    const queueLimits: QueueLimits = { ...DEFAULT_QUEUE_LIMITS, ...options.queue };
    const stats = (this.#stats = new BrokerCounters({ now }));
    this.#pending = new PendingTable({
      now,
      timers,
      services: this.#services,
      maxPerClient: options.maxPendingPerClient,
      onExpired: (p) => this.#router.sendError(p, 'MESH_ERR_TIMEOUT', 'deadline passed in the queue'),
      onAbandoned: (p, workerId) => {
        stats.ended(p.message.service, 'timed-out');
        const worker = this.#sessions.get(workerId);
        if (worker) this.#router.idle(worker);
      },
    });
    this.#router = new Router({ sessions: this.#sessions, services: this.#services, pending: this.#pending, queueLimits, now, stats, mayServe: (session, service) => this.#registry.mayServe(session.entry, service) });
    this.#watchdog = new StallWatchdog({
      now,
      timers,
      onStall: (ms) => {
        // Every request still queued goes back (REFUSED): its client has most
        // likely resent it elsewhere, and a READY read now must not dispatch it.
        this.emit({ type: 'stalled', ms });
        this.#router.handBackQueued();
      },
    });
    const registryInForce = (): Registry => this.#registry;
    const draining = (): boolean => this.#draining;
    this.#context = {
      get registry() {
        return registryInForce();
      },
      get draining() {
        return draining();
      },
      services: this.#services,
      pending: this.#pending,
      sessions: this.#sessions,
      router: this.#router,
      now,
      stats,
      stalled: () => this.#watchdog.stalled(),
      emit: (event) => this.emit(event),
      gossip: (from, message) => this.#peers?.onGossip(from.key, message),
    };
    this.#acceptor = new SessionAcceptor({
      connection: {
        keyPair,
        suite: this.#suite,
        role: 'broker',
        name: options.name ?? 'broker',
        bootId: this.#bootId,
        heartbeat: options.heartbeat,
        maxPayload: options.maxPayload ?? DEFAULT_MAX_PAYLOAD,
        handshakeTimeout: options.handshakeTimeout,
        maxOutboundBytes: options.maxOutboundBytes,
        stallTimeout: options.stallTimeout,
        now,
      },
      maxHandshakes: options.maxHandshakes,
      maxHandshakesPerSource: options.maxHandshakesPerSource,
      firstMessageTimeout: options.firstMessageTimeout,
      maxConnections: options.maxConnections,
      sessions: this.#sessions,
      registry: registryInForce,
      draining,
      onSession: (session, remote) => this.#greet(session, remote),
      onMessage: (session, message) => handleMessage(this.#context, session, message),
      onClose: (session, error) => this.#onClose(session, error),
      onHandshakeFailed: (remote, error) => {
        stats.handshakeFailed(error.code);
        if (this.#noteFlood('failed', remote, error.code)) this.emit({ type: 'handshake-failed', remote, error });
      },
      onRefused: (code, remote) => {
        stats.handshakeFailed(code);
        if (code === 'MESH_ERR_LIMIT') this.#noteFlood('refused', remote, code);
      },
      onEvicted: (remote) => {
        stats.handshakeEvicted();
        this.#noteFlood('evicted', remote, 'MESH_ERR_LIMIT');
      },
    });
  }

  /**
   * Starts a broker: loads key and registry, listens, and resolves when
   * ready. Events from the start (the first `brokers`, a peer not in the
   * registry) are delivered to listeners attached as soon as it resolves.
   * Rejects with MESH_ERR_ABORTED on `options.signal`, closing what it opened.
   */
  static async start(options: BrokerOptions): Promise<Broker> {
    const signal = options.signal;
    const checkAborted = (): void => {
      if (signal?.aborted) throw new MeshError('MESH_ERR_ABORTED', 'broker start aborted', { cause: signal.reason });
    };
    checkAborted();
    const seeds = (options.peers ?? []).map((url) => parseBrokerAddress(url));
    const advertised = options.advertise === undefined ? undefined : checkHostPort(options.advertise);
    if (typeof advertised === 'string') {
      throw new MeshError('MESH_ERR_CONFIG', `advertise address ${JSON.stringify(options.advertise)}: ${advertised}; expected HOST:PORT or [IPV6]:PORT`);
    }
    const keyPair = typeof options.key === 'string' ? await readKeyFile(options.key) : options.key;
    let registry: Registry;
    let watcher: RegistryWatcher | undefined;
    const holder: { broker?: Broker } = {};
    if (typeof options.registry === 'string') {
      watcher = new RegistryWatcher(options.registry, {
        onChange: (next) => holder.broker?.setRegistry(next),
        onError: (error) => {
          const broker = holder.broker;
          if (broker) broker.emit({ type: 'registry-error', error });
        },
      });
      registry = await watcher.start();
    } else {
      registry = options.registry;
    }
    const broker = new Broker(options, keyPair, registry);
    holder.broker = broker;
    broker.#watcher = watcher;
    try {
      checkAborted();
      broker.#listener = await listen({ host: options.host ?? '127.0.0.1', port: options.port ?? 0 }, (socket) => broker.#acceptor.accept(socket));
      checkAborted();
    } catch (error) {
      watcher?.close();
      const listener = broker.#listener;
      await listener?.close();
      throw error;
    }
    broker.#startMesh(seeds);
    broker.releaseEvents();
    return broker;
  }

  #startMesh(seeds: ReturnType<typeof parseBrokerAddress>[]): void {
    const o = this.#options;
    this.#peers = new PeerMesh({
      keyPair: this.#keyPair,
      suite: this.#suite,
      name: o.name ?? 'broker',
      bootId: this.#bootId,
      addresses: [o.advertise ?? formatHostPort(this.#listener!.host, this.#listener!.port)],
      seeds,
      roundMs: o.gossipInterval,
      tombstoneMs: o.tombstone,
      handshakeTimeout: o.handshakeTimeout,
      maxOutboundBytes: o.maxOutboundBytes,
      stallTimeout: o.stallTimeout,
      now: this.#now,
      isBroker: (key) => this.#registry.getByKey(key)?.role === 'broker',
      nameOf: (key) => this.#registry.getByKey(key)?.name ?? '?',
      onLiveChange: (live) => this.#pushBrokers(live),
      onRound: (live) => {
        this.#stats.round();
        if (++this.#roundsSincePush >= BROKERS_REFRESH_ROUNDS) this.#pushBrokers(live);
      },
      onEvent: (event) => this.emit(event),
    });
    this.#peers.start();
    this.#watchdog.start();
  }

  /** Sends the agreed broker list to every node (BROKERS). */
  #pushBrokers(live: readonly BrokerInfo[]): void {
    this.#roundsSincePush = 0;
    if (this.#draining) return;
    for (const s of this.#sessions.values()) {
      if (s.entry.role !== 'broker') s.connection.send({ type: 'BROKERS', brokers: live });
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

  /** The broker's name (in its HELLO and logs; default "broker"). */
  get name(): string {
    return this.#options.name ?? 'broker';
  }

  /** The name of the crypto suite in use: `node` or `noble` (the default resolved). */
  get suite(): CryptoSuite['name'] {
    return this.#suite.name;
  }

  /** The registry in force. */
  get registry(): Registry {
    return this.#registry;
  }

  /** Whether close() has begun. */
  get draining(): boolean {
    return this.#draining;
  }

  /** A snapshot of sessions, pending requests, services and queues, and the broker mesh. */
  status(): BrokerSnapshot {
    return {
      address: this.address,
      sessions: this.#sessions.size,
      handshakes: this.#acceptor.handshakes,
      pending: this.#pending.size,
      services: [...this.#services.values()].map((s) => ({ name: s.name, workers: s.workers.length, credits: s.totalCredits, queued: s.queueLength, queuedBytes: s.queueBytes })),
      brokers: this.#peers?.membership.liveKeys() ?? [],
      peers: this.#peers?.connectedPeers() ?? [],
      view: this.#peers?.viewStatus() ?? [],
    };
  }

  /**
   * The broker's counters since it started (requests by service and
   * outcome, latency, re-dispatches, failed handshakes, rounds) with its
   * gauges now (connections by role, queues, in flight, live brokers): a new
   * snapshot each call (docs/api.md#counters-brokerstats).
   */
  stats(): BrokerStats {
    return assembleStats(this.#stats.snapshot(), {
      sessions: this.#sessions.values(),
      services: this.#services.values(),
      pending: this.#pending.values(),
      pendingCount: this.#pending.size,
      handshakes: this.#acceptor.handshakes,
      brokers: this.#peers?.membership.live.length ?? 1,
    });
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
      for (const s of [...this.#sessions.withKey(key)]) {
        s.connection.close(new MeshError('MESH_ERR_UNAUTHORIZED', 'key revoked from the registry'), { notify: true });
      }
    }
    for (const key of [...removed, ...changed]) this.#peers?.revoke(key);
    for (const key of changed) {
      const entry = next.getByKey(key);
      for (const s of [...this.#sessions.withKey(key)]) {
        if (!entry) continue;
        if (s.entry.role === 'broker' && entry.role !== 'broker') {
          // A peer that is no longer a broker: closed as a revoked key would be.
          s.connection.close(new MeshError('MESH_ERR_UNAUTHORIZED', 'key no longer has role broker in the registry'), { notify: true });
          continue;
        }
        s.entry = entry;
        for (const service of [...s.services]) {
          if (!next.mayServe(entry, service)) this.#router.withdraw(s, service);
        }
      }
    }
    this.emit({ type: 'registry-reloaded', entries: next.size, removed: removed.length });
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

  // ------------------------------------------------------------ sessions

  /** A session is open: a node gets WELCOME, a peer broker GOSSIP. */
  #greet(session: Session, remote: string): void {
    const { key, entry, connection } = session;
    // A peer broker's connections are reported by the peer mesh (peer-up, peer-down): one event per fact.
    if (entry.role !== 'broker') this.emit({ type: 'connected', key, name: entry.name, role: entry.role, remote });
    if (entry.role === 'broker') this.#peers!.attachInbound(key, connection);
    else connection.send({ type: 'WELCOME', brokerId: this.#keyPair.publicKey, bootId: this.#bootId, brokers: this.#peers!.live });
  }

  #onClose(session: Session, error: MeshError | undefined): void {
    if (!this.#sessions.remove(session)) return;
    session.markClosed();
    // (Whatever its role is now: a registry reload may have changed it.)
    this.#peers?.detachInbound(session.key, session.connection, error);
    this.#router.dropSession(session);
    // Requests this worker was running go to another worker, flagged dup,
    // unless this process was frozen: then its clients have resent them.
    this.#router.rerouteInflight(session, this.#watchdog.stalled());
    if (session.entry.role !== 'broker') this.emit({ type: 'disconnected', key: session.key, name: session.name, error });
  }

  /**
   * Counts an unwanted connection for the flood summary; true when a
   * failure is to be logged on its own (the first per source and code in
   * a window, a few in all).
   */
  #noteFlood(kind: FloodKind, remote: string, code: string): boolean {
    const report = this.#floodLog.note(kind, sourceOf(remote), code, this.#now());
    const due = this.#floodLog.due;
    if (this.#floodTimer === undefined && due !== undefined) {
      this.#floodTimer = setTimeout(() => {
        this.#floodTimer = undefined;
        const summary = this.#floodLog.flush();
        if (summary) this.emit({ type: 'handshake-flood', ...summary });
      }, Math.max(1, due - this.#now()));
      this.#floodTimer.unref();
    }
    return report;
  }

  // ------------------------------------------------------------ drain

  async #drainAndClose(): Promise<void> {
    this.#draining = true;
    this.emit({ type: 'draining' });
    this.#peers?.leave();
    // Stop accepting now; the server's close completes once every connection is gone.
    const listenerClosed = this.#listener?.close();
    this.#acceptor.close();
    this.#watcher?.close();
    for (const s of this.#sessions.values()) {
      if (s.entry.role !== 'broker') s.connection.send({ type: 'DRAIN' });
    }
    // Queued requests go back to their clients: not dispatched, resend elsewhere.
    this.#router.handBackQueued();
    const deadline = this.#now() + (this.#options.drainTimeout ?? DEFAULT_DRAIN_TIMEOUT);
    while (this.#pending.size > 0 && this.#now() < deadline && this.#sessions.size > 0) {
      await new Promise((r) => setTimeout(r, 10));
    }
    this.#pending.stop();
    this.#watchdog.stop();
    this.#peers?.close();
    const closed = [...this.#sessions.values()].map((s) => {
      s.connection.close();
      return s.closed;
    });
    await Promise.race([Promise.all(closed), new Promise((r) => setTimeout(r, 2000).unref())]);
    await Promise.race([listenerClosed, new Promise((r) => setTimeout(r, 1000).unref())]);
    clearTimeout(this.#floodTimer);
    const summary = this.#floodLog.flush();
    if (summary) this.emit({ type: 'handshake-flood', ...summary });
    this.emit({ type: 'closed' });
  }
}

/** The address part of `host:port` (IPv6 hosts keep their colons). */
function sourceOf(remote: string): string {
  const i = remote.lastIndexOf(':');
  return i < 0 ? remote : remote.slice(0, i);
}
