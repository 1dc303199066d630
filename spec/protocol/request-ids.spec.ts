import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hexOf, requestIdSource } from '../../lib/protocol/request-ids.ts';

test('ids are 16 bytes cut from pools filled by the injected source, and never change once handed out', () => {
  let fills = 0;
  const next = requestIdSource((bytes) => {
    fills++;
    bytes.fill(fills);
  }, 4);
  const ids = Array.from({ length: 9 }, () => next());
  assert.equal(fills, 3, 'one fill per 4 ids');
  for (const id of ids) assert.equal(id.length, 16);
  assert.deepEqual(ids.map((id) => id[0]), [1, 1, 1, 1, 2, 2, 2, 2, 3]);
  // An id handed out is not overwritten by later fills.
  assert.ok(ids[0]!.every((b) => b === 1));
});

test('ids from the real random source are distinct', async () => {
  const { randomFillSync } = await import('node:crypto');
  const next = requestIdSource(randomFillSync);
  const seen = new Set(Array.from({ length: 2000 }, () => hexOf(next())));
  assert.equal(seen.size, 2000);
});

test('hexOf reads a view in place, without its neighbours', () => {
  const backing = Uint8Array.from([0xff, 0x01, 0xab, 0xff]);
  assert.equal(hexOf(backing.subarray(1, 3)), '01ab');
  assert.equal(hexOf(new Uint8Array(0)), '');
});
