/**
 * One node's link to one broker: connects, waits for WELCOME, reconnects with
 * jittered exponential backoff (100 ms doubling to 500 ms, full jitter) for as
 * long as it is open, and reports up/down and messages through callbacks
 * (docs/architecture.md#how-nodes-learn-and-forget-brokers).
 *
 * A link that is not closed keeps the process alive, whether it is connected
 * (its socket) or waiting to redial (its timer): a worker whose only broker
 * is gone keeps running until the broker is back, as a connected one would.
 */
import { ErrorCodes, MeshError } from '../errors.ts';
import type { CryptoSuite, KeyPair } from '../crypto/crypto-suite.ts';
import type { BrokerAddress } from '../protocol/broker-address.ts';
import { encodeKey } from '../crypto/keys.ts';
import { Connection } from '../protocol/connection.ts';
import type { HeartbeatSettings, RoleName } from '../protocol/hello.ts';
import type { Message, MessageTypeName } from '../protocol/messages.ts';
import { backoffDelay, REFUSED_RECONNECT_MAX_MS } from '../protocol/backoff.ts';
import type { ClientLink, WorkerLink } from './link.ts';

/** What a broker may send a node after WELCOME (PING and PONG are answered below this layer). */
const FROM_BROKER: ReadonlySet<MessageTypeName> = new Set<MessageTypeName>(['REQUEST', 'DISPATCHED', 'REPLY', 'ERROR', 'REFUSED', 'BROKERS', 'DRAIN']);

/**
 * Outbound backlog over which a link is congested, bytes: new requests wait
 * in the node (in order) until the socket drains, far below the connection's
 * outbound cap (8 MiB), which would close it.
 */
export const CONGESTED_BYTES = 1024 * 1024;

/** Settings shared by every link of a node. */
export interface LinkSettings {
  readonly keyPair: KeyPair;
  readonly suite: CryptoSuite;
  readonly role: RoleName;
  readonly name?: string | undefined;
  readonly heartbeat?: HeartbeatSettings | undefined;
  readonly maxPayload?: number | undefined;
  readonly handshakeTimeout?: number | undefined;
  readonly random: () => number;
}

/** What a link reports to its node. */
interface LinkEvents {
  onUp(link: BrokerLink): void;
  onDown(link: BrokerLink, error: MeshError | undefined): void;
  onMessage(link: BrokerLink, message: Message): void;
  /** The connection's outbound backlog drained after a write reported backpressure. */
  onDrain(link: BrokerLink): void;
  /** A connection attempt failed, or was refused after the handshake (e.g. MESH_ERR_UNAUTHORIZED). */
  onAttemptFailed(link: BrokerLink, error: MeshError | undefined): void;
}

/** State of a link. */
type LinkState = 'connecting' | 'up' | 'backoff' | 'closed';

/** A link to one broker: what the requester and the service runner use of it is in link.ts. */
export class BrokerLink implements ClientLink, WorkerLink {
  /** Every address given for this broker (seeds may name one broker at several), the current one first tried. */
  readonly #addresses: BrokerAddress[];
  #current = 0;
  /** The broker's key, base64url. */
  readonly key: string;
  /** Configured by the user (never dropped). */
  readonly seed: boolean;
  #state: LinkState = 'connecting';
  #connection: Connection | undefined;
  #draining = false;
  #failures = 0;
  #timer: NodeJS.Timeout | undefined;
  /** Aborts the connection attempt in progress when the link closes. */
  #attempt: AbortController | undefined;
  #active = 0;
  #lastError: MeshError | undefined;
  readonly #settings: LinkSettings;
  readonly #events: LinkEvents;

  constructor(address: BrokerAddress, seed: boolean, settings: LinkSettings, events: LinkEvents) {
    this.#addresses = [address];
    this.key = encodeKey(address.publicKey);
    this.seed = seed;
    this.#settings = settings;
    this.#events = events;
    this.#connect();
  }

  /** The address in use (or tried next). */
  get address(): BrokerAddress {
    return this.#addresses[this.#current]!;
  }

  /**
   * Another address of the same broker (same key): a failed attempt moves
   * on to the next address, in the order given.
   */
  addAddress(address: BrokerAddress): void {
    if (encodeKey(address.publicKey) !== this.key || this.#addresses.some((a) => a.url === address.url)) return;
    this.#addresses.push(address);
  }

  /** Current state. */
  get state(): LinkState {
    return this.#state;
  }

  /** Up, welcomed and not draining: may take new requests. */
  get healthy(): boolean {
    return this.up && !this.#draining;
  }

  /** Up (possibly draining): may still carry replies. False as soon as the connection starts closing. */
  get up(): boolean {
    return this.#state === 'up' && this.#connection !== undefined && !this.#connection.closed;
  }

  /** More than CONGESTED_BYTES wait to be written (queued this turn or in the socket's buffer). */
  get congested(): boolean {
    return (this.#connection?.backlog ?? 0) > CONGESTED_BYTES;
  }

  /** Largest payload the broker accepts (from its HELLO); 0 when not connected. */
  get peerMaxPayload(): number {
    return this.#connection?.peerMaxPayload ?? 0;
  }

  /** The last connection error. */
  get lastError(): MeshError | undefined {
    return this.#lastError;
  }

  /** Marks the broker as leaving (DRAIN received). */
  setDraining(): void {
    this.#draining = true;
  }

  /** Sends a message if the link is up; false otherwise. */
  send(message: Message): boolean {
    if (this.#state !== 'up' || !this.#connection) return false;
    try {
      return this.#connection.send(message);
    } catch {
      // A payload over the broker's limit: callers check peerMaxPayload first.
      return false;
    }
  }

  /** Counts work in flight on this link (fast heartbeats while > 0). */
  retain(): void {
    if (++this.#active === 1) this.#connection?.setActive(true);
  }

  /** Ends one unit of work in flight. */
  release(): void {
    if (this.#active > 0 && --this.#active === 0) this.#connection?.setActive(false);
  }

  /** Closes the link for good (idempotent). */
  close(): void {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    if (this.#timer) clearTimeout(this.#timer);
    // An attempt in progress (TCP connect, handshake) holds a socket: end it now, not at its timeout.
    this.#attempt?.abort();
    this.#connection?.close();
  }

  #connect(): void {
    this.#state = 'connecting';
    const s = this.#settings;
    let welcomed = false;
    const attempt = new AbortController();
    this.#attempt = attempt;
    Connection.connect(
      {
        host: this.address.host,
        port: this.address.port,
        remoteKey: this.address.publicKey,
        keyPair: s.keyPair,
        suite: s.suite,
        role: s.role,
        name: s.name,
        heartbeat: s.heartbeat,
        maxPayload: s.maxPayload,
        handshakeTimeout: s.handshakeTimeout,
        signal: attempt.signal,
      },
      {
        onMessage: (message, connection) => {
          if (this.#state === 'closed' || connection !== this.#connection) return;
          if (!welcomed) {
            if (message.type !== 'WELCOME') {
              connection.close(new MeshError('MESH_ERR_PROTOCOL', `expected WELCOME, got ${message.type}`), { notify: true });
              return;
            }
            welcomed = true;
            this.#failures = 0;
            this.#state = 'up';
            this.#draining = false;
            if (this.#active > 0) connection.setActive(true);
            this.#events.onUp(this);
          } else if (!FROM_BROKER.has(message.type)) {
            // One rule for every party (docs/protocol.md#who-may-send-what): a message its sender may not send closes the connection.
            connection.close(new MeshError('MESH_ERR_PROTOCOL', `${message.type} may not be sent to a node by a broker`), { notify: true });
            return;
          }
          if (message.type === 'DRAIN') this.#draining = true;
          this.#events.onMessage(this, message);
        },
        onDrain: (connection) => {
          if (connection === this.#connection && this.#state === 'up') this.#events.onDrain(this);
        },
        onClose: (error, connection) => {
          if (connection !== this.#connection) return;
          this.#connection = undefined;
          this.#lastError = error;
          const wasUp = this.#state === 'up';
          if (this.#state !== 'closed') this.#scheduleReconnect();
          if (wasUp) this.#events.onDown(this, error);
          else this.#events.onAttemptFailed(this, error);
        },
      },
    ).then(
      (connection) => {
        if (this.#attempt === attempt) this.#attempt = undefined;
        if (this.#state === 'closed') {
          connection.close();
          return;
        }
        this.#connection = connection;
      },
      (error: MeshError) => {
        if (this.#attempt === attempt) this.#attempt = undefined;
        if (this.#state === 'closed') return; // closed by us: nothing to report
        this.#lastError = error;
        this.#current = (this.#current + 1) % this.#addresses.length;
        this.#scheduleReconnect();
        this.#events.onAttemptFailed(this, error);
      },
    );
  }

  #scheduleReconnect(): void {
    this.#state = 'backoff';
    // A broker that refused this node (unknown key, other protocol version,
    // not the key in the address) is asked again slowly: its registry or the
    // address may be fixed, but twice a second would be a handshake and a log line each time.
    const refused = refusedOutright(this.#lastError);
    const delay = backoffDelay(this.#failures++, this.#settings.random, undefined, refused ? REFUSED_RECONNECT_MAX_MS : undefined);
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      if (this.#state === 'backoff') this.#connect();
    }, delay);
  }
}

/**
 * True when a failed connection attempt is a verdict that trying again soon
 * will not change: a refusal (an unknown key, another protocol version) or
 * an error that is not retryable, such as a broker that did not accept the
 * handshake because the key in its address is not its own.
 */
export function refusedOutright(error: MeshError | undefined): boolean {
  return error !== undefined && (ErrorCodes[error.code].refusal || !error.retryable);
}
