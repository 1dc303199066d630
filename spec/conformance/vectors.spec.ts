// meshd runs its own conformance kit (conformance/vectors/*.json) the way an
// implementation in another language would, reading only the JSON files:
//   - messages.json: every vector's envelope decodes to its `message`, and the
//     `message` encodes to exactly its header, envelope and plaintext bytes;
//     segment sequences reassemble and pack byte for byte; non-canonical
//     (lenient) envelopes decode, and re-encode to the canonical bytes;
//   - handshake.json: the handshake with the given keys and HELLOs reproduces
//     every preamble, message, HELLO and the handshake hash byte for byte (with
//     each available crypto suite), and the transport frames seal and open;
//   - reject.json: every vector makes the decoder of its layer throw a
//     MeshError with exactly its code;
//   - the committed files are what scripts/conformance-vectors.ts writes today
//     (`--check` in a child process), so they cannot drift from the code.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { MeshError } from '../../lib/errors.ts';
import { getSuite, nodeCryptoSupport } from '../../lib/crypto/suites.ts';
import type { KeyPair } from '../../lib/crypto/crypto-suite.ts';
import { InitiatorHandshake, NOISE_PROTOCOL, ResponderHandshake } from '../../lib/protocol/handshake.ts';
import type { HandshakeResult } from '../../lib/protocol/handshake.ts';
import { decodeHello, encodeHello } from '../../lib/protocol/hello.ts';
import type { Hello } from '../../lib/protocol/hello.ts';
import { checkVersion, decodePreamble, PROTOCOL_VERSION } from '../../lib/protocol/preamble.ts';
import { DEFAULT_MAX_PAYLOAD, EnvelopeCodec, maxEnvelopeLength } from '../../lib/protocol/envelope-codec.ts';
import { packSegments, SegmentReader } from '../../lib/protocol/segments.ts';
import { HeaderCodec } from '../../lib/protocol/strict-cbor.ts';
import { MessageType, messageToHeader } from '../../lib/protocol/messages.ts';
import { encodeFrame } from '../../lib/framing/frame-encoder.ts';
import { FrameDecoder } from '../../lib/framing/frame-decoder.ts';
import { hex, helloFromJson, messageFromJson, toJson, unhex } from './json-form.ts';
import type { HelloJson, Json } from './json-form.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));
const read = <T>(name: string): T => JSON.parse(readFileSync(`${root}conformance/vectors/${name}`, 'utf8')) as T;

interface MessageVector { name: string; message: Json; header: string; envelope: string; plaintext: string }
interface SequenceVector { name: string; maxPlaintext?: number; messages: Json[]; envelopes: string[]; plaintexts: string[] }
interface LenientVector { name: string; envelope: string; message: Json; canonical: string }
interface MessagesFile { protocol: string; vectors: MessageVector[]; sequences: SequenceVector[]; lenient: LenientVector[] }

interface KeyJson { private: string; public: string }
interface HandshakeMessageJson { name: string; payload: string; noise: string; frame: string }
interface TransportJson { from: 'initiator' | 'responder'; nonce: number; messages: Json[]; envelopes: string[]; plaintext: string; frame: string }
interface HandshakeFile {
  protocol: string;
  noiseProtocol: string;
  keys: Record<'initiatorStatic' | 'initiatorEphemeral' | 'responderStatic' | 'responderEphemeral', KeyJson>;
  preambles: { initiator: string; responder: string };
  prologue: string;
  hellos: Record<'initiator' | 'responder', { cbor: string; fields: HelloJson }>;
  messages: HandshakeMessageJson[];
  handshakeHash: string;
  transport: TransportJson[];
  acceptedPreambles: { hex: string; major: number; minor: number }[];
}

type Layer = 'preamble' | 'hello' | 'handshake' | 'frame' | 'segments' | 'envelope' | 'header' | 'message';
interface Limits { maxPayload?: number; maxEnvelope?: number; maxFrameLength?: number }
interface RejectVector { name: string; layer: Layer; step?: 'message-1' | 'message-2' | 'message-3'; limits?: Limits; hex: string; error: string; why: string }
interface RejectFile { protocol: string; vectors: RejectVector[] }

const messages = read<MessagesFile>('messages.json');
const handshake = read<HandshakeFile>('handshake.json');
const reject = read<RejectFile>('reject.json');
const VERSION = `${PROTOCOL_VERSION.major}.${PROTOCOL_VERSION.minor}`;

/** Every envelope a sequence of plaintexts completes, in order. */
function reassemble(plaintexts: readonly Uint8Array[]): string[] {
  const reader = new SegmentReader(maxEnvelopeLength(DEFAULT_MAX_PAYLOAD));
  const out: string[] = [];
  for (const p of plaintexts) reader.push(p, (e) => out.push(hex(e)));
  assert.equal(reader.pendingBytes, 0, 'no envelope left half reassembled');
  return out;
}

test('the three files cover wire protocol v1.0, the version meshd speaks', () => {
  for (const file of [messages, handshake, reject]) assert.equal(file.protocol, VERSION);
  assert.equal(handshake.noiseProtocol, NOISE_PROTOCOL);
});

describe('messages.json', () => {
  test('has at least one vector for every message type', () => {
    const types = new Set(messages.vectors.map((v) => (v.message as { type: string }).type));
    assert.deepEqual([...types].sort(), Object.keys(MessageType).sort());
  });

  for (const v of messages.vectors) {
    test(`${v.name}: decodes to its message and encodes to its bytes`, () => {
      const codec = new EnvelopeCodec();
      // The bytes are consistent with each other: envelope = length || header || payload, plaintext = one segment.
      const header = unhex(v.header);
      const envelope = unhex(v.envelope);
      const payload = (v.message as { payload?: string }).payload ?? '';
      assert.equal(v.envelope, hex(Buffer.from([header.length >> 8, header.length & 0xff])) + v.header + payload);
      assert.equal(v.plaintext, `00${hex(Buffer.from([envelope.length >> 8, envelope.length & 0xff]))}${v.envelope}`);
      // Decode: plaintext -> envelope -> message.
      assert.deepEqual(reassemble([unhex(v.plaintext)]), [v.envelope]);
      assert.deepEqual(toJson(codec.decode(envelope)), v.message);
      // Encode: message -> header, envelope, plaintext.
      const msg = messageFromJson(v.message);
      assert.equal(hex(new HeaderCodec().encode(messageToHeader(msg))), v.header);
      assert.equal(hex(codec.encodeToBuffer(msg)), v.envelope);
      assert.deepEqual(packSegments([codec.encode(msg)]).map(hex), [v.plaintext]);
    });
  }

  for (const s of messages.sequences) {
    test(`sequence ${s.name}: plaintexts reassemble to the envelopes and messages, and the messages pack to the plaintexts`, () => {
      const codec = new EnvelopeCodec();
      assert.deepEqual(reassemble(s.plaintexts.map(unhex)), s.envelopes);
      assert.deepEqual(s.envelopes.map((e) => toJson(codec.decode(unhex(e)))), s.messages);
      const encoded = s.messages.map((m) => codec.encode(messageFromJson(m)));
      assert.deepEqual(encoded.map((e) => hex(Buffer.concat([e.head, e.payload]))), s.envelopes);
      assert.deepEqual((s.maxPlaintext === undefined ? packSegments(encoded) : packSegments(encoded, s.maxPlaintext)).map(hex), s.plaintexts);
    });
  }

  for (const l of messages.lenient) {
    test(`lenient ${l.name}: decodes to its message, which encodes to the canonical bytes`, () => {
      const codec = new EnvelopeCodec();
      assert.deepEqual(toJson(codec.decode(unhex(l.envelope))), l.message);
      assert.equal(hex(codec.encodeToBuffer(messageFromJson(l.message))), l.canonical);
      assert.notEqual(l.envelope, l.canonical);
    });
  }
});

describe('handshake.json', () => {
  const keyPair = (k: KeyJson): KeyPair => ({ privateKey: new Uint8Array(unhex(k.private)), publicKey: new Uint8Array(unhex(k.public)) });
  const msg = (name: string): HandshakeMessageJson => handshake.messages.find((m) => m.name === name)!;

  test('HELLOs: the CBOR decodes to the fields and the fields encode to the CBOR', () => {
    for (const side of ['initiator', 'responder'] as const) {
      const h = handshake.hellos[side];
      assert.deepEqual(toJson(decodeHello(unhex(h.cbor))), toJson(helloFromJson(h.fields)));
      assert.equal(hex(encodeHello(helloFromJson(h.fields))), h.cbor);
    }
    assert.equal(msg('message-1').payload, '');
    assert.equal(msg('message-2').payload, handshake.hellos.responder.cbor);
    assert.equal(msg('message-3').payload, handshake.hellos.initiator.cbor);
  });

  test('accepted preambles parse, and the version check lets them through', () => {
    for (const p of handshake.acceptedPreambles) {
      const v = decodePreamble(unhex(p.hex));
      assert.deepEqual(v, { major: p.major, minor: p.minor });
      checkVersion(v);
    }
  });

  const suites = nodeCryptoSupport().available ? (['noble', 'node'] as const) : (['noble'] as const);
  for (const name of suites) {
    test(`${name} suite: the handshake and the transport messages reproduce byte for byte`, () => {
      const suite = getSuite(name);
      const k = {
        initiatorStatic: keyPair(handshake.keys.initiatorStatic),
        initiatorEphemeral: keyPair(handshake.keys.initiatorEphemeral),
        responderStatic: keyPair(handshake.keys.responderStatic),
        responderEphemeral: keyPair(handshake.keys.responderEphemeral),
      };
      for (const kp of Object.values(k)) assert.equal(hex(suite.publicKey(kp.privateKey)), hex(kp.publicKey), 'public key of the private key');
      const hellos: Record<'initiator' | 'responder', Hello> = { initiator: helloFromJson(handshake.hellos.initiator.fields), responder: helloFromJson(handshake.hellos.responder.fields) };

      const initiator = new InitiatorHandshake({ suite, keyPair: k.initiatorStatic, ephemeral: k.initiatorEphemeral, remoteKey: k.responderStatic.publicKey, hello: hellos.initiator });
      const responder = new ResponderHandshake({ suite, keyPair: k.responderStatic, ephemeral: k.responderEphemeral, hello: hellos.responder });
      const { preamble, message1 } = initiator.start();
      assert.equal(hex(preamble), handshake.preambles.initiator);
      assert.equal(handshake.prologue, handshake.preambles.initiator);
      assert.equal(hex(message1), msg('message-1').noise);
      assert.equal(hex(encodeFrame(message1)), msg('message-1').frame);
      const { preamble: responderPreamble, error } = responder.readPreamble(unhex(handshake.preambles.initiator));
      assert.equal(error, undefined);
      assert.equal(hex(responderPreamble), handshake.preambles.responder);
      const message2 = responder.readMessage1(unhex(msg('message-1').noise));
      assert.equal(hex(encodeFrame(message2)), msg('message-2').frame);
      initiator.readPreamble(unhex(handshake.preambles.responder));
      const message3 = initiator.readMessage2(unhex(msg('message-2').noise));
      assert.equal(hex(encodeFrame(message3)), msg('message-3').frame);
      const r = responder.readMessage3(unhex(msg('message-3').noise));
      const i = initiator.result();
      assert.equal(hex(i.handshakeHash), handshake.handshakeHash);
      assert.equal(hex(r.handshakeHash), handshake.handshakeHash);
      assert.equal(hex(r.remoteKey), hex(k.initiatorStatic.publicKey));
      assert.deepEqual(toJson(r.remoteHello), toJson(hellos.initiator));
      assert.deepEqual(toJson(i.remoteHello), toJson(hellos.responder));

      const sides: Record<'initiator' | 'responder', HandshakeResult> = { initiator: i, responder: r };
      const codec = new EnvelopeCodec();
      for (const t of handshake.transport) {
        const sender = sides[t.from];
        const receiver = sides[t.from === 'initiator' ? 'responder' : 'initiator'];
        assert.equal(sender.send.nonce, t.nonce, `${t.from} nonce`);
        const encoded = t.messages.map((m) => codec.encode(messageFromJson(m)));
        assert.deepEqual(encoded.map((e) => hex(Buffer.concat([e.head, e.payload]))), t.envelopes);
        assert.deepEqual(packSegments(encoded).map(hex), [t.plaintext]);
        assert.equal(hex(encodeFrame(sender.send.encrypt(unhex(t.plaintext)))), t.frame);
        const frame = unhex(t.frame);
        assert.equal(frame.readUInt16BE(0), frame.length - 2);
        const opened = receiver.receive.decrypt(frame.subarray(2));
        assert.equal(hex(opened), t.plaintext);
        assert.deepEqual(reassemble([opened]), t.envelopes);
        assert.deepEqual(t.envelopes.map((e) => toJson(codec.decode(unhex(e)))), t.messages);
      }
    });
  }
});

/** Runs the decoder of a layer on a reject input. */
function decodeAtLayer(v: { layer: Layer; step?: RejectVector['step']; limits?: Limits; hex: string }): void {
  const bytes = unhex(v.hex);
  const suite = getSuite('noble');
  const keyPair = (k: KeyJson): KeyPair => ({ privateKey: new Uint8Array(unhex(k.private)), publicKey: new Uint8Array(unhex(k.public)) });
  switch (v.layer) {
    case 'preamble':
      checkVersion(decodePreamble(bytes));
      return;
    case 'hello':
      decodeHello(bytes);
      return;
    case 'frame':
      new FrameDecoder({ maxFrameLength: v.limits?.maxFrameLength ?? 65535 }).push(bytes, () => {});
      return;
    case 'handshake': {
      const keys = handshake.keys;
      if (v.step === 'message-2') {
        const i = new InitiatorHandshake({ suite, keyPair: keyPair(keys.initiatorStatic), ephemeral: keyPair(keys.initiatorEphemeral), remoteKey: unhex(keys.responderStatic.public), hello: helloFromJson(handshake.hellos.initiator.fields) });
        i.start();
        i.readPreamble(unhex(handshake.preambles.responder));
        i.readMessage2(bytes);
        return;
      }
      const r = new ResponderHandshake({ suite, keyPair: keyPair(keys.responderStatic), ephemeral: keyPair(keys.responderEphemeral), hello: helloFromJson(handshake.hellos.responder.fields) });
      const { error } = r.readPreamble(unhex(handshake.preambles.initiator));
      if (error) throw error;
      if (v.step === 'message-1') {
        r.readMessage1(bytes);
        return;
      }
      assert.equal(v.step, 'message-3');
      r.readMessage1(unhex(handshake.messages.find((m) => m.name === 'message-1')!.noise));
      r.readMessage3(bytes);
      return;
    }
    case 'segments': {
      const codec = new EnvelopeCodec();
      new SegmentReader(v.limits?.maxEnvelope ?? maxEnvelopeLength(DEFAULT_MAX_PAYLOAD)).push(bytes, (e) => codec.decode(e));
      return;
    }
    case 'envelope':
    case 'header':
    case 'message':
      new EnvelopeCodec({ maxPayload: v.limits?.maxPayload ?? DEFAULT_MAX_PAYLOAD }).decode(bytes);
      return;
  }
}

describe('reject.json', () => {
  test('covers every layer, with unique names per layer', () => {
    const layers = new Set(reject.vectors.map((v) => v.layer));
    assert.deepEqual([...layers].sort(), ['envelope', 'frame', 'handshake', 'header', 'hello', 'message', 'preamble', 'segments']);
    const ids = reject.vectors.map((v) => `${v.layer}/${v.name}`);
    assert.equal(new Set(ids).size, ids.length);
  });

  for (const v of reject.vectors) {
    test(`${v.layer} ${v.name}: ${v.error}`, () => {
      assert.throws(
        () => decodeAtLayer(v),
        (err: unknown) => {
          assert.ok(err instanceof MeshError, `a MeshError, got ${String(err)}`);
          assert.equal(err.code, v.error, `${v.why}; meshd says: ${err.message}`);
          return true;
        },
      );
    });
  }

});

test('the committed vectors are what scripts/conformance-vectors.ts writes (--check)', async () => {
  const run = promisify(execFile);
  const { stdout } = await run(process.execPath, ['--import', 'tsx', 'scripts/conformance-vectors.ts', '--check'], { cwd: root, timeout: 60_000 });
  assert.match(stdout, /up to date/);
});
