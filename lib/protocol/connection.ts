/**
 * Connection = framed socket + handshake + cipher states + envelope codec +
 * heartbeat. It turns a TCP socket into a stream of validated messages in
 * each direction, and closes on the first thing that is wrong.
 *
 * Sending: `send()` encodes at once (so a bad message throws to its caller)
 * and queues; everything queued in the same event-loop turn is packed into
 * segments, sealed as few Noise messages as fit, and written with one writev.
 *
 * Receiving: each frame is opened, split into segments, reassembled into
 * envelopes (bounded), decoded and validated, then handed to `onMessage`.
 * PING is answered with PONG here; any frame counts as a sign of life.
 */
import { ErrorCodes, MeshError, isErrorCode } from '../errors.ts';
import { FramedSocket } from '../framing/framed-socket.ts';
import { connectSocket } from '../framing/connect-socket.ts';
import { MAX_FRAME_LENGTH } from '../framing/frame-encoder.ts';
import type { CipherState } from '../crypto/cipher-state.ts';
import type { CryptoSuite, KeyPair } from '../crypto/crypto-suite.ts';
import { defaultSuite } from '../crypto/suites.ts';
import { PREAMBLE_LENGTH, PROTOCOL_VERSION } from './preamble.ts';
import { DEFAULT_HEARTBEAT, negotiateHeartbeat } from './hello.ts';
import type { Hello, HeartbeatSettings, RoleName } from './hello.ts';
import { InitiatorHandshake, ResponderHandshake } from './handshake.ts';
import type { HandshakeResult } from './handshake.ts';
import { DEFAULT_MAX_PAYLOAD, EnvelopeCodec, maxEnvelopeLength } from './envelope-codec.ts';
import type { EncodedEnvelope } from './envelope-codec.ts';
import { forEachPlaintext, SegmentReader } from './segments.ts';
import { Heartbeat } from './heartbeat.ts';
import type { Message, RequestMessage } from './messages.ts';

/** The socket type FramedSocket owns (kept opaque above the framing layer). */
export type RawSocket = ConstructorParameters<typeof FramedSocket>[0];

/** Default handshake deadline, ms. */
export const DEFAULT_HANDSHAKE_TIMEOUT = 5000;

/**
 * Largest frame accepted during the handshake: message 3 is 64 bytes plus a
 * HELLO of well under 1 KiB. The full 65535 applies once it is complete.
 */
export const HANDSHAKE_MAX_FRAME = 2048;


/** Callbacks of a Connection, called with the connection as `this`-free arguments. */
export interface ConnectionHandlers {
  /**
   * A validated message. PING, PONG and a connection-level ERROR whose code
   * closes the link (ErrorCodes[code].closesLink) are handled inside and not
   * passed on: the latter ends the connection and arrives as onClose's error.
   */
  onMessage(message: Message, connection: Connection): void;
  /** Called once when the connection is closed; `undefined` after a clean local close. */
  onClose(error: MeshError | undefined, connection: Connection): void;
  /** The outbound buffer drained after a write reported backpressure. */
  onDrain?(connection: Connection): void;
}

/** Counters of one connection. */
export interface ConnectionStats {
  framesSent: number;
  framesReceived: number;
  messagesSent: number;
  messagesReceived: number;
  bytesSent: number;
  bytesReceived: number;
}

/** Channel settings a broker or node passes down to each of its connections. */
export type ChannelOptions = Pick<ConnectionOptions, 'suite' | 'heartbeat' | 'maxPayload' | 'handshakeTimeout' | 'maxOutboundBytes' | 'stallTimeout'>;

/** Options of both sides. */
export interface ConnectionOptions {
  /** This side's static key pair. */
  readonly keyPair: KeyPair;
  /** Crypto suite (default: node:crypto where available, else noble). */
  readonly suite?: CryptoSuite | undefined;
  /** This side's role. */
  readonly role: RoleName;
  /** This side's name, sent in HELLO. */
  readonly name?: string | undefined;
  /** Boot id, sent in HELLO (brokers). */
  readonly bootId?: Uint8Array | undefined;
  /** Heartbeat proposal (default: idle 5000, active 200, dead 600 ms; docs/protocol.md#7-heartbeats). */
  readonly heartbeat?: HeartbeatSettings | undefined;
  /** Largest payload this side accepts (default 1 MiB). */
  readonly maxPayload?: number | undefined;
  /** Deadline of the TCP connect plus the handshake (a TCP connect that runs out of time fails with MESH_ERR_TIMEOUT, the handshake with MESH_ERR_HANDSHAKE_TIMEOUT) in ms (default 5000). */
  readonly handshakeTimeout?: number | undefined;
  /** Aborts the handshake (not an established connection). */
  readonly signal?: AbortSignal | undefined;
  /** Outbound byte cap before the peer is cut off (default 8 MiB). */
  readonly maxOutboundBytes?: number | undefined;
  /** Outbound stall timeout in ms (default 10 000). */
  readonly stallTimeout?: number | undefined;
  /** Monotonic clock in ms (default performance.now). */
  readonly now?: (() => number) | undefined;
  /** Fixed ephemeral key: tests only. */
  readonly ephemeral?: KeyPair | undefined;
}

/** Options of the initiator. */
export interface ConnectOptions extends ConnectionOptions {
  readonly host: string;
  readonly port: number;
  /** The responder's static public key (from its mesh:// address). */
  readonly remoteKey: Uint8Array;
}

/** Options of the responder. */
export interface AcceptOptions extends ConnectionOptions {
  /**
   * Decides after message 3 whether the initiator may stay: return a
   * MeshError (e.g. MESH_ERR_UNAUTHORIZED) to send it as an encrypted ERROR
   * and close.
   */
  readonly authorize?: ((remoteKey: Uint8Array, hello: Hello) => MeshError | undefined) | undefined;
  /** Handshake message 1 was read and message 2 sent (the broker's admission counts this as progress). */
  readonly onMessage1?: (() => void) | undefined;
}

const now = (): number => performance.now();

/** Delay that counts as event-loop lag when a timer fires this late, ms. */
const LAG_THRESHOLD = 50;

/** An authenticated, encrypted message channel over one TCP connection. */
export class Connection {
  /** The peer's static public key. */
  readonly remoteKey: Uint8Array;
  /** The peer's HELLO. */
  readonly remoteHello: Hello;
  /** Noise handshake hash. */
  readonly handshakeHash: Uint8Array;
  /** Heartbeat timers both sides run by. */
  readonly heartbeatSettings: HeartbeatSettings;
  /** Counters since the handshake (transport frames and messages, PING/PONG included). */
  readonly stats: ConnectionStats = { framesSent: 0, framesReceived: 0, messagesSent: 0, messagesReceived: 0, bytesSent: 0, bytesReceived: 0 };

  readonly #framed: FramedSocket;
  readonly #send: CipherState;
  readonly #receive: CipherState;
  readonly #codec: EnvelopeCodec;
  readonly #segments: SegmentReader;
  readonly #heartbeat: Heartbeat;
  readonly #now: () => number;
  readonly #peerMaxPayload: number;
  #handlers: ConnectionHandlers;
  #queue: EncodedEnvelope[] = [];
  #flushScheduled = false;
  /** The REQUESTs in this turn's batch, their places in #queue and when each was sent: their ttl counts down if they wait (#countDownTtls). */
  readonly #requests: RequestMessage[] = [];
  readonly #requestAt: number[] = [];
  readonly #requestSentAt: number[] = [];
  /** Bytes of the envelopes in this turn's batch (not yet sealed). */
  #queuedBytes = 0;
  #timer: NodeJS.Timeout | undefined;
  #timerDue = 0;
  /** A dead verdict waiting for this turn's socket reads (see #confirmDead). */
  #confirm: NodeJS.Immediate | undefined;
  #closed = false;
  #closeError: MeshError | undefined;

  private constructor(framed: FramedSocket, result: HandshakeResult, options: ConnectionOptions, handlers: ConnectionHandlers) {
    this.#framed = framed;
    // onFrame decrypts each frame at once and keeps nothing of it.
    framed.transientFrames = true;
    this.#send = result.send;
    this.#receive = result.receive;
    this.remoteKey = result.remoteKey;
    this.remoteHello = result.remoteHello;
    this.handshakeHash = result.handshakeHash;
    this.#handlers = handlers;
    this.#now = options.now ?? now;
    const maxPayload = options.maxPayload ?? DEFAULT_MAX_PAYLOAD;
    this.#codec = new EnvelopeCodec({ maxPayload });
    this.#segments = new SegmentReader(maxEnvelopeLength(maxPayload));
    this.#peerMaxPayload = result.remoteHello.maxPayload;
    this.heartbeatSettings = negotiateHeartbeat(options.heartbeat ?? DEFAULT_HEARTBEAT, result.remoteHello.heartbeat);
    this.#heartbeat = new Heartbeat(this.heartbeatSettings, this.#now(), result.initiator);
    this.#armTimer();
  }

  /** Connects to a responder and completes the handshake. */
  static async connect(options: ConnectOptions, handlers: ConnectionHandlers): Promise<Connection> {
    const deadline = options.handshakeTimeout ?? DEFAULT_HANDSHAKE_TIMEOUT;
    const started = performance.now();
    const socket = await connectSocket({ host: options.host, port: options.port, signal: options.signal, timeout: deadline });
    const remaining = Math.max(1, deadline - (performance.now() - started));
    const handshake = new InitiatorHandshake({ suite: options.suite ?? defaultSuite(), keyPair: options.keyPair, hello: helloOf(options), ephemeral: options.ephemeral, remoteKey: options.remoteKey });
    return runHandshake(socket, options, handlers, remaining, `${options.host}:${options.port}`, (io) => {
      const { preamble, message1 } = handshake.start();
      io.framed.writeRaw(preamble);
      io.framed.writeFrame(message1);
      return {
        onPrefix: (bytes) => handshake.readPreamble(bytes),
        onFrame: (frame) => {
          io.framed.writeFrame(handshake.readMessage2(frame));
          io.done(handshake.result());
        },
        // The responder answered the preamble, then closed instead of sending
        // message 2: it could not decrypt message 1, which is sealed to the
        // static key in the address (docs/protocol.md#2-handshake).
        closedByPeer: () =>
          handshake.awaitingMessage2
            ? new MeshError('MESH_ERR_HANDSHAKE', `the broker at ${options.host}:${options.port} did not accept our handshake: the key in the address is probably not this broker's`, { retryable: false })
            : undefined,
      };
    });
  }

  /** Runs the responder side of the handshake on an accepted socket. */
  static accept(socket: RawSocket, options: AcceptOptions, handlers: ConnectionHandlers): Promise<Connection> {
    const handshake = new ResponderHandshake({ suite: options.suite ?? defaultSuite(), keyPair: options.keyPair, hello: helloOf(options), ephemeral: options.ephemeral });
    const where = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
    let step = 1;
    // This side's preamble waits for message 1 (docs/protocol.md#1-preamble):
    // a connection closed before it (evicted, or silent too long) is closed
    // before the preamble, which the initiator knows to be retryable, and
    // never looks like a wrong key.
    let ourPreamble: Buffer | undefined;
    return runHandshake(socket, options, handlers, options.handshakeTimeout ?? DEFAULT_HANDSHAKE_TIMEOUT, where, (io) => ({
      onPrefix: (bytes) => {
        const { preamble, error } = handshake.readPreamble(bytes);
        if (error) {
          io.framed.writeRaw(preamble);
          throw error;
        }
        ourPreamble = preamble;
      },
      onFrame: (frame) => {
        if (step === 1) {
          step = 3;
          // Sent before message 1 is read, so that a message 1 this side
          // cannot decrypt (a wrong key in the address) ends after the
          // preamble, as the initiator expects.
          if (ourPreamble) io.framed.writeRaw(ourPreamble);
          io.framed.writeFrame(handshake.readMessage1(frame));
          options.onMessage1?.();
          return;
        }
        const result = handshake.readMessage3(frame);
        const denied = options.authorize?.(result.remoteKey, result.remoteHello);
        if (denied) {
          io.refuse(result, denied);
          return;
        }
        io.done(result);
      },
    }));
  }

  /** Whether close has begun (by either side). */
  get closed(): boolean {
    return this.#closed || this.#framed.closed;
  }

  /** Why the connection closed, once it has. */
  get closeError(): MeshError | undefined {
    return this.#closeError;
  }

  /** Bytes waiting in the socket's send buffer. */
  get writableLength(): number {
    return this.#framed.writableLength;
  }

  /** Bytes not yet taken by the kernel: this turn's queued envelopes (plaintext) and the socket's send buffer. */
  get backlog(): number {
    return this.#queuedBytes + this.#framed.writableLength;
  }

  /** Remote address as `host:port`. */
  get remoteAddress(): string {
    return `${this.#framed.remoteAddress ?? '?'}:${this.#framed.remotePort ?? '?'}`;
  }

  /** Largest payload the peer accepts. */
  get peerMaxPayload(): number {
    return this.#peerMaxPayload;
  }

  /** Replaces the handlers (e.g. when a session takes the connection over). */
  setHandlers(handlers: ConnectionHandlers): void {
    this.#handlers = handlers;
  }

  /**
   * Tells the heartbeat whether requests are in flight on this connection:
   * fast pings and the negotiated dead timeout (600 ms by default) while
   * they are, slow pings idle.
   */
  setActive(active: boolean): void {
    if (this.#closed || active === this.#heartbeat.active) return;
    this.#heartbeat.setActive(active, this.#now());
    this.#armTimer();
  }

  /**
   * Queues a message for this turn's batch. Throws a MeshError for a message
   * that cannot be encoded (e.g. a payload over the peer's limit); returns
   * false when the connection is closed (nothing is sent).
   */
  send(message: Message): boolean {
    if (this.#closed || this.#framed.closed) return false;
    // The clock is read before the encoding: a process frozen while it
    // encodes has its REQUEST's ttl counted down all the same.
    const sentAt = message.type === 'REQUEST' ? this.#now() : 0;
    const envelope = this.#codec.encode(message, this.#peerMaxPayload);
    // Recorded only once the encoding succeeded (it throws for a payload
    // over the peer's limit), so #requestAt stays aligned with #queue.
    if (message.type === 'REQUEST') {
      this.#requests.push(message);
      this.#requestAt.push(this.#queue.length);
      this.#requestSentAt.push(sentAt);
    }
    this.#queue.push(envelope);
    this.#queuedBytes += envelope.length;
    this.stats.messagesSent++;
    if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      setImmediate(this.#flush);
    }
    return true;
  }

  /** Seals and writes everything queued now, without waiting for the end of the turn. */
  flush(): void {
    this.#flush();
  }

  /**
   * Closes the connection (idempotent). Without an error: queued messages are
   * flushed, then the socket is ended gracefully. With an error and `notify`:
   * the error is queued as a connection-level ERROR after what is already
   * queued, everything is flushed, and the socket is ended gracefully so the
   * ERROR reaches the peer. With an error and no `notify`: queued messages
   * are dropped and the socket is destroyed at once. With an error, onClose
   * reports it.
   */
  close(error?: MeshError, options: { notify?: boolean } = {}): void {
    if (this.#closed) return;
    if (error && options.notify) {
      this.send({ type: 'ERROR', code: error.code, retryable: error.retryable, text: error.message });
      this.#flush();
    } else if (!error) {
      this.#flush();
    }
    this.#closed = true;
    this.#closeError = error;
    this.#stopTimer();
    this.#framed.close(error && !options.notify ? error : undefined);
  }

  // ------------------------------------------------------------ internals

  readonly #flush = (): void => {
    this.#flushScheduled = false;
    this.#queuedBytes = 0;
    if (this.#queue.length === 0 || this.#framed.closed) {
      this.#queue = [];
      this.#clearRequests();
      return;
    }
    const queue = this.#queue;
    this.#queue = [];
    if (this.#requests.length > 0) this.#countDownTtls(queue);
    // Each plaintext is packed into a reused buffer and sealed at once; the
    // ciphertext and its tag go out as two parts of one frame (no join).
    const frames: Array<readonly Uint8Array[]> = [];
    try {
      forEachPlaintext(queue, (plaintext) => {
        const sealed = this.#send.encryptWithAdDetached(EMPTY, plaintext);
        frames.push(sealed);
        this.stats.bytesSent += sealed[0].length + sealed[1].length + 2;
      });
    } catch (error) {
      this.#fail(error instanceof MeshError ? error : new MeshError('MESH_ERR_CRYPTO', 'sealing failed', { cause: error }));
      return;
    }
    this.stats.framesSent += frames.length;
    this.#framed.writeFrames(frames);
  };

  /**
   * A REQUEST's ttl is the time its attempt may still take when it is
   * written. A batch is written at the end of the turn it was queued in; a
   * REQUEST that waited over LAG_THRESHOLD ms since its send (the process
   * was frozen or starved in between) is encoded again with its ttl less
   * the wait, 0 if that used it up: a broker frozen just after dispatching
   * must not hand a worker, on waking, a copy its client has long resent
   * elsewhere as one with time left (the worker does not run a ttl of 0).
   */
  #countDownTtls(queue: EncodedEnvelope[]): void {
    const now = this.#now();
    for (let i = 0; i < this.#requests.length; i++) {
      const waited = now - this.#requestSentAt[i]!;
      if (waited <= LAG_THRESHOLD) continue;
      const m = this.#requests[i]!;
      queue[this.#requestAt[i]!] = this.#codec.encode({ ...m, ttl: Math.max(0, m.ttl - Math.ceil(waited)) }, this.#peerMaxPayload);
    }
    this.#clearRequests();
  }

  #clearRequests(): void {
    this.#requests.length = 0;
    this.#requestAt.length = 0;
    this.#requestSentAt.length = 0;
  }

  /** Called by the FramedSocket for every transport frame. */
  onFrame(frame: Buffer): void {
    if (this.#closed) return;
    this.#heartbeat.received(this.#now());
    this.stats.framesReceived++;
    this.stats.bytesReceived += frame.length + 2;
    // A frame that fails to open ends the connection at once (thrown to the FramedSocket).
    const plaintext = this.#receive.decryptWithAd(EMPTY, frame);
    try {
      this.#segments.push(plaintext, this.#onEnvelope);
    } catch (error) {
      // Malformed segments or reassembly over its bound: tell the peer, then close.
      this.close(error instanceof MeshError ? error : new MeshError('MESH_ERR_PROTOCOL', 'malformed transport message', { cause: error }), { notify: true });
    }
  }

  readonly #onEnvelope = (envelope: Uint8Array): void => {
    if (this.#closed) return;
    let message: Message;
    try {
      message = this.#codec.decode(envelope);
    } catch (error) {
      this.close(error instanceof MeshError ? error : new MeshError('MESH_ERR_PROTOCOL', 'undecodable envelope', { cause: error }), { notify: true });
      return;
    }
    this.stats.messagesReceived++;
    switch (message.type) {
      case 'PING':
        this.send({ type: 'PONG' });
        return;
      case 'PONG':
        return;
      case 'ERROR':
        if (message.id === undefined && isErrorCode(message.code) && ErrorCodes[message.code].closesLink) {
          this.#fail(new MeshError(message.code, `peer closed the connection: ${message.text}`, { retryable: message.retryable }));
          return;
        }
        break;
      default:
        break;
    }
    this.#handlers.onMessage(message, this);
  };

  /** Called by the FramedSocket once, when the socket is closed. */
  onSocketClose(error: MeshError | undefined): void {
    this.#stopTimer();
    const reported = this.#closeError ?? error;
    this.#closed = true;
    this.#closeError = reported;
    this.#handlers.onClose(reported, this);
  }

  /** Called by the FramedSocket when its outbound buffer drained. */
  onDrain(): void {
    this.#handlers.onDrain?.(this);
  }

  #fail(error: MeshError): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#closeError = error;
    this.#stopTimer();
    this.#queue = [];
    this.#clearRequests();
    this.#queuedBytes = 0;
    this.#framed.close(error);
  }

  #armTimer(): void {
    this.#stopTimer();
    if (this.#closed) return;
    const delay = this.#heartbeat.nextCheck(this.#now());
    this.#timerDue = this.#now() + delay;
    this.#timer = setTimeout(this.#onTimer, delay);
    this.#timer.unref();
  }

  #stopTimer(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#confirm) clearImmediate(this.#confirm);
    this.#confirm = undefined;
  }

  readonly #onTimer = (): void => {
    this.#timer = undefined;
    if (this.#closed) return;
    const t = this.#now();
    // A timer that fires late means this process was not running: that
    // silence is ours, not the peer's (docs/protocol.md#7-heartbeats).
    const lag = t - this.#timerDue;
    if (lag > LAG_THRESHOLD) this.#heartbeat.stretch(lag);
    const action = this.#heartbeat.check(t);
    if (action === 'dead') {
      this.#confirmDead(t);
      return;
    }
    if (action === 'ping') this.send({ type: 'PING' });
    this.#armTimer();
  };

  /**
   * Confirms a dead verdict reached at `checkedAt` once the input that has
   * already arrived is read. Timers run before the event loop polls the
   * sockets, so a busy process (one long turn reading many other sockets)
   * reaches its verdict while the peer's PONG sits unread in the socket
   * buffer; setImmediate runs after the next poll. A turn that itself took
   * longer than LAG_THRESHOLD was this process being busy: the deadline
   * moves by that much and the verdict waits one more turn.
   */
  #confirmDead(checkedAt: number): void {
    this.#confirm = setImmediate(() => {
      this.#confirm = undefined;
      if (this.#closed) return;
      const t = this.#now();
      const busy = t - checkedAt;
      if (busy > LAG_THRESHOLD) {
        this.#heartbeat.stretch(busy);
        this.#confirmDead(t);
        return;
      }
      const action = this.#heartbeat.check(t);
      if (action === 'dead') {
        this.#fail(new MeshError('MESH_ERR_HEARTBEAT', `peer ${this.remoteAddress} silent for ${Math.round(this.#heartbeat.silence(t))} ms`));
        return;
      }
      if (action === 'ping') this.send({ type: 'PING' });
      this.#armTimer();
    });
    this.#confirm.unref();
  }

  /** @internal Builds the established connection around a finished handshake. */
  static establish(framed: FramedSocket, result: HandshakeResult, options: ConnectionOptions, handlers: ConnectionHandlers): Connection {
    return new Connection(framed, result, options, handlers);
  }
}

const EMPTY = new Uint8Array(0);

function helloOf(options: ConnectionOptions): Hello {
  return {
    role: options.role,
    name: options.name,
    bootId: options.bootId,
    version: PROTOCOL_VERSION,
    heartbeat: options.heartbeat ?? DEFAULT_HEARTBEAT,
    maxPayload: options.maxPayload ?? DEFAULT_MAX_PAYLOAD,
  };
}

interface HandshakeIo {
  readonly framed: FramedSocket;
  done(result: HandshakeResult): void;
  refuse(result: HandshakeResult, error: MeshError): void;
}

interface HandshakeSteps {
  onPrefix(bytes: Buffer): void;
  onFrame(frame: Buffer): void;
  /** What the peer's close at this step means, when it says more than "closed during the handshake". */
  closedByPeer?(): MeshError | undefined;
}

/**
 * Runs one side's handshake over a fresh socket: wires a FramedSocket whose
 * handlers first drive the handshake, then hand frames to the Connection.
 * Resolves with the Connection, or rejects (and closes the socket) on the
 * first error, the deadline or the abort signal.
 */
function runHandshake(
  socket: RawSocket,
  options: ConnectionOptions,
  handlers: ConnectionHandlers,
  timeoutMs: number,
  where: string,
  begin: (io: HandshakeIo) => HandshakeSteps,
): Promise<Connection> {
  return new Promise<Connection>((resolve, reject) => {
    let connection: Connection | undefined;
    let settled = false;
    let steps: HandshakeSteps | undefined;
    const signal = options.signal;

    const cleanup = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    };
    const failHandshake = (error: MeshError): void => {
      if (settled) return;
      settled = true;
      cleanup();
      reject(error);
    };

    const framed = new FramedSocket(
      socket,
      { prefixLength: PREAMBLE_LENGTH, maxFrameLength: HANDSHAKE_MAX_FRAME, maxOutboundBytes: options.maxOutboundBytes, stallTimeout: options.stallTimeout },
      {
        onPrefix: (bytes) => steps!.onPrefix(bytes),
        onFrame: (frame) => {
          if (connection) connection.onFrame(frame);
          else steps!.onFrame(frame);
        },
        onDrain: () => connection?.onDrain(),
        onClose: (error) => {
          if (connection) {
            connection.onSocketClose(error);
            return;
          }
          const early = error?.code === 'MESH_ERR_CONNECTION' ? steps?.closedByPeer?.() : undefined;
          failHandshake(early ?? handshakeError(error, where));
        },
      },
    );

    const timer = setTimeout(() => {
      const e = new MeshError('MESH_ERR_HANDSHAKE_TIMEOUT', `handshake with ${where} did not complete within ${timeoutMs} ms`);
      failHandshake(e);
      framed.close(e);
    }, timeoutMs);
    const onAbort = (): void => {
      const e = new MeshError('MESH_ERR_ABORTED', `handshake with ${where} aborted`, { cause: signal?.reason });
      failHandshake(e);
      framed.close(e);
    };
    if (signal?.aborted) {
      onAbort();
      return;
    }
    signal?.addEventListener('abort', onAbort, { once: true });

    const io: HandshakeIo = {
      framed,
      done: (result) => {
        if (settled) return;
        settled = true;
        cleanup();
        framed.maxFrameLength = MAX_FRAME_LENGTH;
        connection = Connection.establish(framed, result, options, handlers);
        resolve(connection);
      },
      refuse: (result, error) => {
        // Seal the refusal with the fresh transport keys so the initiator learns why.
        const c = Connection.establish(framed, result, options, { onMessage: () => {}, onClose: () => {} });
        connection = c;
        failHandshake(error);
        c.close(error, { notify: true });
      },
    };
    try {
      steps = begin(io);
    } catch (error) {
      const e = handshakeError(error, where);
      failHandshake(e);
      framed.close(e);
    }
  });
}

function handshakeError(error: unknown, where: string): MeshError {
  if (error instanceof MeshError) {
    if (error.code === 'MESH_ERR_CONNECTION') {
      return new MeshError('MESH_ERR_HANDSHAKE', `connection to ${where} closed during the handshake`, { cause: error, retryable: true });
    }
    return error;
  }
  if (error === undefined) return new MeshError('MESH_ERR_HANDSHAKE', `handshake with ${where} closed`);
  return new MeshError('MESH_ERR_HANDSHAKE', `handshake with ${where} failed`, { cause: error });
}
