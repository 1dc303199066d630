/**
 * SessionAcceptor: how a broker admits a TCP connection. It bounds the
 * handshakes in progress (in all and per source address, making room by
 * evicting the connection with the least progress: Admission) and the open
 * connections, closes a connection that sends no handshake message 1 in
 * time, runs the responder's handshake with the registry check after
 * message 3, keeps (bounded) the messages that arrived together with
 * message 3, and opens the session in the SessionDirectory once the
 * connection is established (docs/registry.md#checks-at-the-broker,
 * docs/limits.md#admission).
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
import { Admission } from './admission.ts';
import type { Candidate } from './admission.ts';
import type { Registry } from './registry.ts';
import type { Session } from './session.ts';
import type { SessionDirectory } from './session-directory.ts';

/** Default bound on handshakes in progress. */
export const DEFAULT_MAX_HANDSHAKES = 256;
/** Default bound on handshakes in progress from one source address. */
export const DEFAULT_MAX_HANDSHAKES_PER_SOURCE = 64;
/** Default time for a new connection to deliver its preamble and handshake message 1, ms. */
export const DEFAULT_FIRST_MESSAGE_TIMEOUT = 500;
/** Default bound on open connections (sessions). */
export const DEFAULT_MAX_CONNECTIONS = 10_000;
/** Most messages kept from a connection before its session is set up. */
const MAX_EARLY_MESSAGES = 1024;

/** What a SessionAcceptor needs from its broker. */
export interface SessionAcceptorOptions {
  /** The responder's connection settings (key pair, suite, HELLO fields, limits). */
  readonly connection: Omit<ConnectionOptions, 'signal' | 'ephemeral'>;
  /**
   * Bound on handshakes in progress. At the bound a newcomer evicts the
   * connection with the least progress (the oldest that has sent nothing
   * first), or is closed at once when every one has made progress or is
   * new in this turn of the event loop.
   */
  readonly maxHandshakes?: number | undefined;
  /** Bound on handshakes in progress from one source address; at it, that source's own least-progress connection makes room. */
  readonly maxHandshakesPerSource?: number | undefined;
  /** Time for a new connection to deliver its preamble and handshake message 1, ms; a silent one is closed (MESH_ERR_HANDSHAKE_TIMEOUT). */
  readonly firstMessageTimeout?: number | undefined;
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
  readonly onRefused?: ((code: ErrorCode, remote: string) => void) | undefined;
  /** A connection in its handshake was closed to make room for a newcomer (no event of its own). */
  readonly onEvicted?: ((remote: string) => void) | undefined;
}

/** One connection in its handshake, as the acceptor closes it. */
interface InProgress {
  readonly remote: string;
  readonly abort: AbortController;
  /** Why the acceptor closed it, when it did. */
  closedWith: MeshError | undefined;
}

/** Admits connections to one broker. */
export class SessionAcceptor {
  readonly #o: SessionAcceptorOptions;
  readonly #admission: Admission<InProgress>;
  readonly #firstMessageTimeout: number;
  readonly #now: () => number;
  #turning = false;
  #silenceTimer: NodeJS.Timeout | undefined;
  #silenceDue = Infinity;
  #closed = false;

  constructor(options: SessionAcceptorOptions) {
    this.#o = options;
    this.#admission = new Admission({
      maxHandshakes: options.maxHandshakes ?? DEFAULT_MAX_HANDSHAKES,
      maxPerSource: options.maxHandshakesPerSource ?? DEFAULT_MAX_HANDSHAKES_PER_SOURCE,
    });
    this.#firstMessageTimeout = options.firstMessageTimeout ?? DEFAULT_FIRST_MESSAGE_TIMEOUT;
    this.#now = options.connection.now ?? (() => performance.now());
  }

  /** Handshakes in progress. */
  get handshakes(): number {
    return this.#admission.size;
  }

  /** Takes a freshly accepted socket: admission, handshake, check, session. */
  accept(socket: AcceptedSocket): void {
    const o = this.#o;
    const maxConnections = o.maxConnections ?? DEFAULT_MAX_CONNECTIONS;
    const remote = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
    if (this.#closed || o.draining() || o.sessions.size >= maxConnections) {
      socket.destroy();
      o.onRefused?.(this.#closed || o.draining() ? 'MESH_ERR_DRAINING' : 'MESH_ERR_LIMIT', remote);
      return;
    }
    const me: InProgress = { remote, abort: new AbortController(), closedWith: undefined };
    const admitted = this.#admission.admit(me, socket.remoteAddress ?? '?', this.#now());
    if (!admitted.admitted) {
      socket.destroy();
      o.onRefused?.('MESH_ERR_LIMIT', remote);
      return;
    }
    const candidate = admitted.admitted;
    if (admitted.evict) this.#closeInProgress(admitted.evict, new MeshError('MESH_ERR_LIMIT', 'evicted: handshake slots are full and this connection had made the least progress'));
    this.#turn();
    this.#armSilenceTimer();

    let session: Session | undefined;
    const early: Message[] = [];
    const authorize = (key: Uint8Array): MeshError | undefined =>
      o.registry().get(key) ? undefined : new MeshError('MESH_ERR_UNAUTHORIZED', `key ${encodeKey(key)} is not in the registry`);
    const onMessage1 = (): void => {
      this.#admission.progressed(candidate, this.#now());
      this.#turn();
    };
    Connection.accept(
      socket,
      { ...o.connection, authorize, onMessage1, signal: me.abort.signal },
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
        this.#admission.release(candidate);
        const key = encodeKey(connection.remoteKey);
        const entry = o.registry().getByKey(key);
        if (!entry || o.draining()) {
          const code = entry ? 'MESH_ERR_DRAINING' : 'MESH_ERR_UNAUTHORIZED';
          connection.close(new MeshError(code, entry ? 'broker is draining' : 'key revoked'), { notify: true });
          o.onRefused?.(code, remote);
          return;
        }
        const opened = (session = o.sessions.open(connection, key, entry));
        o.onSession(opened, remote);
        for (const message of early.splice(0)) {
          if (!connection.closed) o.onMessage(opened, message);
        }
      },
      (error: MeshError) => {
        this.#admission.release(candidate);
        if (me.closedWith?.code === 'MESH_ERR_LIMIT') o.onEvicted?.(remote);
        else o.onHandshakeFailed(remote, me.closedWith ?? error);
      },
    );
  }

  /** Stops admitting: closes every connection still in its handshake and stops the timers (idempotent). */
  close(): void {
    this.#closed = true;
    clearTimeout(this.#silenceTimer);
    this.#silenceTimer = undefined;
    for (const c of this.#admission.all()) this.#closeInProgress(c, new MeshError('MESH_ERR_DRAINING', 'broker is closing'));
  }

  #closeInProgress(c: Candidate<InProgress>, error: MeshError): void {
    this.#admission.release(c);
    c.value.closedWith = error;
    c.value.abort.abort(error);
  }

  /** Keeps counting event-loop turns while a candidate is too new to be evicted. */
  #turn(): void {
    if (this.#turning) return;
    this.#turning = true;
    const tick = (): void => {
      this.#admission.nextTurn();
      if (this.#admission.hasFresh && !this.#closed) setImmediate(tick);
      else this.#turning = false;
    };
    setImmediate(tick);
  }

  /** Arms the timer that closes connections silent past firstMessageTimeout. */
  #armSilenceTimer(): void {
    const oldest = this.#admission.oldestSilent;
    if (oldest === undefined || this.#closed) return;
    const due = oldest + this.#firstMessageTimeout;
    if (this.#silenceTimer !== undefined && this.#silenceDue <= due) return;
    clearTimeout(this.#silenceTimer);
    this.#silenceDue = due;
    this.#silenceTimer = setTimeout(
      () => {
        this.#silenceTimer = undefined;
        this.#silenceDue = Infinity;
        // Let the poll phase read what has arrived meanwhile (after a stall
        // of this process, the first bytes may be waiting): decide after it.
        setImmediate(() => {
          if (this.#closed) return;
          const error = new MeshError('MESH_ERR_HANDSHAKE_TIMEOUT', `sent no handshake message 1 within ${this.#firstMessageTimeout} ms`);
          for (const c of this.#admission.silentSince(this.#now() - this.#firstMessageTimeout)) this.#closeInProgress(c, error);
          this.#armSilenceTimer();
        });
      },
      Math.max(10, due - this.#now()),
    );
    this.#silenceTimer.unref();
  }
}
