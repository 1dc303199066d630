import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { forEachPlaintext, MAX_PLAINTEXT, packSegments, SegmentReader, SEGMENT_MORE } from '../../lib/protocol/segments.ts';
import type { EncodedEnvelope } from '../../lib/protocol/envelope-codec.ts';
import { MeshError } from '../../lib/errors.ts';

function env(head: Uint8Array, payload: Uint8Array): EncodedEnvelope {
  return { head: Buffer.from(head), payload, length: head.length + payload.length };
}

const envelopeArb = fc.tuple(fc.uint8Array({ minLength: 1, maxLength: 300 }), fc.uint8Array({ maxLength: 5000 })).map(([h, p]) => env(h, p));

function readAll(plaintexts: Buffer[], maxEnvelope: number): Buffer[] {
  const reader = new SegmentReader(maxEnvelope);
  const out: Buffer[] = [];
  for (const p of plaintexts) reader.push(p, (e) => out.push(Buffer.from(e)));
  assert.equal(reader.pendingBytes, 0);
  return out;
}

test('any envelopes packed at any plaintext size read back identically (property)', () => {
  fc.assert(
    fc.property(fc.array(envelopeArb, { maxLength: 12 }), fc.integer({ min: 4, max: 9000 }), (envs, max) => {
      const plaintexts = packSegments(envs, max);
      for (const p of plaintexts) assert.ok(p.length <= max && p.length > 0);
      const back = readAll(plaintexts, 1 << 20);
      assert.deepEqual(back, envs.map((e) => Buffer.concat([e.head, e.payload])));
    }),
    { numRuns: 500 },
  );
});

test('small envelopes of one turn share one plaintext', () => {
  const envs = Array.from({ length: 50 }, (_, i) => env(Buffer.from([0, 1, i]), Buffer.alloc(100, i)));
  const plaintexts = packSegments(envs);
  assert.equal(plaintexts.length, 1);
  assert.equal(plaintexts[0]!.length, 50 * (3 + 103));
});

test('a 1 MiB envelope is split across full plaintexts with MORE set on all but the last segment', () => {
  const big = env(Buffer.from([0, 1, 0xa0]), new Uint8Array(1024 * 1024).fill(7));
  const plaintexts = packSegments([big]);
  assert.equal(plaintexts.length, Math.ceil(big.length / (MAX_PLAINTEXT - 3)));
  plaintexts.forEach((p, i) => {
    assert.equal(p[0], i < plaintexts.length - 1 ? SEGMENT_MORE : 0);
    if (i < plaintexts.length - 1) assert.equal(p.length, MAX_PLAINTEXT);
  });
  const [back] = readAll(plaintexts, 2 << 20);
  assert.equal(back!.length, big.length);
});

function expectCode(fn: () => unknown, code: string, re: RegExp): void {
  assert.throws(fn, (e: unknown) => e instanceof MeshError && e.code === code && re.test(e.message));
}

test('reassembly past its bound fails with MESH_ERR_ENVELOPE_TOO_LARGE and holds nothing', () => {
  const plaintexts = packSegments([env(Buffer.from([0, 1, 0xa0]), new Uint8Array(200_000))]);
  const reader = new SegmentReader(100_000);
  expectCode(() => {
    for (const p of plaintexts) reader.push(p, () => assert.fail('no envelope expected'));
  }, 'MESH_ERR_ENVELOPE_TOO_LARGE', /over the bound of 100000/);
  assert.equal(reader.pendingBytes, 0);
});

test('malformed segments are refused', () => {
  const r = () => new SegmentReader(1000);
  const noop = () => {};
  expectCode(() => r().push(Buffer.alloc(0), noop), 'MESH_ERR_PROTOCOL', /empty/);
  expectCode(() => r().push(Buffer.from([0, 0]), noop), 'MESH_ERR_PROTOCOL', /truncated segment header/);
  expectCode(() => r().push(Buffer.from([0x02, 0, 1, 9]), noop), 'MESH_ERR_PROTOCOL', /reserved flag/);
  expectCode(() => r().push(Buffer.from([0, 0, 0]), noop), 'MESH_ERR_PROTOCOL', /zero-length/);
  expectCode(() => r().push(Buffer.from([0, 0, 5, 1, 2]), noop), 'MESH_ERR_PROTOCOL', /runs past/);
});

test('forEachPlaintext packs into one reused buffer; a nested call gets a buffer of its own', () => {
  const envs = [env(Buffer.from([1, 2]), new Uint8Array(70_000).fill(3)), env(Buffer.from([4]), new Uint8Array(10).fill(5))];
  const seen: Array<{ backing: ArrayBufferLike; copy: Buffer }> = [];
  forEachPlaintext(envs, (p) => {
    seen.push({ backing: p.buffer, copy: Buffer.from(p) });
    // Packing from inside the callback must not overwrite the plaintext being handed out.
    const before = Buffer.from(p);
    forEachPlaintext([env(Buffer.from([9]), new Uint8Array(100).fill(9))], (inner) => assert.notEqual(inner.buffer, p.buffer));
    assert.deepEqual(Buffer.from(p), before);
  });
  assert.equal(seen.length, 2);
  assert.equal(seen[0]!.backing, seen[1]!.backing, 'the same buffer for every plaintext');
  assert.deepEqual(
    seen.map((s) => s.copy),
    packSegments(envs),
  );
  forEachPlaintext(envs, (p) => assert.equal(p.buffer, seen[0]!.backing, 'and again on the next call'));
});
