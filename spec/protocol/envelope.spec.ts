import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { EnvelopeCodec } from '../../lib/protocol/envelope-codec.ts';
import { checkHeaderCbor, HeaderCodec } from '../../lib/protocol/strict-cbor.ts';
import { headerToMessage, messageToHeader, MessageType, truncateUtf8, utf8Length } from '../../lib/protocol/messages.ts';
import type { Message } from '../../lib/protocol/messages.ts';
import { MeshError } from '../../lib/errors.ts';

const bytes = (n: number) => fc.uint8Array({ minLength: n, maxLength: n });
const service = fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._:/-]{0,20}$/);
const brokerInfo = fc.record({ id: bytes(32), addresses: fc.array(fc.constantFrom('127.0.0.1:4222', 'host-a:1', '[::1]:9'), { minLength: 1, maxLength: 3 }), bootId: bytes(16), incarnation: fc.nat({ max: 2 ** 32 - 1 }) });

/** Arbitrary valid messages of every type. */
export const messageArb: fc.Arbitrary<Message> = fc.oneof(
  fc.record({ type: fc.constant('WELCOME' as const), brokerId: bytes(32), bootId: bytes(16), brokers: fc.array(brokerInfo, { maxLength: 4 }) }),
  fc.record({ type: fc.constant('READY' as const), service, credits: fc.integer({ min: 0, max: 65535 }) }),
  fc.record({ type: fc.constant('CANCEL' as const), service }),
  fc.record(
    { type: fc.constant('REQUEST' as const), id: bytes(16), service, attempt: fc.integer({ min: 1, max: 255 }), dup: fc.boolean(), ttl: fc.integer({ min: 0, max: 2 ** 31 - 1 }), worker: bytes(32), sender: bytes(32), senderName: fc.string({ maxLength: 40 }), trace: fc.stringMatching(/^[!-~]{1,60}$/), payload: fc.uint8Array({ maxLength: 3000 }) },
    { requiredKeys: ['type', 'id', 'service', 'attempt', 'dup', 'ttl', 'payload'] },
  ),
  fc.record({ type: fc.constant('DISPATCHED' as const), dispatched: fc.array(fc.record({ id: bytes(16), worker: bytes(32) }), { maxLength: 20 }) }),
  fc.record({ type: fc.constant('REPLY' as const), id: bytes(16), to: bytes(32), worker: bytes(32), trace: fc.stringMatching(/^[!-~]{1,60}$/), payload: fc.uint8Array({ maxLength: 3000 }) }, { requiredKeys: ['type', 'id', 'payload'] }),
  fc.record({ type: fc.constant('ERROR' as const), id: bytes(16), code: fc.constantFrom('MESH_ERR_BUSY', 'MESH_ERR_HANDLER'), retryable: fc.boolean(), text: fc.string({ maxLength: 100 }), to: bytes(32) }, { requiredKeys: ['type', 'code', 'retryable', 'text'] }),
  fc.record({ type: fc.constant('REFUSED' as const), id: bytes(16) }),
  fc.constant({ type: 'PING' as const }),
  fc.constant({ type: 'PONG' as const }),
  fc.record({ type: fc.constant('BROKERS' as const), brokers: fc.array(brokerInfo, { maxLength: 4 }) }),
  fc.constant({ type: 'DRAIN' as const }),
  fc.record({ type: fc.constant('GOSSIP' as const), bootId: bytes(16), incarnation: fc.nat({ max: 2 ** 32 - 1 }), view: fc.array(fc.record({ id: bytes(32), addresses: fc.constant(['127.0.0.1:1']), bootId: bytes(16), incarnation: fc.nat({ max: 2 ** 32 - 1 }), status: fc.constantFrom('alive' as const, 'suspect' as const, 'leaving' as const, 'dead' as const), reachable: fc.boolean() }), { maxLength: 4 }) }),
);

test('every header is written with its keys in ascending order (property)', () => {
  const headers = new HeaderCodec();
  fc.assert(
    fc.property(messageArb, (msg) => {
      // The decoded Map keeps the order of the bytes.
      const keys = [...headers.decode(headers.encode(messageToHeader(msg))).keys()];
      assert.deepEqual(keys, [...keys].sort((a, b) => a - b), msg.type);
    }),
    { numRuns: 1000 },
  );
});

test('text limits count UTF-8 bytes: 128 ASCII characters pass, 65 two-byte ones do not', () => {
  const codec = new EnvelopeCodec();
  const request = (senderName: string): Message => ({ type: 'REQUEST', id: new Uint8Array(16), service: 'echo', attempt: 1, dup: false, ttl: 1, sender: new Uint8Array(32).fill(1), senderName, payload: new Uint8Array(0) });
  assert.equal((codec.decode(codec.encodeToBuffer(request('n'.repeat(128)))) as { senderName?: string }).senderName?.length, 128);
  assert.equal((codec.decode(codec.encodeToBuffer(request('é'.repeat(64)))) as { senderName?: string }).senderName?.length, 64);
  expectCode(() => codec.decode(codec.encodeToBuffer(request('é'.repeat(65)))), 'MESH_ERR_PROTOCOL', /senderName is longer than 128 UTF-8 bytes/);
});

test('truncateUtf8 keeps at most the limit in bytes and never cuts a character (property)', () => {
  fc.assert(
    fc.property(fc.string({ unit: 'binary', maxLength: 300 }), fc.integer({ min: 0, max: 400 }), (text, max) => {
      const cut = truncateUtf8(text, max);
      assert.ok(utf8Length(cut) <= max, `${utf8Length(cut)} > ${max}`);
      assert.ok(text.startsWith(cut) || Buffer.from(text).subarray(0, Buffer.byteLength(cut)).toString() === cut);
      if (utf8Length(text) <= max) assert.equal(cut, text);
      else assert.ok(max - utf8Length(cut) < 4, 'only the last character is dropped');
    }),
    { numRuns: 2000 },
  );
});

/** Deep equality that treats Buffer and Uint8Array alike. */
function plain(v: unknown): unknown {
  if (v instanceof Uint8Array) return Buffer.from(v).toString('hex');
  if (Array.isArray(v)) return v.map(plain);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).filter(([, x]) => x !== undefined).map(([k, x]) => [k, plain(x)]));
  return v;
}

function expectCode(fn: () => unknown, code: string, fragment?: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof MeshError, `expected MeshError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    if (fragment) assert.match(e.message, fragment);
    return true;
  });
}

test('envelope encode/decode round-trips every message type (property)', () => {
  const codec = new EnvelopeCodec();
  fc.assert(
    fc.property(messageArb, (msg) => {
      assert.deepEqual(plain(codec.decode(codec.encodeToBuffer(msg))), plain(msg));
    }),
    { numRuns: 2000 },
  );
});

test('decoded ids and keys are copies, not views of the message buffer', () => {
  const codec = new EnvelopeCodec();
  const buf = codec.encodeToBuffer({ type: 'REFUSED', id: new Uint8Array(16).fill(9) });
  const msg = codec.decode(buf);
  buf.fill(0);
  assert.equal(msg.type === 'REFUSED' && msg.id[0], 9);
});

test('a 1 MiB payload round-trips; one byte more is refused', () => {
  const codec = new EnvelopeCodec({ maxPayload: 1024 * 1024 });
  const payload = new Uint8Array(1024 * 1024).fill(0xab);
  const msg = codec.decode(codec.encodeToBuffer({ type: 'REPLY', id: new Uint8Array(16), payload }));
  assert.equal(msg.type === 'REPLY' && msg.payload.length, payload.length);
  expectCode(() => codec.encode({ type: 'REPLY', id: new Uint8Array(16), payload: new Uint8Array(1024 * 1024 + 1) }), 'MESH_ERR_ENVELOPE_TOO_LARGE', /1048577/);
  const big = new EnvelopeCodec({ maxPayload: 2 * 1024 * 1024 }).encodeToBuffer({ type: 'REPLY', id: new Uint8Array(16), payload: new Uint8Array(1024 * 1024 + 1) });
  expectCode(() => codec.decode(big), 'MESH_ERR_ENVELOPE_TOO_LARGE');
});

test('a header that lies about its length is refused', () => {
  const codec = new EnvelopeCodec();
  const buf = codec.encodeToBuffer({ type: 'PING' });
  buf.writeUInt16BE(buf.length, 0); // claims more than there is
  expectCode(() => codec.decode(buf), 'MESH_ERR_PROTOCOL', /runs past/);
  const short = codec.encodeToBuffer({ type: 'REFUSED', id: new Uint8Array(16) });
  short.writeUInt16BE(5, 0); // claims less: the CBOR map is cut
  expectCode(() => codec.decode(short), 'MESH_ERR_PROTOCOL');
  expectCode(() => codec.decode(Buffer.from([0])), 'MESH_ERR_PROTOCOL', /shorter/);
  expectCode(() => codec.decode(Buffer.from([0, 0])), 'MESH_ERR_PROTOCOL', /length is 0/);
});

test('unknown message types are refused', () => {
  const headers = new HeaderCodec();
  for (const t of [0, 14, 99, 'REQUEST', null]) {
    const h = headers.encode(new Map<number, never>([[0, t as never]]));
    const env = Buffer.concat([Buffer.from([0, h.length]), h]);
    expectCode(() => new EnvelopeCodec().decode(env), 'MESH_ERR_PROTOCOL', /unknown message type/);
  }
});

test('malformed CBOR headers are refused with the first problem named', () => {
  const cases: Array<[string, number[], RegExp]> = [
    ['not a map', [0x80], /not a map/],
    ['truncated map', [0xa2, 0x00, 0x09], /truncated|longer than the header/],
    ['indefinite map', [0xbf, 0x00, 0x09, 0xff], /indefinite/],
    ['tag', [0xa1, 0x00, 0xc1, 0x00], /tags/],
    ['float', [0xa1, 0x00, 0xf9, 0x3c, 0x00], /floats/],
    ['negative int', [0xa1, 0x00, 0x20], /negative/],
    ['text key', [0xa1, 0x61, 0x61, 0x09], /keys must be unsigned/],
    ['duplicate key', [0xa2, 0x00, 0x09, 0x00, 0x09], /duplicate/],
    ['trailing bytes', [0xa1, 0x00, 0x09, 0x00], /trailing/],
    ['string past end', [0xa1, 0x01, 0x50, 0x00], /past the end/],
    ['huge length', [0xa1, 0x01, 0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], /too large|past the end/],
    ['reserved info', [0xa1, 0x00, 0x1c], /reserved/],
    ['undefined', [0xa1, 0x00, 0xf7], /simple value/],
    ['deep nesting', [0xa1, 0x00, 0x81, 0x81, 0x81, 0x81, 0x81, 0x00], /nesting/],
    ['record definition tag', [0xa1, 0x00, 0xd9, 0xdf, 0xff, 0x80], /tags/],
  ];
  for (const [name, b, re] of cases) {
    expectCode(() => checkHeaderCbor(Uint8Array.from(b)), 'MESH_ERR_PROTOCOL', re);
    const env = Buffer.concat([Buffer.from([0, b.length]), Buffer.from(b)]);
    assert.throws(() => new EnvelopeCodec().decode(env), (e: unknown) => e instanceof MeshError && e.code === 'MESH_ERR_PROTOCOL', name);
  }
});

test('fields are validated per message type', () => {
  const headers = new HeaderCodec();
  const req = (over: Record<number, unknown>, drop: number[] = []) => {
    const m = new Map<number, never>([[0, MessageType.REQUEST], [1, new Uint8Array(16)], [2, 'echo'], [3, 1], [4, false], [5, 1000]] as never);
    for (const [k, v] of Object.entries(over)) m.set(Number(k), v as never);
    for (const k of drop) m.delete(k);
    return () => headerToMessage(headers.decode(headers.encode(m)), new Uint8Array());
  };
  assert.equal(req({})().type, 'REQUEST');
  expectCode(req({ 1: new Uint8Array(15) }), 'MESH_ERR_PROTOCOL', /REQUEST: field id has 15 bytes/);
  expectCode(req({}, [2]), 'MESH_ERR_PROTOCOL', /service is missing/);
  expectCode(req({ 2: 'bad name!' }), 'MESH_ERR_PROTOCOL', /service has an invalid value/);
  expectCode(req({ 3: 0 }), 'MESH_ERR_PROTOCOL', /attempt is 0/);
  expectCode(req({ 4: 1 }), 'MESH_ERR_PROTOCOL', /dup is not a boolean/);
  expectCode(req({ 5: 2 ** 31 }), "MESH_ERR_PROTOCOL", /ttl/);
  expectCode(req({ 5: 2 ** 40 }), 'MESH_ERR_PROTOCOL', /ttl is 1099511627776, outside/); // a uint64 on the wire, out of range
  expectCode(req({ 6: new Uint8Array(31) }), 'MESH_ERR_PROTOCOL', /worker/);
  expectCode(req({ 99: 1 }), 'MESH_ERR_PROTOCOL', /unexpected header key 99/);
  expectCode(() => headerToMessage(new Map([[0, MessageType.PING]]), new Uint8Array(1)), 'MESH_ERR_PROTOCOL', /PING: carries a 1-byte payload/);
});
