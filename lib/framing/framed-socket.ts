/**
 * FramedSocket: a `net.Socket` that sends and receives frames
 * (docs/protocol.md#3-framing) and enforces the outbound backpressure bounds
 * (docs/limits.md#connections-every-party). With connect-socket.ts and
 * listener.ts (which only open and accept sockets), this is the only code in
 * meshd that touches a socket; the layers above see frames, an unframed
 * prefix (the preamble) and one close report.
 *
 * Handlers are plain callbacks, not events, to keep the hot path short.
 */

import type net from 'node:net';
import { readRelayOf } from './read-relay.ts';
import { MeshError } from '../errors.ts';
import { FrameDecoder } from './frame-decoder.ts';
import { FRAME_HEADER_LENGTH, assertFrameLength, writeFrameHeader } from './frame-encoder.ts';

/** Options for {@link FramedSocket}. */
export interface FramedSocketOptions {
  /** Largest inbound frame body, `0..65535` (default 65535). */
  maxFrameLength?: number;
  /** Bytes of unframed prefix expected before the first inbound frame (default 0). */
  prefixLength?: number;
  /**
   * Outbound byte cap (default 8 MiB): when `socket.writableLength` is over
   * it after a write, the connection is closed with `MESH_ERR_BACKPRESSURE`.
   */
  maxOutboundBytes?: number;
  /**
   * Stall timeout in ms (default 10 000): while bytes are waiting to be
   * flushed, some write must complete within this time or the connection is
   * closed with `MESH_ERR_BACKPRESSURE`. The check runs on a timer armed when
   * bytes are left unflushed, so a stall is reported between `stallTimeout`
   * and twice that after the last progress. `Infinity` disables it.
   */
  stallTimeout?: number;
  /**
   * Grace in ms (default 1000) for a clean close: after `socket.end()` the
   * socket is destroyed if it has not closed within this time (the peer did
   * not answer with its own FIN, or our bytes could not be flushed).
   */
  closeGrace?: number;
}

/**
 * Callbacks of a {@link FramedSocket}. They are called as methods of this
 * object. `onFrame`, `onPrefix` and `onDrain` may throw: a thrown `MeshError`
 * closes the connection with that error, anything else closes it with
 * `MESH_ERR_PROTOCOL` whose cause is the thrown value. `onClose` must not
 * throw.
 */
export interface FramedSocketHandlers {
  /**
   * One inbound frame body. It may be a view into a socket chunk: copy it if
   * you keep it for long. Not called while paused, nor after close began.
   */
  onFrame(frame: Buffer): void;
  /** The unframed prefix (`prefixLength` bytes), once, before any frame. */
  onPrefix?(prefix: Buffer): void;
  /** The outbound buffer has drained after a write returned false. */
  onDrain?(): void;
  /**
   * Called exactly once, after the socket is fully closed. `undefined` only
   * when `close()` was called without an error before anything else ended
   * the connection; otherwise the reason (see {@link FramedSocket}).
   */
  onClose(error: MeshError | undefined): void;
}

const DEFAULT_MAX_OUTBOUND_BYTES = 8 * 1024 * 1024;
const DEFAULT_STALL_TIMEOUT = 10_000;
const DEFAULT_CLOSE_GRACE = 1000;

/** Bytes of a frame body given whole or as parts. */
function bodyLength(body: Uint8Array | readonly Uint8Array[]): number {
  if (body instanceof Uint8Array) return body.length;
  let n = 0;
  for (const part of body) n += part.length;
  return n;
}

function positive(name: string, value: number | undefined, fallback: number, allowInfinity: boolean): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || Number.isNaN(value) || value <= 0 || (!allowInfinity && !Number.isFinite(value))) {
    throw new MeshError('MESH_ERR_CONFIG', `FramedSocket: ${name} must be a positive number, got ${String(value)}`);
  }
  return value;
}

function asMeshError(err: unknown, what: string): MeshError {
  if (err instanceof MeshError) return err;
  const text = err instanceof Error ? err.message : String(err);
  return new MeshError('MESH_ERR_PROTOCOL', `${what} threw: ${text}`, { cause: err });
}

function connectionError(err: Error): MeshError {
  const code = (err as NodeJS.ErrnoException).code;
  return new MeshError('MESH_ERR_CONNECTION', `connection error: ${code ?? err.message}`, { cause: err });
}

/**
 * Owns a connected `net.Socket` and speaks frames over it.
 *
 * Closing. Every path ends in exactly one `onClose` call, made from the
 * socket's `'close'` event (so the socket is fully closed by then). The first
 * reason wins:
 * - `close()` without an error: flush, `end()`, destroy after `closeGrace`
 *   if the peer has not closed; reported as `undefined`.
 * - `close(error)` or an internal failure: destroy at once; reported as that
 *   error. Failures are `MESH_ERR_FRAME_TOO_LARGE` (inbound length over the
 *   limit), `MESH_ERR_BACKPRESSURE` (outbound cap or stall), or whatever a
 *   handler threw (see {@link FramedSocketHandlers}).
 * - The peer ends the stream (FIN): reported as `MESH_ERR_CONNECTION`
 *   "closed by peer" (retryable), "... in the middle of a frame" when it cut
 *   a frame or the prefix short. Our side answers with `end()` so queued
 *   bytes still flush, then destroys after `closeGrace`.
 * - A socket error (ECONNRESET, EPIPE, ...): `MESH_ERR_CONNECTION` with the
 *   socket error as cause.
 * A later `close(error)` during a clean close destroys the socket at once but
 * does not change the reported reason.
 *
 * Writes after close began are ignored and return false; they never throw.
 * Writing a body over 65535 bytes throws `MESH_ERR_FRAME_TOO_LARGE` (a caller
 * bug) before anything is written.
 *
 * Pausing. `pause()` takes effect at once, even in the middle of a socket
 * chunk holding several frames: the unread tail of the chunk is kept (a view,
 * not a copy) and decoded after `resume()`, asynchronously (never inside the
 * `resume()` call), before any newer data.
 */
export class FramedSocket {
  readonly #socket: net.Socket;
  readonly #handlers: FramedSocketHandlers;
  readonly #decoder: FrameDecoder;
  readonly #maxOutboundBytes: number;
  readonly #stallTimeout: number;
  readonly #closeGrace: number;

  readonly #remoteAddress: string | undefined;
  readonly #remotePort: number | undefined;
  readonly #localAddress: string | undefined;
  readonly #localPort: number | undefined;

  #paused = false;
  /** Received bytes not yet decoded because we are (or were) paused. */
  #backlog: Buffer[] = [];
  #backlogScheduled = false;

  /** True once close began for any reason: no more writes or frames. */
  #closing = false;
  #reason: MeshError | undefined = undefined;
  /** True once onClose has been called. */
  #finished = false;

  #stallTimer: NodeJS.Timeout | undefined = undefined;
  #graceTimer: NodeJS.Timeout | undefined = undefined;
  /** Count of completed writes and drains: the stall check's measure of progress. */
  #progress = 0;
  #stallMark = 0;

  constructor(socket: net.Socket, options: FramedSocketOptions, handlers: FramedSocketHandlers) {
    this.#decoder = new FrameDecoder({ maxFrameLength: options.maxFrameLength, prefixLength: options.prefixLength });
    this.#maxOutboundBytes = positive('maxOutboundBytes', options.maxOutboundBytes, DEFAULT_MAX_OUTBOUND_BYTES, false);
    this.#stallTimeout = positive('stallTimeout', options.stallTimeout, DEFAULT_STALL_TIMEOUT, true);
    this.#closeGrace = positive('closeGrace', options.closeGrace, DEFAULT_CLOSE_GRACE, false);
    this.#socket = socket;
    this.#handlers = handlers;
    this.#remoteAddress = socket.remoteAddress;
    this.#remotePort = socket.remotePort;
    this.#localAddress = socket.localAddress;
    this.#localPort = socket.localPort;

    socket.on('error', this.#onError);
    socket.on('close', this.#onSocketClose);
    socket.on('end', this.#onEnd);
    socket.on('drain', this.#onSocketDrain);
    if (socket.destroyed) {
      // Already gone: its 'close' may have been emitted before we listened.
      this.#closing = true;
      this.#reason = new MeshError('MESH_ERR_CONNECTION', 'socket was already closed', { cause: socket.errored ?? undefined });
      setImmediate(this.#finish);
      return;
    }
    socket.setNoDelay(true);
    const relay = readRelayOf(socket);
    if (relay) relay.attach(this.#onReusedData);
    else socket.on('data', this.#onData);
  }

  /** Whether frames are views of reused memory, valid only inside `onFrame` (see FrameDecoder.transientFrames). */
  get transientFrames(): boolean {
    return this.#decoder.transientFrames;
  }

  set transientFrames(value: boolean) {
    this.#decoder.transientFrames = value;
  }

  /** Limit for inbound frames not yet started (see FrameDecoder.maxFrameLength). */
  get maxFrameLength(): number {
    return this.#decoder.maxFrameLength;
  }

  set maxFrameLength(value: number) {
    this.#decoder.maxFrameLength = value;
  }

  /** True once close began for any reason (writes are then ignored and return false). */
  get closed(): boolean {
    return this.#closing;
  }

  /** True once the socket is fully closed and `onClose` has been called. */
  get destroyed(): boolean {
    return this.#finished;
  }

  /** True between `pause()` and `resume()`. */
  get paused(): boolean {
    return this.#paused;
  }

  /** Bytes written but not yet flushed to the kernel. */
  get writableLength(): number {
    return this.#socket.writableLength;
  }

  /** The peer's address (kept after close). */
  get remoteAddress(): string | undefined {
    return this.#socket.remoteAddress ?? this.#remoteAddress;
  }

  /** The peer's port (kept after close). */
  get remotePort(): number | undefined {
    return this.#socket.remotePort ?? this.#remotePort;
  }

  /** Our local address (kept after close). */
  get localAddress(): string | undefined {
    return this.#socket.localAddress ?? this.#localAddress;
  }

  /** Our local port (kept after close). */
  get localPort(): number | undefined {
    return this.#socket.localPort ?? this.#localPort;
  }

  /**
   * Writes raw bytes, unframed (the preamble). Returns `socket.write`'s
   * result: false means wait for `onDrain` (or the connection is closed).
   */
  writeRaw(bytes: Uint8Array): boolean {
    if (this.#closing) return false;
    const ok = this.#socket.write(bytes, this.#onWritten);
    return this.#afterWrite(ok);
  }

  /**
   * Writes one frame: header and body as two buffers in one `writev`. The
   * body is not copied: do not change it until it is flushed. Returns
   * `socket.write`'s result; false also when closed.
   *
   * @throws MeshError `MESH_ERR_FRAME_TOO_LARGE` for a body over 65535 bytes.
   */
  writeFrame(body: Uint8Array): boolean {
    if (this.#closing) return false;
    assertFrameLength(body.length);
    const header = Buffer.allocUnsafe(FRAME_HEADER_LENGTH);
    writeFrameHeader(header, 0, body.length);
    const socket = this.#socket;
    socket.cork();
    socket.write(header);
    const ok = socket.write(body, this.#onWritten);
    socket.uncork();
    return this.#afterWrite(ok);
  }

  /**
   * Writes several frames in order, in one `writev` (cork, header + body for
   * each, uncork). A body is one buffer or a list of parts written back to
   * back (a ciphertext and its tag). Bodies are not copied. All lengths are
   * checked before anything is written. Returns the last `socket.write`'s
   * result.
   *
   * @throws MeshError `MESH_ERR_FRAME_TOO_LARGE` for a body over 65535 bytes.
   */
  writeFrames(bodies: ReadonlyArray<Uint8Array | readonly Uint8Array[]>): boolean {
    if (this.#closing) return false;
    if (bodies.length === 0) return !this.#socket.writableNeedDrain;
    const headers = Buffer.allocUnsafe(FRAME_HEADER_LENGTH * bodies.length);
    let at = 0;
    for (const body of bodies) {
      writeFrameHeader(headers, at, bodyLength(body));
      at += FRAME_HEADER_LENGTH;
    }
    const socket = this.#socket;
    let last: Uint8Array | undefined;
    socket.cork();
    at = 0;
    for (const body of bodies) {
      if (last !== undefined) socket.write(last);
      socket.write(headers.subarray(at, at + FRAME_HEADER_LENGTH));
      at += FRAME_HEADER_LENGTH;
      if (body instanceof Uint8Array) {
        last = body;
        continue;
      }
      for (let j = 0; j < body.length - 1; j++) socket.write(body[j]!);
      last = body[body.length - 1];
    }
    const ok = last === undefined ? !socket.writableNeedDrain : socket.write(last, this.#onWritten);
    socket.uncork();
    return this.#afterWrite(ok);
  }

  /**
   * Stops delivering frames (and reading the socket) until `resume()`.
   * Takes effect at once, even between two frames of one chunk. No effect
   * once close began.
   */
  pause(): void {
    if (this.#paused || this.#closing) return;
    this.#paused = true;
    this.#socket.pause();
  }

  /**
   * Restarts delivery. Frames held since `pause()` are delivered from a later
   * event-loop turn, in order, before newer data; never synchronously here.
   */
  resume(): void {
    if (!this.#paused) return;
    this.#paused = false;
    if (this.#closing) return;
    if (this.#backlog.length > 0) {
      if (!this.#backlogScheduled) {
        this.#backlogScheduled = true;
        setImmediate(this.#drainBacklog);
      }
    } else {
      this.#socket.resume();
    }
  }

  /**
   * Closes the connection; idempotent. Without an error: flush queued bytes,
   * send FIN, and destroy after `closeGrace` if the peer has not closed too.
   * With an error: destroy at once. `onClose` follows exactly once, with the
   * first reason (see {@link FramedSocket}).
   */
  close(error?: MeshError): void {
    if (this.#closing) {
      if (error !== undefined && !this.#socket.destroyed) this.#socket.destroy();
      return;
    }
    this.#beginClose(error);
    if (error !== undefined) {
      this.#socket.destroy();
      return;
    }
    this.#endGracefully();
  }

  #beginClose(reason: MeshError | undefined): void {
    this.#closing = true;
    this.#reason = reason;
    this.#backlog = [];
    this.#clearStallTimer();
  }

  #endGracefully(): void {
    const socket = this.#socket;
    if (socket.destroyed) return;
    // Keep reading (and discarding) so the peer's FIN is seen.
    socket.resume();
    if (!socket.writableEnded) socket.end();
    if (this.#graceTimer === undefined) {
      this.#graceTimer = setTimeout(this.#onGrace, this.#closeGrace);
      this.#graceTimer.unref();
    }
  }

  #onGrace = (): void => {
    this.#graceTimer = undefined;
    this.#socket.destroy();
  };

  #fail(error: MeshError): void {
    this.close(error);
  }

  #afterWrite(ok: boolean): boolean {
    const pending = this.#socket.writableLength;
    if (pending > 0) {
      if (pending > this.#maxOutboundBytes) {
        this.#fail(
          new MeshError(
            'MESH_ERR_BACKPRESSURE',
            `peer is not reading: ${pending} bytes queued, over the outbound cap of ${this.#maxOutboundBytes}`,
          ),
        );
        return false;
      }
      if (this.#stallTimer === undefined && this.#stallTimeout !== Infinity) this.#armStallTimer();
    }
    return ok;
  }

  #armStallTimer(): void {
    this.#stallMark = this.#progress;
    this.#stallTimer = setTimeout(this.#onStallTimer, this.#stallTimeout);
    this.#stallTimer.unref();
  }

  #clearStallTimer(): void {
    if (this.#stallTimer !== undefined) {
      clearTimeout(this.#stallTimer);
      this.#stallTimer = undefined;
    }
  }

  #onStallTimer = (): void => {
    this.#stallTimer = undefined;
    if (this.#closing) return;
    const pending = this.#socket.writableLength;
    if (pending === 0) return;
    if (this.#progress !== this.#stallMark) {
      this.#armStallTimer();
      return;
    }
    this.#fail(
      new MeshError(
        'MESH_ERR_BACKPRESSURE',
        `peer is not reading: ${pending} bytes queued with no progress for ${this.#stallTimeout} ms`,
      ),
    );
  };

  #onWritten = (): void => {
    this.#progress++;
  };

  #onSocketDrain = (): void => {
    this.#progress++;
    if (this.#closing || this.#handlers.onDrain === undefined) return;
    try {
      this.#handlers.onDrain();
    } catch (err) {
      this.#fail(asMeshError(err, 'onDrain'));
    }
  };

  #stopDelivery = (): boolean => this.#paused || this.#closing;

  #deliverFrame = (frame: Buffer): void => {
    this.#handlers.onFrame(frame);
  };

  #deliverPrefix = (prefix: Buffer): void => {
    this.#handlers.onPrefix?.(prefix);
  };

  /** Decodes `chunk`; returns its undecoded tail when delivery stopped early. */
  #feed(chunk: Buffer): Buffer | undefined {
    let consumed: number;
    try {
      consumed = this.#decoder.pushUntil(chunk, this.#stopDelivery, this.#deliverFrame, this.#deliverPrefix);
    } catch (err) {
      this.#fail(asMeshError(err, 'frame handler'));
      return undefined;
    }
    return consumed < chunk.length && !this.#closing ? chunk.subarray(consumed) : undefined;
  }

  #onData = (chunk: Buffer): void => {
    if (this.#closing) return;
    if (this.#paused || this.#backlog.length > 0) {
      this.#backlog.push(chunk);
      return;
    }
    const rest = this.#feed(chunk);
    if (rest !== undefined) this.#backlog.push(rest);
  };

  /**
   * A read into the socket's own buffer (see read-relay.ts), overwritten by
   * the next read: copied unless frames are transient, and whatever is kept
   * for later is a copy.
   */
  #onReusedData = (chunk: Buffer): void => {
    if (this.#closing) return;
    if (!this.#decoder.transientFrames) {
      this.#onData(Buffer.from(chunk));
      return;
    }
    if (this.#paused || this.#backlog.length > 0) {
      this.#backlog.push(Buffer.from(chunk));
      return;
    }
    const rest = this.#feed(chunk);
    if (rest !== undefined) this.#backlog.push(Buffer.from(rest));
  };

  #drainBacklog = (): void => {
    this.#backlogScheduled = false;
    const backlog = this.#backlog;
    while (backlog.length > 0) {
      if (this.#paused || this.#closing) return;
      const rest = this.#feed(backlog[0]!);
      if (this.#closing) return;
      if (rest !== undefined) {
        backlog[0] = rest;
        return;
      }
      backlog.shift();
    }
    if (!this.#paused) this.#socket.resume();
  };

  #onEnd = (): void => {
    if (this.#closing) return;
    const cut = !this.#decoder.atBoundary && !this.#decoder.failed;
    this.#beginClose(new MeshError('MESH_ERR_CONNECTION', cut ? 'closed by peer in the middle of a frame' : 'closed by peer'));
    this.#endGracefully();
  };

  #onError = (err: Error): void => {
    if (this.#closing) return;
    this.#beginClose(connectionError(err));
    // net destroys the socket itself after 'error'; make sure.
    if (!this.#socket.destroyed) this.#socket.destroy();
  };

  #onSocketClose = (): void => {
    if (!this.#closing) {
      const cause = this.#socket.errored ?? undefined;
      this.#beginClose(new MeshError('MESH_ERR_CONNECTION', 'connection closed', { cause }));
    }
    this.#finish();
  };

  #finish = (): void => {
    if (this.#finished) return;
    this.#finished = true;
    this.#clearStallTimer();
    if (this.#graceTimer !== undefined) {
      clearTimeout(this.#graceTimer);
      this.#graceTimer = undefined;
    }
    this.#backlog = [];
    this.#handlers.onClose(this.#reason);
  };
}
