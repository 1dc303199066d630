/**
 * SessionAcceptor: how a broker admits a TCP connection. It bounds the
 * handshakes in progress and the open connections, runs the responder's
 * handshake with the registry check after message 3, keeps (bounded) the
 * messages that arrived together with message 3, and opens the session in
 * the SessionDirectory once the connection is established
 * (docs/registry.md#checks-at-the-broker, docs/limits.md).
 *
 * What a session then does is the broker's business: `onSession` greets it
 * (WELCOME, or the peer mesh for a broker), `onMessage` routes each message
 * and `onClose` cleans up.
 */
import { MeshError } from '../errors.ts';
import type { ErrorCode } from '../errors.ts';
import type { AcceptedSocket } from '../framing/listener.ts';
import { encodeKey } from '../crypto/keys.ts';
import { Connection } from '../protocol/connection.ts';
import type { ConnectionOptions } from '../protocol/connection.ts';
import type { Message } from '../protocol/messages.ts';
import type { Registry } from './registry.ts';
import type { Session } from './session.ts';
import type { SessionDirectory } from './session-directory.ts';

/** Default bound on handshakes in progress. */
export const DEFAULT_MAX_HANDSHAKES = 256;
/** Default bound on open connections (sessions). */
export const DEFAULT_MAX_CONNECTIONS = 10_000;
/** Most messages kept from a connection before its session is set up. */
const MAX_EARLY_MESSAGES = 1024;

/** What a SessionAcceptor needs from its broker. */
export interface SessionAcceptorOptions {
  /** The responder's connection settings (key pair, suite, HELLO fields, limits). */
  readonly connection: Omit<ConnectionOptions, 'signal' | 'ephemeral'>;
  /** Bound on handshakes in progress; a connection beyond it is closed at once. */
  readonly maxHandshakes?: number | undefined;
  /** Bound on open sessions; a connection beyond it is closed at once. */
  readonly maxConnections?: number | undefined;
  readonly sessions: SessionDirectory;
  /** The registry in force (read at each check: it can be reloaded). */
  readonly registry: () => Registry;
  /** True once the broker drains: new connections are closed. */
  readonly draining: () => boolean;
  /** A session is open: greet it. Messages that came early are handled right after. */
  readonly onSession: (session: Session, remote: string) => void;
  readonly onMessage: (session: Session, message: Message) => void;
  readonly onClose: (session: Session, error: MeshError | undefined) => void;
  readonly onHandshakeFailed: (remote: string, error: MeshError) => void;
  /**
   * A connection was turned away without a handshake failure of its own
   * (no event is emitted for these): closed at accept while draining
   * (MESH_ERR_DRAINING) or over a bound (MESH_ERR_LIMIT), or refused after
   * its handshake because its key was revoked meanwhile
   * (MESH_ERR_UNAUTHORIZED) or the broker began draining (MESH_ERR_DRAINING).
   */
  readonly onRefused?: ((code: ErrorCode) => void) | undefined;
}

/** Admits connections to one broker. */
export class SessionAcceptor {
  readonly #o: SessionAcceptorOptions;
  #handshakes = 0;

  constructor(options: SessionAcceptorOptions) {
    this.#o = options;
  }

  /** Handshakes in progress. */
  get handshakes(): number {
    return this.#handshakes;
  }

  /** Takes a freshly accepted socket: handshake, check, session. */
  accept(socket: AcceptedSocket): void {
    const o = this.#o;
    const max = o.maxHandshakes ?? DEFAULT_MAX_HANDSHAKES;
    const maxConnections = o.maxConnections ?? DEFAULT_MAX_CONNECTIONS;
    if (o.draining() || this.#handshakes >= max || o.sessions.size >= maxConnections) {
      socket.destroy();
      o.onRefused?.(o.draining() ? 'MESH_ERR_DRAINING' : 'MESH_ERR_LIMIT');
      return;
    }
    this.#handshakes++;
    const remote = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
    let session: Session | undefined;
    const early: Message[] = [];
    const authorize = (key: Uint8Array): MeshError | undefined =>
      o.registry().get(key) ? undefined : new MeshError('MESH_ERR_UNAUTHORIZED', `key ${encodeKey(key)} is not in the registry`);
    Connection.accept(
      socket,
      { ...o.connection, authorize },
      {
        onMessage: (message, connection) => {
          if (session) return o.onMessage(session, message);
          // Messages that came with handshake message 3, before the session
          // exists (it is set up one microtask later): keep them, bounded.
          if (early.length >= MAX_EARLY_MESSAGES) connection.close(new MeshError('MESH_ERR_LIMIT', 'too many messages before the session was set up'), { notify: true });
          else early.push(message);
        },
        onClose: (error) => session && o.onClose(session, error),
      },
    ).then(
      (connection) => {
        this.#handshakes--;
        const key = encodeKey(connection.remoteKey);
        const entry = o.registry().getByKey(key);
        if (!entry || o.draining()) {
          const code = entry ? 'MESH_ERR_DRAINING' : 'MESH_ERR_UNAUTHORIZED';
          connection.close(new MeshError(code, entry ? 'broker is draining' : 'key revoked'), { notify: true });
          o.onRefused?.(code);
          return;
        }
        const opened = (session = o.sessions.open(connection, key, entry));
        o.onSession(opened, remote);
        for (const message of early.splice(0)) {
          if (!connection.closed) o.onMessage(opened, message);
        }
      },
      (error: MeshError) => {
        this.#handshakes--;
        o.onHandshakeFailed(remote, error);
      },
    );
  }
}
