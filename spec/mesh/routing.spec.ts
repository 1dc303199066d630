import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MeshError } from '../../lib/errors.ts';
import { MeshFixture, party, registryOf, sleep, until } from '../helpers/mesh.ts';
import { noiseClient } from '../helpers/raw-peer.ts';
import { EnvelopeCodec } from '../../lib/protocol/envelope-codec.ts';
import { packSegments } from '../../lib/protocol/segments.ts';
import { getSuite } from '../../lib/crypto/suites.ts';

const client = party('client-1');
const fast = party('fast-worker');
const slow = party('slow-worker');
const registry = registryOf([
  [client, { role: 'client', call: ['*'] }],
  [fast, { role: 'worker', serve: ['*'] }],
  [slow, { role: 'worker', serve: ['*'] }],
]);

const isCode = (code: string) => (e: unknown) => e instanceof MeshError && e.code === code;

test('a worker twice as slow gets fewer requests', async () => {
  const mesh = await MeshFixture.start(registry);
  try {
    const counts = { fast: 0, slow: 0 };
    (await mesh.node(fast)).serve('work', async () => {
      counts.fast++;
      await sleep(5);
      return 'f';
    }, { concurrency: 2 });
    (await mesh.node(slow)).serve('work', async () => {
      counts.slow++;
      await sleep(10);
      return 's';
    }, { concurrency: 2 });
    await until(() => mesh.broker.status().services[0]?.workers === 2);
    const c = await mesh.node(client);
    await Promise.all(Array.from({ length: 400 }, () => c.request('work', 'x', { timeout: 20_000 })));
    assert.equal(counts.fast + counts.slow, 400);
    assert.ok(counts.slow < counts.fast, `fast ${counts.fast}, slow ${counts.slow}`);
  } finally {
    await mesh.close();
  }
});

test('credits never let a worker run more than its concurrency', async () => {
  const mesh = await MeshFixture.start(registry);
  try {
    let running = 0;
    let max = 0;
    (await mesh.node(fast)).serve('work', async () => {
      max = Math.max(max, ++running);
      await sleep(3);
      running--;
      return 'ok';
    }, { concurrency: 3 });
    const c = await mesh.node(client);
    await Promise.all(Array.from({ length: 100 }, () => c.request('work', 'x', { timeout: 20_000 })));
    assert.equal(max, 3);
  } finally {
    await mesh.close();
  }
});

test('a stuck service does not delay another one', async () => {
  const mesh = await MeshFixture.start(registry);
  try {
    const w = await mesh.node(fast);
    w.serve('stuck', () => new Promise<string>(() => {}), { concurrency: 1 });
    w.serve('quick', () => 'ok', { concurrency: 4 });
    const c = await mesh.node(client);
    const stuck = Array.from({ length: 20 }, () => c.request('stuck', 'x', { timeout: 1500, retries: 0 }).then(() => 'replied', (e: MeshError) => e.code));
    const t0 = performance.now();
    for (let i = 0; i < 50; i++) assert.equal((await c.request('quick', 'x')).toString(), 'ok');
    const quickMs = performance.now() - t0;
    const fates = await Promise.all(stuck);
    assert.ok(fates.every((f) => f === 'MESH_ERR_TIMEOUT'), fates.join());
    assert.ok(quickMs < 1500, `quick requests finished before the stuck ones timed out (${Math.round(quickMs)} ms)`);
  } finally {
    await mesh.close();
  }
});

test('queue full: MESH_ERR_BUSY at once; deadline passes in the queue: MESH_ERR_TIMEOUT and the worker never sees it', async () => {
  const mesh = await MeshFixture.start(registry, { queue: { maxCount: 3 } });
  try {
    const seen: string[] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    (await mesh.node(fast)).serve('one', async (req) => {
      seen.push(req.payload.toString());
      await gate;
      return 'done';
    }, { concurrency: 1 });
    const c = await mesh.node(client);
    const first = c.request('one', 'first', { timeout: 5000, retries: 0 });
    await until(() => seen.length === 1);
    const queued = [1, 2, 3].map((i) => c.request('one', `queued-${i}`, { timeout: 300, retries: 0 }).then(() => 'replied', (e: MeshError) => e.code));
    await until(() => mesh.broker.status().services[0]?.queued === 3);
    await assert.rejects(c.request('one', 'overflow', { retries: 0 }), isCode('MESH_ERR_BUSY'));
    assert.deepEqual(await Promise.all(queued), ['MESH_ERR_TIMEOUT', 'MESH_ERR_TIMEOUT', 'MESH_ERR_TIMEOUT']);
    await until(() => mesh.broker.status().services[0]?.queued === 0, 2000, 'queue swept');
    release();
    assert.equal((await first).toString(), 'done');
    await sleep(50);
    assert.deepEqual(seen, ['first'], 'expired requests never reached the worker');
  } finally {
    await mesh.close();
  }
});

test('a resent request reaches the worker that has it and is executed once', async () => {
  const mesh = await MeshFixture.start(registry);
  try {
    const runs: Array<{ attempt: number; dup: boolean }> = [];
    (await mesh.node(fast)).serve('slowish', async (req) => {
      runs.push({ attempt: req.attempt, dup: req.dup });
      await sleep(400);
      return 'once';
    });
    (await mesh.node(slow)).serve('slowish', async (req) => {
      runs.push({ attempt: req.attempt, dup: req.dup });
      await sleep(400);
      return 'once';
    });
    const c = await mesh.node(client);
    // Attempts time out after 100 ms and are resent with the worker hint.
    assert.equal((await c.request('slowish', 'x', { timeout: 2000, retries: 4, attemptTimeout: 100 })).toString(), 'once');
    assert.equal(runs.length, 1, JSON.stringify(runs));
  } finally {
    await mesh.close();
  }
});

test('a revoked key is disconnected within one second with MESH_ERR_UNAUTHORIZED', async () => {
  const mesh = await MeshFixture.start(registry);
  try {
    (await mesh.node(fast)).serve('echo', (r) => r.payload);
    const c = await mesh.node(client);
    const downs: Array<string | undefined> = [];
    c.on('broker-down', (e) => downs.push(e.error?.code));
    assert.equal((await c.request('echo', 'before')).toString(), 'before');
    const t0 = performance.now();
    mesh.broker.setRegistry(registryOf([[fast, { role: 'worker', serve: ['*'] }]]));
    await until(() => downs.length === 1, 1000, 'disconnect');
    assert.ok(performance.now() - t0 < 1000);
    assert.deepEqual(downs, ['MESH_ERR_UNAUTHORIZED']);
    await assert.rejects(c.request('echo', 'after', { timeout: 300 }), isCode('MESH_ERR_TIMEOUT'));
  } finally {
    await mesh.close();
  }
});

test('a node cannot forge its sender: the broker stamps the authenticated key and name', async () => {
  const mesh = await MeshFixture.start(registry);
  try {
    const seen: Array<{ key: string; name: string }> = [];
    (await mesh.node(fast)).serve('echo', (r) => {
      seen.push(r.sender);
      return 'ok';
    });
    await until(() => mesh.broker.status().services.length === 1);
    const raw = await noiseClient(Number(new URL(mesh.broker.address.replace('mesh:', 'http:')).port), { keyPair: client.keyPair, remoteKey: Buffer.from(mesh.broker.key, 'base64url'), suite: getSuite('node') });
    const codec = new EnvelopeCodec();
    const [plaintext] = packSegments([
      codec.encode({ type: 'REQUEST', id: Buffer.alloc(16, 5), service: 'echo', attempt: 1, dup: false, ttl: 1000, sender: fast.keyPair.publicKey, senderName: 'fast-worker', payload: Buffer.from('forged') }),
    ]);
    raw.sendPlaintext(plaintext!);
    await until(() => seen.length === 1);
    assert.deepEqual(seen, [{ key: client.key, name: 'client-1' }]);
    raw.socket.destroy();
  } finally {
    await mesh.close();
  }
});

test('requests() serves as an async iterator; leaving the loop withdraws the service', async () => {
  const mesh = await MeshFixture.start(registry);
  try {
    const w = await mesh.node(fast);
    const c = await mesh.node(client);
    const loop = (async () => {
      let n = 0;
      for await (const req of w.requests('iter', { concurrency: 2 })) {
        req.reply(`got ${req.payload.toString()}`);
        if (++n === 3) break;
      }
    })();
    await until(() => mesh.broker.status().services.some((s) => s.name === 'iter' && s.workers === 1));
    for (const x of ['a', 'b', 'c']) assert.equal((await c.request('iter', x)).toString(), `got ${x}`);
    await loop;
    await until(() => !mesh.broker.status().services.some((s) => s.name === 'iter'), 5000, 'service withdrawn');
  } finally {
    await mesh.close();
  }
});

test('broker.close() drains: in-flight replies are delivered, queued requests handed back, nodes told DRAIN', async () => {
  const mesh = await MeshFixture.start(registry);
  try {
    (await mesh.node(fast)).serve('slow', async () => {
      await sleep(200);
      return 'finished';
    }, { concurrency: 1 });
    const c = await mesh.node(client);
    const drains: string[] = [];
    c.on('broker-draining', (e) => drains.push(e.broker));
    const inflight = c.request('slow', 'a', { timeout: 3000 });
    await until(() => mesh.broker.status().pending === 1);
    const queued = c.request('slow', 'b', { timeout: 600, retries: 0 }).then(() => 'replied', (e: MeshError) => e.code);
    await until(() => mesh.broker.status().services[0]?.queued === 1);
    const closing = mesh.broker.close();
    assert.equal((await inflight).toString(), 'finished');
    assert.equal(await queued, 'MESH_ERR_TIMEOUT', 'handed back, and no other broker to take it');
    await closing;
    assert.equal(drains.length, 1);
  } finally {
    await mesh.close();
  }
});

test('a client may not answer requests: a REPLY from a client-only key closes it with MESH_ERR_PROTOCOL', async () => {
  const mesh = await MeshFixture.start(registry);
  try {
    const raw = await noiseClient(Number(new URL(mesh.broker.address.replace('mesh:', 'http:')).port), { keyPair: client.keyPair, remoteKey: Buffer.from(mesh.broker.key, 'base64url'), suite: getSuite('node') });
    const codec = new EnvelopeCodec();
    const [plaintext] = packSegments([codec.encode({ type: 'REPLY', id: Buffer.alloc(16, 1), to: fast.keyPair.publicKey, payload: Buffer.from('spoof') })]);
    raw.sendPlaintext(plaintext!);
    await raw.closed;
    const errors = raw.received().map((p) => codec.decode(p.subarray(3)));
    assert.ok(errors.some((m) => m.type === 'ERROR' && m.code === 'MESH_ERR_PROTOCOL' && /REPLY/.test(m.text)), JSON.stringify(errors));
  } finally {
    await mesh.close();
  }
});

test('a client with too many requests pending at a broker gets MESH_ERR_BUSY', async () => {
  const mesh = await MeshFixture.start(registry, { maxPendingPerClient: 5 });
  try {
    (await mesh.node(fast)).serve('hold', () => sleep(300).then(() => 'ok'), { concurrency: 1 });
    const c = await mesh.node(client);
    const fates = await Promise.all(Array.from({ length: 8 }, () => c.request('hold', 'x', { timeout: 3000, retries: 0 }).then(() => 'ok', (e: MeshError) => e.code)));
    assert.equal(fates.filter((f) => f === 'MESH_ERR_BUSY').length, 3, fates.join());
    assert.equal(fates.filter((f) => f === 'ok').length, 5, fates.join());
  } finally {
    await mesh.close();
  }
});

test('a dispatched request that is never answered is forgotten after its deadline', async () => {
  const mesh = await MeshFixture.start(registry);
  try {
    (await mesh.node(fast)).serve('void', () => new Promise<string>(() => {}), { concurrency: 4 });
    const c = await mesh.node(client);
    await assert.rejects(c.request('void', 'x', { timeout: 200, retries: 0 }), isCode('MESH_ERR_TIMEOUT'));
    assert.equal(mesh.broker.status().pending, 1);
    await until(() => mesh.broker.status().pending === 0, 3000, 'pending record dropped');
  } finally {
    await mesh.close();
  }
});

test('resends through the same broker never let a worker exceed its concurrency', async () => {
  const mesh = await MeshFixture.start(registry);
  try {
    let running = 0;
    let max = 0;
    let runs = 0;
    (await mesh.node(fast)).serve('slowish', async () => {
      runs++;
      max = Math.max(max, ++running);
      await sleep(150);
      running--;
      return 'ok';
    }, { concurrency: 2 });
    const c = await mesh.node(client);
    const replies = await Promise.all(Array.from({ length: 8 }, () => c.request('slowish', 'x', { timeout: 5000, retries: 6, attemptTimeout: 40 })));
    assert.deepEqual(replies.map(String), Array(8).fill('ok'));
    assert.equal(runs, 8, 'each request executed once');
    assert.ok(max <= 2, `ran ${max} at once`);
  } finally {
    await mesh.close();
  }
});

test('a payload over the worker limit fails with MESH_ERR_ENVELOPE_TOO_LARGE and breaks nothing', async () => {
  const mesh = await MeshFixture.start(registry);
  try {
    (await mesh.node(fast, { maxPayload: 1000 })).serve('small', (r) => r.payload);
    const c = await mesh.node(client);
    await assert.rejects(c.request('small', Buffer.alloc(2000)), isCode('MESH_ERR_ENVELOPE_TOO_LARGE'));
    assert.equal((await c.request('small', 'fits')).toString(), 'fits');
    // And a reply over the client's limit.
    (await mesh.node(slow)).serve('big', () => Buffer.alloc(5000));
    const tiny = await mesh.node(client, { maxPayload: 1000 });
    await assert.rejects(tiny.request('big', 'x'), isCode('MESH_ERR_ENVELOPE_TOO_LARGE'));
    assert.equal((await tiny.request('small', 'still')).toString(), 'still');
  } finally {
    await mesh.close();
  }
});
