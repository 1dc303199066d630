import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ReplyCache } from '../../lib/node/reply-cache.ts';
import { RetryBudget } from '../../lib/node/retry-budget.ts';
import { backoffDelay, REFUSED_RECONNECT_MAX_MS } from '../../lib/protocol/backoff.ts';

test('reply cache: new, attached while running, replayed when finished', () => {
  const c = new ReplyCache<string>();
  const key = ReplyCache.key('client', new Uint8Array(16));
  assert.equal(c.begin(key, 'path-a', 0).state, 'new');
  const again = c.begin(key, 'path-b', 1);
  assert.equal(again.state, 'attached');
  const done = c.finish(key, { ok: true, payload: Buffer.from('r') }, 2);
  assert.deepEqual(done?.paths, ['path-a', 'path-b']);
  const replay = c.begin(key, 'path-c', 3);
  assert.equal(replay.state, 'replay');
  assert.ok(replay.state === 'replay' && replay.outcome.ok && Buffer.from(replay.outcome.payload).toString() === 'r');
});

test('reply cache is bounded in entries, bytes and age', () => {
  const c = new ReplyCache<string>({ maxEntries: 3, maxBytes: 10_000, maxAgeMs: 100 });
  for (let i = 0; i < 5; i++) {
    const k = `k${i}`;
    c.begin(k, 'p', i);
    c.finish(k, { ok: true, payload: new Uint8Array(10) }, i);
  }
  assert.equal(c.size, 3);
  assert.equal(c.begin('k0', 'p', 10).state, 'new', 'evicted');
  c.abandon('k0');
  assert.equal(c.begin('k4', 'p', 200).state, 'new', 'expired');
  const big = new ReplyCache<string>({ maxBytes: 1000 });
  big.begin('a', 'p', 0);
  big.finish('a', { ok: true, payload: new Uint8Array(5000) }, 0);
  assert.equal(big.size, 0, 'a reply over the byte bound is not kept');
  assert.ok(big.bytes <= 1000);
});

test('reply cache: a reply that is a view into a larger buffer is kept as a copy of its own bytes, so the byte bound is what it holds', () => {
  const c = new ReplyCache<string>();
  const frame = new Uint8Array(1 << 20).fill(7);
  const view = frame.subarray(100, 116);
  c.begin('v', 'p', 0);
  const done = c.finish('v', { ok: true, payload: view }, 0);
  const kept = done?.outcome?.ok ? done.outcome.payload : undefined;
  assert.ok(kept);
  assert.equal(kept.buffer.byteLength, 16, 'the 1 MiB buffer is not pinned');
  assert.deepEqual([...kept], [...view]);
  const replay = c.begin('v', 'p2', 1);
  assert.ok(replay.state === 'replay' && replay.outcome.ok && replay.outcome.payload.buffer.byteLength === 16);
  // A payload that is (nearly) its whole buffer is kept as it is: no copy.
  const whole = new Uint8Array(4096);
  c.begin('w', 'p', 2);
  const w = c.finish('w', { ok: true, payload: whole }, 2);
  assert.ok(w?.outcome?.ok && w.outcome.payload === whole);
});

test('retry budget: a burst, then a trickle refilled by time and successes', () => {
  const b = new RetryBudget(0, { capacity: 3, refillPerSecond: 1, perSuccess: 0.5 });
  assert.ok(b.tryRetry(0) && b.tryRetry(0) && b.tryRetry(0));
  assert.ok(!b.tryRetry(0));
  assert.ok(b.tryRetry(1000));
  assert.ok(!b.tryRetry(1000));
  b.success();
  b.success();
  assert.ok(b.tryRetry(1000));
});

test('reconnect backoff: full jitter under a ceiling doubling from 100 ms to 500 ms (5 s after a refusal)', () => {
  assert.equal(backoffDelay(0, () => 1), 100);
  assert.equal(backoffDelay(2, () => 1), 400);
  assert.equal(backoffDelay(3, () => 1), 500, 'capped at 500 ms');
  assert.equal(backoffDelay(20, () => 1), 500);
  assert.equal(backoffDelay(20, () => 0.5), 250);
  assert.equal(backoffDelay(20, () => 1, undefined, REFUSED_RECONNECT_MAX_MS), 5000, 'a broker that refused the node is asked again slowly');
  assert.equal(backoffDelay(5, () => 0), 25, 'never a busy loop');
});
