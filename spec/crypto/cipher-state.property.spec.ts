// Property: node-suite and noble-suite CipherStates with the same key are
// interchangeable, in both directions, for any payloads and AD.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { CipherState } from '../../lib/crypto/cipher-state.ts';
import { getSuite } from '../../lib/crypto/suites.ts';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

void test('node and noble CipherStates interoperate for random payloads', () => {
  const node = getSuite('node');
  const noble = getSuite('noble');
  fc.assert(
    fc.property(
      fc.uint8Array({ minLength: 32, maxLength: 32 }),
      fc.array(fc.record({ payload: fc.uint8Array({ maxLength: 4096 }), ad: fc.uint8Array({ maxLength: 64 }), nodeSends: fc.boolean() }), { minLength: 1, maxLength: 12 }),
      fc.nat({ max: 2 ** 40 }),
      (key, messages, start) => {
        // Two directions, each with a node-suite and a noble-suite end.
        const nodeSend = new CipherState(node, key);
        const nobleRecv = new CipherState(noble, key);
        const nobleSend = new CipherState(noble, key);
        const nodeRecv = new CipherState(node, key);
        for (const c of [nodeSend, nobleRecv, nobleSend, nodeRecv]) c.setNonce(start);
        for (const { payload, ad, nodeSends } of messages) {
          const [send, recv] = nodeSends ? [nodeSend, nobleRecv] : [nobleSend, nodeRecv];
          const ct = send.encryptWithAd(ad, payload);
          assert.equal(ct.length, payload.length + 16);
          assert.equal(hex(recv.decryptWithAd(ad, ct)), hex(payload));
        }
        assert.equal(nodeSend.nonce, nobleRecv.nonce);
        assert.equal(nobleSend.nonce, nodeRecv.nonce);
      },
    ),
    { numRuns: 200 },
  );
});
