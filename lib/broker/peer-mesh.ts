/**
 * PeerMesh: a broker's connections to the other brokers
 * (docs/architecture.md#the-broker-mesh). It
 * dials every broker it knows of (its --peer seeds, then every broker in its
 * view), keeps one connection per pair (the one dialled by the smaller key
 * wins), runs a quorum round every `roundMs` (GOSSIP to every peer), and
 * tells the broker when the agreed list of live brokers changes.
 *
 * The decisions are Membership's (pure); this file is the I/O around it.
 */
import { MeshError } from '../errors.ts';
import type { CryptoSuite, KeyPair } from '../crypto/crypto-suite.ts';
import type { BrokerAddress } from '../protocol/broker-address.ts';
import { parseHostPort } from '../protocol/host-port.ts';
import { encodeKey } from '../crypto/keys.ts';
import { Connection } from '../protocol/connection.ts';
import type { HeartbeatSettings } from '../protocol/hello.ts';
import type { BrokerInfo, BrokerStatusName, GossipMessage, Message } from '../protocol/messages.ts';
import { backoffDelay } from '../protocol/backoff.ts';
import { Membership } from './membership.ts';

/** Heartbeat a broker proposes to its peers: ping every 500 ms, dead after 3 missed (docs/protocol.md#7-heartbeats). */
export const PEER_HEARTBEAT: HeartbeatSettings = { idleMs: 500, activeMs: 200, deadMs: 600 };

/** Something about the peer mesh worth logging. */
export type PeerEvent =
  | { type: 'peer-up'; key: string; name: string; direction: 'in' | 'out' }
  | { type: 'peer-down'; key: string; name: string; direction: 'in' | 'out'; error?: MeshError | undefined }
  | { type: 'peer-dial-failed'; key: string; address: string; error: MeshError }
  | { type: 'peer-not-registered'; key: string }
  | { type: 'brokers'; live: string[] };

/** Another broker as this broker's view holds it, for status reports. */
export interface PeerStatus {
  readonly key: string;
  /** Its status in the view: `alive`, `suspect`, `leaving` or `dead`. */
  readonly status: BrokerStatusName;
  /** The `host:port` addresses it announced. */
  readonly addresses: readonly string[];
  /** Whether this broker has a connection to it now. */
  readonly connected: boolean;
}

/** Settings of a {@link PeerMesh}. */
export interface PeerMeshOptions {
  readonly keyPair: KeyPair;
  readonly suite: CryptoSuite;
  readonly name: string;
  readonly bootId: Uint8Array;
  /** `host:port` addresses this broker announces. */
  readonly addresses: readonly string[];
  /** Brokers from configuration (--peer): dialled at their configured address, never forgotten. */
  readonly seeds: readonly BrokerAddress[];
  readonly roundMs?: number | undefined;
  readonly tombstoneMs?: number | undefined;
  readonly handshakeTimeout?: number | undefined;
  readonly maxOutboundBytes?: number | undefined;
  readonly stallTimeout?: number | undefined;
  readonly now: () => number;
  readonly random?: (() => number) | undefined;
  /** Whether the registry lists this key with role broker. */
  isBroker(key: string): boolean;
  /** The registry name of this key (for events). */
  nameOf(key: string): string;
  /** The agreed live list changed. */
  onLiveChange(live: readonly BrokerInfo[]): void;
  /** A round ended (the broker pushes BROKERS to its nodes). */
  onRound(live: readonly BrokerInfo[]): void;
  onEvent(event: PeerEvent): void;
}

interface Peer {
  readonly key: string;
  seed: BrokerAddress | undefined;
  outbound: Connection | undefined;
  inbound: Connection | undefined;
  dialing: boolean;
  failures: number;
  retryAt: number;
  retryTimer: NodeJS.Timeout | undefined;
  warned: boolean;
  /** Whether peer-up was reported and peer-down not yet: one event per fact, whichever connections come and go. */
  reportedUp: boolean;
}

/** A broker's side of the broker mesh. */
export class PeerMesh {
  readonly membership: Membership;
  readonly #options: PeerMeshOptions;
  readonly #selfKey: string;
  readonly #peers = new Map<string, Peer>();
  readonly #random: () => number;
  readonly #roundMs: number;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;
  #leaving = false;

  constructor(options: PeerMeshOptions) {
    this.#options = options;
    this.#selfKey = encodeKey(options.keyPair.publicKey);
    this.#random = options.random ?? Math.random;
    this.#roundMs = options.roundMs ?? 1000;
    const now = options.now();
    this.membership = new Membership({
      self: { id: options.keyPair.publicKey, addresses: options.addresses, bootId: options.bootId },
      roundMs: this.#roundMs,
      tombstoneMs: options.tombstoneMs,
      admit: (key) => options.isBroker(key),
    });
    for (const seed of options.seeds) {
      if (seed.key === this.#selfKey) continue;
      this.membership.addSeed({ id: seed.publicKey, addresses: [`${seed.host.includes(':') ? `[${seed.host}]` : seed.host}:${seed.port}`] }, now);
      this.#peer(seed.key).seed = seed;
    }
  }

  /** The agreed live brokers, self first. */
  get live(): readonly BrokerInfo[] {
    return this.membership.live;
  }

  /** Starts dialling and the rounds. */
  start(): void {
    this.#dialAll();
    this.#armRound();
  }

  /** Peers with a connection up now. */
  connectedPeers(): string[] {
    return [...this.#peers.values()].filter((p) => this.#connectionOf(p) !== undefined).map((p) => p.key);
  }

  /** Every other broker in the view, sorted by key, with its status and whether it is connected now. */
  viewStatus(): PeerStatus[] {
    const connected = new Set(this.connectedPeers());
    return [...this.membership.view]
      .filter(([key]) => key !== this.#selfKey)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([key, e]) => ({ key, status: e.status, addresses: [...e.addresses], connected: connected.has(key) }));
  }

  /** An accepted connection from a registered broker. */
  attachInbound(key: string, connection: Connection): void {
    if (this.#closed) {
      connection.close();
      return;
    }
    const p = this.#peer(key);
    if (key > this.#selfKey && p.outbound && !p.outbound.closed) {
      // Ours, dialled by the smaller key, is the one both sides keep.
      connection.close();
      return;
    }
    const old = p.inbound;
    p.inbound = connection;
    if (old && old !== connection) old.close();
    if (key < this.#selfKey && p.outbound) {
      const out = p.outbound;
      p.outbound = undefined;
      out.close();
    }
    this.#up(p, 'in');
    this.#sendGossip(connection);
  }

  /** An accepted broker connection closed. */
  detachInbound(key: string, connection: Connection, error: MeshError | undefined): void {
    const p = this.#peers.get(key);
    if (!p || p.inbound !== connection) return;
    p.inbound = undefined;
    this.#lost(p, 'in', error);
  }

  /** A GOSSIP from a peer (either direction). */
  onGossip(key: string, gossip: GossipMessage): void {
    if (this.#closed) return;
    const changed = this.membership.onGossip(key, gossip, this.#options.now());
    if (changed) this.#liveChanged();
    this.#dialAll();
  }

  /** Announces that this broker is leaving (drain) and stops dialling. */
  leave(): void {
    if (this.#leaving) return;
    this.#leaving = true;
    this.membership.leave();
    for (const p of this.#peers.values()) {
      const c = this.#connectionOf(p);
      if (c) this.#sendGossip(c);
    }
  }

  /** The registry no longer lists this key as a broker: drop our connection to it. */
  revoke(key: string): void {
    const p = this.#peers.get(key);
    if (!p || this.#options.isBroker(key)) return;
    const out = p.outbound;
    p.outbound = undefined;
    const error = new MeshError('MESH_ERR_UNAUTHORIZED', 'peer broker removed from the registry');
    out?.close(error, { notify: true });
    this.#lost(p, 'out', error);
  }

  /** Closes every peer connection and stops the rounds (idempotent). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
    for (const p of this.#peers.values()) {
      if (p.retryTimer) clearTimeout(p.retryTimer);
      p.outbound?.close();
      p.outbound = undefined;
    }
  }

  // ------------------------------------------------------------ internals

  #peer(key: string): Peer {
    let p = this.#peers.get(key);
    if (!p) this.#peers.set(key, (p = { key, seed: undefined, outbound: undefined, inbound: undefined, dialing: false, failures: 0, retryAt: 0, retryTimer: undefined, warned: false, reportedUp: false }));
    return p;
  }

  #connectionOf(p: Peer): Connection | undefined {
    const out = p.outbound && !p.outbound.closed ? p.outbound : undefined;
    const inb = p.inbound && !p.inbound.closed ? p.inbound : undefined;
    return p.key > this.#selfKey ? (out ?? inb) : (inb ?? out);
  }

  #sendGossip(connection: Connection, gossip: GossipMessage = this.membership.gossip(this.#options.now())): void {
    try {
      connection.send(gossip);
    } catch {
      // Over the peer's limits (cannot happen for GOSSIP of ≤ 256 entries): skip this round.
    }
  }

  /** A connection to the peer is up: reported once, unless one was up already (both sides dialled at once). */
  #up(p: Peer, direction: 'in' | 'out'): void {
    this.membership.setConnected(p.key, true, this.#options.now());
    if (p.reportedUp) return;
    p.reportedUp = true;
    this.#options.onEvent({ type: 'peer-up', key: p.key, name: this.#options.nameOf(p.key), direction });
  }

  /** A connection to the peer went: peer-down once none is left. */
  #lost(p: Peer, direction: 'in' | 'out', error: MeshError | undefined): void {
    if (this.#connectionOf(p) === undefined) {
      this.membership.setConnected(p.key, false, this.#options.now());
      if (p.reportedUp) {
        p.reportedUp = false;
        this.#options.onEvent({ type: 'peer-down', key: p.key, name: this.#options.nameOf(p.key), direction, error });
      }
    }
    if (!this.#closed && !this.#leaving) this.#dial(p);
  }

  #liveChanged(): void {
    const live = this.membership.live;
    this.#options.onEvent({ type: 'brokers', live: this.membership.liveKeys() });
    this.#options.onLiveChange(live);
  }

  #armRound(): void {
    if (this.#closed) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      if (this.#closed) return;
      const { gossip, changed } = this.membership.round(this.#options.now());
      for (const p of this.#peers.values()) {
        const c = this.#connectionOf(p);
        if (c) this.#sendGossip(c, gossip);
      }
      if (changed) this.#options.onEvent({ type: 'brokers', live: this.membership.liveKeys() });
      // Every round: the broker pushes the list to its nodes (changed or not).
      this.#options.onRound(this.membership.live);
      this.#forgetGone();
      this.#dialAll();
      this.#armRound();
    }, this.#roundMs);
    this.#timer.unref();
  }

  /** Peers that left the view (tombstone expired) and are not seeds: close and forget. */
  #forgetGone(): void {
    const known = new Set(this.membership.peers().map((e) => encodeKey(e.id)));
    for (const p of [...this.#peers.values()]) {
      if (p.seed || known.has(p.key) || p.inbound) continue;
      if (p.retryTimer) clearTimeout(p.retryTimer);
      const out = p.outbound;
      p.outbound = undefined;
      this.#peers.delete(p.key);
      out?.close();
    }
  }

  #dialAll(): void {
    if (this.#closed || this.#leaving) return;
    for (const e of this.membership.peers()) {
      const key = encodeKey(e.id);
      const p = this.#peer(key);
      this.#dial(p);
    }
  }

  #dial(p: Peer): void {
    if (this.#closed || this.#leaving || p.dialing || (p.outbound && !p.outbound.closed) || this.#peers.get(p.key) !== p) return;
    // The larger key waits to be dialled once a connection exists.
    if (p.key < this.#selfKey && p.inbound && !p.inbound.closed) return;
    if (!this.#options.isBroker(p.key)) {
      if (!p.warned) this.#options.onEvent({ type: 'peer-not-registered', key: p.key });
      p.warned = true;
      return;
    }
    const now = this.#options.now();
    if (now < p.retryAt) {
      // Try again once the backoff is over (one timer per peer).
      p.retryTimer ??= setTimeout(() => {
        p.retryTimer = undefined;
        this.#dial(p);
      }, Math.max(1, p.retryAt - now));
      p.retryTimer.unref();
      return;
    }
    // A seed is dialled at its configured address even when the view has
    // forgotten it (tombstone expired): a restarted seed must be found again.
    const entry = this.membership.view.get(p.key);
    const target = p.seed ?? (entry ? parseHostPort(entry.addresses[0] ?? '') : undefined);
    const remoteKey = p.seed?.publicKey ?? entry?.id;
    if (!target || !remoteKey) return;
    p.dialing = true;
    const address = `${target.host}:${target.port}`;
    const o = this.#options;
    Connection.connect(
      {
        host: target.host,
        port: target.port,
        remoteKey,
        keyPair: o.keyPair,
        suite: o.suite,
        role: 'broker',
        name: o.name,
        bootId: o.bootId,
        heartbeat: PEER_HEARTBEAT,
        handshakeTimeout: o.handshakeTimeout,
        maxOutboundBytes: o.maxOutboundBytes,
        stallTimeout: o.stallTimeout,
        now: o.now,
      },
      {
        onMessage: (message, connection) => this.#onOutboundMessage(p, message, connection),
        onClose: (error, connection) => {
          if (p.outbound !== connection) return;
          p.outbound = undefined;
          this.#backoff(p);
          this.#lost(p, 'out', error);
        },
      },
    ).then(
      (connection) => {
        p.dialing = false;
        if (this.#closed || this.#leaving || (p.key < this.#selfKey && p.inbound && !p.inbound.closed)) {
          connection.close();
          return;
        }
        p.outbound = connection;
        if (p.key > this.#selfKey && p.inbound) {
          const inb = p.inbound;
          p.inbound = undefined;
          inb.close();
        }
        this.#up(p, 'out');
        this.#sendGossip(connection);
      },
      (error: MeshError) => {
        p.dialing = false;
        // Logged on the first failure of a run, then every 30th.
        if (p.failures % 30 === 0) this.#options.onEvent({ type: 'peer-dial-failed', key: p.key, address, error });
        this.#backoff(p);
        this.#dial(p);
      },
    );
  }

  #backoff(p: Peer): void {
    p.retryAt = this.#options.now() + backoffDelay(p.failures++, this.#random, 100, this.#roundMs * 2);
  }

  #onOutboundMessage(p: Peer, message: Message, connection: Connection): void {
    switch (message.type) {
      case 'GOSSIP':
        // The peer accepted us (a handshake alone is not enough: its registry
        // may still refuse this key): the backoff starts over.
        p.failures = 0;
        this.onGossip(p.key, message);
        return;
      case 'WELCOME':
        return;
      case 'ERROR':
        // A connection-level ERROR (closing ones are acted on below this layer); none is about a request.
        if (message.id === undefined) return;
        connection.close(new MeshError('MESH_ERR_PROTOCOL', 'an ERROR about a request may not be sent by a broker to a broker'), { notify: true });
        return;
      default:
        connection.close(new MeshError('MESH_ERR_PROTOCOL', `${message.type} may not be sent by a broker to a broker`), { notify: true });
    }
  }
}
