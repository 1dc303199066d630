// Edges of failover found in review, each over real loopback connections: a
// queued copy of a request must not run after its client's link is gone (the
// client has resent it elsewhere), a worker never runs more handlers than its
// concurrency even when a broker sends more, a REPLY addressed to a broker's
// key never reaches a peer broker's connection, and a broker that lacks a
// service is avoided for it instead of costing every request a retry.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Broker } from '../../lib/broker/broker.ts';
import { Connection } from '../../lib/protocol/connection.ts';
import type { Message } from '../../lib/protocol/messages.ts';
import { decodeKey } from '../../lib/crypto/keys.ts';
import { getSuite } from '../../lib/crypto/suites.ts';
import { MeshNode } from '../../lib/node/mesh-node.ts';
import { MeshFixture, party, registryOf, sleep, until } from '../helpers/mesh.ts';
import type { Party } from '../helpers/mesh.ts';

const suite = getSuite('node');

/** A raw Connection to a broker as party `p` (role from the registry's point of view is what counts). */
async function raw(address: string, p: Party, role: 'client' | 'worker') {
  const url = new URL(address.replace('mesh://', 'http://'));
  const messages: Message[] = [];
  const connection = await Connection.connect(
    { host: url.hostname, port: Number(url.port), remoteKey: decodeKey(url.username, 'broker key'), keyPair: p.keyPair, suite, role, name: p.name },
    { onMessage: (m) => messages.push(m), onClose: () => {} },
  );
  return { connection, messages };
}

void test("a request still queued when its client's link closes is never dispatched later", async () => {
  const client = party('client');
  const worker = party('worker');
  const mesh = await MeshFixture.start(registryOf([
    [client, { role: 'client', call: ['*'] }],
    [worker, { role: 'worker', serve: ['*'] }],
  ]));
  let release: () => void = () => {};
  const gate = new Promise<void>((r) => (release = r));
  try {
    const seen: string[] = [];
    (await mesh.node(worker)).serve('one', async (req) => {
      seen.push(req.payload.toString());
      await gate;
      return 'done';
    }, { concurrency: 1 });
    await until(() => mesh.broker.status().services[0]?.credits === 1, 5000, 'the worker offers one credit');
    const c = await raw(mesh.broker.address, client, 'client');
    const request = (payload: string): Message => ({ type: 'REQUEST', id: randomBytes(16), service: 'one', attempt: 1, dup: false, ttl: 10_000, payload: Buffer.from(payload) });
    c.connection.send(request('first'));
    await until(() => seen.length === 1, 5000, 'the first request runs');
    c.connection.send(request('queued'));
    await until(() => mesh.broker.status().services[0]?.queued === 1, 5000, 'the second request waits in the queue');
    c.connection.close();
    await until(() => mesh.broker.status().pending === 1, 5000, 'the queued copy is forgotten with its client (the running one stays)');
    release();
    await sleep(200);
    assert.deepEqual(seen, ['first'], 'the queued copy never reached the worker');
  } finally {
    release();
    await mesh.close();
  }
});

void test('a worker refuses requests over its concurrency (a broker may send more, e.g. hinted resends): they run later, never more at once', async () => {
  const client = party('client');
  const worker = party('worker');
  const mesh = await MeshFixture.start(registryOf([
    [client, { role: 'client', call: ['*'] }],
    [worker, { role: 'worker', serve: ['*'] }],
  ]));
  try {
    let running = 0;
    let most = 0;
    (await mesh.node(worker)).serve('two', async () => {
      running++;
      most = Math.max(most, running);
      await sleep(30);
      running--;
      return 'ok';
    }, { concurrency: 2 });
    await until(() => mesh.broker.status().services[0]?.credits === 2, 5000, 'the worker offers two credits');
    const c = await raw(mesh.broker.address, client, 'client');
    // A hint makes the broker send to the worker whatever its credits.
    const ids = Array.from({ length: 8 }, () => randomBytes(16));
    for (const id of ids) c.connection.send({ type: 'REQUEST', id, service: 'two', attempt: 1, dup: false, ttl: 10_000, worker: worker.keyPair.publicKey, payload: Buffer.from('x') });
    await until(() => c.messages.filter((m) => m.type === 'REPLY').length === 8, 10_000, 'all eight replies');
    assert.ok(most <= 2, `at most 2 handlers at once, saw ${most}`);
    c.connection.close();
  } finally {
    await mesh.close();
  }
});

void test("a REPLY addressed to a peer broker's key is not forwarded on the broker-to-broker connection", async () => {
  const [b1, b2, worker] = [party('broker-1'), party('broker-2'), party('worker')];
  const registry = registryOf([
    [b1, { role: 'broker' }],
    [b2, { role: 'broker' }],
    [worker, { role: 'worker', serve: ['*'] }],
  ]);
  const events: string[] = [];
  const onPeerDown = (e: { type: string }): void => void events.push(e.type);
  const first = (await Broker.start({ key: b1.keyPair, registry, suite, gossipInterval: 100 })).on('peer-down', onPeerDown);
  const second = (await Broker.start({ key: b2.keyPair, registry, suite, gossipInterval: 100, peers: [first.address] })).on('peer-down', onPeerDown);
  try {
    await until(() => first.status().peers.length === 1 && second.status().peers.length === 1, 5000, 'the brokers are connected');
    // One of the two brokers holds the pair's connection as an accepted session: try both.
    const w1 = await raw(first.address, worker, 'worker');
    const w2 = await raw(second.address, worker, 'worker');
    w1.connection.send({ type: 'REPLY', id: randomBytes(16), to: b2.keyPair.publicKey, payload: Buffer.from('forged') });
    w2.connection.send({ type: 'REPLY', id: randomBytes(16), to: b1.keyPair.publicKey, payload: Buffer.from('forged') });
    await sleep(600);
    assert.equal(first.status().peers.length, 1, 'still connected');
    assert.equal(second.status().peers.length, 1, 'still connected');
    assert.deepEqual(events, [], 'no peer connection was lost');
    w1.connection.close();
    w2.connection.close();
  } finally {
    await second.close();
    await first.close();
  }
});

void test('a broker that lacks a service (e.g. just restarted, its workers not back yet) is avoided for that service: no retry storm, no failures', async () => {
  const [b1, b2, client, worker] = [party('broker-1'), party('broker-2'), party('client'), party('worker')];
  const registry = registryOf([
    [b1, { role: 'broker' }],
    [b2, { role: 'broker' }],
    [client, { role: 'client', call: ['*'] }],
    [worker, { role: 'worker', serve: ['*'] }],
  ]);
  const first = await Broker.start({ key: b1.keyPair, registry, suite });
  const second = await Broker.start({ key: b2.keyPair, registry, suite });
  const nodes: MeshNode[] = [];
  try {
    // The worker knows only the first broker; the client both.
    const w = await MeshNode.connect({ brokers: [first.address], key: worker.keyPair, suite, discover: false, timeout: 5000 });
    nodes.push(w);
    w.serve('echo', (req) => req.payload);
    const c = await MeshNode.connect({ brokers: [first.address, second.address], key: client.keyPair, suite, discover: false, timeout: 5000 });
    nodes.push(c);
    await until(() => c.healthyBrokers.length === 2 && first.status().services.length === 1, 5000, 'client on both brokers, worker on the first');
    // Without avoidance every other request spends a retry at the second
    // broker, and 600 of them outrun the retry budget (100 + 10/s + 0.2 per success).
    let failed = 0;
    for (let i = 0; i < 600; i++) {
      await c.request('echo', `r${i}`).catch(() => failed++);
    }
    assert.equal(failed, 0);
  } finally {
    await Promise.all(nodes.map((n) => n.close()));
    await second.close();
    await first.close();
  }
});
