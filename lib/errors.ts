/**
 * The one error type of meshd. Every failure that reaches a caller, a log or
 * the wire carries a stable `MESH_ERR_*` code; `docs/errors.md` lists them all
 * and a test keeps that page, this file and docs/protocol.md in step.
 *
 * This module is the leaf of the layer order: it imports nothing.
 */

/** Description of one error code: whether a retry may succeed, and what it means. */
export interface ErrorCodeInfo {
  /** True when the same request may succeed if sent again (possibly via another broker). */
  readonly retryable: boolean;
  /** True when the code may travel in an ERROR message on the wire. */
  readonly wire: boolean;
  /** True when an ERROR with this code and no request id ends the connection (the sender closes it after sending). */
  readonly closesLink: boolean;
  /**
   * True when the code is a peer's verdict on this party (an unknown key, a
   * protocol version it does not speak): reconnecting at once cannot
   * succeed until the configuration changes, so nodes redial slowly and
   * connect() gives up when every broker says so.
   */
  readonly refusal: boolean;
  /** One line for docs and logs. */
  readonly summary: string;
}

/** Every error code meshd can produce, with its retry semantics. */
export const ErrorCodes = {
  MESH_ERR_PROTOCOL: { retryable: false, wire: true, closesLink: true, refusal: false, summary: 'The peer broke the wire protocol: malformed segment, envelope, header or message, or an unknown message type. The connection is closed.' },
  MESH_ERR_VERSION: { retryable: false, wire: false, closesLink: false, refusal: true, summary: 'The peer speaks another major version of the wire protocol (the message names both versions).' },
  MESH_ERR_HANDSHAKE: { retryable: false, wire: false, closesLink: false, refusal: false, summary: 'The Noise handshake failed: wrong responder key, a tampered, truncated or replayed handshake message, or a malformed HELLO.' },
  MESH_ERR_HANDSHAKE_TIMEOUT: { retryable: true, wire: false, closesLink: false, refusal: false, summary: 'The handshake did not complete within its deadline (default 5 s).' },
  MESH_ERR_DECRYPT: { retryable: false, wire: false, closesLink: false, refusal: false, summary: 'A transport frame failed authentication (tampered or corrupted). The connection is closed at once.' },
  MESH_ERR_FRAME_TOO_LARGE: { retryable: false, wire: false, closesLink: true, refusal: false, summary: 'A frame length is over the negotiated maximum. The connection is closed as soon as the length is read.' },
  MESH_ERR_ENVELOPE_TOO_LARGE: { retryable: false, wire: true, closesLink: true, refusal: false, summary: 'An envelope (or its reassembly across segments) is over the maximum envelope size.' },
  MESH_ERR_BAD_KEY: { retryable: false, wire: false, closesLink: false, refusal: true, summary: 'A public or private key is malformed, all-zero or of low order (the Diffie-Hellman result would be all zeros).' },
  MESH_ERR_KEY_FILE: { retryable: false, wire: false, closesLink: false, refusal: false, summary: 'A key file cannot be read or written, is malformed, or has a group or other permission bit set.' },
  MESH_ERR_BAD_ADDRESS: { retryable: false, wire: false, closesLink: false, refusal: false, summary: 'A broker address is not a valid mesh://KEY@HOST:PORT URL.' },
  MESH_ERR_CRYPTO: { retryable: false, wire: false, closesLink: false, refusal: false, summary: 'A cryptographic primitive failed or is unavailable (for example a nonce counter reached its limit, or the runtime lacks an algorithm).' },
  MESH_ERR_CONNECTION: { retryable: true, wire: false, closesLink: false, refusal: false, summary: 'The connection failed or was lost (refused, reset, closed by the peer).' },
  MESH_ERR_HEARTBEAT: { retryable: true, wire: false, closesLink: false, refusal: false, summary: 'The peer stayed silent past the heartbeat deadline and is considered dead.' },
  MESH_ERR_BACKPRESSURE: { retryable: true, wire: true, closesLink: true, refusal: false, summary: 'The peer did not read fast enough: its outbound buffer passed the cap or stalled, so the connection was closed.' },
  MESH_ERR_TIMEOUT: { retryable: true, wire: true, closesLink: false, refusal: false, summary: 'The operation did not complete before its deadline.' },
  MESH_ERR_ABORTED: { retryable: false, wire: false, closesLink: false, refusal: false, summary: 'The caller aborted the operation through its AbortSignal.' },
  MESH_ERR_CLOSED: { retryable: false, wire: false, closesLink: false, refusal: false, summary: 'The object was closed; pending operations are rejected with this code.' },
  MESH_ERR_UNAUTHORIZED: { retryable: false, wire: true, closesLink: true, refusal: true, summary: 'The static key is not in the registry, or was revoked. The connection is closed.' },
  MESH_ERR_FORBIDDEN: { retryable: false, wire: true, closesLink: false, refusal: false, summary: 'The registry does not allow this key to call or serve that service. The connection stays up.' },
  MESH_ERR_BUSY: { retryable: true, wire: true, closesLink: false, refusal: false, summary: 'The service queue is full; try again (possibly through another broker).' },
  MESH_ERR_NO_SERVICE: { retryable: true, wire: true, closesLink: false, refusal: false, summary: 'No worker has offered this service at this broker.' },
  MESH_ERR_HANDLER: { retryable: false, wire: true, closesLink: false, refusal: false, summary: 'The worker handler threw; the message carries its text.' },
  MESH_ERR_DRAINING: { retryable: true, wire: true, closesLink: false, refusal: false, summary: 'The broker or worker is draining and takes no new work.' },
  MESH_ERR_LIMIT: { retryable: false, wire: true, closesLink: true, refusal: false, summary: 'A configured limit was exceeded: more messages before the session was set up than a broker holds, or a queue or cache bound. (Connections over the handshake or connection bounds are closed before the preamble, with no ERROR.)' },
  MESH_ERR_CONFIG: { retryable: false, wire: false, closesLink: false, refusal: false, summary: 'Invalid configuration or options.' },
} as const satisfies Record<string, ErrorCodeInfo>;

/** A stable error code string, `MESH_ERR_*`. */
export type ErrorCode = keyof typeof ErrorCodes;

/** Options for {@link MeshError}. */
export interface MeshErrorOptions {
  /** The underlying error, if any. */
  cause?: unknown;
  /** Override the code's default retry semantics. */
  retryable?: boolean;
}

/** True when `code` is one of meshd's error codes. */
export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && Object.hasOwn(ErrorCodes, code);
}

/**
 * The error every meshd API throws or rejects with. `code` is stable and
 * documented in docs/errors.md; `retryable` says whether sending the same
 * request again may succeed.
 */
export class MeshError extends Error {
  /** The stable `MESH_ERR_*` code. */
  readonly code: ErrorCode;
  /** Whether a retry may succeed. */
  readonly retryable: boolean;

  constructor(code: ErrorCode, message: string, options: MeshErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'MeshError';
    this.code = code;
    this.retryable = options.retryable ?? ErrorCodes[code].retryable;
  }

  /** A compact description for logs: `MESH_ERR_X: message`. */
  override toString(): string {
    return `${this.code}: ${this.message}`;
  }
}

/** True when `err` is a MeshError, optionally with the given code. */
export function isMeshError(err: unknown, code?: ErrorCode): err is MeshError {
  return err instanceof MeshError && (code === undefined || err.code === code);
}
