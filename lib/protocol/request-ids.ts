/**
 * Request ids and the map keys made from ids. An id is 16 random bytes
 * (docs/protocol.md): drawing them one at a time costs a call into the
 * system's random source per request, so they are cut from a pool refilled
 * 256 at a time. The random source is injected (tests pass a fixed one).
 */

/** Fills `bytes` with random bytes (node:crypto's randomFillSync). */
export type RandomFill = (bytes: Uint8Array) => unknown;

/** Bytes in a request id. */
const ID_BYTES = 16;
/** Ids drawn per call to the random source. */
const IDS_PER_FILL = 256;

/**
 * Returns a function that hands out fresh 16-byte ids. Each id is its own
 * view of a pool that is never written again once handed out, so ids may be
 * kept for as long as needed.
 */
export function requestIdSource(fill: RandomFill, idsPerFill = IDS_PER_FILL): () => Buffer {
  let pool = Buffer.alloc(0);
  let offset = 0;
  return () => {
    if (offset === pool.length) {
      pool = Buffer.allocUnsafeSlow(ID_BYTES * idsPerFill);
      fill(pool);
      offset = 0;
    }
    const id = pool.subarray(offset, offset + ID_BYTES);
    offset += ID_BYTES;
    return id;
  };
}

/** Lower-case hex of bytes, without copying them (map keys of ids). */
export function hexOf(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}
