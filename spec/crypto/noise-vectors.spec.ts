// Runs every cacophony vector (spec/vectors/noise/) through both suites and
// across suites: handshake ciphertexts, payloads, handshake hash, remote
// static keys and transport messages must all match byte for byte.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import type { CryptoSuite, KeyPair } from '../../lib/crypto/crypto-suite.ts';
import { HandshakeState } from '../../lib/crypto/handshake-state.ts';
import { isOneWayPattern, parseProtocolName } from '../../lib/crypto/handshake-patterns.ts';
import { getSuite } from '../../lib/crypto/suites.ts';
import type { SuiteName } from '../../lib/crypto/suites.ts';

interface Vector {
  protocol_name: string;
  init_prologue: string;
  init_static?: string;
  init_ephemeral: string;
  init_remote_static?: string;
  resp_prologue: string;
  resp_static?: string;
  resp_ephemeral?: string;
  resp_remote_static?: string;
  handshake_hash: string;
  messages: { payload: string; ciphertext: string }[];
}

const EXPECTED_VECTORS = 76;
const RUNS: readonly (readonly [SuiteName, SuiteName])[] = [
  ['node', 'node'],
  ['noble', 'noble'],
  ['node', 'noble'],
  ['noble', 'node'],
];

const file = new URL('../vectors/noise/cacophony-25519-chachapoly.json', import.meta.url);
const vectors = (JSON.parse(readFileSync(file, 'utf8')) as { vectors: Vector[] }).vectors;

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const bytes = (h: string): Uint8Array => new Uint8Array(Buffer.from(h, 'hex'));
const keyPair = (suite: CryptoSuite, priv: string | undefined): KeyPair | undefined => {
  if (priv === undefined) return undefined;
  const privateKey = bytes(priv);
  return { privateKey, publicKey: suite.publicKey(privateKey) };
};
const optional = (h: string | undefined): Uint8Array | undefined => (h === undefined ? undefined : bytes(h));

function runVector(v: Vector, initSuite: CryptoSuite, respSuite: CryptoSuite): void {
  const init = HandshakeState.initialize({
    protocolName: v.protocol_name,
    initiator: true,
    prologue: bytes(v.init_prologue),
    s: keyPair(initSuite, v.init_static),
    e: keyPair(initSuite, v.init_ephemeral),
    rs: optional(v.init_remote_static),
    suite: initSuite,
  });
  const resp = HandshakeState.initialize({
    protocolName: v.protocol_name,
    initiator: false,
    prologue: bytes(v.resp_prologue),
    s: keyPair(respSuite, v.resp_static),
    e: keyPair(respSuite, v.resp_ephemeral),
    rs: optional(v.resp_remote_static),
    suite: respSuite,
  });

  const handshakeLen = init.pattern.messages.length;
  assert.ok(v.messages.length > handshakeLen, 'vector has transport messages');
  let i = 0;
  for (; i < handshakeLen; i++) {
    const m = v.messages[i]!;
    const [sender, receiver] = i % 2 === 0 ? [init, resp] : [resp, init];
    assert.equal(sender.isMyTurn, true);
    assert.equal(receiver.isMyTurn, false);
    const ct = sender.writeMessage(bytes(m.payload));
    assert.equal(hex(ct), m.ciphertext, `handshake message ${i + 1} ciphertext`);
    assert.equal(hex(receiver.readMessage(ct)), m.payload, `handshake message ${i + 1} payload`);
  }
  assert.equal(init.isComplete, true);
  assert.equal(resp.isComplete, true);
  assert.equal(hex(init.getHandshakeHash()), v.handshake_hash, 'initiator handshake hash');
  assert.equal(hex(resp.getHandshakeHash()), v.handshake_hash, 'responder handshake hash');
  if (v.resp_static !== undefined) assert.equal(hex(init.remoteStaticKey!), hex(respSuite.publicKey(bytes(v.resp_static))));
  if (v.init_static !== undefined) assert.equal(hex(resp.remoteStaticKey!), hex(initSuite.publicKey(bytes(v.init_static))));

  const ic = init.split();
  const rc = resp.split();
  const oneWay = isOneWayPattern(init.pattern);
  for (; i < v.messages.length; i++) {
    const m = v.messages[i]!;
    // One-way patterns: everything goes initiator -> responder. Otherwise the
    // alternation continues: whoever's turn is next after the handshake.
    const fromInitiator = oneWay || i % 2 === 0;
    const [send, receive] = fromInitiator ? [ic.send, rc.receive] : [rc.send, ic.receive];
    const ct = send.encryptWithAd(new Uint8Array(0), bytes(m.payload));
    assert.equal(hex(ct), m.ciphertext, `transport message ${i + 1} ciphertext`);
    assert.equal(hex(receive.decryptWithAd(new Uint8Array(0), ct)), m.payload, `transport message ${i + 1} payload`);
  }
}

let runs = 0;
const seen = new Set<string>();

void describe('Noise vectors (cacophony, 25519 ChaChaPoly SHA256/BLAKE2s)', () => {
  void test('the vector file holds every expected vector', () => {
    assert.equal(vectors.length, EXPECTED_VECTORS);
    for (const v of vectors) {
      const p = parseProtocolName(v.protocol_name);
      assert.ok(p.hash === 'SHA256' || p.hash === 'BLAKE2s');
    }
  });

  for (const [initName, respName] of RUNS) {
    void describe(`initiator ${initName}, responder ${respName}`, () => {
      const initSuite = getSuite(initName);
      const respSuite = getSuite(respName);
      for (const v of vectors) {
        void test(v.protocol_name, () => {
          runVector(v, initSuite, respSuite);
          runs++;
          seen.add(`${initName}/${respName}/${v.protocol_name}`);
        });
      }
    });
  }

  void test('no vector was skipped', () => {
    assert.equal(runs, EXPECTED_VECTORS * RUNS.length);
    assert.equal(seen.size, EXPECTED_VECTORS * RUNS.length);
  });
});

