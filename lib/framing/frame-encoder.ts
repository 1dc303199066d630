/**
 * Frame encoding (docs/protocol.md#3-framing): every frame on the wire is
 * `uint16 BE length` followed by that many body bytes. The encoder is a pure
 * codec: no I/O, no module-level mutable state.
 *
 * The hot path does not use {@link encodeFrame}: `FramedSocket.writeFrames`
 * writes each frame's 2-byte header (with {@link writeFrameHeader}, all the
 * headers of a batch in one buffer) and its body as separate buffers inside
 * `cork()`/`uncork()`, so bodies are never copied and Node issues one
 * `writev` per batch.
 */

import { MeshError } from '../errors.ts';

/** Bytes of the length prefix in front of every frame body. */
export const FRAME_HEADER_LENGTH = 2;

/** The largest body a frame can carry: the length prefix is a uint16. */
export const MAX_FRAME_LENGTH = 0xffff;

/**
 * Throws `MESH_ERR_FRAME_TOO_LARGE` unless `length` is an integer in
 * `0..MAX_FRAME_LENGTH`.
 */
export function assertFrameLength(length: number): void {
  if (!Number.isInteger(length) || length < 0 || length > MAX_FRAME_LENGTH) {
    throw new MeshError('MESH_ERR_FRAME_TOO_LARGE', `frame length ${String(length)} is not an integer in 0..${MAX_FRAME_LENGTH}`);
  }
}

/**
 * Writes the 2-byte big-endian length prefix for a body of `length` bytes into
 * `target` at `offset`. Validates `length` like {@link frameHeader}.
 */
export function writeFrameHeader(target: Uint8Array, offset: number, length: number): void {
  assertFrameLength(length);
  target[offset] = length >>> 8;
  target[offset + 1] = length & 0xff;
}

/**
 * The 2-byte big-endian length prefix for a body of `length` bytes.
 *
 * @throws MeshError `MESH_ERR_FRAME_TOO_LARGE` when `length` is not an integer
 *   in `0..65535`.
 */
export function frameHeader(length: number): Buffer {
  const header = Buffer.allocUnsafe(FRAME_HEADER_LENGTH);
  writeFrameHeader(header, 0, length);
  return header;
}

/**
 * One buffer holding header and body. It copies the body, so it is meant for
 * tests and small one-off frames; sockets write header and body separately.
 *
 * @throws MeshError `MESH_ERR_FRAME_TOO_LARGE` when the body is over 65535 bytes.
 */
export function encodeFrame(body: Uint8Array): Buffer {
  assertFrameLength(body.length);
  const frame = Buffer.allocUnsafe(FRAME_HEADER_LENGTH + body.length);
  writeFrameHeader(frame, 0, body.length);
  frame.set(body, FRAME_HEADER_LENGTH);
  return frame;
}
