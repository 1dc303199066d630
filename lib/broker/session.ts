/**
 * One authenticated connection at a broker: who it is (key, registry entry),
 * what it offers as a worker, and the DISPATCHED entries waiting for the end
 * of the turn as a client. The requests it sent or runs are tracked by the
 * PendingTable, by session id.
 */
import { ErrorCodes } from '../errors.ts';
import type { ErrorCode } from '../errors.ts';
import type { Connection } from '../protocol/connection.ts';
import { MAX_ERROR_TEXT, truncateUtf8 } from '../protocol/messages.ts';
import type { Dispatch } from '../protocol/messages.ts';
import type { RegistryEntry } from './registry.ts';

/** Per-connection state. */
export class Session {
  /** Unique per connection, never reused by this broker. */
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

  /** Sends an ERROR with `code` (retryable as ErrorCodes says), about request `id` when given. */
  sendError(code: ErrorCode, text: string, id?: Uint8Array): void {
    this.connection.send({ type: 'ERROR', id, code, retryable: ErrorCodes[code].retryable, text: truncateUtf8(text, MAX_ERROR_TEXT) });
  }
}
