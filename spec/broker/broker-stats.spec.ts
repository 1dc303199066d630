// The broker's counters: first the pure BrokerCounters on a hand-driven
// clock (outcomes, latency buckets, the bound on services, failed
// handshakes, rounds), then through a real Broker and raw protocol parties
// on loopback: each way a request ends is counted once, under its service,
// and broker.stats() adds connections, queues and requests in flight.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Broker } from '../../lib/broker/broker.ts';
import type { BrokerOptions, BrokerStats } from '../../lib/broker/broker.ts';
import { BrokerCounters, LATENCY_BUCKETS_MS, OTHER_SERVICES } from '../../lib/broker/broker-stats.ts';
import { Registry } from '../../lib/broker/registry.ts';
import type { KeyPair } from '../../lib/crypto/crypto-suite.ts';
import { encodeKey } from '../../lib/crypto/keys.ts';
import { getSuite } from '../../lib/crypto/suites.ts';
import type { RoleName } from '../../lib/protocol/hello.ts';
import type { RequestMessage } from '../../lib/protocol/messages.ts';
import { WireParty, waitFor } from './wire-party.ts';

// ------------------------------------------------------------ BrokerCounters alone

function counters(maxServices?: number) {
  let t = 1000;
  const c = new BrokerCounters({ now: () => t, maxServices });
  return { c, advance: (ms: number) => void (t += ms), now: () => t };
}

test('a fresh counter set is all zero, with the uptime on its clock', () => {
  const { c, advance } = counters();
  advance(1500);
  assert.deepEqual(c.snapshot(), { uptimeMs: 1500, gossipRounds: 0, handshakesFailed: {}, handshakesEvicted: 0, services: [] });
  const empty = BrokerCounters.empty('echo');
  assert.deepEqual(empty.requests, {});
  assert.deepEqual(empty.latency.counts, new Array(LATENCY_BUCKETS_MS.length + 1).fill(0));
  assert.equal(empty.latency.count, 0);
});

test('outcomes are counted per service; an unknown error code counts as MESH_ERR_PROTOCOL', () => {
  const { c } = counters();
  c.ended('echo', 'refused');
  c.ended('echo', 'refused');
  c.ended('echo', 'MESH_ERR_NO_SERVICE');
  c.failed('echo', 'MESH_ERR_HANDLER');
  c.failed('echo', 'MESH_ERR_SOMETHING_NEW');
  c.ended('billing', 'timed-out');
  c.ended('billing', 'dropped');
  c.resent('billing');
  c.redispatched('billing', 'worker-lost');
  c.redispatched('billing', 'refused');
  c.redispatched('billing', 'refused');
  const s = c.snapshot();
  assert.deepEqual(
    s.services.map((x) => [x.name, x.requests, x.resends, x.redispatches]),
    [
      ['echo', { refused: 2, MESH_ERR_NO_SERVICE: 1, MESH_ERR_HANDLER: 1, MESH_ERR_PROTOCOL: 1 }, 0, { workerLost: 0, refused: 0 }],
      ['billing', { 'timed-out': 1, dropped: 1 }, 1, { workerLost: 1, refused: 2 }],
    ],
  );
});

test('latency goes into the first bucket whose bound is at least the latency; sum and count follow', () => {
  const { c, now } = counters();
  const at = (latency: number): number => now() - latency;
  for (const ms of [0, 1, 1.5, 2, 10, 10.01, 10_000, 10_001, 60_000]) c.replied('echo', at(ms));
  const latency = c.snapshot().services[0]!.latency;
  assert.deepEqual(latency.boundsMs, LATENCY_BUCKETS_MS);
  const expected = new Array(LATENCY_BUCKETS_MS.length + 1).fill(0);
  const bucket = (ms: number): number => LATENCY_BUCKETS_MS.findIndex((b) => ms <= b);
  for (const ms of [0, 1, 1.5, 2, 10, 10.01, 10_000]) expected[bucket(ms)]++;
  expected[LATENCY_BUCKETS_MS.length] += 2; // over the last bound
  assert.deepEqual(latency.counts, expected);
  assert.equal(latency.count, 9);
  assert.equal(Math.round(latency.sumMs * 100), Math.round((0 + 1 + 1.5 + 2 + 10 + 10.01 + 10_000 + 10_001 + 60_000) * 100));
  assert.deepEqual(c.snapshot().services[0]!.requests, { replied: 9 });
  // A clock that went backwards relative to the receipt counts as 0 ms, never negative.
  c.replied('echo', now() + 5);
  assert.equal(c.snapshot().services[0]!.latency.counts[0], expected[0] + 1);
});

test('past the bound on services, new names are counted together under ~other', () => {
  const { c } = counters(2);
  c.ended('a', 'refused');
  c.ended('b', 'refused');
  c.ended('c', 'refused');
  c.ended('d', 'MESH_ERR_NO_SERVICE');
  c.ended('a', 'refused');
  assert.deepEqual(
    c.snapshot().services.map((s) => [s.name, s.requests]),
    [
      ['a', { refused: 2 }],
      ['b', { refused: 1 }],
      [OTHER_SERVICES, { refused: 1, MESH_ERR_NO_SERVICE: 1 }],
    ],
  );
});

test('failed handshakes by code and quorum rounds; a snapshot is a copy', () => {
  const { c } = counters();
  c.handshakeFailed('MESH_ERR_UNAUTHORIZED');
  c.handshakeFailed('MESH_ERR_UNAUTHORIZED');
  c.handshakeFailed('MESH_ERR_LIMIT');
  c.round();
  c.ended('echo', 'refused');
  const before = c.snapshot();
  c.round();
  c.handshakeFailed('MESH_ERR_LIMIT');
  c.ended('echo', 'refused');
  assert.deepEqual(before.handshakesFailed, { MESH_ERR_UNAUTHORIZED: 2, MESH_ERR_LIMIT: 1 });
  assert.equal(before.gossipRounds, 1);
  assert.deepEqual(before.services[0]!.requests, { refused: 1 });
  assert.equal(c.gossipRounds, 2);
  assert.deepEqual(c.snapshot().handshakesFailed, { MESH_ERR_UNAUTHORIZED: 2, MESH_ERR_LIMIT: 2 });
});

// ------------------------------------------------------------ through a real broker

const suite = getSuite('node');
const keys = {
  broker: suite.generateKeyPair(),
  client: suite.generateKeyPair(),
  worker1: suite.generateKeyPair(),
  worker2: suite.generateKeyPair(),
  stranger: suite.generateKeyPair(),
};
const registry = Registry.fromEntries([
  { key: encodeKey(keys.client.publicKey), name: 'client-1', role: 'client', call: ['echo', 'nobody', 'slow'] },
  { key: encodeKey(keys.worker1.publicKey), name: 'worker-1', role: 'worker', serve: ['echo', 'slow'] },
  { key: encodeKey(keys.worker2.publicKey), name: 'worker-2', role: 'worker', serve: ['echo', 'slow'] },
]);

const id = (n: number): Uint8Array => new Uint8Array(16).fill(n);
const request = (n: number, fields: Partial<RequestMessage> = {}): RequestMessage => ({ type: 'REQUEST', id: id(n), service: 'echo', attempt: 1, dup: false, ttl: 5000, payload: Buffer.from(`req-${n}`), ...fields });
const service = (stats: BrokerStats, name: string) => stats.services.find((s) => s.name === name);

async function withBroker(run: (b: Broker, connect: (k: KeyPair, role: RoleName) => Promise<WireParty>) => Promise<void>, options: Partial<BrokerOptions> = {}): Promise<void> {
  const broker = await Broker.start({ key: keys.broker, registry, suite, drainTimeout: 200, gossipInterval: 50, ...options });
  const parties: WireParty[] = [];
  const connect = async (keyPair: KeyPair, role: RoleName): Promise<WireParty> => {
    const party = await WireParty.connect(broker, keyPair, role);
    parties.push(party);
    await party.take('WELCOME');
    return party;
  };
  try {
    await run(broker, connect);
  } finally {
    for (const p of parties) p.close();
    await broker.close();
  }
}

test('broker.stats(): replies with their latency, errors by code, resends, connections by role, rounds', async () => {
  await withBroker(async (broker, connect) => {
    const w = await connect(keys.worker1, 'worker');
    w.send({ type: 'READY', service: 'echo', credits: 10 });
    const c = await connect(keys.client, 'client');
    await waitFor(() => service(broker.stats(), 'echo')?.workers === 1, 5000, 'the offer');
    c.send(request(1));
    const first = await w.take('REQUEST');
    // The client resends request 1 through this broker while it is in flight: a resend, not a new request.
    c.send(request(1, { attempt: 2, dup: true }));
    assert.equal((await w.take('REQUEST')).attempt, 2);
    c.send(request(2));
    c.send(request(3));
    const second = await w.take('REQUEST');
    const third = await w.take('REQUEST');
    assert.equal(service(broker.stats(), 'echo')?.inFlight, 3);
    w.send({ type: 'REPLY', id: first.id, payload: first.payload });
    w.send({ type: 'REPLY', id: second.id, payload: second.payload });
    w.send({ type: 'ERROR', id: third.id, code: 'MESH_ERR_HANDLER', retryable: false, text: 'no' });
    await c.take('REPLY');
    await c.take('REPLY');
    await c.take('ERROR');
    c.send(request(9, { service: 'nobody' }));
    await c.take('ERROR');
    c.send(request(10, { service: 'forbidden.one' }));
    assert.equal((await c.take('ERROR')).code, 'MESH_ERR_FORBIDDEN');
    await waitFor(() => broker.stats().gossipRounds >= 2, 5000, 'two rounds');

    const stats = broker.stats();
    const echo = service(stats, 'echo')!;
    assert.deepEqual(echo.requests, { replied: 2, MESH_ERR_HANDLER: 1 });
    assert.equal(echo.resends, 1);
    assert.equal(echo.latency.count, 2);
    assert.equal(echo.latency.counts.reduce((a, b) => a + b, 0), 2);
    assert.ok(echo.latency.sumMs >= 0 && echo.latency.sumMs < 5000, String(echo.latency.sumMs));
    assert.deepEqual([echo.workers, echo.queued, echo.inFlight], [1, 0, 0]);
    assert.deepEqual(service(stats, 'nobody')?.requests, { MESH_ERR_NO_SERVICE: 1 });
    assert.deepEqual(service(stats, 'forbidden.one')?.requests, { MESH_ERR_FORBIDDEN: 1 });
    assert.deepEqual(stats.services.map((s) => s.name), ['echo', 'forbidden.one', 'nobody'], 'sorted by name');
    assert.deepEqual(stats.connections, { broker: 0, client: 1, worker: 1, node: 0 });
    assert.equal(stats.brokers, 1);
    assert.equal(stats.pending, 0);
    assert.ok(stats.uptimeMs > 0);
    assert.deepEqual(stats.handshakesFailed, {});
  });
});

test('broker.stats(): queue depth and in flight; re-dispatches after REFUSED and a lost worker; failed handshakes by code', async () => {
  await withBroker(async (broker, connect) => {
    const w1 = await connect(keys.worker1, 'worker');
    w1.send({ type: 'READY', service: 'slow', credits: 1 });
    const c = await connect(keys.client, 'client');
    await waitFor(() => service(broker.stats(), 'slow')?.workers === 1, 5000, 'the offer');
    c.send(request(1, { service: 'slow' }));
    await w1.take('REQUEST');
    c.send(request(2, { service: 'slow' }));
    c.send(request(3, { service: 'slow' }));
    await waitFor(() => service(broker.stats(), 'slow')?.queued === 2, 5000, 'two queued');
    assert.deepEqual((({ workers, queued, inFlight }) => ({ workers, queued, inFlight }))(service(broker.stats(), 'slow')!), { workers: 1, queued: 2, inFlight: 1 });
    assert.equal(broker.stats().pending, 3);

    // Worker 1 refuses request 1, then its connection closes with request 2 in flight.
    w1.send({ type: 'REFUSED', id: id(1) });
    await waitFor(() => service(broker.stats(), 'slow')?.redispatches.refused === 1, 5000, 'the refusal');
    w1.send({ type: 'READY', service: 'slow', credits: 1 });
    await w1.take('REQUEST');
    w1.close();
    await waitFor(() => service(broker.stats(), 'slow')?.redispatches.workerLost === 1, 5000, 'the lost worker');
    const w2 = await connect(keys.worker2, 'worker');
    w2.send({ type: 'READY', service: 'slow', credits: 5 });
    for (let n = 0; n < 3; n++) {
      const got = await w2.take('REQUEST');
      w2.send({ type: 'REPLY', id: got.id, payload: got.payload });
    }
    for (let n = 0; n < 3; n++) await c.take('REPLY');
    const slow = service(broker.stats(), 'slow')!;
    assert.deepEqual(slow.requests, { replied: 3 });
    assert.deepEqual(slow.redispatches, { workerLost: 1, refused: 1 });
    assert.deepEqual([slow.queued, slow.inFlight], [0, 0]);

    // A key the registry does not know: refused in the handshake (the broker's verdict comes after message 3).
    const stranger = await WireParty.connect(broker, keys.stranger, 'client');
    assert.equal((await stranger.closedWith())?.code, 'MESH_ERR_UNAUTHORIZED');
    await waitFor(() => broker.stats().handshakesFailed.MESH_ERR_UNAUTHORIZED === 1, 5000, 'the failed handshake');
  });
});

test('broker.stats(): queued requests handed back on drain count as refused; a closed client\'s queued ones as dropped', async () => {
  const broker = await Broker.start({ key: keys.broker, registry, suite, drainTimeout: 200 });
  const w = await WireParty.connect(broker, keys.worker1, 'worker');
  const c1 = await WireParty.connect(broker, keys.client, 'client');
  try {
    await w.take('WELCOME');
    w.send({ type: 'READY', service: 'slow', credits: 1 });
    await waitFor(() => service(broker.stats(), 'slow')?.workers === 1, 5000, 'the offer');
    c1.send(request(1, { service: 'slow' }));
    await w.take('REQUEST');
    c1.send(request(2, { service: 'slow' }));
    c1.send(request(3, { service: 'slow' }));
    await waitFor(() => service(broker.stats(), 'slow')?.queued === 2, 5000, 'two queued');
    c1.close();
    await waitFor(() => service(broker.stats(), 'slow')?.requests.dropped === 2, 5000, 'two dropped');
    const c2 = await WireParty.connect(broker, keys.client, 'client');
    c2.send(request(4, { service: 'slow' }));
    await waitFor(() => broker.stats().pending === 2, 5000, 'queued again');
    const closing = broker.close();
    await c2.take('REFUSED');
    w.send({ type: 'REPLY', id: id(1), payload: Buffer.from('late') });
    await closing;
    c2.close();
    const slow = service(broker.stats(), 'slow')!;
    assert.equal(slow.requests.refused, 1);
    assert.equal(slow.requests.dropped, 2);
  } finally {
    w.close();
    await broker.close();
  }
});

test('broker.stats(): a dispatched request no answer came back for counts as timed-out once it is forgotten (ttl + 1 s)', async () => {
  await withBroker(async (broker, connect) => {
    const w = await connect(keys.worker1, 'worker');
    w.send({ type: 'READY', service: 'slow', credits: 1 });
    const c = await connect(keys.client, 'client');
    await waitFor(() => service(broker.stats(), 'slow')?.workers === 1, 5000, 'the offer');
    c.send(request(1, { service: 'slow', ttl: 50 }));
    await w.take('REQUEST');
    assert.equal(service(broker.stats(), 'slow')?.inFlight, 1);
    await waitFor(() => service(broker.stats(), 'slow')?.requests['timed-out'] === 1, 5000, 'the request forgotten');
    assert.deepEqual(service(broker.stats(), 'slow')?.requests, { 'timed-out': 1 });
    assert.equal(service(broker.stats(), 'slow')?.inFlight, 0);
  });
});
