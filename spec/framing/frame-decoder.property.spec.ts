// Property tests: framing survives any chunking (docs/protocol.md#3-framing).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { FrameDecoder } from '../../lib/framing/frame-decoder.ts';
import { encodeFrame } from '../../lib/framing/frame-encoder.ts';

const frameArb = fc.oneof(
  { weight: 1, arbitrary: fc.constant(new Uint8Array(0)) },
  { weight: 6, arbitrary: fc.uint8Array({ maxLength: 64 }) },
  { weight: 2, arbitrary: fc.uint8Array({ minLength: 200, maxLength: 3000 }) },
);
const framesArb = fc.array(frameArb, { maxLength: 30 });
const prefixArb = fc.option(fc.uint8Array({ minLength: 8, maxLength: 8 }), { nil: undefined });

function wireOf(frames: readonly Uint8Array[], prefix: Uint8Array | undefined): Buffer {
  const parts: Buffer[] = frames.map((f) => encodeFrame(f));
  if (prefix !== undefined) parts.unshift(Buffer.from(prefix));
  return Buffer.concat(parts);
}

/** Cuts `wire` at the given points (any numbers; taken modulo the length). */
function split(wire: Buffer, cuts: readonly number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => (wire.length === 0 ? 0 : c % (wire.length + 1))))].sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let from = 0;
  for (const p of points) {
    chunks.push(wire.subarray(from, p)); // may be empty: empty chunks are legal too
    from = p;
  }
  chunks.push(wire.subarray(from));
  return chunks;
}

function decode(chunks: readonly Buffer[], prefixLength: number, maxFrameLength = 65535): { frames: Buffer[]; prefixes: Buffer[]; decoder: FrameDecoder } {
  const decoder = new FrameDecoder({ prefixLength, maxFrameLength });
  const frames: Buffer[] = [];
  const prefixes: Buffer[] = [];
  for (const chunk of chunks) {
    decoder.push(
      chunk,
      (f) => frames.push(Buffer.from(f)),
      (p) => prefixes.push(Buffer.from(p)),
    );
    assert.ok(decoder.bufferedBytes <= 2 + maxFrameLength + prefixLength, `bufferedBytes ${decoder.bufferedBytes}`);
  }
  return { frames, prefixes, decoder };
}

function check(frames: readonly Uint8Array[], prefix: Uint8Array | undefined, chunks: readonly Buffer[]): void {
  const prefixLength = prefix === undefined ? 0 : prefix.length;
  const out = decode(chunks, prefixLength);
  assert.deepEqual(out.frames, frames.map((f) => Buffer.from(f)));
  assert.deepEqual(out.prefixes, prefix === undefined ? [] : [Buffer.from(prefix)]);
  assert.equal(out.decoder.bufferedBytes, 0);
  assert.equal(out.decoder.atBoundary, true);
}

void test('any split of a frame stream decodes to the same frames (with and without prefix)', () => {
  fc.assert(
    fc.property(framesArb, prefixArb, fc.array(fc.nat(), { maxLength: 40 }), (frames, prefix, cuts) => {
      const wire = wireOf(frames, prefix);
      check(frames, prefix, split(wire, cuts));
    }),
    { numRuns: 300 },
  );
});

void test('1-byte-at-a-time split decodes to the same frames (with and without prefix)', () => {
  fc.assert(
    fc.property(framesArb, prefixArb, (frames, prefix) => {
      const wire = wireOf(frames, prefix);
      const chunks: Buffer[] = [];
      for (let i = 0; i < wire.length; i++) chunks.push(wire.subarray(i, i + 1));
      check(frames, prefix, chunks);
    }),
    { numRuns: 100 },
  );
});

void test('frames up to a small maxFrameLength decode under any split; one byte over is rejected', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 300 }),
      fc.array(fc.nat(), { maxLength: 20 }),
      fc.integer({ min: 1, max: 30 }),
      (max, cuts, count) => {
        const frames = Array.from({ length: count }, (_, i) => new Uint8Array((i * 37) % (max + 1)).fill(i));
        const wire = wireOf(frames, undefined);
        const out = decode(split(wire, cuts), 0, max);
        assert.deepEqual(out.frames, frames.map((f) => Buffer.from(f)));

        const over = Buffer.concat([wire, encodeFrame(new Uint8Array(max + 1))]);
        assert.throws(() => decode(split(over, cuts), 0, max), { code: 'MESH_ERR_FRAME_TOO_LARGE' });
      },
    ),
    { numRuns: 200 },
  );
});

void test('with transient frames, any split decodes to the same frames, and spanning frames reuse one buffer', () => {
  fc.assert(
    fc.property(framesArb, fc.array(fc.nat(), { maxLength: 40 }), (frames, cuts) => {
      const decoder = new FrameDecoder();
      decoder.transientFrames = true;
      const got: Buffer[] = [];
      const backings = new Set<ArrayBufferLike>();
      const chunks = split(wireOf(frames, undefined), cuts);
      const chunkBackings = new Set(chunks.map((c) => c.buffer));
      // Each frame is copied inside the callback, as a transient consumer must.
      for (const c of chunks) {
        decoder.push(c, (f) => {
          got.push(Buffer.from(f));
          if (f.length > 0 && !chunkBackings.has(f.buffer)) backings.add(f.buffer);
        });
      }
      assert.deepEqual(got, frames.map((f) => Buffer.from(f)));
      assert.ok(backings.size <= 1, `spanning frames were assembled in ${backings.size} buffers`);
    }),
    { numRuns: 300 },
  );
});
