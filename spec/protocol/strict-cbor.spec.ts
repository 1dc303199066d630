// The header CBOR codec on its own: RFC 8949 Appendix A examples (those in
// the header subset) byte for byte, shortest-form encoding, longer forms
// accepted, round trips of arbitrary header trees, and what it refuses.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { decodeHeader, HeaderCodec, MAX_DEPTH } from '../../lib/protocol/strict-cbor.ts';
import type { HeaderValue } from '../../lib/protocol/strict-cbor.ts';
import { MeshError } from '../../lib/errors.ts';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const fromHex = (h: string): Uint8Array => new Uint8Array(Buffer.from(h, 'hex'));

/** Values from RFC 8949 Appendix A that the header subset allows, with their encodings. */
const RFC_EXAMPLES: ReadonlyArray<[HeaderValue, string]> = [
  [0, '00'],
  [1, '01'],
  [10, '0a'],
  [23, '17'],
  [24, '1818'],
  [25, '1819'],
  [100, '1864'],
  [1000, '1903e8'],
  [1000000, '1a000f4240'],
  [1000000000000, '1b000000e8d4a51000'],
  [Number.MAX_SAFE_INTEGER, '1b001fffffffffffff'],
  [false, 'f4'],
  [true, 'f5'],
  [null, 'f6'],
  [new Uint8Array(0), '40'],
  [Uint8Array.from([1, 2, 3, 4]), '4401020304'],
  ['', '60'],
  ['a', '6161'],
  ['IETF', '6449455446'],
  ['"\\', '62225c'],
  ['\u00fc', '62c3bc'],
  ['\u6c34', '63e6b0b4'],
  ['\ud800\udd51', '64f0908591'],
  [[], '80'],
  [[1, 2, 3], '83010203'],
  [[1, [2, 3], [4, 5]], '8301820203820405'],
  [Array.from({ length: 25 }, (_, i) => i + 1), '98190102030405060708090a0b0c0d0e0f101112131415161718181819'],
  [new Map(), 'a0'],
  [new Map([[1, 2], [3, 4]]), 'a201020304'],
];

function plain(v: HeaderValue): unknown {
  if (v instanceof Uint8Array) return { bytes: hex(v) };
  if (Array.isArray(v)) return v.map(plain);
  if (v instanceof Map) return [...v].map(([k, x]) => [k, plain(x)]);
  return v;
}

function expectProtocol(bytes: Uint8Array, fragment: RegExp): void {
  assert.throws(
    () => decodeHeader(bytes),
    (e: unknown) => e instanceof MeshError && e.code === 'MESH_ERR_PROTOCOL' && fragment.test(e.message),
    `${hex(bytes)} should be refused with ${String(fragment)}`,
  );
}

test('RFC 8949 examples in the header subset encode byte for byte and decode back', () => {
  const codec = new HeaderCodec();
  for (const [value, encoding] of RFC_EXAMPLES) {
    // A header is a map: each example is the value of key 1.
    const wire = codec.encode(new Map([[1, value]]));
    assert.equal(hex(wire), `a101${encoding}`, JSON.stringify(plain(value)));
    assert.deepEqual(plain(decodeHeader(wire)), plain(new Map([[1, value]])));
  }
});

test('the encoder writes the shortest form at every length boundary; the decoder reads all', () => {
  const codec = new HeaderCodec();
  for (const [value, size] of [[23, 1], [24, 2], [255, 2], [256, 3], [65535, 3], [65536, 5], [2 ** 32 - 1, 5], [2 ** 32, 9]] as const) {
    const wire = codec.encode(new Map([[value, value]]));
    assert.equal(wire.length, 1 + 2 * size, `${value}`);
    assert.equal(decodeHeader(wire).get(value), value);
  }
  for (const length of [0, 23, 24, 255, 256, 65536]) {
    const wire = codec.encode(new Map<number, HeaderValue>([[2, 'x'.repeat(length)], [3, new Uint8Array(length)]]));
    const back = decodeHeader(wire);
    assert.equal((back.get(2) as string).length, length);
    assert.equal((back.get(3) as Uint8Array).length, length);
  }
});

test('longer-than-needed forms are accepted', () => {
  // {0: 5} with 5 written in 1, 2, 4 and 8 bytes; key 0 written long too.
  for (const h of ['a1001805', 'a100190005', 'a1001a00000005', 'a1001b0000000000000005', 'a11800 05'.replace(' ', '')]) {
    assert.deepEqual([...decodeHeader(fromHex(h))], [[0, 5]], h);
  }
  // A text string with a 2-byte length.
  assert.equal(decodeHeader(fromHex('a1017900026869')).get(1), 'hi');
});

const leaf: fc.Arbitrary<HeaderValue> = fc.oneof(
  fc.nat(),
  fc.maxSafeNat(),
  fc.boolean(),
  fc.constant(null),
  fc.string({ unit: 'grapheme', maxLength: 40 }),
  fc.string({ maxLength: 80 }),
  fc.uint8Array({ maxLength: 64 }),
);
const { tree } = fc.letrec<{ tree: HeaderValue }>((tie) => ({
  tree: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    leaf,
    fc.array(tie('tree'), { maxLength: 5 }),
    fc.uniqueArray(fc.tuple(fc.nat({ max: 300 }), tie('tree')), { selector: ([k]) => k, maxLength: 5 }).map((entries) => new Map(entries)),
  ),
}));

function depth(v: HeaderValue): number {
  if (Array.isArray(v)) return 1 + Math.max(0, ...v.map(depth));
  if (v instanceof Map) return 1 + Math.max(0, ...[...v.values()].map(depth));
  return 1;
}

test('any header tree within the depth limit round-trips (property)', () => {
  const codec = new HeaderCodec();
  fc.assert(
    fc.property(fc.uniqueArray(fc.tuple(fc.nat({ max: 40 }), tree), { selector: ([k]) => k, maxLength: 6 }), (entries) => {
      const header = new Map(entries);
      fc.pre(depth(header) <= MAX_DEPTH);
      assert.deepEqual(plain(decodeHeader(codec.encode(header))), plain(header));
    }),
    { numRuns: 1000 },
  );
});

test('random bytes never crash the decoder: a header map or MESH_ERR_PROTOCOL (property)', () => {
  // Mostly behind a map head, so the decoder gets past the first byte.
  const input = fc.oneof(
    fc.uint8Array({ maxLength: 64 }),
    fc.tuple(fc.integer({ min: 0xa0, max: 0xb7 }), fc.uint8Array({ maxLength: 96 })).map(([head, rest]) => Uint8Array.from([head, ...rest])),
    fc.tuple(fc.integer({ min: 1, max: 8 }), fc.array(fc.integer({ min: 0, max: 255 }), { maxLength: 96 })).map(([n, rest]) => Uint8Array.from([0xa0 + n, 0x00, ...rest])),
  );
  fc.assert(
    fc.property(input, (bytes) => {
      try {
        assert.ok(decodeHeader(bytes) instanceof Map);
      } catch (e) {
        assert.ok(e instanceof MeshError && e.code === 'MESH_ERR_PROTOCOL', String(e));
      }
    }),
    { numRuns: 20_000 },
  );
});

test('invalid UTF-8 in a text string is refused, short or long', () => {
  expectProtocol(fromHex('a10162c328'), /not valid UTF-8/);
  expectProtocol(fromHex(`a10178${(40).toString(16)}${'61'.repeat(39)}ff`), /not valid UTF-8/);
  expectProtocol(fromHex('a10163eda080'), /not valid UTF-8/); // a lone surrogate, encoded
});

test('depth and item limits: the map is depth 1, map keys count as items', () => {
  // Every item counts, plain values too: map (1) > array (2) > array (3) > array (4) > 0 (5) is the deepest allowed.
  assert.ok(decodeHeader(fromHex('a10081818100')));
  expectProtocol(fromHex('a1008181818100'), /nesting deeper than 5/);
  // 2048 keys with 2048 values is 4096 items plus the map itself: one too many.
  const codec = new HeaderCodec();
  const atLimit = new Map(Array.from({ length: 2047 }, (_, i) => [i, 0] as [number, HeaderValue]));
  assert.equal(decodeHeader(codec.encode(atLimit)).size, 2047);
  const over = new Map(Array.from({ length: 2048 }, (_, i) => [i, 0] as [number, HeaderValue]));
  expectProtocol(codec.encode(over), /more than 4096 items/);
});

test('the encoder refuses values outside the subset (a caller bug, never peer input)', () => {
  const codec = new HeaderCodec();
  for (const [name, bad] of [['-1', -1], ['1.5', 1.5], ['NaN', NaN], ['Infinity', Infinity], ['2^53', 2 ** 53], ['undefined', undefined], ['an object', {}], ['a symbol', Symbol('x')]] as const) {
    assert.throws(() => codec.encode(new Map([[1, bad as unknown as HeaderValue]])), (e: unknown) => e instanceof MeshError && e.code === 'MESH_ERR_PROTOCOL', name);
  }
  assert.throws(() => codec.encode(new Map([[-1, 0]])), MeshError);
  // The scratch buffer is reusable after a failed encode.
  assert.equal(hex(codec.encode(new Map([[0, 9]]))), 'a10009');
});

test('decoded byte strings are views of the input (the message layer copies what it keeps)', () => {
  const wire = new HeaderCodec().encode(new Map([[1, Uint8Array.from([7, 8, 9])]]));
  const bytes = decodeHeader(wire).get(1) as Uint8Array;
  assert.equal(bytes.buffer, wire.buffer);
});
