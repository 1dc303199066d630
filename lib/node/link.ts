/**
 * What the requester and the service runner use of a node's links to brokers,
 * and of the set of links: narrow interfaces that `BrokerLink` and `MeshNode`
 * implement, so that each half of a node depends on what it uses and is
 * tested against plain objects (spec/node/).
 */
import type { Message } from '../protocol/messages.ts';

/** A link to one broker, as both halves of a node use it. */
export interface Link {
  /** The broker's public key, base64url. */
  readonly key: string;
  /** Largest payload the broker accepts (from its HELLO); 0 when not connected. */
  readonly peerMaxPayload: number;
  /** Sends a message if the link is up; false otherwise (nothing was sent). */
  send(message: Message): boolean;
  /** Counts work in flight on this link (fast heartbeats while any). */
  retain(): void;
  /** Ends one unit of work in flight. */
  release(): void;
}

/** A link as the requester (the client half) uses it. */
export interface ClientLink extends Link {
  /** Up, welcomed and not draining: may take new requests. */
  readonly healthy: boolean;
  /**
   * More bytes wait to be written than the node lets pile up: new requests
   * wait in the node until the link drains (the node then calls the
   * requester's `onWritable`).
   */
  readonly congested: boolean;
}

/** A link as the service runner (the worker half) uses it. */
export interface WorkerLink extends Link {
  /** Up (possibly draining): may still carry replies. */
  readonly up: boolean;
}

/** The links a requester can use. */
export interface ClientPool {
  /** Healthy links, in a stable order. */
  healthy(): ClientLink[];
  /** A link by broker key or mesh:// URL, if known. */
  find(broker: string): ClientLink | undefined;
  /** Calls back once when some link becomes healthy (or never); returns a function that cancels the wait. */
  whenHealthy(callback: () => void): () => void;
}

/** The links a service runner can use. */
export interface WorkerPool {
  /** Links that are up (possibly draining): can carry replies. */
  up(): WorkerLink[];
  /** Links that take new work (healthy): credits go there. */
  healthy(): WorkerLink[];
}
