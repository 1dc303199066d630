/**
 * One authenticated connection at a broker: who it is (key, registry entry),
 * what it offers, and the requests in flight on it as a worker.
 */
import type { Connection } from '../protocol/connection.ts';
import type { Dispatch, RequestMessage } from '../protocol/messages.ts';
import type { RegistryEntry } from './registry.ts';

/** A request the broker has accepted and not yet answered. */
export interface PendingRequest {
  /** `clientKey:idHex`: unique per client and request id. */
  readonly reqKey: string;
  /** The stamped request as it goes to workers (attempt and dup updated on resends). */
  message: RequestMessage;
  /** The client session to answer (the latest one the request arrived on). */
  clientId: number;
  /** The client's static key (base64url), to find it again after a reconnect. */
  readonly clientKey: string;
  /** Absolute deadline on the broker's clock (a resend may extend it). */
  deadline: number;
  /** The worker session it went to, when dispatched. */
  workerId: number | undefined;
  /** Refusals so far (bounded, so a request cannot bounce forever). */
  refusals: number;
}

/** Per-connection state. */
export class Session {
  readonly id: number;
  readonly connection: Connection;
  /** Static key, base64url. */
  readonly key: string;
  /** Static key bytes. */
  readonly publicKey: Uint8Array;
  /** The registry entry in force (replaced on reload). */
  entry: RegistryEntry;
  /** Services this session offers as a worker. */
  readonly services = new Set<string>();
  /** Requests dispatched to this session as a worker, by reqKey. */
  readonly inflight = new Map<string, PendingRequest>();
  /** Pending requests this session sent as a client (reqKeys; a resend through another session moves them there). */
  readonly sent = new Set<string>();
  /** DISPATCHED entries waiting for the end of the turn (as a client). */
  dispatched: Dispatch[] = [];
  /** Resolves when the connection has closed. */
  readonly closed: Promise<void>;
  /** Called by the broker when the connection closes. */
  readonly markClosed: () => void;

  constructor(id: number, connection: Connection, key: string, entry: RegistryEntry) {
    this.id = id;
    this.connection = connection;
    this.key = key;
    this.publicKey = connection.remoteKey;
    this.entry = entry;
    let resolve!: () => void;
    this.closed = new Promise<void>((r) => (resolve = r));
    this.markClosed = resolve;
  }

  /** Name used in stamps and logs: the registry's. */
  get name(): string {
    return this.entry.name;
  }
}
