import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FrameDecoder } from '../../lib/framing/frame-decoder.ts';
import { encodeFrame } from '../../lib/framing/frame-encoder.ts';
import { isMeshError } from '../../lib/errors.ts';

/** Pushes every chunk and returns the frames (copied) and prefixes seen. */
function decodeAll(decoder: FrameDecoder, chunks: readonly Buffer[]): { frames: Buffer[]; prefixes: Buffer[] } {
  const frames: Buffer[] = [];
  const prefixes: Buffer[] = [];
  for (const chunk of chunks) {
    decoder.push(
      chunk,
      (f) => frames.push(Buffer.from(f)),
      (p) => prefixes.push(Buffer.from(p)),
    );
  }
  return { frames, prefixes };
}

function bytes(n: number, seed = 1): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) & 0xff;
  return b;
}

void test('decodes several frames in one chunk as zero-copy views', () => {
  const a = bytes(10, 1);
  const b = bytes(300, 2);
  const chunk = Buffer.concat([encodeFrame(a), encodeFrame(b)]);
  const seen: Buffer[] = [];
  new FrameDecoder().push(chunk, (f) => seen.push(f));
  assert.equal(seen.length, 2);
  assert.deepEqual(seen[0], a);
  assert.deepEqual(seen[1], b);
  // Views into the chunk, not copies.
  assert.equal(seen[0].buffer, chunk.buffer);
  assert.equal(seen[0].byteOffset, chunk.byteOffset + 2);
  assert.equal(seen[1].buffer, chunk.buffer);
  assert.equal(seen[1].byteOffset, chunk.byteOffset + 2 + 10 + 2);
});

void test('zero-length frames are delivered as empty buffers', () => {
  const chunk = Buffer.concat([encodeFrame(Buffer.alloc(0)), encodeFrame(Buffer.from('x')), encodeFrame(Buffer.alloc(0))]);
  const { frames } = decodeAll(new FrameDecoder(), [chunk]);
  assert.deepEqual(frames, [Buffer.alloc(0), Buffer.from('x'), Buffer.alloc(0)]);
  // And when the empty frame's header is split across chunks.
  const split = decodeAll(new FrameDecoder(), [Buffer.from([0]), Buffer.from([0])]);
  assert.deepEqual(split.frames, [Buffer.alloc(0)]);
});

void test('header split across chunks', () => {
  const body = bytes(700);
  const wire = encodeFrame(body);
  const decoder = new FrameDecoder();
  const seen: Buffer[] = [];
  decoder.push(wire.subarray(0, 1), (f) => seen.push(f));
  assert.equal(seen.length, 0);
  assert.equal(decoder.bufferedBytes, 1);
  assert.equal(decoder.atBoundary, false);
  decoder.push(wire.subarray(1, 2), (f) => seen.push(f));
  // Header complete: exactly the body's length is allocated.
  assert.equal(decoder.bufferedBytes, 700);
  decoder.push(wire.subarray(2), (f) => seen.push(f));
  assert.equal(seen.length, 1);
  assert.deepEqual(seen[0], body);
  assert.equal(decoder.bufferedBytes, 0);
  assert.equal(decoder.atBoundary, true);
});

void test('frame spanning chunks is assembled into one exact-length buffer', () => {
  const body = bytes(5000);
  const wire = encodeFrame(body);
  const decoder = new FrameDecoder();
  const seen: Buffer[] = [];
  for (const [from, to] of [
    [0, 3],
    [3, 1000],
    [1000, 4999],
    [4999, 5002],
  ] as const) {
    decoder.push(wire.subarray(from, to), (f) => seen.push(f));
  }
  assert.equal(seen.length, 1);
  assert.deepEqual(seen[0], body);
  assert.equal(seen[0].length, 5000);
});

void test('prefix is delivered once, before frames, whole or assembled', () => {
  const prefix = Buffer.from('MESH\x01\x00\x00\x00', 'latin1');
  const wire = Buffer.concat([prefix, encodeFrame(Buffer.from('a')), encodeFrame(Buffer.from('bc'))]);

  const whole = decodeAll(new FrameDecoder({ prefixLength: 8 }), [wire]);
  assert.deepEqual(whole.prefixes, [prefix]);
  assert.deepEqual(whole.frames, [Buffer.from('a'), Buffer.from('bc')]);

  const pieces = [wire.subarray(0, 3), wire.subarray(3, 9), wire.subarray(9)];
  const split = decodeAll(new FrameDecoder({ prefixLength: 8 }), pieces);
  assert.deepEqual(split.prefixes, [prefix]);
  assert.deepEqual(split.frames, [Buffer.from('a'), Buffer.from('bc')]);

  const order: string[] = [];
  new FrameDecoder({ prefixLength: 8 }).push(
    wire,
    () => order.push('frame'),
    () => order.push('prefix'),
  );
  assert.deepEqual(order, ['prefix', 'frame', 'frame']);
});

void test('partial prefix is held in a buffer of exactly the prefix length', () => {
  const decoder = new FrameDecoder({ prefixLength: 8 });
  decoder.push(Buffer.from('MES'), () => assert.fail('no frame yet'));
  assert.equal(decoder.bufferedBytes, 8);
  assert.equal(decoder.atBoundary, false);
});

void test('over-limit length is rejected right after the 2 header bytes', () => {
  const decoder = new FrameDecoder({ maxFrameLength: 1000 });
  const header = Buffer.from([0x03, 0xe9]); // 1001
  assert.throws(
    () => decoder.push(header, () => assert.fail('no frame')),
    (err: unknown) => isMeshError(err, 'MESH_ERR_FRAME_TOO_LARGE') && /1001/.test(err.message) && /1000/.test(err.message),
  );
  // Exactly at the limit is fine.
  const ok = new FrameDecoder({ maxFrameLength: 1000 });
  const seen: Buffer[] = [];
  ok.push(encodeFrame(bytes(1000)), (f) => seen.push(f));
  assert.equal(seen.length, 1);
});

void test('over-limit length is rejected when the header is split, before any body', () => {
  const decoder = new FrameDecoder({ maxFrameLength: 10 });
  decoder.push(Buffer.from([0x00]), () => assert.fail('no frame'));
  assert.throws(
    () => decoder.push(Buffer.from([0x0b]), () => assert.fail('no frame')),
    (err: unknown) => isMeshError(err, 'MESH_ERR_FRAME_TOO_LARGE'),
  );
  assert.equal(decoder.bufferedBytes, 0);
});

void test('poisoned after an error: every later push throws', () => {
  const decoder = new FrameDecoder({ maxFrameLength: 10 });
  let first: unknown;
  try {
    decoder.push(Buffer.from([0xff, 0xff]), () => undefined);
  } catch (err) {
    first = err;
  }
  assert.ok(isMeshError(first, 'MESH_ERR_FRAME_TOO_LARGE'));
  assert.equal(decoder.failed, true);
  assert.throws(
    () => decoder.push(encodeFrame(Buffer.from('ok')), () => assert.fail('no frame after poison')),
    (err: unknown) => err === first,
  );
  assert.throws(() => decoder.push(Buffer.alloc(0), () => undefined), (err: unknown) => err === first);
});

void test('a throwing callback poisons the decoder with MESH_ERR_PROTOCOL', () => {
  const decoder = new FrameDecoder();
  const boom = new Error('boom');
  const wire = Buffer.concat([encodeFrame(Buffer.from('a')), encodeFrame(Buffer.from('b'))]);
  assert.throws(
    () =>
      decoder.push(wire, () => {
        throw boom;
      }),
    (err: unknown) => err === boom,
  );
  assert.throws(
    () => decoder.push(wire, () => undefined),
    (err: unknown) => isMeshError(err, 'MESH_ERR_PROTOCOL') && err.cause === boom,
  );
});

void test('push from inside a callback is refused', () => {
  const decoder = new FrameDecoder();
  const wire = encodeFrame(Buffer.from('a'));
  let inner: unknown;
  assert.throws(() =>
    decoder.push(wire, () => {
      try {
        decoder.push(wire, () => undefined);
      } catch (err) {
        inner = err;
        throw err;
      }
    }),
  );
  assert.ok(isMeshError(inner, 'MESH_ERR_PROTOCOL'));
});

void test('bufferedBytes never exceeds 2 + maxFrameLength for max-size frames', () => {
  const decoder = new FrameDecoder();
  const wire = Buffer.concat([encodeFrame(bytes(65535, 3)), encodeFrame(bytes(65535, 4))]);
  const seen: Buffer[] = [];
  for (let i = 0; i < wire.length; i += 1000) {
    decoder.push(wire.subarray(i, i + 1000), (f) => seen.push(f));
    assert.ok(decoder.bufferedBytes <= 2 + 65535, `bufferedBytes ${decoder.bufferedBytes}`);
  }
  assert.equal(seen.length, 2);
  assert.deepEqual(seen[0], bytes(65535, 3));
  assert.deepEqual(seen[1], bytes(65535, 4));
  assert.equal(decoder.bufferedBytes, 0);
});

void test('no quadratic copying: a 60,000-byte frame pushed 1 byte at a time', () => {
  const body = bytes(60_000, 7);
  const wire = encodeFrame(body);
  const decoder = new FrameDecoder();
  const seen: Buffer[] = [];

  // Structural check: record the Buffer allocations and concatenations made
  // while decoding. One exact-length allocation for the body, nothing else.
  const calls: string[] = [];
  const spied = ['allocUnsafe', 'allocUnsafeSlow', 'alloc', 'concat'] as const;
  const saved = spied.map((name) => [name, Object.getOwnPropertyDescriptor(Buffer, name)!] as const);
  // Pre-slice the single-byte chunks so the spies see only the decoder's work.
  const chunks: Buffer[] = [];
  for (let i = 0; i < wire.length; i++) chunks.push(wire.subarray(i, i + 1));
  let maxBuffered = 0;
  try {
    for (const [name, descriptor] of saved) {
      const original = descriptor.value as (...args: unknown[]) => unknown;
      Object.defineProperty(Buffer, name, {
        ...descriptor,
        value: (...args: unknown[]) => {
          calls.push(`${name}:${typeof args[0] === 'number' ? String(args[0]) : 'list'}`);
          return original.apply(Buffer, args);
        },
      });
    }
    for (const chunk of chunks) {
      decoder.push(chunk, (f) => seen.push(f));
      if (decoder.bufferedBytes > maxBuffered) maxBuffered = decoder.bufferedBytes;
    }
  } finally {
    for (const [name, descriptor] of saved) Object.defineProperty(Buffer, name, descriptor);
  }
  assert.equal(seen.length, 1);
  assert.ok(seen[0]!.equals(body));
  assert.ok(maxBuffered <= 2 + 60_000, `maxBuffered ${maxBuffered}`);
  assert.equal(maxBuffered, 60_000);
  assert.deepEqual(calls, ['allocUnsafe:60000']);
});

void test('pushUntil stops after a frame and reports the bytes consumed', () => {
  const wire = Buffer.concat([encodeFrame(Buffer.from('a')), encodeFrame(Buffer.from('bb')), encodeFrame(Buffer.from('ccc'))]);
  const decoder = new FrameDecoder();
  const seen: string[] = [];
  const consumed = decoder.pushUntil(
    wire,
    () => seen.length === 1,
    (f) => seen.push(f.toString()),
  );
  assert.equal(consumed, 3);
  assert.deepEqual(seen, ['a']);
  const rest = decoder.pushUntil(
    wire.subarray(consumed),
    () => false,
    (f) => seen.push(f.toString()),
  );
  assert.equal(rest, wire.length - consumed);
  assert.deepEqual(seen, ['a', 'bb', 'ccc']);
});

void test('pushUntil stops after the prefix when asked', () => {
  const wire = Buffer.concat([Buffer.from('PREFIX!!'), encodeFrame(Buffer.from('a'))]);
  const decoder = new FrameDecoder({ prefixLength: 8 });
  let prefixes = 0;
  const consumed = decoder.pushUntil(
    wire,
    () => prefixes === 1,
    () => assert.fail('no frame yet'),
    () => prefixes++,
  );
  assert.equal(consumed, 8);
});

void test('constructor validates its options', () => {
  for (const bad of [-1, 65536, 1.5, Number.NaN]) {
    assert.throws(() => new FrameDecoder({ maxFrameLength: bad }), (err: unknown) => isMeshError(err, 'MESH_ERR_CONFIG'));
    assert.throws(() => new FrameDecoder({ prefixLength: bad }), (err: unknown) => isMeshError(err, 'MESH_ERR_CONFIG'));
  }
  assert.equal(new FrameDecoder({ maxFrameLength: 0 }).maxFrameLength, 0);
});
