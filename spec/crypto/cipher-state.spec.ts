import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { isMeshError } from '../../lib/errors.ts';
import type { ErrorCode } from '../../lib/errors.ts';
import { CipherState, MAX_NONCE, UnusableCipherState } from '../../lib/crypto/cipher-state.ts';
import { MAX_PLAINTEXT_LEN } from '../../lib/crypto/crypto-suite.ts';
import { getSuite, SUITE_NAMES } from '../../lib/crypto/suites.ts';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const EMPTY = new Uint8Array(0);

function assertCode(fn: () => unknown, code: ErrorCode, fragment?: string): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(isMeshError(err, code), `expected ${code}, got ${String(err)}`);
    if (fragment !== undefined) assert.ok(err.message.includes(fragment), `"${err.message}" should mention "${fragment}"`);
    return true;
  });
}

for (const name of SUITE_NAMES) {
  void describe(`CipherState (${name})`, () => {
    const suite = getSuite(name);
    const key = suite.generateKeyPair().privateKey;
    const pair = (): [CipherState, CipherState] => [new CipherState(suite, key), new CipherState(suite, key)];

    void test('encrypts with incrementing nonces; the receiver follows', () => {
      const [a, b] = pair();
      assert.equal(a.hasKey(), true);
      for (let i = 0; i < 5; i++) {
        const msg = new TextEncoder().encode(`message ${i}`);
        const ct = i % 2 === 0 ? a.encrypt(msg) : a.encryptWithAd(new Uint8Array([i]), msg);
        assert.equal(a.nonce, i + 1);
        const pt = i % 2 === 0 ? b.decrypt(ct) : b.decryptWithAd(new Uint8Array([i]), ct);
        assert.equal(hex(pt), hex(msg));
        assert.equal(b.nonce, i + 1);
      }
    });

    void test('a tampered transport message is MESH_ERR_DECRYPT and does not advance the nonce', () => {
      const [a, b] = pair();
      const ct = a.encrypt(new TextEncoder().encode('payload'));
      for (const pos of [0, ct.length - 1]) {
        const bad = new Uint8Array(ct);
        bad[pos]! ^= 0x80;
        assertCode(() => b.decrypt(bad), 'MESH_ERR_DECRYPT');
        assert.equal(b.nonce, 0);
      }
      assertCode(() => b.decrypt(ct.subarray(0, 10)), 'MESH_ERR_DECRYPT');
      assert.equal(new TextDecoder().decode(b.decrypt(ct)), 'payload');
      // A replay is out of step with the nonce.
      assertCode(() => b.decrypt(ct), 'MESH_ERR_DECRYPT');
    });

    void test('nonce limit: 2^53-1 is the last nonce, then MESH_ERR_CRYPTO "nonce exhausted"', () => {
      const [a, b] = pair();
      a.setNonce(MAX_NONCE);
      b.setNonce(MAX_NONCE);
      const ct = a.encrypt(new Uint8Array([1, 2, 3]));
      assert.equal(hex(b.decrypt(ct)), '010203');
      assertCode(() => a.encrypt(new Uint8Array([4])), 'MESH_ERR_CRYPTO', 'nonce exhausted');
      assertCode(() => b.decrypt(ct), 'MESH_ERR_CRYPTO', 'nonce exhausted');
      assert.equal(MAX_NONCE, Number.MAX_SAFE_INTEGER);
    });

    void test('setNonce refuses values that are not integers in 0..2^53-1', () => {
      const [a] = pair();
      for (const bad of [-1, 1.5, Number.NaN, 2 ** 53, Infinity]) assertCode(() => a.setNonce(bad), 'MESH_ERR_CRYPTO');
      a.setNonce(42);
      assert.equal(a.nonce, 42);
    });

    void test('without a key, encryptWithAd/decryptWithAd pass the data through (Noise spec)', () => {
      const c = new CipherState(suite);
      assert.equal(c.hasKey(), false);
      const data = new Uint8Array([9, 9]);
      assert.equal(c.encryptWithAd(EMPTY, data), data);
      assert.equal(c.decryptWithAd(EMPTY, data), data);
      assertCode(() => c.rekey(), 'MESH_ERR_CRYPTO');
      assertCode(() => c.initializeKey(new Uint8Array(16)), 'MESH_ERR_CRYPTO', '32 bytes');
    });

    void test('a transport message holds at most 65535 bytes', () => {
      const [a, b] = pair();
      const ct = a.encrypt(new Uint8Array(MAX_PLAINTEXT_LEN));
      assert.equal(ct.length, 65535);
      assert.equal(b.decrypt(ct).length, MAX_PLAINTEXT_LEN);
      assertCode(() => a.encrypt(new Uint8Array(MAX_PLAINTEXT_LEN + 1)), 'MESH_ERR_CRYPTO', 'does not fit');
      assertCode(() => b.decrypt(new Uint8Array(65536)), 'MESH_ERR_DECRYPT', 'over the Noise maximum');
    });

    void test('rekey changes the key on both sides, keeps the nonce, and interoperates', () => {
      const [a, b] = pair();
      const before = a.encrypt(new Uint8Array([1]));
      b.decrypt(before);
      a.rekey();
      b.rekey();
      assert.equal(a.nonce, 1);
      const [c] = pair();
      c.setNonce(1);
      const after = a.encrypt(new Uint8Array([1]));
      assert.notEqual(hex(after), hex(c.encrypt(new Uint8Array([1]))));
      assert.equal(hex(b.decrypt(after)), '01');
    });

    void test('UnusableCipherState throws MESH_ERR_HANDSHAKE on every use', () => {
      const u = new UnusableCipherState(suite, 'one-way pattern N: the responder cannot send');
      assert.equal(u.hasKey(), false);
      assertCode(() => u.encrypt(new Uint8Array(1)), 'MESH_ERR_HANDSHAKE', 'cannot send');
      assertCode(() => u.decrypt(new Uint8Array(20)), 'MESH_ERR_HANDSHAKE');
      assertCode(() => u.initializeKey(key), 'MESH_ERR_HANDSHAKE');
      assertCode(() => u.rekey(), 'MESH_ERR_HANDSHAKE');
    });
  });
}
