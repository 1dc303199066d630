import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { isMeshError } from '../../lib/errors.ts';
import type { CryptoSuite } from '../../lib/crypto/crypto-suite.ts';
import { defaultSuite, getSuite, nodeCryptoSupport, SUITE_NAMES } from '../../lib/crypto/suites.ts';
import type { SuiteName } from '../../lib/crypto/suites.ts';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const bytes = (h: string): Uint8Array => new Uint8Array(Buffer.from(h, 'hex'));
const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);

/** p = 2^255 - 19, and A of Curve25519 (v^2 = u^3 + A u^2 + u). */
const P = 2n ** 255n - 19n;
const A = 486662n;
const mod = (x: bigint): bigint => ((x % P) + P) % P;
function pow(b: bigint, e: bigint): bigint {
  let r = 1n;
  b = mod(b);
  while (e > 0n) {
    if (e & 1n) r = mod(r * b);
    b = mod(b * b);
    e >>= 1n;
  }
  return r;
}
/** Decodes a u-coordinate as X25519 does (little-endian, top bit masked, reduced mod p). */
function decodeU(b: Uint8Array): bigint {
  let u = 0n;
  for (let i = b.length - 1; i >= 0; i--) u = (u << 8n) | BigInt(b[i]!);
  return mod(u & ((1n << 255n) - 1n));
}
/**
 * True when the point with u-coordinate `u` has order dividing 8. The only
 * point of order 2 on Curve25519 is u = 0, so P has order dividing 8 exactly
 * when at most two x-only doublings, u(2P) = (u^2-1)^2 / (4u(u^2+Au+1)),
 * reach u = 0 (u^2+Au+1 has no root mod p, so no other denominator vanishes).
 */
function orderDividesEight(u: bigint): boolean {
  for (let k = 0; k < 3; k++) {
    if (u === 0n) return true;
    const num = mod((u * u - 1n) ** 2n);
    const den = mod(4n * u * (u * u + A * u + 1n));
    u = mod(num * pow(den, P - 2n));
  }
  return u === 0n;
}

/** Small-order u-coordinates (and non-canonical encodings of them). */
const LOW_ORDER_POINTS: Record<string, string> = {
  'zero (order 2 point u=0)': '0000000000000000000000000000000000000000000000000000000000000000',
  'one (order 4)': '0100000000000000000000000000000000000000000000000000000000000000',
  'order 8 (a)': 'e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800',
  'order 8 (b)': '5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157',
  'p - 1 (order 4 point u=-1)': 'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  'p (non-canonical zero)': 'edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  'p + 1 (non-canonical one)': 'eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
};

function assertCode(fn: () => unknown, code: Parameters<typeof isMeshError>[1], fragment?: string): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(isMeshError(err, code), `expected ${code}, got ${String(err)}`);
    if (fragment !== undefined) assert.match(err.message, new RegExp(fragment.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
    return true;
  });
}

void describe('suites', () => {
  void test('getSuite returns each suite; defaultSuite is node on this runtime', () => {
    for (const name of SUITE_NAMES) assert.equal(getSuite(name).name, name);
    assert.equal(nodeCryptoSupport().available, true);
    assert.equal(defaultSuite().name, 'node');
  });

  void test('getSuite refuses an unknown name', () => {
    assertCode(() => getSuite('openssl' as SuiteName), 'MESH_ERR_CRYPTO', 'unknown crypto suite');
  });
});

for (const name of SUITE_NAMES) {
  void describe(`${name} suite`, () => {
    const suite: CryptoSuite = getSuite(name);

    void test('SHA256, BLAKE2s and HMAC-SHA256 known answers; parts are concatenated', () => {
      const sha = suite.hash('SHA256');
      const blake = suite.hash('BLAKE2s');
      assert.equal(sha.hashLen, 32);
      assert.equal(blake.blockLen, 64);
      assert.equal(hex(sha.hash(utf8('abc'))), 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
      assert.equal(hex(sha.hash(utf8('a'), utf8(''), utf8('bc'))), 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
      assert.equal(hex(blake.hash(utf8('abc'))), '508c5e8c327c14e2e1a72ba34eeb452f37458b209ed63a294d999b4c86675982');
      // RFC 4231 test case 2.
      assert.equal(
        hex(sha.hmac(utf8('Jefe'), utf8('what do ya want '), utf8('for nothing?'))),
        '5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843',
      );
    });

    void test('X25519 matches RFC 7748 section 6.1', () => {
      const alicePriv = bytes('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a');
      const bobPriv = bytes('5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb');
      const alicePub = suite.publicKey(alicePriv);
      const bobPub = suite.publicKey(bobPriv);
      assert.equal(hex(alicePub), '8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a');
      assert.equal(hex(bobPub), 'de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f');
      const shared = '4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742';
      assert.equal(hex(suite.dh(alicePriv, bobPub)), shared);
      assert.equal(hex(suite.dh(bobPriv, alicePub)), shared);
    });

    void test('generateKeyPair gives a consistent, fresh pair', () => {
      const a = suite.generateKeyPair();
      const b = suite.generateKeyPair();
      assert.equal(a.privateKey.length, 32);
      assert.equal(hex(suite.publicKey(a.privateKey)), hex(a.publicKey));
      assert.notEqual(hex(a.privateKey), hex(b.privateKey));
      assert.equal(hex(suite.dh(a.privateKey, b.publicKey)), hex(suite.dh(b.privateKey, a.publicKey)));
    });

    for (const [label, point] of Object.entries(LOW_ORDER_POINTS)) {
      void test(`dh refuses the low-order public key ${label}`, () => {
        assert.ok(orderDividesEight(decodeU(bytes(point))), 'the test point really is of small order');
        const me = suite.generateKeyPair();
        assertCode(() => suite.dh(me.privateKey, bytes(point)), 'MESH_ERR_BAD_KEY');
      });
    }

    void test('the small-order check itself rejects an ordinary point', () => {
      assert.equal(orderDividesEight(decodeU(suite.generateKeyPair().publicKey)), false);
      assert.equal(orderDividesEight(9n), false);
    });

    void test('a key array modified in place is used with its new content (no stale cache)', () => {
      const a = suite.generateKeyPair();
      const b = suite.generateKeyPair();
      const c = suite.generateKeyPair();
      const priv = new Uint8Array(a.privateKey);
      const pub = new Uint8Array(b.publicKey);
      assert.equal(hex(suite.dh(priv, pub)), hex(suite.dh(a.privateKey, b.publicKey)));
      assert.equal(hex(suite.publicKey(priv)), hex(a.publicKey));
      priv.set(c.privateKey);
      assert.equal(hex(suite.dh(priv, pub)), hex(suite.dh(c.privateKey, b.publicKey)));
      assert.equal(hex(suite.publicKey(priv)), hex(c.publicKey));
      pub.set(a.publicKey);
      assert.equal(hex(suite.dh(priv, pub)), hex(suite.dh(c.privateKey, a.publicKey)));
      // Generated pairs are remembered too; modifying them in place is still seen.
      a.privateKey.set(c.privateKey);
      assert.equal(hex(suite.publicKey(a.privateKey)), hex(c.publicKey));
    });

    void test('dh and publicKey refuse keys of the wrong length or all zeros', () => {
      const me = suite.generateKeyPair();
      assertCode(() => suite.dh(me.privateKey, new Uint8Array(31)), 'MESH_ERR_BAD_KEY', '32 bytes, got 31');
      assertCode(() => suite.dh(new Uint8Array(33), me.publicKey), 'MESH_ERR_BAD_KEY', '32 bytes, got 33');
      assertCode(() => suite.dh(new Uint8Array(32), me.publicKey), 'MESH_ERR_BAD_KEY', 'all zeros');
      assertCode(() => suite.publicKey(new Uint8Array(16)), 'MESH_ERR_BAD_KEY');
    });

    void test('encrypt/decrypt round trip with and without AD; failures are MESH_ERR_DECRYPT', () => {
      const key = bytes('000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f');
      const pt = utf8('attack at dawn');
      for (const ad of [new Uint8Array(0), utf8('header')]) {
        const ct = suite.encrypt(key, 7, ad, pt);
        assert.equal(ct.length, pt.length + 16);
        assert.equal(hex(suite.decrypt(key, 7, ad, ct)), hex(pt));
        assertCode(() => suite.decrypt(key, 8, ad, ct), 'MESH_ERR_DECRYPT');
        const bad = new Uint8Array(ct);
        bad[0]! ^= 1;
        assertCode(() => suite.decrypt(key, 7, ad, bad), 'MESH_ERR_DECRYPT');
        assertCode(() => suite.decrypt(key, 7, utf8('other'), ct), 'MESH_ERR_DECRYPT');
      }
      assertCode(() => suite.decrypt(key, 0, new Uint8Array(0), new Uint8Array(15)), 'MESH_ERR_DECRYPT', 'shorter than the 16-byte tag');
      assert.equal(suite.decrypt(key, 0, new Uint8Array(0), suite.encrypt(key, 0, new Uint8Array(0), new Uint8Array(0))).length, 0);
    });

    void test('encryptDetached is encrypt with the tag apart', () => {
      const key = suite.generateKeyPair().privateKey;
      for (const size of [0, 1, 4096, 65519]) {
        const pt = new Uint8Array(size).map((_, i) => (i * 7) & 0xff);
        for (const ad of [new Uint8Array(0), utf8('ad')]) {
          const [ct, tag] = suite.encryptDetached(key, 42, ad, pt);
          assert.equal(ct.length, size);
          assert.equal(tag.length, 16);
          assert.equal(hex(ct) + hex(tag), hex(suite.encrypt(key, 42, ad, pt)));
        }
      }
    });
  });
}

void describe('node and noble agree', () => {
  const node = getSuite('node');
  const noble = getSuite('noble');

  void test('same ciphertext for the same key, nonce (including the high word) and AD', () => {
    const key = node.generateKeyPair().privateKey;
    const pt = new Uint8Array(1000).map((_, i) => i & 0xff);
    for (const n of [0, 1, 0xffff_ffff, 0x1_0000_0000, 2 ** 40 + 5, Number.MAX_SAFE_INTEGER]) {
      for (const ad of [new Uint8Array(0), utf8('ad')]) {
        const a = node.encrypt(key, n, ad, pt);
        const b = noble.encrypt(key, n, ad, pt);
        assert.equal(hex(a), hex(b), `nonce ${n}`);
        assert.equal(hex(noble.decrypt(key, n, ad, a)), hex(pt));
        assert.equal(hex(node.decrypt(key, n, ad, b)), hex(pt));
      }
    }
  });

  void test('rekey, hashes and X25519 agree', () => {
    const key = node.generateKeyPair().privateKey;
    assert.equal(hex(node.rekey(key)), hex(noble.rekey(key)));
    assert.equal(node.rekey(key).length, 32);
    const data = utf8('hello');
    for (const h of ['SHA256', 'BLAKE2s'] as const) {
      assert.equal(hex(node.hash(h).hash(data)), hex(noble.hash(h).hash(data)));
      assert.equal(hex(node.hash(h).hmac(key, data, data)), hex(noble.hash(h).hmac(key, data, data)));
    }
    const a = node.generateKeyPair();
    const b = noble.generateKeyPair();
    assert.equal(hex(node.publicKey(b.privateKey)), hex(b.publicKey));
    assert.equal(hex(node.dh(a.privateKey, b.publicKey)), hex(noble.dh(b.privateKey, a.publicKey)));
  });
});
