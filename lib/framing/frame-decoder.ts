/**
 * Frame decoding (docs/protocol.md#3-framing): turns a TCP byte stream, cut
 * into chunks of any size, back into frames. A pure state machine: no I/O,
 * no timers.
 *
 * Copying rules, so a byte stream costs O(bytes) whatever its chunking:
 * - a frame (or the prefix) lying wholly within one chunk is delivered as a
 *   zero-copy `subarray` of that chunk (it shares the chunk's memory: keep it
 *   only as long as you would keep the chunk, or copy it);
 * - a frame spanning chunks is assembled in one buffer of exactly its length,
 *   allocated once its header is known; each piece is copied in once;
 * - a header split across chunks is held as one byte of state, not a buffer.
 * There is no `Buffer.concat` and no growing buffer
 * (docs/architecture.md#performance).
 */

import { MeshError } from '../errors.ts';
import { FRAME_HEADER_LENGTH, MAX_FRAME_LENGTH } from './frame-encoder.ts';

/** Options for {@link FrameDecoder}. */
export interface FrameDecoderOptions {
  /**
   * The largest frame body accepted, `0..65535` (default 65535). A header that
   * declares more is rejected as soon as its 2 bytes are read.
   */
  maxFrameLength?: number;
  /**
   * Bytes of unframed prefix at the very start of the stream (the 8-byte
   * preamble, docs/protocol.md#1-preamble), delivered once to `onPrefix`
   * before any frame.
   * `0..65535`, default 0 (no prefix).
   */
  prefixLength?: number;
}

/** Receives each decoded frame body. */
export type FrameHandler = (frame: Buffer) => void;

/** Receives the unframed prefix, once. */
export type PrefixHandler = (prefix: Buffer) => void;

/** Where the decoder is in the stream. */
const Phase = {
  /** Reading the unframed prefix. */
  Prefix: 0,
  /** Reading a 2-byte length header (possibly holding its first byte). */
  Header: 1,
  /** Assembling a body that spans chunks into `partial`. */
  Body: 2,
} as const;
type Phase = (typeof Phase)[keyof typeof Phase];

function checkLimit(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 0 || value > MAX_FRAME_LENGTH) {
    throw new MeshError('MESH_ERR_CONFIG', `FrameDecoder: ${name} must be an integer in 0..${MAX_FRAME_LENGTH}, got ${String(value)}`);
  }
  return value;
}

/**
 * Incremental decoder for the `uint16 BE length || body` framing, with an
 * optional unframed prefix.
 *
 * Errors: a declared length over `maxFrameLength` throws `MeshError`
 * `MESH_ERR_FRAME_TOO_LARGE` from {@link FrameDecoder.push} right after the
 * 2 header bytes, before any body byte is looked at. A callback that throws
 * has its error rethrown from `push`. Either way the decoder is then
 * poisoned: the stream position is lost, and every later `push` throws again
 * (the same `MESH_ERR_FRAME_TOO_LARGE` error, or a `MESH_ERR_PROTOCOL` error
 * whose cause is what the callback threw).
 *
 * Memory: the decoder itself never holds more than one partial frame
 * (at most `maxFrameLength` bytes) or the partial prefix, plus one header
 * byte; see {@link FrameDecoder.bufferedBytes}. With transient frames it
 * keeps one buffer of `maxFrameLength` bytes once a frame has spanned chunks.
 */
export class FrameDecoder {
  #maxFrameLength: number;
  readonly #prefixLength: number;
  #phase: Phase;
  /** 1 when the first header byte is held in `#headerHigh`. */
  #headerHave = 0;
  #headerHigh = 0;
  /** The frame or prefix being assembled across chunks, exactly its length. */
  #partial: Buffer | undefined = undefined;
  /** With transient frames: the buffer spanning frames are assembled in, reused. */
  #scratch: Buffer | undefined = undefined;
  #transient = false;
  #filled = 0;
  #error: MeshError | undefined = undefined;
  #busy = false;

  constructor(options: FrameDecoderOptions = {}) {
    this.#maxFrameLength = checkLimit('maxFrameLength', options.maxFrameLength ?? MAX_FRAME_LENGTH);
    this.#prefixLength = checkLimit('prefixLength', options.prefixLength ?? 0);
    this.#phase = this.#prefixLength > 0 ? Phase.Prefix : Phase.Header;
  }

  /** The configured maximum frame body length. */
  get maxFrameLength(): number {
    return this.#maxFrameLength;
  }

  /**
   * Changes the limit for frames whose header has not been read yet (the
   * handshake runs with a small limit, transport with the full one).
   */
  set maxFrameLength(value: number) {
    this.#maxFrameLength = checkLimit('maxFrameLength', value);
  }

  /**
   * Whether the frames delivered may be views of memory the decoder reuses.
   * Off by default: a frame that spans chunks gets a buffer of its own. On
   * (for a consumer that is done with each frame when `onFrame` returns,
   * such as a connection that decrypts it at once), frames that span chunks
   * are assembled in one buffer kept for the next such frame, so a stream of
   * large frames does not allocate one buffer per frame.
   */
  get transientFrames(): boolean {
    return this.#transient;
  }

  set transientFrames(value: boolean) {
    this.#transient = value;
    if (!value) this.#scratch = undefined;
  }

  /**
   * Bytes the decoder holds of its own between pushes: the buffer of a frame
   * (or prefix) being assembled, counted at its full allocated length, plus a
   * held header byte. Never more than `1 + max(maxFrameLength, prefixLength)`.
   */
  get bufferedBytes(): number {
    return (this.#partial === undefined ? 0 : this.#partial.length) + this.#headerHave;
  }

  /**
   * True at a frame boundary with nothing held and the prefix (if any)
   * already delivered: a stream that ends here ended cleanly.
   */
  get atBoundary(): boolean {
    return this.#phase === Phase.Header && this.#headerHave === 0;
  }

  /** True once the decoder has thrown and is unusable. */
  get failed(): boolean {
    return this.#error !== undefined;
  }

  /**
   * Decodes `chunk`, calling `onPrefix` once for the prefix and `onFrame` for
   * every complete frame, in stream order and synchronously. Bytes of an
   * incomplete frame are kept for the next push.
   *
   * @throws MeshError `MESH_ERR_FRAME_TOO_LARGE` for a declared length over the
   *   limit; whatever a callback throws; or the poison error on a decoder that
   *   has already thrown. Pushing from inside a callback throws
   *   `MESH_ERR_PROTOCOL`.
   */
  push(chunk: Buffer, onFrame: FrameHandler, onPrefix?: PrefixHandler): void {
    this.#consume(chunk, onFrame, onPrefix, undefined);
  }

  /**
   * Like {@link FrameDecoder.push}, but calls `stop()` after each delivered
   * frame (and after the prefix) and returns early when it says true. Returns
   * how many bytes of `chunk` were consumed: the caller keeps
   * `chunk.subarray(consumed)` and pushes it later to go on. Used by
   * `FramedSocket` to honour `pause()` in the middle of a chunk.
   */
  pushUntil(chunk: Buffer, stop: () => boolean, onFrame: FrameHandler, onPrefix?: PrefixHandler): number {
    return this.#consume(chunk, onFrame, onPrefix, stop);
  }

  #consume(chunk: Buffer, onFrame: FrameHandler, onPrefix: PrefixHandler | undefined, stop: (() => boolean) | undefined): number {
    if (this.#error !== undefined) throw this.#error;
    if (this.#busy) {
      throw new MeshError('MESH_ERR_PROTOCOL', 'FrameDecoder: push called from inside a frame callback');
    }
    this.#busy = true;
    try {
      return this.#run(chunk, onFrame, onPrefix, stop);
    } catch (err) {
      this.#partial = undefined;
      this.#error =
        err instanceof MeshError && err.code === 'MESH_ERR_FRAME_TOO_LARGE'
          ? err
          : new MeshError('MESH_ERR_PROTOCOL', 'FrameDecoder: a callback threw; the stream position is lost', { cause: err });
      throw err;
    } finally {
      this.#busy = false;
    }
  }

  #scratchOf(length: number): Buffer {
    if (this.#scratch === undefined || this.#scratch.length < length) this.#scratch = Buffer.allocUnsafeSlow(Math.max(length, this.#maxFrameLength));
    return this.#scratch.subarray(0, length);
  }

  #run(chunk: Buffer, onFrame: FrameHandler, onPrefix: PrefixHandler | undefined, stop: (() => boolean) | undefined): number {
    const end = chunk.length;
    let offset = 0;
    while (offset < end) {
      switch (this.#phase) {
        case Phase.Header: {
          let length: number;
          if (this.#headerHave === 1) {
            length = (this.#headerHigh << 8) | chunk[offset]!;
            this.#headerHave = 0;
            offset += 1;
          } else if (end - offset >= FRAME_HEADER_LENGTH) {
            length = (chunk[offset]! << 8) | chunk[offset + 1]!;
            offset += FRAME_HEADER_LENGTH;
          } else {
            this.#headerHigh = chunk[offset]!;
            this.#headerHave = 1;
            return end;
          }
          if (length > this.#maxFrameLength) {
            throw new MeshError(
              'MESH_ERR_FRAME_TOO_LARGE',
              `frame length ${length} is over the maximum frame length ${this.#maxFrameLength}`,
            );
          }
          if (length === 0) {
            onFrame(Buffer.alloc(0));
          } else if (end - offset >= length) {
            const frame = chunk.subarray(offset, offset + length);
            offset += length;
            onFrame(frame);
          } else {
            // Spans chunks: one allocation of exactly the frame's length,
            // or a view of the reused buffer when frames are transient.
            const partial = this.#transient ? this.#scratchOf(length) : Buffer.allocUnsafe(length);
            this.#filled = chunk.copy(partial, 0, offset, end);
            this.#partial = partial;
            this.#phase = Phase.Body;
            return end;
          }
          break;
        }
        case Phase.Body: {
          const partial = this.#partial!;
          const take = Math.min(partial.length - this.#filled, end - offset);
          chunk.copy(partial, this.#filled, offset, offset + take);
          this.#filled += take;
          offset += take;
          if (this.#filled < partial.length) return end;
          this.#partial = undefined;
          this.#phase = Phase.Header;
          onFrame(partial);
          break;
        }
        case Phase.Prefix: {
          const length = this.#prefixLength;
          let prefix: Buffer;
          if (this.#partial === undefined && end - offset >= length) {
            prefix = chunk.subarray(offset, offset + length);
            offset += length;
          } else {
            if (this.#partial === undefined) {
              this.#partial = Buffer.allocUnsafe(length);
              this.#filled = 0;
            }
            const partial = this.#partial;
            const take = Math.min(length - this.#filled, end - offset);
            chunk.copy(partial, this.#filled, offset, offset + take);
            this.#filled += take;
            offset += take;
            if (this.#filled < length) return end;
            this.#partial = undefined;
            prefix = partial;
          }
          this.#phase = Phase.Header;
          if (onPrefix !== undefined) onPrefix(prefix);
          break;
        }
      }
      if (stop !== undefined && stop()) return offset;
    }
    return offset;
  }
}
