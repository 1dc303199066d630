// Generates the conformance kit's vector files (conformance/vectors/*.json)
// from meshd's own code: the handshake with the worked example's fixed keys,
// one or more vectors per message type, segment sequences, and rejection
// cases whose error code is whatever meshd's decoders really throw.
//
//   node --import tsx scripts/conformance-vectors.ts           writes the files
//   node --import tsx scripts/conformance-vectors.ts --check   exits 1 if a committed file differs
//
// A rejection case records what docs/protocol.md says (`documented`); the
// generator runs meshd on it and fails, writing nothing, when meshd does
// otherwise, so a disagreement between the code and the document is never
// hidden in the kit.
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { MeshError } from '../lib/errors.ts';
import { getSuite } from '../lib/crypto/suites.ts';
import { HandshakeState } from '../lib/crypto/handshake-state.ts';
import type { KeyPair } from '../lib/crypto/crypto-suite.ts';
import { InitiatorHandshake, NOISE_PROTOCOL, ResponderHandshake } from '../lib/protocol/handshake.ts';
import { decodeHello, encodeHello } from '../lib/protocol/hello.ts';
import type { Hello } from '../lib/protocol/hello.ts';
import { checkVersion, decodePreamble, encodePreamble, PROTOCOL_VERSION } from '../lib/protocol/preamble.ts';
import { DEFAULT_MAX_PAYLOAD, EnvelopeCodec, maxEnvelopeLength } from '../lib/protocol/envelope-codec.ts';
import { packSegments, SegmentReader } from '../lib/protocol/segments.ts';
import { HeaderCodec } from '../lib/protocol/strict-cbor.ts';
import type { HeaderValue } from '../lib/protocol/strict-cbor.ts';
import { messageToHeader } from '../lib/protocol/messages.ts';
import type { BrokerInfo, Message, ViewEntry } from '../lib/protocol/messages.ts';
import { HANDSHAKE_MAX_FRAME } from '../lib/protocol/connection.ts';
import { encodeFrame } from '../lib/framing/frame-encoder.ts';
import { FrameDecoder } from '../lib/framing/frame-decoder.ts';
import { exampleKeys, exampleRequest, initiatorHello, responderHello } from '../spec/protocol/worked-example.ts';

const OUT_DIR = fileURLToPath(new URL('../conformance/vectors/', import.meta.url));
const VERSION = `${PROTOCOL_VERSION.major}.${PROTOCOL_VERSION.minor}`;
const suite = getSuite('noble');

// ------------------------------------------------------------------ helpers

type Json = string | number | boolean | null | Json[] | { [key: string]: Json };

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const unhex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const fill = (length: number, byte: number): Uint8Array => new Uint8Array(length).fill(byte);
const key = (byte: number): Uint8Array => fill(32, byte);
const rid = (byte: number): Uint8Array => fill(16, byte);
const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);

/** Minimal CBOR writer for hand-made (often invalid) headers: each function returns hex, shortest forms. */
function head(major: number, value: number): string {
  const m = major << 5;
  const byte = (n: number): string => n.toString(16).padStart(2, '0');
  if (value < 24) return byte(m | value);
  if (value <= 0xff) return byte(m | 24) + byte(value);
  if (value <= 0xffff) return byte(m | 25) + value.toString(16).padStart(4, '0');
  if (value <= 0xffffffff) return byte(m | 26) + value.toString(16).padStart(8, '0');
  return byte(m | 27) + value.toString(16).padStart(16, '0');
}
const cb = {
  uint: (n: number): string => head(0, n),
  bytes: (b: Uint8Array): string => head(2, b.length) + hex(b),
  text: (s: string): string => head(3, utf8(s).length) + hex(utf8(s)),
  array: (n: number): string => head(4, n),
  map: (n: number): string => head(5, n),
  false: 'f4',
  true: 'f5',
};

/** The canonical header bytes of a map built by hand (any keys and values the header subset can carry). */
function headerOf(entries: readonly (readonly [number, HeaderValue])[]): Buffer {
  return new HeaderCodec().encode(new Map(entries.map(([k, v]) => [k, v])));
}

/** `uint16 header length || header || payload`. */
function envelopeOf(header: Uint8Array, payload: Uint8Array = new Uint8Array(0)): Buffer {
  const out = Buffer.alloc(2 + header.length + payload.length);
  out.writeUInt16BE(header.length, 0);
  out.set(header, 2);
  out.set(payload, 2 + header.length);
  return out;
}

/** One segment without MORE holding `data`. */
function segment(data: Uint8Array, flags = 0): Buffer {
  const out = Buffer.alloc(3 + data.length);
  out[0] = flags;
  out.writeUInt16BE(data.length, 1);
  out.set(data, 3);
  return out;
}

// ------------------------------------------------------------------ JSON form

/** Message fields in header-key order (docs/protocol.md#header-keys), payload last. */
const MESSAGE_FIELDS = ['type', 'id', 'service', 'attempt', 'dup', 'ttl', 'worker', 'sender', 'senderName', 'credits', 'code', 'retryable', 'text', 'brokers', 'brokerId', 'bootId', 'dispatched', 'view', 'to', 'incarnation', 'trace', 'payload'];
/** Fields of broker entries and dispatch pairs, in their CBOR array order. */
const ENTRY_FIELDS = ['id', 'worker', 'addresses', 'bootId', 'incarnation', 'status', 'reachable'];

function jsonValue(v: unknown, order: readonly string[]): Json {
  if (v instanceof Uint8Array) return hex(v);
  if (Array.isArray(v)) return v.map((x) => jsonValue(x, ENTRY_FIELDS));
  if (v !== null && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    const rank = (k: string): number => (order.includes(k) ? order.indexOf(k) : order.length);
    const keys = Object.keys(o).filter((k) => o[k] !== undefined).sort((a, b) => rank(a) - rank(b));
    return Object.fromEntries(keys.map((k) => [k, jsonValue(o[k], ENTRY_FIELDS)]));
  }
  return v as Json;
}

/** A message in the kit's JSON form: byte strings and the payload as lowercase hex, absent optional fields left out. */
function messageJson(msg: Message): Json {
  return jsonValue(msg, MESSAGE_FIELDS);
}

function helloJson(h: Hello): Json {
  const out: Record<string, Json> = { role: h.role };
  if (h.name !== undefined) out['name'] = h.name;
  if (h.bootId !== undefined) out['bootId'] = hex(h.bootId);
  out['version'] = { major: h.version.major, minor: h.version.minor };
  out['heartbeat'] = { idleMs: h.heartbeat.idleMs, activeMs: h.heartbeat.activeMs, deadMs: h.heartbeat.deadMs };
  out['maxPayload'] = h.maxPayload;
  return out;
}

function sameJson(a: Json, b: Json, what: string): void {
  if (JSON.stringify(a) !== JSON.stringify(b)) throw new Error(`generator self-check failed: ${what}\n${JSON.stringify(a)}\n${JSON.stringify(b)}`);
}

// ------------------------------------------------------------------ fixed data

const BB = fill(16, 0xbb);
const LOCAL = '127.0.0.1:4222';
const broker = (id: Uint8Array, addresses: string[], bootId: Uint8Array, incarnation: number): BrokerInfo => ({ id, addresses, bootId, incarnation });
const view = (b: BrokerInfo, status: ViewEntry['status'], reachable: boolean): ViewEntry => ({ ...b, status, reachable });

const brokerA = broker(key(0xaa), [LOCAL], BB, 0);
const brokerB = broker(key(0xa2), ['10.0.0.2:4222', '[::1]:4222'], fill(16, 0xb2), 3);
const brokerMax = broker(key(0xa3), Array.from({ length: 8 }, (_, i) => `host-${i}.example:${4222 + i}`), fill(16, 0xb3), 2 ** 32 - 1);
const longAddress = `${'h'.repeat(257)}:4222`; // 262 characters

// ------------------------------------------------------------------ handshake.json

function keyJson(k: KeyPair): Json {
  return { private: hex(k.privateKey), public: hex(k.publicKey) };
}

interface TransportEntry {
  readonly from: 'initiator' | 'responder';
  readonly messages: readonly Message[];
}

function buildHandshake(): Json {
  const k = exampleKeys;
  const initiator = new InitiatorHandshake({ suite, keyPair: k.initiatorStatic, ephemeral: k.initiatorEphemeral, remoteKey: k.responderStatic.publicKey, hello: initiatorHello });
  const responder = new ResponderHandshake({ suite, keyPair: k.responderStatic, ephemeral: k.responderEphemeral, hello: responderHello });
  const { preamble, message1 } = initiator.start();
  const { preamble: responderPreamble, error } = responder.readPreamble(preamble);
  if (error) throw error;
  const message2 = responder.readMessage1(message1);
  initiator.readPreamble(responderPreamble);
  const message3 = initiator.readMessage2(message2);
  const r = responder.readMessage3(message3);
  const i = initiator.result();
  if (hex(i.handshakeHash) !== hex(r.handshakeHash)) throw new Error('handshake hashes differ');

  const welcome: Message = { type: 'WELCOME', brokerId: k.responderStatic.publicKey, bootId: BB, brokers: [broker(k.responderStatic.publicKey, [LOCAL], BB, 0)] };
  const secondRequest: Message = { type: 'REQUEST', id: rid(0x22), service: 'echo', attempt: 1, dup: false, ttl: 5000, payload: utf8('world') };
  const transport: TransportEntry[] = [
    { from: 'initiator', messages: [exampleRequest] },
    { from: 'responder', messages: [welcome] },
    { from: 'responder', messages: [{ type: 'DISPATCHED', dispatched: [{ id: rid(0x11), worker: key(0xcc) }] }, { type: 'REPLY', id: rid(0x11), worker: key(0xcc), payload: utf8('hello') }] },
    { from: 'initiator', messages: [secondRequest] },
  ];
  const codec = new EnvelopeCodec();
  const nonces = { initiator: 0, responder: 0 };
  const transportJson = transport.map((t) => {
    const envelopes = t.messages.map((m) => codec.encode(m));
    const plaintexts = packSegments(envelopes);
    if (plaintexts.length !== 1) throw new Error('a transport example must fit one plaintext');
    const plaintext = plaintexts[0]!;
    const [send, receive] = t.from === 'initiator' ? [i.send, r.receive] : [r.send, i.receive];
    const nonce = nonces[t.from]++;
    if (send.nonce !== nonce) throw new Error('nonce bookkeeping');
    const sealed = send.encrypt(plaintext);
    if (hex(receive.decrypt(sealed)) !== hex(plaintext)) throw new Error('transport message does not open');
    return {
      from: t.from,
      nonce,
      messages: t.messages.map(messageJson),
      envelopes: envelopes.map((e) => hex(Buffer.concat([e.head, e.payload]))),
      plaintext: hex(plaintext),
      frame: hex(encodeFrame(sealed)),
    };
  });

  const acceptedPreambles = [
    { hex: '4d45534801000000', major: 1, minor: 0, why: 'this version' },
    { hex: '4d45534801070000', major: 1, minor: 7, why: 'another minor version is compatible: both sides speak the lower minor' },
  ];
  for (const p of acceptedPreambles) {
    const v = decodePreamble(unhex(p.hex));
    checkVersion(v);
    if (v.major !== p.major || v.minor !== p.minor) throw new Error('preamble self-check');
  }

  return {
    protocol: VERSION,
    description: 'One complete handshake and the first transport messages in each direction, with fixed keys (the worked example of docs/protocol.md). Real parties draw ephemeral keys at random.',
    noiseProtocol: NOISE_PROTOCOL,
    keys: {
      initiatorStatic: keyJson(k.initiatorStatic),
      initiatorEphemeral: keyJson(k.initiatorEphemeral),
      responderStatic: keyJson(k.responderStatic),
      responderEphemeral: keyJson(k.responderEphemeral),
    },
    preambles: { initiator: hex(preamble), responder: hex(responderPreamble) },
    prologue: hex(preamble),
    hellos: {
      responder: { cbor: hex(encodeHello(responderHello)), fields: helloJson(responderHello) },
      initiator: { cbor: hex(encodeHello(initiatorHello)), fields: helloJson(initiatorHello) },
    },
    messages: [
      { name: 'message-1', from: 'initiator', tokens: 'e, es', payload: '', noise: hex(message1), frame: hex(encodeFrame(message1)) },
      { name: 'message-2', from: 'responder', tokens: 'e, ee', payload: hex(encodeHello(responderHello)), noise: hex(message2), frame: hex(encodeFrame(message2)) },
      { name: 'message-3', from: 'initiator', tokens: 's, se', payload: hex(encodeHello(initiatorHello)), noise: hex(message3), frame: hex(encodeFrame(message3)) },
    ],
    handshakeHash: hex(i.handshakeHash),
    transport: transportJson,
    acceptedPreambles,
  };
}

// ------------------------------------------------------------------ messages.json

interface MessageCase {
  readonly name: string;
  readonly message: Message;
  readonly note?: string;
}

const MESSAGE_CASES: readonly MessageCase[] = [
  { name: 'welcome', message: { type: 'WELCOME', brokerId: key(0xaa), bootId: BB, brokers: [brokerA] } },
  { name: 'welcome-two-brokers', message: { type: 'WELCOME', brokerId: key(0xaa), bootId: BB, brokers: [brokerA, brokerB] }, note: 'a second broker with two addresses, one IPv6' },
  { name: 'welcome-no-brokers', message: { type: 'WELCOME', brokerId: key(0xaa), bootId: BB, brokers: [] }, note: 'an empty list is allowed' },
  { name: 'ready', message: { type: 'READY', service: 'echo', credits: 8 } },
  { name: 'ready-bounds', message: { type: 'READY', service: 'a.b_c:d/e-f9', credits: 65535 }, note: 'every punctuation a service name may hold; the most credits' },
  { name: 'ready-zero-credits', message: { type: 'READY', service: 'echo', credits: 0 } },
  { name: 'cancel', message: { type: 'CANCEL', service: 'echo' } },
  { name: 'request', message: exampleRequest, note: 'the worked example of docs/protocol.md' },
  { name: 'request-all-optional', message: { type: 'REQUEST', id: rid(0x11), service: 'echo', attempt: 2, dup: true, ttl: 750, worker: key(0xcc), sender: key(0xa4), senderName: 'node-1', trace: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01', payload: utf8('hello') }, note: 'every optional key at once: a vector of the decoder, which is the same in both directions (no real sender sends keys 6, 7 and 8 together)' },
  { name: 'request-bounds', message: { type: 'REQUEST', id: rid(0x33), service: `s${'x'.repeat(127)}`, attempt: 255, dup: true, ttl: 2 ** 31 - 1, payload: new Uint8Array(0) }, note: 'a 128-character service, the last attempt, the longest ttl, an empty payload' },
  { name: 'request-ttl-zero', message: { type: 'REQUEST', id: rid(0x34), service: 'echo', attempt: 1, dup: false, ttl: 0, senderName: '', payload: utf8('x') }, note: 'ttl 0 and an empty sender name are allowed' },
  { name: 'request-utf8-sender-name', message: { type: 'REQUEST', id: rid(0x35), service: 'echo', attempt: 1, dup: false, ttl: 1000, sender: key(0xa4), senderName: 'nœud-é-ü', payload: utf8('hello') }, note: 'a non-ASCII name: the CBOR length counts UTF-8 bytes' },
  { name: 'dispatched', message: { type: 'DISPATCHED', dispatched: [{ id: rid(0x11), worker: key(0xcc) }] }, note: 'the DISPATCHED example of docs/protocol.md' },
  { name: 'dispatched-three', message: { type: 'DISPATCHED', dispatched: [{ id: rid(0x11), worker: key(0xcc) }, { id: rid(0x12), worker: key(0xcc) }, { id: rid(0x13), worker: key(0xcd) }] } },
  { name: 'dispatched-empty', message: { type: 'DISPATCHED', dispatched: [] } },
  { name: 'reply', message: { type: 'REPLY', id: rid(0x11), payload: utf8('hello') } },
  { name: 'reply-to', message: { type: 'REPLY', id: rid(0x11), to: key(0xa4), payload: utf8('hello') }, note: 'worker to broker: addressed to a client' },
  { name: 'reply-worker', message: { type: 'REPLY', id: rid(0x11), worker: key(0xcc), payload: utf8('hello') }, note: 'broker to client: the worker stamped' },
  { name: 'request-trace-256', message: { type: 'REQUEST', id: rid(0x37), service: 'echo', attempt: 1, dup: false, ttl: 1000, trace: 't'.repeat(256), payload: new Uint8Array(0) }, note: 'the longest trace context: 256 characters' },
  { name: 'request-sender-name-128-bytes', message: { type: 'REQUEST', id: rid(0x38), service: 'echo', attempt: 1, dup: false, ttl: 1000, sender: key(0xa4), senderName: 'é'.repeat(64), payload: new Uint8Array(0) }, note: 'the longest sender name: 64 two-byte characters are 128 UTF-8 bytes' },
  { name: 'request-trace', message: { type: 'REQUEST', id: rid(0x36), service: 'echo', attempt: 1, dup: false, ttl: 1000, trace: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01', payload: utf8('hello') }, note: 'a W3C traceparent as the trace context (key 20)' },
  { name: 'reply-trace', message: { type: 'REPLY', id: rid(0x36), worker: key(0xcc), trace: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01', payload: utf8('hello') }, note: 'the trace context back from the worker' },
  { name: 'reply-to-and-worker', message: { type: 'REPLY', id: rid(0x11), to: key(0xa4), worker: key(0xcc), payload: new Uint8Array(0) }, note: 'both optional keys, empty payload' },
  { name: 'error-connection', message: { type: 'ERROR', code: 'MESH_ERR_PROTOCOL', retryable: false, text: 'REQUEST: field ttl is missing' }, note: 'no id: about the connection' },
  { name: 'error-request', message: { type: 'ERROR', id: rid(0x11), code: 'MESH_ERR_HANDLER', retryable: false, text: 'boom' } },
  { name: 'error-request-to', message: { type: 'ERROR', id: rid(0x11), code: 'MESH_ERR_BUSY', retryable: true, text: '', to: key(0xa4) }, note: 'a worker error routed to a client, empty text' },
  { name: 'error-long-text', message: { type: 'ERROR', id: rid(0x11), code: 'MESH_ERR_HANDLER', retryable: false, text: 'e'.repeat(1024) }, note: 'the longest text' },
  { name: 'error-utf8-text', message: { type: 'ERROR', code: 'MESH_ERR_FORBIDDEN', retryable: false, text: 'accès refusé ✗' } },
  { name: 'refused', message: { type: 'REFUSED', id: rid(0x11) } },
  { name: 'ping', message: { type: 'PING' } },
  { name: 'pong', message: { type: 'PONG' } },
  { name: 'brokers', message: { type: 'BROKERS', brokers: [brokerA] }, note: 'the BROKERS example of docs/protocol.md' },
  { name: 'brokers-bounds', message: { type: 'BROKERS', brokers: [brokerA, brokerMax, broker(key(0xa5), [longAddress], fill(16, 0xb5), 7)] }, note: 'eight addresses, the highest incarnation, a 262-character address' },
  { name: 'drain', message: { type: 'DRAIN' } },
  { name: 'gossip', message: { type: 'GOSSIP', bootId: BB, incarnation: 1, view: [view({ ...brokerA, incarnation: 1 }, 'alive', true)] }, note: 'the GOSSIP example of docs/protocol.md' },
  {
    name: 'gossip-statuses',
    message: {
      type: 'GOSSIP',
      bootId: BB,
      incarnation: 4,
      view: [
        view({ ...brokerA, incarnation: 4 }, 'alive', true),
        view(brokerB, 'suspect', false),
        view(broker(key(0xa6), ['10.0.0.6:4222'], fill(16, 0xb6), 0), 'leaving', true),
        view(broker(key(0xa7), ['10.0.0.7:4222'], fill(16, 0xb7), 2 ** 32 - 1), 'dead', false),
      ],
    },
    note: 'every status, both reachable values',
  },
];

interface SequenceCase {
  readonly name: string;
  readonly maxPlaintext?: number;
  readonly messages: readonly Message[];
  readonly note: string;
}

const SEQUENCE_CASES: readonly SequenceCase[] = [
  { name: 'packed', messages: [{ type: 'PING' }, exampleRequest, { type: 'PONG' }], note: 'three envelopes packed into one plaintext, one segment each' },
  { name: 'split', maxPlaintext: 32, messages: [{ type: 'REQUEST', id: rid(0x44), service: 'echo', attempt: 1, dup: false, ttl: 1000, payload: utf8('a payload longer than one small plaintext') }], note: 'one envelope split over several plaintexts: every segment but the last has MORE (flags 01)' },
  { name: 'packed-and-split', maxPlaintext: 48, messages: [{ type: 'REPLY', id: rid(0x11), payload: utf8('first') }, { type: 'REPLY', id: rid(0x12), payload: utf8('second, which starts in the first plaintext') }, { type: 'DRAIN' }], note: 'the second envelope starts after the first in the same plaintext and continues in the next' },
];

/** Non-canonical but valid encodings: a receiver decodes them; an encoder writes the canonical bytes instead. */
function lenientCases(): { name: string; why: string; envelope: Buffer; message: Message }[] {
  const ping: Message = { type: 'PING' };
  const req = exampleRequest;
  const reqEntries = (order: number[]): string => {
    const parts: Record<number, string> = {
      0: cb.uint(0) + cb.uint(4),
      1: cb.uint(1) + cb.bytes(req.id),
      2: cb.uint(2) + cb.text(req.service),
      3: cb.uint(3) + cb.uint(req.attempt),
      4: cb.uint(4) + cb.false,
      5: cb.uint(5) + cb.uint(req.ttl),
    };
    return cb.map(6) + order.map((k) => parts[k]!).join('');
  };
  return [
    { name: 'keys-descending', why: 'header keys in another order than meshd writes them', envelope: envelopeOf(unhex(reqEntries([5, 4, 3, 2, 1, 0])), req.payload), message: req },
    { name: 'long-form-integers', why: 'keys and values in longer forms than needed (1-, 2-, 4- and 8-byte arguments)', envelope: envelopeOf(unhex('a6' + '1800' + '190004' + '1a00000001' + '5810' + hex(req.id) + '1b0000000000000002' + '7804' + hex(utf8('echo')) + '03' + '1a00000001' + '190004' + 'f4' + '05' + '1b00000000000003e8'), req.payload), message: req },
    { name: 'long-form-lengths', why: 'map, byte string and text lengths in longer forms', envelope: envelopeOf(unhex('b806' + '0004' + '01' + '5810' + hex(req.id) + '02' + '790004' + hex(utf8('echo')) + '0301' + '04f4' + '051903e8'), req.payload), message: req },
    { name: 'ping-long-form', why: 'the whole PING header with 8-byte arguments', envelope: envelopeOf(unhex('bb0000000000000001' + '1b0000000000000000' + '1b0000000000000009')), message: ping },
  ];
}

function buildMessages(): Json {
  const codec = new EnvelopeCodec();
  const vectors = MESSAGE_CASES.map((c) => {
    const header = new HeaderCodec().encode(messageToHeader(c.message));
    const envelope = codec.encodeToBuffer(c.message);
    const plaintexts = packSegments([codec.encode(c.message)]);
    if (plaintexts.length !== 1) throw new Error(`${c.name}: does not fit one plaintext`);
    sameJson(messageJson(codec.decode(envelope)), messageJson(c.message), `${c.name} round trip`);
    const out: Record<string, Json> = { name: c.name };
    if (c.note !== undefined) out['note'] = c.note;
    out['message'] = messageJson(c.message);
    out['header'] = hex(header);
    out['envelope'] = hex(envelope);
    out['plaintext'] = hex(plaintexts[0]!);
    return out;
  });
  const types = new Set(MESSAGE_CASES.map((c) => c.message.type));
  if (types.size !== 13) throw new Error('every message type needs a vector');

  const sequences = SEQUENCE_CASES.map((c) => {
    const envelopes = c.messages.map((m) => codec.encode(m));
    const plaintexts = c.maxPlaintext === undefined ? packSegments(envelopes) : packSegments(envelopes, c.maxPlaintext);
    const decoded: Message[] = [];
    const reader = new SegmentReader(maxEnvelopeLength(DEFAULT_MAX_PAYLOAD));
    for (const p of plaintexts) reader.push(p, (e) => decoded.push(codec.decode(e)));
    sameJson(decoded.map(messageJson), c.messages.map(messageJson), `${c.name} sequence`);
    const out: Record<string, Json> = { name: c.name, note: c.note };
    if (c.maxPlaintext !== undefined) out['maxPlaintext'] = c.maxPlaintext;
    out['messages'] = c.messages.map(messageJson);
    out['envelopes'] = envelopes.map((e) => hex(Buffer.concat([e.head, e.payload])));
    out['plaintexts'] = plaintexts.map(hex);
    return out;
  });

  const lenient = lenientCases().map((c) => {
    sameJson(messageJson(codec.decode(c.envelope)), messageJson(c.message), `${c.name} lenient decode`);
    if (hex(c.envelope) === hex(codec.encodeToBuffer(c.message))) throw new Error(`${c.name} is canonical`);
    return { name: c.name, why: c.why, envelope: hex(c.envelope), message: messageJson(c.message), canonical: hex(codec.encodeToBuffer(c.message)) };
  });

  return {
    protocol: VERSION,
    description: 'Every message type of wire protocol v1 in its JSON form with its canonical bytes (header, envelope, one-segment plaintext); segment sequences; non-canonical encodings a receiver must accept.',
    vectors,
    sequences,
    lenient,
  };
}

// ------------------------------------------------------------------ reject.json

type Layer = 'preamble' | 'hello' | 'handshake' | 'frame' | 'segments' | 'envelope' | 'header' | 'message';
type Outcome = string; // a MESH_ERR_* code, or 'accepted'

interface RejectCase {
  readonly name: string;
  readonly layer: Layer;
  readonly bytes: Uint8Array;
  /** What docs/protocol.md says a receiver does with it. */
  readonly documented: Outcome;
  readonly why: string;
  readonly limits?: { readonly maxPayload?: number; readonly maxEnvelope?: number; readonly maxFrameLength?: number };
  /** For layer handshake: which message the input is (the handshake runs up to it with handshake.json's keys). */
  readonly step?: 'message-1' | 'message-2' | 'message-3';
}

/** Runs meshd's decoder for a layer on the input: the code it throws, or 'accepted'. */
function runMeshd(c: RejectCase, valid: { message1: Uint8Array }): Outcome {
  try {
    switch (c.layer) {
      case 'preamble':
        checkVersion(decodePreamble(c.bytes));
        break;
      case 'hello':
        decodeHello(c.bytes);
        break;
      case 'frame':
        new FrameDecoder({ maxFrameLength: c.limits?.maxFrameLength ?? 65535 }).push(Buffer.from(c.bytes), () => {});
        break;
      case 'handshake':
        runHandshakeStep(c.step!, c.bytes, valid.message1);
        break;
      case 'segments': {
        const codec = new EnvelopeCodec();
        new SegmentReader(c.limits?.maxEnvelope ?? maxEnvelopeLength(DEFAULT_MAX_PAYLOAD)).push(c.bytes, (e) => codec.decode(e));
        break;
      }
      case 'envelope':
      case 'header':
      case 'message':
        new EnvelopeCodec({ maxPayload: c.limits?.maxPayload ?? DEFAULT_MAX_PAYLOAD }).decode(c.bytes);
        break;
    }
    return 'accepted';
  } catch (err) {
    if (err instanceof MeshError) return err.code;
    throw err;
  }
}

function runHandshakeStep(step: 'message-1' | 'message-2' | 'message-3', input: Uint8Array, message1: Uint8Array): void {
  const k = exampleKeys;
  if (step === 'message-2') {
    const i = new InitiatorHandshake({ suite, keyPair: k.initiatorStatic, ephemeral: k.initiatorEphemeral, remoteKey: k.responderStatic.publicKey, hello: initiatorHello });
    i.start();
    i.readPreamble(encodePreamble());
    i.readMessage2(input);
    return;
  }
  const r = new ResponderHandshake({ suite, keyPair: k.responderStatic, ephemeral: k.responderEphemeral, hello: responderHello });
  const { error } = r.readPreamble(encodePreamble());
  if (error) throw error;
  if (step === 'message-1') {
    r.readMessage1(input);
    return;
  }
  r.readMessage1(message1);
  r.readMessage3(input);
}

/** Noise handshake states with the worked example's keys, to write handshake messages with other payloads. */
function noiseSides(): { initiator: HandshakeState; responder: HandshakeState } {
  const k = exampleKeys;
  const prologue = encodePreamble();
  return {
    initiator: HandshakeState.initialize({ protocolName: NOISE_PROTOCOL, initiator: true, prologue, s: k.initiatorStatic, e: k.initiatorEphemeral, rs: k.responderStatic.publicKey, suite }),
    responder: HandshakeState.initialize({ protocolName: NOISE_PROTOCOL, initiator: false, prologue, s: k.responderStatic, e: k.responderEphemeral, suite }),
  };
}

function flipLast(b: Uint8Array): Uint8Array {
  const out = new Uint8Array(b);
  out[out.length - 1]! ^= 0x01;
  return out;
}

function handshakeCases(): { cases: RejectCase[]; message1: Uint8Array } {
  const helloHex = hex(encodeHello(initiatorHello));
  // Valid messages 1 and 2, and message 3 with a malformed HELLO.
  const a = noiseSides();
  const message1 = a.initiator.writeMessage(new Uint8Array(0));
  a.responder.readMessage(message1);
  const message2 = a.responder.writeMessage(encodeHello(responderHello));
  a.initiator.readMessage(message2);
  const message3BadHello = a.initiator.writeMessage(unhex(helloHex.replace('646e6f6465', '6561646d696e'))); // role "node" -> "admin"
  // Message 1 with a payload.
  const message1WithPayload = noiseSides().initiator.writeMessage(utf8('x'));
  // Message 2 with a malformed HELLO (unknown key 7 added).
  const b = noiseSides();
  b.responder.readMessage(b.initiator.writeMessage(new Uint8Array(0)));
  const badResponderHello = new Map<number, HeaderValue>([...new HeaderCodec().decode(encodeHello(responderHello))]).set(7, 0);
  const message2BadHello = b.responder.writeMessage(new HeaderCodec().encode(badResponderHello));
  // Message 3 under a valid message 2 but tampered.
  const lowOrder = unhex('e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800');
  const withEphemeral = (e: Uint8Array): Uint8Array => {
    const out = new Uint8Array(message1);
    out.set(e, 0);
    return out;
  };
  const cases: RejectCase[] = [
    { name: 'message-1-tampered-tag', layer: 'handshake', step: 'message-1', bytes: flipLast(message1), documented: 'MESH_ERR_DECRYPT', why: 'the tag of the empty payload does not verify' },
    { name: 'message-1-with-payload', layer: 'handshake', step: 'message-1', bytes: message1WithPayload, documented: 'MESH_ERR_HANDSHAKE', why: 'message 1 must carry an empty payload' },
    { name: 'message-1-zero-ephemeral', layer: 'handshake', step: 'message-1', bytes: withEphemeral(new Uint8Array(32)), documented: 'MESH_ERR_BAD_KEY', why: 'an all-zero ephemeral public key' },
    { name: 'message-1-low-order-ephemeral', layer: 'handshake', step: 'message-1', bytes: withEphemeral(lowOrder), documented: 'MESH_ERR_BAD_KEY', why: 'an ephemeral public key of low order: the X25519 result is all zeros' },
    { name: 'message-2-tampered', layer: 'handshake', step: 'message-2', bytes: flipLast(message2), documented: 'MESH_ERR_DECRYPT', why: 'the HELLO ciphertext of message 2 does not verify' },
    { name: 'message-2-bad-hello', layer: 'handshake', step: 'message-2', bytes: message2BadHello, documented: 'MESH_ERR_HANDSHAKE', why: 'the responder HELLO has an unknown key 7' },
    { name: 'message-3-tampered', layer: 'handshake', step: 'message-3', bytes: flipLast(messageThree()), documented: 'MESH_ERR_DECRYPT', why: 'the HELLO ciphertext of message 3 does not verify' },
    { name: 'message-3-bad-hello', layer: 'handshake', step: 'message-3', bytes: message3BadHello, documented: 'MESH_ERR_HANDSHAKE', why: 'the initiator HELLO has role "admin"' },
  ];
  return { cases, message1 };
}

/** A valid message 3 (the worked example's). */
function messageThree(): Uint8Array {
  const s = noiseSides();
  s.responder.readMessage(s.initiator.writeMessage(new Uint8Array(0)));
  s.initiator.readMessage(s.responder.writeMessage(encodeHello(responderHello)));
  return s.initiator.writeMessage(encodeHello(initiatorHello));
}

function preambleCases(): RejectCase[] {
  const p = (name: string, h: string, documented: Outcome, why: string): RejectCase => ({ name, layer: 'preamble', bytes: unhex(h), documented, why });
  return [
    p('wrong-magic', '4d45535801000000', 'MESH_ERR_PROTOCOL', 'magic "MESX", not "MESH"'),
    p('lowercase-magic', '6d65736801000000', 'MESH_ERR_PROTOCOL', 'magic "mesh": the magic is case-sensitive'),
    p('http', '474554202f204854', 'MESH_ERR_PROTOCOL', 'an HTTP request ("GET / HT") is not a meshd peer'),
    p('reserved-byte-6', '4d45534801000100', 'MESH_ERR_PROTOCOL', 'reserved byte 6 is not zero'),
    p('reserved-byte-7', '4d45534801000001', 'MESH_ERR_PROTOCOL', 'reserved byte 7 is not zero'),
    p('major-2', '4d45534802000000', 'MESH_ERR_VERSION', 'major version 2: another major version is incompatible'),
    p('major-0', '4d45534800010000', 'MESH_ERR_VERSION', 'major version 0'),
  ];
}

function helloCases(): RejectCase[] {
  const base = (): Map<number, HeaderValue> => new Map(new HeaderCodec().decode(encodeHello(initiatorHello)));
  const brokerBase = (): Map<number, HeaderValue> => new Map(new HeaderCodec().decode(encodeHello(responderHello)));
  const h = (name: string, m: Map<number, HeaderValue> | Uint8Array, documented: Outcome, why: string): RejectCase => ({
    name,
    layer: 'hello',
    bytes: m instanceof Map ? new HeaderCodec().encode(m) : m,
    documented,
    why,
  });
  const without = (k: number): Map<number, HeaderValue> => {
    const m = base();
    m.delete(k);
    return m;
  };
  const hs = 'MESH_ERR_HANDSHAKE';
  const namedUtf16 = base().set(2, 'é'.repeat(100));
  return [
    h('unknown-key', base().set(7, 0), hs, 'key 7 is not a HELLO key'),
    h('missing-role', without(1), hs, 'key 1 (role) is required'),
    h('missing-version', without(4), hs, 'key 4 (version) is required'),
    h('missing-heartbeat', without(5), hs, 'key 5 (heartbeat) is required'),
    h('missing-limits', without(6), hs, 'key 6 (max-payload) is required'),
    h('bad-role', base().set(1, 'admin'), hs, 'role "admin" is not broker, client, worker or node'),
    h('role-not-text', base().set(1, utf8('node')), hs, 'role is a byte string'),
    h('dead-equals-active', base().set(5, [5000, 200, 200]), hs, 'dead-ms must be greater than active-ms'),
    h('dead-below-active', base().set(5, [5000, 200, 150]), hs, 'dead-ms below active-ms'),
    h('idle-too-small', base().set(5, [9, 200, 600]), hs, 'timers are 10..3,600,000 ms'),
    h('idle-too-large', base().set(5, [3_600_001, 200, 600]), hs, 'timers are 10..3,600,000 ms'),
    h('heartbeat-two-values', base().set(5, [5000, 200]), hs, 'heartbeat is [idle-ms, active-ms, dead-ms]'),
    h('version-one-value', base().set(4, [1]), hs, 'version is [major, minor]'),
    h('max-payload-too-large', base().set(6, [64 * 1024 * 1024 + 1]), hs, 'max-payload is at most 64 MiB'),
    h('name-empty', base().set(2, ''), hs, 'a name is 1..128 UTF-8 bytes'),
    h('name-129', base().set(2, 'n'.repeat(129)), hs, 'a name is 1..128 UTF-8 bytes'),
    h('boot-id-15-bytes', brokerBase().set(3, fill(15, 0xbb)), hs, 'a boot id is 16 bytes'),
    h('not-a-map', unhex('80'), hs, 'a HELLO is a CBOR map'),
    h('trailing-byte', Buffer.concat([encodeHello(initiatorHello), unhex('00')]), hs, 'a byte after the map'),
    h('negative-integer', unhex(cb.map(5) + cb.uint(1) + cb.text('node') + cb.uint(2) + cb.text('node-1') + cb.uint(4) + cb.array(2) + '0100' + cb.uint(5) + cb.array(3) + '391387' + cb.uint(200) + cb.uint(600) + cb.uint(6) + cb.array(1) + cb.uint(1048576)), hs, 'idle-ms -5000: negative integers are outside the CBOR subset'),
    h('name-utf16', namedUtf16, 'MESH_ERR_HANDSHAKE', 'name of 100 "é": 100 characters but 200 UTF-8 bytes, over tstr .size (1..128)'),
    h('broker-without-boot-id', (() => {
      const m = brokerBase();
      m.delete(3);
      return m;
    })(), hs, 'a broker HELLO must carry key 3 (boot id)'),
    h('node-with-boot-id', base().set(3, BB), hs, 'only a broker HELLO carries key 3 (boot id)'),
  ];
}

function frameCases(): RejectCase[] {
  return [
    { name: 'handshake-frame-2049', layer: 'frame', bytes: unhex('0801'), limits: { maxFrameLength: HANDSHAKE_MAX_FRAME }, documented: 'MESH_ERR_FRAME_TOO_LARGE', why: 'a frame over 2048 bytes while the handshake runs, refused as soon as the two length bytes are read' },
    { name: 'handshake-frame-65535', layer: 'frame', bytes: unhex('ffff00'), limits: { maxFrameLength: HANDSHAKE_MAX_FRAME }, documented: 'MESH_ERR_FRAME_TOO_LARGE', why: 'a 65535-byte frame while the handshake runs' },
  ];
}

const PING_ENV = unhex('0003a10009');

function segmentCases(): RejectCase[] {
  const s = (name: string, bytes: Uint8Array, documented: Outcome, why: string, limits?: RejectCase['limits']): RejectCase => ({ name, layer: 'segments', bytes, documented, why, ...(limits ? { limits } : {}) });
  const pr = 'MESH_ERR_PROTOCOL';
  return [
    s('empty-plaintext', new Uint8Array(0), pr, 'a plaintext holds at least one segment'),
    s('reserved-flag-bit-1', segment(PING_ENV, 0x02), pr, 'flags bit 1 is reserved'),
    s('reserved-flag-bit-7', segment(PING_ENV, 0x80), pr, 'flags bit 7 is reserved'),
    s('more-and-reserved', segment(PING_ENV, 0x03), pr, 'MORE together with a reserved bit'),
    s('zero-length', Buffer.concat([unhex('000000'), segment(PING_ENV)]), pr, 'a segment of length 0'),
    s('zero-length-more', Buffer.concat([unhex('010000'), segment(PING_ENV)]), pr, 'a segment of length 0 with MORE'),
    s('length-past-plaintext', unhex('0000060003a10009'), pr, 'segment length 6 but only 5 bytes follow'),
    s('truncated-segment-header', Buffer.concat([segment(PING_ENV), unhex('0000')]), pr, 'two bytes after the last segment: a truncated segment header'),
    s('reassembly-over-bound', Buffer.concat([segment(unhex('0003a1'), 0x01), segment(unhex('0009'), 0x01), segment(unhex('00'))]), 'MESH_ERR_ENVELOPE_TOO_LARGE', 'the parts of one envelope pass the receiver\'s reassembly bound (here 5 bytes instead of 2 + 65535 + max-payload)', { maxEnvelope: 5 }),
  ];
}

function envelopeCases(): RejectCase[] {
  const e = (name: string, bytes: Uint8Array, documented: Outcome, why: string, limits?: RejectCase['limits']): RejectCase => ({ name, layer: 'envelope', bytes, documented, why, ...(limits ? { limits } : {}) });
  const codec = new EnvelopeCodec();
  return [
    e('one-byte', unhex('00'), 'MESH_ERR_PROTOCOL', 'an envelope shorter than its header length field'),
    e('header-length-zero', unhex('0000'), 'MESH_ERR_PROTOCOL', 'header length 0: the header is one CBOR map, at least 1 byte'),
    e('header-length-zero-with-bytes', unhex('0000a10009'), 'MESH_ERR_PROTOCOL', 'header length 0 followed by what would be a header'),
    e('header-length-past-end', unhex('0004a10009'), 'MESH_ERR_PROTOCOL', 'header length 4 but only 3 bytes follow'),
    e('payload-over-limit', codec.encodeToBuffer({ type: 'REQUEST', id: rid(0x11), service: 'echo', attempt: 1, dup: false, ttl: 1000, payload: utf8('12345') }), 'MESH_ERR_ENVELOPE_TOO_LARGE', 'a 5-byte payload over the receiver\'s max-payload (here 4)', { maxPayload: 4 }),
  ];
}

/** Header-layer cases: each is a valid message but for one defect in the header CBOR. */
function headerCases(): RejectCase[] {
  const hd = (name: string, header: string, why: string, payload?: Uint8Array): RejectCase => ({ name, layer: 'header', bytes: envelopeOf(unhex(header), payload), documented: 'MESH_ERR_PROTOCOL', why });
  const errorWithText = (textItem: string): string => cb.map(4) + cb.uint(0) + cb.uint(7) + cb.uint(10) + cb.text('MESH_ERR_HANDLER') + cb.uint(11) + cb.false + cb.uint(12) + textItem;
  const deep = cb.map(4) + cb.uint(0) + cb.uint(13) + cb.uint(15) + cb.bytes(BB) + cb.uint(19) + cb.uint(1) + cb.uint(17) + cb.array(1) + cb.array(6) + cb.bytes(key(0xaa)) + cb.array(1) + cb.array(1) + cb.text(LOCAL) + cb.bytes(BB) + cb.uint(1) + cb.uint(0) + cb.true;
  const manyItems = cb.map(2) + cb.uint(0) + cb.uint(11) + cb.uint(13) + cb.array(4092) + '00'.repeat(4092);
  return [
    hd('tag', 'a100c109', 'tag 1 around the type: tags are refused'),
    hd('self-describe-tag', 'd9d9f7a10009', 'tag 55799 before the map: the header must be a map'),
    hd('float16', 'a100f94880', 'type 9 as a half-precision float'),
    hd('float64', 'a100fb4022000000000000', 'type 9 as a double'),
    hd('negative-integer', 'a10028', 'type -9: negative integers are refused'),
    hd('negative-key', 'a200092000', 'a negative map key (-1)'),
    hd('undefined', 'a100f7', 'type is the simple value undefined (f7): only false, true and null are allowed'),
    hd('simple-value-16', 'a100f0', 'simple value 16'),
    hd('indefinite-map', 'bf0009ff', 'an indefinite-length map'),
    hd('indefinite-array', cb.map(2) + cb.uint(0) + cb.uint(11) + cb.uint(13) + '9fff', 'BROKERS with an indefinite-length (empty) brokers array'),
    hd('indefinite-text', errorWithText('7f6162ff'), 'ERROR whose text is an indefinite-length string'),
    hd('invalid-utf8', errorWithText('62c328'), 'ERROR whose text is not valid UTF-8 (c3 28)'),
    hd('utf8-surrogate', errorWithText('63eda080'), 'ERROR whose text encodes a UTF-16 surrogate (ed a0 80)'),
    hd('utf8-overlong', errorWithText('62c0af'), 'ERROR whose text holds an overlong encoding of "/" (c0 af)'),
    hd('trailing-byte', 'a1000900', 'a byte after the header map, inside the header length'),
    hd('text-key', 'a1613009', 'map key "0" is a text string: keys are unsigned integers'),
    hd('bytes-key', 'a1410009', 'map key h\'00\' is a byte string'),
    hd('duplicate-key', 'a200090009', 'key 0 twice'),
    hd('duplicate-key-long-form', 'a20009180009', 'key 0 twice, once in a longer form'),
    hd('depth-6', deep, 'GOSSIP whose address is wrapped in one more array: depth 6'),
    hd('items-4097', manyItems, '4097 data items: the map, 2 keys, 2 values and 4092 array elements'),
    hd('integer-2-pow-53', cb.map(6) + '0004' + '01' + cb.bytes(rid(0x11)) + '02' + cb.text('echo') + '0301' + '04f4' + '05' + '1b0020000000000000', 'REQUEST with ttl 2^53: integers are below 2^53'),
    hd('integer-2-pow-64-minus-1', 'a1001bffffffffffffffff', 'type 2^64 - 1'),
    hd('reserved-additional-info', 'a1001c', 'additional info 28 is reserved'),
    hd('not-a-map', '820009', 'the header is an array'),
    hd('truncated-map', 'a20009', 'a map of 2 pairs holding 1'),
    hd('string-past-end', 'a20003' + '02' + '65' + hex(utf8('echo')), 'a text string of 5 bytes with 4 left'),
  ];
}

function messageCases(): RejectCase[] {
  const pr = 'MESH_ERR_PROTOCOL';
  const m = (name: string, entries: (readonly [number, HeaderValue])[], why: string, payload?: Uint8Array, documented: Outcome = pr): RejectCase => ({ name, layer: 'message', bytes: envelopeOf(headerOf(entries), payload), documented, why });
  const request = (overrides: Record<number, HeaderValue | undefined> = {}): (readonly [number, HeaderValue])[] => {
    const base: Record<number, HeaderValue> = { 0: 4, 1: rid(0x11), 2: 'echo', 3: 1, 4: false, 5: 1000 };
    const merged = { ...base, ...overrides };
    return Object.entries(merged).filter(([, v]) => v !== undefined).map(([k, v]) => [Number(k), v!] as const);
  };
  const brokerEntry = (id = key(0xaa), addresses: HeaderValue = [LOCAL], bootId: Uint8Array = BB, incarnation: HeaderValue = 0): HeaderValue[] => [id, addresses, bootId, incarnation];
  const viewEntry = (status: HeaderValue = 0, reachable: HeaderValue = true): HeaderValue[] => [...brokerEntry(), status, reachable];
  const brokers = (list: HeaderValue[]): (readonly [number, HeaderValue])[] => [[0, 11], [13, list]];
  const gossip = (entries: HeaderValue[], incarnation: HeaderValue = 0): (readonly [number, HeaderValue])[] => [[0, 13], [15, BB], [19, incarnation], [17, entries]];
  const error = (code: string, text: string): (readonly [number, HeaderValue])[] => [[0, 7], [10, code], [11, false], [12, text]];
  return [
    m('type-0', [[0, 0]], 'message type 0 does not exist'),
    m('type-14', [[0, 14]], 'message type 14 does not exist'),
    m('type-text', [[0, 'PING']], 'the type is a text string'),
    m('type-missing', [[1, rid(0x11)]], 'no key 0'),
    m('empty-map', [], 'an empty header: no type'),
    m('request-missing-ttl', request({ 5: undefined }), 'REQUEST without key 5 (ttl)'),
    m('request-missing-dup', request({ 4: undefined }), 'REQUEST without key 4 (dup)'),
    m('welcome-missing-boot-id', [[0, 1], [13, [brokerEntry()]], [14, key(0xaa)]], 'WELCOME without key 15 (boot id)'),
    m('error-missing-retryable', [[0, 7], [10, 'MESH_ERR_HANDLER'], [12, 'boom']], 'ERROR without key 11 (retryable)'),
    m('refused-missing-id', [[0, 8]], 'REFUSED without key 1 (id)'),
    m('ping-with-id', [[0, 9], [1, rid(0x11)]], 'key 1 is not defined for PING'),
    m('request-with-to', request({ 18: key(0xa4) }), 'key 18 (to) is not defined for REQUEST'),
    m('reply-with-service', [[0, 6], [1, rid(0x11)], [2, 'echo']], 'key 2 (service) is not defined for REPLY'),
    m('ping-unknown-key-20', [[0, 9], [20, 0]], 'key 20 (trace) is not defined for PING'),
    m('request-unknown-key-21', request({ 21: 0 }), 'key 21 is not defined for any message'),
    m('ping-unknown-key-100', [[0, 9], [100, 0]], 'key 100 is not defined for any message'),
    m('request-service-bytes', request({ 2: utf8('echo') }), 'service is a byte string, not a text string'),
    m('request-dup-integer', request({ 4: 0 }), 'dup is the integer 0, not a boolean'),
    m('request-attempt-text', request({ 3: '1' }), 'attempt is a text string'),
    m('request-worker-null', request({ 6: null }), 'worker is null: an absent optional key is left out, never null'),
    m('ready-credits-bool', [[0, 2], [2, 'echo'], [9, true]], 'credits is a boolean'),
    m('ping-with-payload', [[0, 9]], 'PING with a 1-byte payload: only REQUEST and REPLY carry one', utf8('x')),
    m('error-with-payload', error('MESH_ERR_HANDLER', 'boom'), 'ERROR with a payload', utf8('x')),
    m('service-leading-dash', request({ 2: '-echo' }), 'a service name starts with a letter or digit'),
    m('service-space', request({ 2: 'echo service' }), 'a space in a service name'),
    m('service-empty', request({ 2: '' }), 'an empty service name'),
    m('service-non-ascii', request({ 2: 'écho' }), 'a non-ASCII service name'),
    m('service-129', request({ 2: `s${'x'.repeat(128)}` }), 'a service name of 129 characters'),
    m('sender-name-129', request({ 8: 'n'.repeat(129) }), 'a sender name of 129 characters'),
    m('error-text-1025', error('MESH_ERR_HANDLER', 'e'.repeat(1025)), 'an ERROR text of 1025 characters'),
    m('error-code-invalid', error('OOPS', 'boom'), 'an error code not of the form MESH_ERR_[A-Z0-9_]{1,54}'),
    m('error-code-empty-suffix', error('MESH_ERR_', 'boom'), 'an error code with nothing after MESH_ERR_'),
    m('error-code-lowercase', error('MESH_ERR_handler', 'boom'), 'an error code in lower case'),
    m('attempt-0', request({ 3: 0 }), 'attempt counts from 1'),
    m('attempt-256', request({ 3: 256 }), 'attempt is at most 255'),
    m('ttl-2-pow-31', request({ 5: 2 ** 31 }), 'ttl is at most 2147483647'),
    m('credits-65536', [[0, 2], [2, 'echo'], [9, 65536]], 'credits is at most 65535'),
    m('gossip-incarnation-2-pow-32', gossip([viewEntry()], 2 ** 32), 'the GOSSIP incarnation is at most 2^32 - 1'),
    m('broker-incarnation-2-pow-32', brokers([brokerEntry(key(0xaa), [LOCAL], BB, 2 ** 32)]), 'a broker entry\'s incarnation is at most 2^32 - 1'),
    m('brokers-257', brokers(Array.from({ length: 257 }, (_, i) => brokerEntry(key(i % 256), [LOCAL], BB, i))), 'BROKERS with 257 brokers: at most 256'),
    m('view-257', gossip(Array.from({ length: 257 }, (_, i) => [key(i % 256), [LOCAL], BB, i, 0, true])), 'GOSSIP with 257 view entries: at most 256'),
    m('dispatched-1025', [[0, 5], [16, Array.from({ length: 1025 }, (_, i) => [fill(16, i % 256), key(0xcc)])]], 'DISPATCHED with 1025 entries: at most 1024'),
    m('addresses-0', brokers([brokerEntry(key(0xaa), [])]), 'a broker entry with no address: 1 to 8'),
    m('addresses-9', brokers([brokerEntry(key(0xaa), Array.from({ length: 9 }, (_, i) => `10.0.0.${i}:4222`))]), 'a broker entry with 9 addresses: 1 to 8'),
    m('address-empty', brokers([brokerEntry(key(0xaa), [''])]), 'an empty address'),
    m('address-263', brokers([brokerEntry(key(0xaa), [`${'h'.repeat(258)}:4222`])]), 'an address of 263 characters: at most 262'),
    m('address-space', brokers([brokerEntry(key(0xaa), ['127.0.0.1 :4222'])]), 'white space in an address'),
    m('address-slash', brokers([brokerEntry(key(0xaa), ['127.0.0.1:4222/x'])]), '"/" in an address'),
    m('address-at', brokers([brokerEntry(key(0xaa), ['user@127.0.0.1:4222'])]), '"@" in an address'),
    m('address-not-ascii', brokers([brokerEntry(key(0xaa), ['bröker:4222'])]), 'a non-ASCII character in an address: addresses are printable ASCII'),
    m('address-not-text', brokers([brokerEntry(key(0xaa), [4222])]), 'an address that is an integer'),
    m('broker-entry-3-elements', brokers([[key(0xaa), [LOCAL], BB]]), 'a broker entry of 3 elements: [id, addresses, boot-id, incarnation]'),
    m('broker-entry-6-elements', brokers([viewEntry()]), 'a view entry (6 elements) where a broker entry (4) belongs'),
    m('brokers-not-array', brokers(new Map([[0, brokerEntry()]]) as unknown as HeaderValue[]), 'brokers is a map'),
    m('view-status-4', gossip([viewEntry(4)]), 'view status 4: statuses are 0..3'),
    m('view-reachable-integer', gossip([viewEntry(0, 1)]), 'view reachable is 1, not a boolean'),
    m('view-entry-4-elements', gossip([brokerEntry()]), 'a broker entry (4 elements) where a view entry (6) belongs'),
    m('dispatched-entry-3-elements', [[0, 5], [16, [[rid(0x11), key(0xcc), 0]]]], 'a dispatched entry is an [id, worker] pair'),
    m('dispatched-id-15', [[0, 5], [16, [[fill(15, 0x11), key(0xcc)]]]], 'a dispatched id of 15 bytes'),
    m('request-id-15', request({ 1: fill(15, 0x11) }), 'a request id of 15 bytes: ids are 16'),
    m('request-id-17', request({ 1: fill(17, 0x11) }), 'a request id of 17 bytes'),
    m('request-worker-33', request({ 6: fill(33, 0xcc) }), 'a worker key of 33 bytes: keys are 32'),
    m('request-trace-space', request({ 20: '00-4bf9 2f35' }), 'a trace context with a space: printable ASCII without spaces'),
    m('request-trace-257', request({ 20: 't'.repeat(257) }), 'a trace context of 257 characters: at most 256'),
    m('request-trace-empty', request({ 20: '' }), 'an empty trace context: 1 to 256 characters'),
    m('reply-to-31', [[0, 6], [1, rid(0x11)], [18, fill(31, 0xa4)]], 'a to key of 31 bytes'),
    m('welcome-broker-id-33', [[0, 1], [13, [brokerEntry()]], [14, fill(33, 0xaa)], [15, BB]], 'a broker id of 33 bytes'),
    m('welcome-boot-id-15', [[0, 1], [13, [brokerEntry()]], [14, key(0xaa)], [15, fill(15, 0xbb)]], 'a boot id of 15 bytes: boot ids are 16'),
    m('broker-entry-id-33', brokers([brokerEntry(fill(33, 0xaa))]), 'a broker entry id of 33 bytes'),
    m('sender-name-utf16', request({ 7: key(0xa4), 8: 'é'.repeat(100) }), 'a sender name of 100 "é": 100 characters but 200 UTF-8 bytes, over tstr .size (0..128)'),
    m('error-text-utf16', error('MESH_ERR_HANDLER', 'é'.repeat(1000)), 'an ERROR text of 1000 "é": 2000 UTF-8 bytes, over tstr .size (0..1024)'),
    m('sender-name-astral', request({ 7: key(0xa4), 8: `${'n'.repeat(127)}😀` }), 'a sender name of 128 characters (code points) of which one is outside the BMP: 131 UTF-8 bytes', undefined, 'MESH_ERR_PROTOCOL'),
  ];
}

function buildReject(message1: Uint8Array, cases: RejectCase[]): Json {
  const seen = new Set<string>();
  const vectors: Json[] = [];
  const disagreements: string[] = [];
  for (const c of cases) {
    const id = `${c.layer}/${c.name}`;
    if (seen.has(id)) throw new Error(`duplicate case ${id}`);
    seen.add(id);
    const meshd = runMeshd(c, { message1 });
    if (meshd !== c.documented || meshd === 'accepted') {
      disagreements.push(`${id}: docs/protocol.md says ${c.documented}, meshd gives ${meshd} (${c.why})`);
      continue;
    }
    const out: Record<string, Json> = { name: c.name, layer: c.layer };
    if (c.step !== undefined) out['step'] = c.step;
    if (c.limits !== undefined) out['limits'] = { ...c.limits };
    out['hex'] = hex(c.bytes);
    out['error'] = meshd;
    out['why'] = c.why;
    vectors.push(out);
  }
  // A case where meshd and the document disagree is a bug in one of them: no vector file is written.
  if (disagreements.length > 0) throw new Error(`meshd and docs/protocol.md disagree:\n${disagreements.join('\n')}`);
  return {
    protocol: VERSION,
    description: 'Inputs a receiver must refuse, by layer, with the MESH_ERR_* code meshd produces.',
    vectors,
  };
}

// ------------------------------------------------------------------ main

function build(): Record<string, string> {
  const handshake = buildHandshake();
  const { cases: hsCases, message1 } = handshakeCases();
  const cases = [...preambleCases(), ...helloCases(), ...hsCases, ...frameCases(), ...segmentCases(), ...envelopeCases(), ...headerCases(), ...messageCases()];
  const reject = buildReject(message1, cases);
  const text = (j: Json): string => `${JSON.stringify(j, null, 2)}\n`;
  return {
    'handshake.json': text(handshake),
    'messages.json': text(buildMessages()),
    'reject.json': text(reject),
  };
}

function main(): void {
  const check = process.argv.includes('--check');
  const files = build();
  if (check) {
    const stale: string[] = [];
    for (const [name, content] of Object.entries(files)) {
      let committed: string | undefined;
      try {
        committed = readFileSync(OUT_DIR + name, 'utf8');
      } catch {
        committed = undefined;
      }
      if (committed !== content) stale.push(name);
    }
    if (stale.length > 0) {
      console.error(`conformance vectors out of date: ${stale.map((n) => `conformance/vectors/${n}`).join(', ')}; run node --import tsx scripts/conformance-vectors.ts`);
      process.exit(1);
    }
    console.log('conformance vectors are up to date');
    return;
  }
  mkdirSync(OUT_DIR, { recursive: true });
  for (const [name, content] of Object.entries(files)) writeFileSync(OUT_DIR + name, content);
  console.log(`wrote ${Object.keys(files).map((n) => `conformance/vectors/${n}`).join(', ')}`);
}

main();
