// node.stats() with a real broker in this process, over loopback TCP: what a
// client and a worker count (sent, replied, failed by code, retries,
// hand-backs, attempts timed out; served, refused, handler errors, resends
// attached, running) and the links, each driven by a real scenario.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MeshFixture, party, registryOf, sleep, until } from '../helpers/mesh.ts';

const client = party('client-1');
const worker = party('worker-1');
const registry = registryOf([
  [client, { role: 'client', call: ['*'] }],
  [worker, { role: 'worker', serve: ['*'] }],
]);

test('a fresh node counts nothing and has one link up', async () => {
  const mesh = await MeshFixture.start(registry);
  try {
    const c = await mesh.node(client);
    assert.deepEqual(c.stats(), {
      client: { sent: 0, replied: 0, failed: {}, retries: 0, handbacks: 0, attemptsTimedOut: 0, pending: 0 },
      worker: { served: 0, handlerErrors: 0, refused: 0, expired: 0, attached: 0, replayed: 0, running: 0 },
      links: { known: 1, up: 1, healthy: 1 },
    });
  } finally {
    await mesh.close();
  }
});

test('replies, errors by code, retries and handler errors are counted on both sides', async () => {
  const mesh = await MeshFixture.start(registry);
  try {
    const w = await mesh.node(worker);
    w.serve('echo', (req) => req.payload);
    w.serve('fail', () => {
      throw new Error('no');
    });
    const c = await mesh.node(client);
    for (let i = 0; i < 5; i++) assert.equal((await c.request('echo', `m${i}`)).toString(), `m${i}`);
    await assert.rejects(c.request('fail', 'x'), { code: 'MESH_ERR_HANDLER' });
    // NO_SERVICE is retryable: with retries 1 the client resends once (through the only broker).
    await assert.rejects(c.request('nobody.home', 'x', { retries: 1 }), { code: 'MESH_ERR_NO_SERVICE' });
    await assert.rejects(c.request('bad name!', 'x'), { code: 'MESH_ERR_CONFIG' });
    const stats = c.stats();
    assert.deepEqual(stats.client, { sent: 7, replied: 5, failed: { MESH_ERR_HANDLER: 1, MESH_ERR_NO_SERVICE: 1 }, retries: 1, handbacks: 0, attemptsTimedOut: 0, pending: 0 });
    assert.deepEqual(w.stats().worker, { served: 5, handlerErrors: 1, refused: 0, expired: 0, attached: 0, replayed: 0, running: 0 });
    assert.deepEqual(w.stats().client.sent, 0, 'the worker sent nothing');
  } finally {
    await mesh.close();
  }
});

test('a slow handler: the attempt times out, the resend attaches to the running execution; running counts it meanwhile', async () => {
  const mesh = await MeshFixture.start(registry);
  try {
    const w = await mesh.node(worker);
    let release: () => void = () => undefined;
    const released = new Promise<void>((r) => (release = r));
    w.serve('slow', async () => {
      await released;
      return 'done';
    });
    const c = await mesh.node(client);
    // Attempts of 100 ms; the handler answers only once released.
    const reply = c.request('slow', 'x', { timeout: 3000, retries: 2, attemptTimeout: 100 });
    await until(() => c.stats().client.attemptsTimedOut >= 1 && w.stats().worker.attached >= 1, 5000, 'a timed-out attempt attached at the worker');
    assert.equal(w.stats().worker.running, 1);
    assert.equal(c.stats().client.pending, 1);
    release();
    assert.equal((await reply).toString(), 'done');
    const s = c.stats().client;
    assert.equal(s.replied, 1);
    // Each timed-out attempt was resent while retries lasted (a busy machine may time out more than one).
    assert.ok(s.retries >= 1 && s.attemptsTimedOut >= s.retries, JSON.stringify(s));
    assert.deepEqual((({ served, running }) => ({ served, running }))(w.stats().worker), { served: 1, running: 0 });
  } finally {
    await mesh.close();
  }
});

test('a draining broker hands back a queued request: one hand-back, then the deadline; links count the draining broker as up, not healthy', async () => {
  const mesh = await MeshFixture.start(registry, { drainTimeout: 3000 });
  try {
    const w = await mesh.node(worker);
    let release: () => void = () => undefined;
    const released = new Promise<void>((r) => (release = r));
    w.serve('one', async () => {
      await released;
      return 'first';
    }, { concurrency: 1 });
    const c = await mesh.node(client);
    const first = c.request('one', 'a', { timeout: 5000, retries: 0 });
    await until(() => w.stats().worker.running === 1, 5000, 'the first request running');
    const second = c.request('one', 'b', { timeout: 800, retries: 0 });
    await until(() => mesh.broker.status().services[0]?.queued === 1, 5000, 'the second request queued');
    const closing = mesh.broker.close();
    await until(() => c.stats().client.handbacks === 1, 5000, 'the hand-back');
    assert.deepEqual(c.stats().links, { known: 1, up: 1, healthy: 0 });
    release();
    assert.equal((await first).toString(), 'first');
    await assert.rejects(second, { code: 'MESH_ERR_TIMEOUT' });
    await closing;
    const s = c.stats().client;
    assert.deepEqual([s.sent, s.replied, s.failed, s.handbacks, s.retries, s.pending], [2, 1, { MESH_ERR_TIMEOUT: 1 }, 1, 0, 0]);
    await until(() => c.stats().links.up === 0, 5000, 'the link down');
  } finally {
    await mesh.close();
  }
});

test('a requests() loop left with a request not pulled hands it back: refused', async () => {
  const mesh = await MeshFixture.start(registry);
  try {
    const w = await mesh.node(worker);
    const loop = w.requests('pull', { concurrency: 2 });
    const c = await mesh.node(client);
    const a = c.request('pull', 'a', { timeout: 600, retries: 0 }).catch((e: unknown) => e);
    const b = c.request('pull', 'b', { timeout: 600, retries: 0 }).catch((e: unknown) => e);
    const item = await loop.next();
    assert.equal(item.done, false);
    await until(() => w.stats().worker.running === 2, 5000, 'both delivered to the loop');
    if (!item.done) item.value.reply('ok');
    await sleep(10);
    await loop.return!();
    assert.deepEqual((({ served, refused, running }) => ({ served, refused, running }))(w.stats().worker), { served: 1, refused: 1, running: 0 });
    const outcomes = await Promise.all([a, b]);
    assert.equal(outcomes.filter((o) => Buffer.isBuffer(o)).length, 1, 'one was answered');
  } finally {
    await mesh.close();
  }
});
