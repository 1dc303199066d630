import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { MeshError } from '../../lib/errors.ts';
import { DISPATCHED_CHANNEL } from '../../lib/index.ts';
import type { DispatchedMessage } from '../../lib/index.ts';
import { MeshFixture, party, registryOf, sleep, until } from '../helpers/mesh.ts';

const client = party('client-1');
const worker = party('worker-1');
const worker2 = party('worker-2');
const worker3 = party('worker-3');
const nodeP = party('node-1');
const registry = registryOf([
  [client, { role: 'client', call: ['*'] }],
  [worker, { role: 'worker', serve: ['*'] }],
  [worker2, { role: 'worker', serve: ['*'] }],
  [worker3, { role: 'worker', serve: ['*'] }],
  [nodeP, { role: 'node', call: ['echo', 'slow*'], serve: ['echo'] }],
]);

test('end to end: payloads from 0 bytes to 1 MiB come back intact', async () => {
  const mesh = await MeshFixture.start(registry);
  try {
    const w = await mesh.node(worker);
    w.serve('echo', (req) => req.payload);
    const c = await mesh.node(client);
    for (const size of [0, 1, 100, 4096, 65_000, 65_536, 200_000, 1024 * 1024]) {
      const payload = randomBytes(size);
      const reply = await c.request('echo', payload, { timeout: 10_000 });
      assert.ok(reply.equals(payload), `size ${size}`);
    }
  } finally {
    await mesh.close();
  }
});

test('a burst of 3,000 requests of 4 KiB made at once (12 MiB, over the 8 MiB outbound cap) is answered in full: the node holds what its socket cannot take yet', async () => {
  const mesh = await MeshFixture.start(registry, { queue: { maxCount: 5000 } });
  try {
    const w = await mesh.node(worker);
    w.serve('echo', (req) => req.payload, { concurrency: 64 });
    const c = await mesh.node(client);
    const payloads = Array.from({ length: 3000 }, (_, i) => Buffer.alloc(4096, i % 251));
    const replies = await Promise.all(payloads.map((p) => c.request('echo', p, { timeout: 30_000, retries: 0 })));
    assert.equal(replies.filter((r, i) => r.equals(payloads[i]!)).length, 3000);
    assert.equal(c.stats().client.failed.MESH_ERR_BACKPRESSURE, undefined);
  } finally {
    await mesh.close();
  }
});

test('the handler sees the authenticated sender, the broker it came through, attempt and dup (callback and iterator)', async () => {
  const mesh = await MeshFixture.start(registry);
  try {
    const w = await mesh.node(worker);
    const seen: Array<{ name: string; key: string; broker: string; attempt: number; dup: boolean }> = [];
    w.serve('who', (req) => {
      seen.push({ name: req.sender.name, key: req.sender.key, broker: req.broker, attempt: req.attempt, dup: req.dup });
      return 'ok';
    });
    const iterator = w.requests('who-iter');
    void (async () => {
      for await (const req of iterator) {
        seen.push({ name: req.sender.name, key: req.sender.key, broker: req.broker, attempt: req.attempt, dup: req.dup });
        req.reply('ok');
      }
    })();
    const c = await mesh.node(client);
    assert.equal((await c.request('who', 'x')).toString(), 'ok');
    assert.equal((await c.request('who-iter', 'x')).toString(), 'ok');
    await iterator.return?.();
    const expected = { name: 'client-1', key: client.key, broker: mesh.broker.key, attempt: 1, dup: false };
    assert.match(mesh.broker.address, new RegExp(`^mesh://${expected.broker}@`));
    assert.deepEqual(seen, [expected, expected]);
  } finally {
    await mesh.close();
  }
});

test('the client publishes each DISPATCHED on the meshd:request:dispatched diagnostics channel: id, service, broker and worker keys', async () => {
  const mesh = await MeshFixture.start(registry);
  const published: DispatchedMessage[] = [];
  const listener = (m: unknown): void => void published.push(m as DispatchedMessage);
  subscribe(DISPATCHED_CHANNEL, listener);
  try {
    const w = await mesh.node(worker);
    const ids: string[] = [];
    w.serve('traced', (req) => {
      ids.push(Buffer.from(req.id).toString('hex'));
      return 'ok';
    });
    const c = await mesh.node(client);
    await Promise.all([c.request('traced', 'a'), c.request('traced', 'b')]);
    assert.equal(DISPATCHED_CHANNEL, 'meshd:request:dispatched');
    assert.deepEqual(
      published.map((m) => ({ id: Buffer.from(m.id).toString('hex'), service: m.service, broker: m.broker, worker: m.worker })).sort((a, b) => a.id.localeCompare(b.id)),
      ids.sort().map((id) => ({ id, service: 'traced', broker: mesh.broker.key, worker: worker.key })),
    );
  } finally {
    unsubscribe(DISPATCHED_CHANNEL, listener);
    await mesh.close();
  }
});

test('3 workers of one service each get 1/3 (±10 %) of 3,000 equal requests', async () => {
  const mesh = await MeshFixture.start(registry);
  try {
    const counts = new Map<string, number>();
    for (const p of [worker, worker2, worker3]) {
      const w = await mesh.node(p);
      w.serve('echo', async () => {
        counts.set(p.name, (counts.get(p.name) ?? 0) + 1);
        await sleep(1);
        return 'ok';
      }, { concurrency: 4 });
    }
    await until(() => mesh.broker.status().services.find((s) => s.name === 'echo')?.workers === 3, 5000, '3 workers');
    const c = await mesh.node(client);
    let sent = 0;
    const results: string[] = [];
    const lane = async () => {
      while (sent < 3000) {
        sent++;
        results.push((await c.request('echo', 'x', { timeout: 10_000 })).toString());
      }
    };
    await Promise.all(Array.from({ length: 24 }, lane));
    assert.equal(results.length, 3000);
    assert.ok(results.every((r) => r === 'ok'));
    for (const p of [worker, worker2, worker3]) {
      const n = counts.get(p.name) ?? 0;
      assert.ok(n >= 900 && n <= 1100, `${p.name} got ${n}`);
    }
  } finally {
    await mesh.close();
  }
});

test('no worker → MESH_ERR_NO_SERVICE; handler throws → MESH_ERR_HANDLER and the worker keeps serving', async () => {
  const mesh = await MeshFixture.start(registry);
  try {
    const w = await mesh.node(worker);
    let calls = 0;
    w.serve('flaky', (req) => {
      calls++;
      if (req.payload.toString() === 'boom') throw new Error('kaboom: bad input');
      return 'fine';
    });
    const c = await mesh.node(client);
    await assert.rejects(c.request('nobody', 'x', { retries: 0 }), (e: unknown) => e instanceof MeshError && e.code === 'MESH_ERR_NO_SERVICE');
    await assert.rejects(c.request('flaky', 'boom'), (e: unknown) => e instanceof MeshError && e.code === 'MESH_ERR_HANDLER' && /kaboom: bad input/.test(e.message) && !e.retryable);
    assert.equal((await c.request('flaky', 'ok')).toString(), 'fine');
    assert.equal(calls, 2, 'a non-retryable handler error is not retried');
  } finally {
    await mesh.close();
  }
});

test('forbidden call and forbidden serve: MESH_ERR_FORBIDDEN, the connection stays up', async () => {
  const mesh = await MeshFixture.start(registry);
  try {
    const n = await mesh.node(nodeP);
    const errors: string[] = [];
    n.on('broker-error', (e) => errors.push(`${e.error.code}: ${e.error.message}`));
    n.serve('echo', (r) => r.payload);
    n.serve('billing', () => 'stolen'); // not allowed: the broker answers FORBIDDEN and never routes to it
    await until(() => errors.length === 1, 2000, 'FORBIDDEN for the READY');
    assert.match(errors[0]!, /^MESH_ERR_FORBIDDEN: node-1 may not serve billing/);
    const w = await mesh.node(worker);
    w.serve('billing', () => 'real');
    await assert.rejects(n.request('billing', 'x'), (e: unknown) => e instanceof MeshError && e.code === 'MESH_ERR_FORBIDDEN');
    assert.equal((await n.request('echo', 'still-up')).toString(), 'still-up');
    const c = await mesh.node(client);
    for (let i = 0; i < 10; i++) assert.equal((await c.request('billing', 'x')).toString(), 'real');
  } finally {
    await mesh.close();
  }
});

test('two seeds with the same broker key make one link', async () => {
  const mesh = await MeshFixture.start(registry);
  try {
    const url = new URL(mesh.broker.address.replace('mesh:', 'http:'));
    const other = mesh.broker.address.replace(`:${url.port}`, ':1');
    const c = await mesh.node(client, { brokers: [mesh.broker.address, other] });
    assert.deepEqual(c.brokers, [mesh.broker.address]);
    assert.deepEqual(c.healthyBrokers, [mesh.broker.address]);
  } finally {
    await mesh.close();
  }
});

test('an unregistered key is refused with MESH_ERR_UNAUTHORIZED', async () => {
  const mesh = await MeshFixture.start(registry);
  try {
    const stranger = party('stranger');
    await assert.rejects(mesh.node(stranger), (e: unknown) => e instanceof MeshError && e.code === 'MESH_ERR_UNAUTHORIZED');
  } finally {
    await mesh.close();
  }
});

test('close() rejects pending requests with MESH_ERR_CLOSED and is idempotent', async () => {
  const mesh = await MeshFixture.start(registry);
  try {
    const w = await mesh.node(worker);
    w.serve('slow', () => sleep(300).then(() => 'late'));
    const c = await mesh.node(client);
    const p = c.request('slow', 'x', { timeout: 5000 });
    await sleep(50);
    const [r1, r2] = [c.close(), c.close()];
    await assert.rejects(p, (e: unknown) => e instanceof MeshError && e.code === 'MESH_ERR_CLOSED');
    await Promise.all([r1, r2]);
    await assert.rejects(c.request('slow', 'x'), (e: unknown) => e instanceof MeshError && e.code === 'MESH_ERR_CLOSED');
  } finally {
    await mesh.close();
  }
});
