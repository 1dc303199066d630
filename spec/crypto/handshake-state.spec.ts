import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { isMeshError } from '../../lib/errors.ts';
import type { ErrorCode } from '../../lib/errors.ts';
import type { CryptoSuite, KeyPair } from '../../lib/crypto/crypto-suite.ts';
import { HandshakeState } from '../../lib/crypto/handshake-state.ts';
import {
  formatProtocolName,
  getHandshakePattern,
  HANDSHAKE_PATTERNS,
  isOneWayPattern,
  parseHandshakePattern,
  parseProtocolName,
} from '../../lib/crypto/handshake-patterns.ts';
import { getSuite, SUITE_NAMES } from '../../lib/crypto/suites.ts';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);
const XK = 'Noise_XK_25519_ChaChaPoly_SHA256';
const PROLOGUE = new Uint8Array([0x4d, 0x45, 0x53, 0x48, 1, 0, 0, 0]); // the meshd preamble

function assertCode(fn: () => unknown, codes: ErrorCode | ErrorCode[], fragment?: string): void {
  const allowed = Array.isArray(codes) ? codes : [codes];
  assert.throws(fn, (err: unknown) => {
    assert.ok(isMeshError(err) && allowed.includes(err.code), `expected ${allowed.join(' or ')}, got ${String(err)}`);
    if (fragment !== undefined) assert.ok(err.message.includes(fragment), `"${err.message}" should mention "${fragment}"`);
    return true;
  });
}

interface XkKeys {
  initS: KeyPair;
  initE: KeyPair;
  respS: KeyPair;
  respE: KeyPair;
}

function xkKeys(suite: CryptoSuite): XkKeys {
  return { initS: suite.generateKeyPair(), initE: suite.generateKeyPair(), respS: suite.generateKeyPair(), respE: suite.generateKeyPair() };
}

function xkPair(suite: CryptoSuite, k: XkKeys, rs: Uint8Array = k.respS.publicKey): [HandshakeState, HandshakeState] {
  const init = HandshakeState.initialize({ protocolName: XK, initiator: true, prologue: PROLOGUE, s: k.initS, e: k.initE, rs, suite });
  const resp = HandshakeState.initialize({ protocolName: XK, initiator: false, prologue: PROLOGUE, s: k.respS, e: k.respE, suite });
  return [init, resp];
}

const PAYLOADS = [utf8(''), utf8('responder HELLO'), utf8('initiator HELLO')];

/** The three XK messages for fixed keys (deterministic, since the ephemerals are injected). */
function xkMessages(suite: CryptoSuite, k: XkKeys): Uint8Array[] {
  const [init, resp] = xkPair(suite, k);
  const m1 = init.writeMessage(PAYLOADS[0]);
  resp.readMessage(m1);
  const m2 = resp.writeMessage(PAYLOADS[1]);
  init.readMessage(m2);
  const m3 = init.writeMessage(PAYLOADS[2]);
  resp.readMessage(m3);
  return [m1, m2, m3];
}

/** Replays messages before `index`, then has the right side read `message` as message `index`. */
function readAt(suite: CryptoSuite, k: XkKeys, good: Uint8Array[], index: number, message: Uint8Array): Uint8Array {
  const [init, resp] = xkPair(suite, k);
  for (let i = 0; i < index; i++) {
    const [w, r] = i % 2 === 0 ? [init, resp] : [resp, init];
    w.writeMessage(PAYLOADS[i]);
    r.readMessage(good[i]!);
  }
  const reader = index % 2 === 0 ? resp : init;
  return reader.readMessage(message);
}

for (const name of SUITE_NAMES) {
  void describe(`HandshakeState XK (${name})`, () => {
    const suite = getSuite(name);

    void test('a full XK handshake: payloads, keys, handshake hash, transport both ways', () => {
      const k = xkKeys(suite);
      const init = HandshakeState.initialize({ protocolName: XK, initiator: true, prologue: PROLOGUE, s: k.initS, rs: k.respS.publicKey, suite });
      const resp = HandshakeState.initialize({ protocolName: XK, initiator: false, prologue: PROLOGUE, s: k.respS, suite });
      assert.equal(init.isMyTurn, true);
      assert.equal(resp.isMyTurn, false);
      assert.equal(resp.remoteStaticKey, null);
      const m1 = init.writeMessage();
      assert.equal(m1.length, 32 + 16);
      assert.equal(resp.readMessage(m1).length, 0);
      const m2 = resp.writeMessage(PAYLOADS[1]);
      assert.equal(m2.length, 32 + PAYLOADS[1]!.length + 16);
      assert.equal(hex(init.readMessage(m2)), hex(PAYLOADS[1]!));
      const m3 = init.writeMessage(PAYLOADS[2]);
      assert.equal(m3.length, 48 + PAYLOADS[2]!.length + 16);
      assert.equal(hex(resp.readMessage(m3)), hex(PAYLOADS[2]!));
      assert.ok(init.isComplete && resp.isComplete);
      assert.equal(hex(resp.remoteStaticKey!), hex(k.initS.publicKey));
      assert.equal(hex(init.remoteStaticKey!), hex(k.respS.publicKey));
      assert.equal(hex(init.getHandshakeHash()), hex(resp.getHandshakeHash()));
      const ic = init.split();
      const rc = resp.split();
      assert.equal(hex(rc.receive.decrypt(ic.send.encrypt(utf8('ping')))), hex(utf8('ping')));
      assert.equal(hex(ic.receive.decrypt(rc.send.encrypt(utf8('pong')))), hex(utf8('pong')));
      // Directions use different keys.
      assertCode(() => ic.receive.decrypt(ic.send.encrypt(utf8('x'))), 'MESH_ERR_DECRYPT');
    });

    void test('a bit flip anywhere in any XK handshake message fails with no payload', () => {
      const k = xkKeys(suite);
      const good = xkMessages(suite, k);
      // Every byte with node; a spread of bytes with the (slower) noble suite.
      const step = name === 'node' ? 1 : 7;
      for (const [index, msg] of good.entries()) {
        for (let pos = 0; pos < msg.length; pos += step) {
          for (const bit of [0x01, 0x80]) {
            const bad = new Uint8Array(msg);
            bad[pos]! ^= bit;
            assertCode(() => readAt(suite, k, good, index, bad), ['MESH_ERR_DECRYPT', 'MESH_ERR_HANDSHAKE']);
          }
        }
      }
      // And the untouched messages still work through the same helper.
      assert.equal(hex(readAt(suite, k, good, 2, good[2]!)), hex(PAYLOADS[2]!));
    });

    void test('a failed read ends the handshake: even the genuine message is then refused', () => {
      const k = xkKeys(suite);
      const [m1] = xkMessages(suite, k);
      const [, resp] = xkPair(suite, k);
      const bad = new Uint8Array(m1!);
      bad[40]! ^= 1;
      assertCode(() => resp.readMessage(bad), 'MESH_ERR_DECRYPT');
      assert.equal(resp.hasFailed, true);
      assertCode(() => resp.readMessage(m1!), 'MESH_ERR_HANDSHAKE', 'already failed');
      assertCode(() => resp.split(), 'MESH_ERR_HANDSHAKE');
    });

    void test('truncated and over-long handshake messages', () => {
      const k = xkKeys(suite);
      const good = xkMessages(suite, k);
      assertCode(() => readAt(suite, k, good, 0, good[0]!.subarray(0, 31)), 'MESH_ERR_HANDSHAKE', 'too short');
      assertCode(() => readAt(suite, k, good, 0, good[0]!.subarray(0, 40)), 'MESH_ERR_HANDSHAKE', 'expected at least 48');
      assertCode(() => readAt(suite, k, good, 0, new Uint8Array(0)), 'MESH_ERR_HANDSHAKE', 'too short');
      assertCode(() => readAt(suite, k, good, 1, good[1]!.subarray(0, good[1]!.length - 1)), 'MESH_ERR_DECRYPT');
      assertCode(() => readAt(suite, k, good, 2, good[2]!.subarray(0, 63)), 'MESH_ERR_HANDSHAKE', 'too short');
      const longer = new Uint8Array(good[0]!.length + 1);
      longer.set(good[0]!);
      assertCode(() => readAt(suite, k, good, 0, longer), 'MESH_ERR_DECRYPT');
      assertCode(() => readAt(suite, k, good, 0, new Uint8Array(65536)), 'MESH_ERR_HANDSHAKE', 'over the Noise maximum');
    });

    void test("wrong responder key in the initiator's config: the responder fails reading message 1", () => {
      const k = xkKeys(suite);
      const [init, resp] = xkPair(suite, k, suite.generateKeyPair().publicKey);
      const m1 = init.writeMessage(utf8('hi'));
      assertCode(() => resp.readMessage(m1), 'MESH_ERR_DECRYPT');
    });

    void test('a low-order ephemeral in message 1 is MESH_ERR_BAD_KEY', () => {
      const k = xkKeys(suite);
      for (const point of ['00'.repeat(32), `01${'00'.repeat(31)}`, 'e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800']) {
        const [, resp] = xkPair(suite, k);
        const m1 = new Uint8Array(48);
        m1.set(Buffer.from(point, 'hex'));
        assertCode(() => resp.readMessage(m1), 'MESH_ERR_BAD_KEY');
      }
    });

    void test('a tampered transport message is MESH_ERR_DECRYPT', () => {
      const k = xkKeys(suite);
      const [init, resp] = xkPair(suite, k);
      resp.readMessage(init.writeMessage());
      init.readMessage(resp.writeMessage());
      resp.readMessage(init.writeMessage());
      const ic = init.split();
      const rc = resp.split();
      const ct = ic.send.encrypt(utf8('transfer 10'));
      const bad = new Uint8Array(ct);
      bad[9]! ^= 0x01;
      assertCode(() => rc.receive.decrypt(bad), 'MESH_ERR_DECRYPT');
      assert.equal(new TextDecoder().decode(rc.receive.decrypt(ct)), 'transfer 10');
    });
  });
}

void describe('HandshakeState misuse', () => {
  const suite = getSuite('node');

  void test('out of turn, after completion, and split before completion or twice', () => {
    const k = xkKeys(suite);
    const [init, resp] = xkPair(suite, k);
    assertCode(() => resp.writeMessage(), 'MESH_ERR_HANDSHAKE', 'out of turn');
    assertCode(() => init.readMessage(new Uint8Array(48)), 'MESH_ERR_HANDSHAKE', 'out of turn');
    assertCode(() => init.split(), 'MESH_ERR_HANDSHAKE', 'not complete');
    resp.readMessage(init.writeMessage());
    init.readMessage(resp.writeMessage());
    resp.readMessage(init.writeMessage());
    assertCode(() => init.writeMessage(), 'MESH_ERR_HANDSHAKE', 'complete');
    assertCode(() => resp.readMessage(new Uint8Array(64)), 'MESH_ERR_HANDSHAKE', 'complete');
    init.split();
    assertCode(() => init.split(), 'MESH_ERR_HANDSHAKE', 'already called');
  });

  void test('a payload that would make a message over 65535 bytes is refused before anything changes', () => {
    const k = xkKeys(suite);
    const [init, resp] = xkPair(suite, k);
    assertCode(() => init.writeMessage(new Uint8Array(65535 - 48 + 1)), 'MESH_ERR_HANDSHAKE', 'over the Noise maximum of 65535');
    const m1 = init.writeMessage(new Uint8Array(65535 - 48));
    assert.equal(m1.length, 65535);
    assert.equal(resp.readMessage(m1).length, 65535 - 48);
  });

  void test('keys the pattern needs, or does not use, are checked at initialize', () => {
    const s = suite.generateKeyPair();
    const rs = suite.generateKeyPair().publicKey;
    assertCode(() => HandshakeState.initialize({ protocolName: XK, initiator: true, s, suite }), 'MESH_ERR_HANDSHAKE', "responder's static public key (rs)");
    assertCode(() => HandshakeState.initialize({ protocolName: XK, initiator: true, rs, suite }), 'MESH_ERR_HANDSHAKE', "initiator's static key pair");
    assertCode(() => HandshakeState.initialize({ protocolName: XK, initiator: false, suite }), 'MESH_ERR_HANDSHAKE', "responder's static key pair");
    assertCode(() => HandshakeState.initialize({ protocolName: XK, initiator: false, s, rs, suite }), 'MESH_ERR_HANDSHAKE', 'do not pass rs');
    assertCode(() => HandshakeState.initialize({ pattern: 'NN', initiator: true, s, suite }), 'MESH_ERR_HANDSHAKE', 'does not use');
    assertCode(() => HandshakeState.initialize({ pattern: 'NN', initiator: true, re: rs, suite }), 'MESH_ERR_HANDSHAKE', 'do not pass re');
    assertCode(() => HandshakeState.initialize({ protocolName: XK, initiator: true, s, rs: new Uint8Array(31), suite }), 'MESH_ERR_BAD_KEY', '32 bytes');
    assertCode(() => HandshakeState.initialize({ protocolName: XK, initiator: true, s, rs: new Uint8Array(32), suite }), 'MESH_ERR_BAD_KEY', 'all zeros');
    assertCode(() => HandshakeState.initialize({ protocolName: XK, pattern: 'XK', initiator: true, s, rs, suite }), 'MESH_ERR_HANDSHAKE', 'not both');
    assertCode(() => HandshakeState.initialize({ initiator: true, suite }), 'MESH_ERR_HANDSHAKE', 'protocolName');
  });

  void test('pattern + hash is the same as the protocol name; the default suite works', () => {
    const k = xkKeys(suite);
    const a = HandshakeState.initialize({ pattern: 'XK', hash: 'BLAKE2s', initiator: true, s: k.initS, e: k.initE, rs: k.respS.publicKey });
    const b = HandshakeState.initialize({ protocolName: 'Noise_XK_25519_ChaChaPoly_BLAKE2s', initiator: true, s: k.initS, e: k.initE, rs: k.respS.publicKey, suite: getSuite('noble') });
    assert.equal(a.protocolName, 'Noise_XK_25519_ChaChaPoly_BLAKE2s');
    assert.equal(hex(a.writeMessage(utf8('x'))), hex(b.writeMessage(utf8('x'))));
  });

  void test('prologue mismatch fails the first encrypted payload', () => {
    const k = xkKeys(suite);
    const init = HandshakeState.initialize({ protocolName: XK, initiator: true, prologue: PROLOGUE, s: k.initS, rs: k.respS.publicKey, suite });
    const resp = HandshakeState.initialize({ protocolName: XK, initiator: false, prologue: new Uint8Array(8), s: k.respS, suite });
    assertCode(() => resp.readMessage(init.writeMessage()), 'MESH_ERR_DECRYPT');
  });

  void test('one-way patterns: the initiator sends, the responder only receives', () => {
    for (const p of ['N', 'K', 'X'] as const) {
      const is = suite.generateKeyPair();
      const rsKeys = suite.generateKeyPair();
      const needsInitS = p !== 'N';
      const init = HandshakeState.initialize({ pattern: p, initiator: true, s: needsInitS ? is : undefined, rs: rsKeys.publicKey, suite });
      const resp = HandshakeState.initialize({ pattern: p, initiator: false, s: rsKeys, rs: p === 'K' ? is.publicKey : undefined, suite });
      assert.equal(hex(resp.readMessage(init.writeMessage(utf8('one-way')))), hex(utf8('one-way')));
      assert.ok(isOneWayPattern(init.pattern));
      const ic = init.split();
      const rc = resp.split();
      assert.equal(hex(rc.receive.decrypt(ic.send.encrypt(utf8('more')))), hex(utf8('more')));
      assertCode(() => rc.send.encrypt(utf8('reply')), 'MESH_ERR_HANDSHAKE', 'responder cannot send');
      assertCode(() => ic.receive.decrypt(new Uint8Array(20)), 'MESH_ERR_HANDSHAKE', 'initiator cannot receive');
    }
  });

  void test('every built-in pattern completes a handshake between node and noble', () => {
    const noble = getSuite('noble');
    for (const pattern of Object.values(HANDSHAKE_PATTERNS)) {
      const is = suite.generateKeyPair();
      const rsKeys = noble.generateKeyPair();
      const uses = (role: 0 | 1): boolean =>
        (role === 0 ? pattern.initiatorPreMessage : pattern.responderPreMessage).includes('s') ||
        pattern.messages.some((m, i) => i % 2 === role && m.includes('s'));
      const init = HandshakeState.initialize({
        pattern, initiator: true, suite,
        s: uses(0) ? is : undefined,
        rs: pattern.responderPreMessage.includes('s') ? rsKeys.publicKey : undefined,
      });
      const resp = HandshakeState.initialize({
        pattern, initiator: false, suite: noble,
        s: uses(1) ? rsKeys : undefined,
        rs: pattern.initiatorPreMessage.includes('s') ? is.publicKey : undefined,
      });
      while (!init.isComplete) {
        const [w, r] = init.isMyTurn ? [init, resp] : [resp, init];
        assert.equal(hex(r.readMessage(w.writeMessage(utf8(pattern.name)))), hex(utf8(pattern.name)));
      }
      assert.ok(resp.isComplete, pattern.name);
      assert.equal(hex(init.getHandshakeHash()), hex(resp.getHandshakeHash()), pattern.name);
    }
  });
});

void describe('handshake patterns and protocol names', () => {
  void test('parseProtocolName splits a supported name', () => {
    const p = parseProtocolName(XK);
    assert.equal(p.pattern.name, 'XK');
    assert.equal(p.dh, '25519');
    assert.equal(p.cipher, 'ChaChaPoly');
    assert.equal(p.hash, 'SHA256');
    assert.deepEqual(p.pattern.responderPreMessage, ['s']);
    assert.deepEqual(p.pattern.messages, [['e', 'es'], ['e', 'ee'], ['s', 'se']]);
    assert.equal(parseProtocolName('Noise_X1K1_25519_ChaChaPoly_BLAKE2s').pattern.messages.length, 4);
    assert.equal(formatProtocolName('XK', 'SHA256'), XK);
  });

  const unsupported: [string, string][] = [
    ['Noise_XK_448_ChaChaPoly_SHA256', "DH function \"448\""],
    ['Noise_XK_25519_AESGCM_SHA256', 'cipher "AESGCM"'],
    ['Noise_XK_25519_ChaChaPoly_SHA512', 'hash "SHA512"'],
    ['Noise_XK_25519_ChaChaPoly_BLAKE2b', 'hash "BLAKE2b"'],
    ['Noise_XKpsk3_25519_ChaChaPoly_SHA256', 'pattern modifiers (psk3)'],
    ['Noise_XXfallback_25519_ChaChaPoly_SHA256', 'pattern modifiers (fallback)'],
    ['Noise_ZZ_25519_ChaChaPoly_SHA256', 'unknown handshake pattern "ZZ"'],
    ['NoisePSK_XK_25519_ChaChaPoly_SHA256', 'expected Noise_<pattern>'],
    ['Noise_XK_25519_ChaChaPoly', 'expected Noise_<pattern>'],
    ['', 'expected Noise_<pattern>'],
  ];
  for (const [name, fragment] of unsupported) {
    void test(`parseProtocolName refuses ${JSON.stringify(name)}`, () => {
      assertCode(() => parseProtocolName(name), 'MESH_ERR_HANDSHAKE', fragment);
    });
  }

  void test('getHandshakePattern knows 38 patterns (3 one-way, 12 fundamental, 23 deferred) and refuses others', () => {
    assert.equal(Object.keys(HANDSHAKE_PATTERNS).length, 38);
    assert.equal(getHandshakePattern('NK1').messages.length, 2);
    assert.ok(Object.isFrozen(getHandshakePattern('XX').messages[0]));
    assertCode(() => getHandshakePattern('XY'), 'MESH_ERR_HANDSHAKE', 'unsupported handshake pattern');
  });

  void test('parseHandshakePattern checks the validity rules', () => {
    assert.deepEqual(parseHandshakePattern('T', '-> e\n<- e, ee').messages, [['e'], ['e', 'ee']]);
    const invalid: [string, string][] = [
      ['-> e, es', "before both keys are known"],
      ['-> e <- e, ee -> e', "sends 'e' a second time"],
      ['-> e -> s', 'goes the wrong way'],
      ['-> e, xx', "unknown token 'xx'"],
      ['<- s ... <- e, es', 'goes the wrong way'],
      ['-> ee ... -> e', "'ee' is not allowed in a pre-message"],
      ['<- s -> s ... -> e', 'initiator pre-message must come first'],
      ['', 'no messages'],
    ];
    for (const [notation, fragment] of invalid) {
      assertCode(() => parseHandshakePattern('T', notation), 'MESH_ERR_HANDSHAKE', fragment);
    }
  });
});
