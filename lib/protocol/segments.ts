/**
 * Segments: what a Noise transport message decrypts to.
 *
 *   plaintext = 1*segment
 *   segment   = flags(1) || uint16 BE length || length bytes     (length ≥ 1)
 *
 * Flags bit 0 (MORE) says the envelope continues in the next segment; the
 * other bits are reserved and must be 0. Envelopes queued in the same turn
 * share one plaintext (one seal, one open); an envelope larger than what is
 * left of a plaintext continues in the next one. Pure code, no I/O.
 */
import { MeshError } from '../errors.ts';
import type { EncodedEnvelope } from './envelope-codec.ts';

/** Flag bit: the envelope continues in the next segment. */
export const SEGMENT_MORE = 0x01;
/** Bytes before each segment's data. */
export const SEGMENT_HEADER_LENGTH = 3;
/** Largest Noise plaintext: 65535-byte message minus the 16-byte tag. */
export const MAX_PLAINTEXT = 65535 - 16;

/**
 * Packs envelopes, in order, into as few plaintexts of at most `maxPlaintext`
 * bytes as fit, and returns them. Each byte of header and payload is copied
 * exactly once. (The connection seals with {@link forEachPlaintext}, which
 * copies into one reused buffer instead.)
 */
export function packSegments(envelopes: readonly EncodedEnvelope[], maxPlaintext = MAX_PLAINTEXT): Buffer[] {
  const out: Buffer[] = [];
  forEachPlaintext(envelopes, (plaintext) => out.push(Buffer.from(plaintext)), maxPlaintext);
  return out;
}

/** The one buffer plaintexts are packed into (the calls are synchronous). */
let scratch: Buffer | undefined;

/**
 * Packs envelopes like {@link packSegments}, but hands each plaintext to
 * `onPlaintext` as a view of one buffer that is reused for the next
 * plaintext, by every connection of the process: seal it (which copies it)
 * before returning, never keep it. Nothing is allocated per call, so a busy
 * connection does not feed the garbage collector one large buffer per turn.
 */
export function forEachPlaintext(envelopes: readonly EncodedEnvelope[], onPlaintext: (plaintext: Buffer) => void, maxPlaintext = MAX_PLAINTEXT): void {
  if (maxPlaintext < SEGMENT_HEADER_LENGTH + 1 || maxPlaintext > MAX_PLAINTEXT) {
    throw new MeshError('MESH_ERR_CONFIG', `maxPlaintext must be ${SEGMENT_HEADER_LENGTH + 1}..${MAX_PLAINTEXT}, got ${maxPlaintext}`);
  }
  const current = (scratch ??= Buffer.allocUnsafeSlow(MAX_PLAINTEXT));
  // Taken while in use: a nested call (from onPlaintext) gets its own buffer.
  scratch = undefined;
  try {
    let pos = 0;
    for (const env of envelopes) {
      let remaining = env.length;
      let offset = 0; // into head || payload
      while (remaining > 0) {
        if (maxPlaintext - pos <= SEGMENT_HEADER_LENGTH) {
          onPlaintext(current.subarray(0, pos));
          pos = 0;
        }
        const n = Math.min(remaining, maxPlaintext - pos - SEGMENT_HEADER_LENGTH);
        remaining -= n;
        current[pos] = remaining > 0 ? SEGMENT_MORE : 0;
        current.writeUInt16BE(n, pos + 1);
        pos += SEGMENT_HEADER_LENGTH;
        pos = copyRange(env, offset, n, current, pos);
        offset += n;
      }
    }
    if (pos > 0) onPlaintext(current.subarray(0, pos));
  } finally {
    scratch = current;
  }
}

/** Copies `n` bytes of head||payload starting at `offset` into `target` at `pos`; returns the new pos. */
function copyRange(env: EncodedEnvelope, offset: number, n: number, target: Buffer, pos: number): number {
  const headLength = env.head.length;
  if (offset < headLength) {
    const k = Math.min(n, headLength - offset);
    env.head.copy(target, pos, offset, offset + k);
    pos += k;
    offset += k;
    n -= k;
  }
  if (n > 0) {
    const start = offset - headLength;
    target.set(env.payload.subarray(start, start + n), pos);
    pos += n;
  }
  return pos;
}

/**
 * Reads decrypted plaintexts back into whole envelopes. Reassembly of an
 * envelope split across segments is bounded by `maxEnvelope` bytes; parts are
 * kept as views and joined with one copy when the last one arrives.
 */
export class SegmentReader {
  readonly #maxEnvelope: number;
  #parts: Uint8Array[] = [];
  #partBytes = 0;

  constructor(maxEnvelope: number) {
    this.#maxEnvelope = maxEnvelope;
  }

  /** Bytes held for an envelope still being reassembled. */
  get pendingBytes(): number {
    return this.#partBytes;
  }

  /**
   * Reads every segment of one plaintext and calls `onEnvelope` for each
   * envelope it completes. Throws MESH_ERR_PROTOCOL for a malformed segment
   * and MESH_ERR_ENVELOPE_TOO_LARGE when reassembly passes the bound.
   */
  push(plaintext: Uint8Array, onEnvelope: (envelope: Uint8Array) => void): void {
    if (plaintext.length === 0) throw new MeshError('MESH_ERR_PROTOCOL', 'empty transport message');
    let pos = 0;
    while (pos < plaintext.length) {
      if (plaintext.length - pos < SEGMENT_HEADER_LENGTH) throw new MeshError('MESH_ERR_PROTOCOL', 'truncated segment header');
      const flags = plaintext[pos]!;
      const length = (plaintext[pos + 1]! << 8) | plaintext[pos + 2]!;
      pos += SEGMENT_HEADER_LENGTH;
      if ((flags & ~SEGMENT_MORE) !== 0) throw new MeshError('MESH_ERR_PROTOCOL', `segment has reserved flag bits set (0x${flags.toString(16)})`);
      if (length === 0) throw new MeshError('MESH_ERR_PROTOCOL', 'zero-length segment');
      if (length > plaintext.length - pos) throw new MeshError('MESH_ERR_PROTOCOL', `segment length ${length} runs past the message`);
      const data = plaintext.subarray(pos, pos + length);
      pos += length;
      if (this.#partBytes + length > this.#maxEnvelope) {
        const total = this.#partBytes + length;
        this.#parts = [];
        this.#partBytes = 0;
        throw new MeshError('MESH_ERR_ENVELOPE_TOO_LARGE', `envelope reassembly reached ${total} bytes, over the bound of ${this.#maxEnvelope}`);
      }
      if (flags & SEGMENT_MORE) {
        this.#parts.push(data);
        this.#partBytes += length;
        continue;
      }
      if (this.#parts.length === 0) {
        onEnvelope(data);
        continue;
      }
      this.#parts.push(data);
      const whole = Buffer.allocUnsafe(this.#partBytes + length);
      let at = 0;
      for (const part of this.#parts) {
        whole.set(part, at);
        at += part.length;
      }
      this.#parts = [];
      this.#partBytes = 0;
      onEnvelope(whole);
    }
  }
}
