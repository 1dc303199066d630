// Broker events: typed on()/off(), events of the start itself delivered to
// listeners attached as soon as start() resolves, a listener that throws
// does not stop the others, start() takes an AbortSignal, and failed
// handshakes are rate-limited into one handshake-flood summary.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { BROKER_EVENT_TYPES, Broker } from '../../lib/broker/broker.ts';
import type { BrokerEvent } from '../../lib/broker/broker.ts';
import { isMeshError } from '../../lib/errors.ts';
import { formatBrokerAddress, parseBrokerAddress } from '../../lib/protocol/broker-address.ts';
import { party, registryOf, until } from '../helpers/mesh.ts';

const self = party('broker-1');
const stranger = party('not-a-broker');
const registry = registryOf([[self, { role: 'broker' }]]);

test('events of the start reach listeners attached right after it; off() stops a listener', async () => {
  // A --peer whose key the registry does not list as a broker: reported during start().
  const peer = formatBrokerAddress({ key: stranger.key, host: '127.0.0.1', port: 1 });
  const broker = await Broker.start({ key: self.keyPair, registry, peers: [peer], gossipInterval: 50 });
  const seen: BrokerEvent[] = [];
  const listener = (e: BrokerEvent): void => void seen.push(e);
  for (const type of BROKER_EVENT_TYPES) broker.on(type, listener);
  try {
    await until(() => seen.some((e) => e.type === 'peer-not-registered'), 2000, 'the start event');
    const notRegistered = seen.find((e) => e.type === 'peer-not-registered');
    assert.equal(notRegistered?.type === 'peer-not-registered' && notRegistered.key, stranger.key);
    broker.off('closed', listener);
  } finally {
    await broker.close();
  }
  assert.ok(seen.some((e) => e.type === 'draining'), 'draining is reported');
  assert.ok(!seen.some((e) => e.type === 'closed'), 'a listener removed with off() is not called');
});

test('a listener that throws does not keep the others from their event', async () => {
  const broker = await Broker.start({ key: self.keyPair, registry });
  const uncaught: unknown[] = [];
  const onUncaught = (error: unknown): void => void uncaught.push(error);
  process.prependListener('uncaughtException', onUncaught);
  const originalListeners = process.listeners('uncaughtException').filter((l) => l !== onUncaught);
  for (const l of originalListeners) process.off('uncaughtException', l);
  let second = 0;
  try {
    broker.on('draining', () => {
      throw new Error('listener bug');
    });
    broker.on('draining', () => void second++);
    await broker.close();
    await until(() => uncaught.length > 0, 1000, 'the rethrown listener error');
  } finally {
    process.off('uncaughtException', onUncaught);
    for (const l of originalListeners) process.on('uncaughtException', l);
  }
  assert.equal(second, 1);
  assert.match(String(uncaught[0]), /listener bug/);
});

test('start() with an aborted signal rejects with MESH_ERR_ABORTED and leaves nothing listening', async () => {
  const controller = new AbortController();
  controller.abort(new Error('not now'));
  await assert.rejects(Broker.start({ key: self.keyPair, registry, signal: controller.signal }), (e: unknown) => isMeshError(e, 'MESH_ERR_ABORTED'));
  // Aborted while it listens: the listener it opened is closed again (the process would otherwise stay up).
  const late = new AbortController();
  const starting = Broker.start({ key: self.keyPair, registry, signal: late.signal, port: 0 });
  late.abort();
  await assert.rejects(starting, (e: unknown) => isMeshError(e, 'MESH_ERR_ABORTED'));
});

test('handshake failures are logged once per source and code; the rest, and evictions, come as one handshake-flood', async () => {
  const broker = await Broker.start({ key: self.keyPair, registry, firstMessageTimeout: 50, maxHandshakes: 4 });
  const seen: BrokerEvent[] = [];
  for (const type of BROKER_EVENT_TYPES) broker.on(type, (e) => void seen.push(e));
  const { port } = parseBrokerAddress(broker.address);
  const sockets: net.Socket[] = [];
  try {
    // 12 silent connections, 4 at a time: each is closed after 50 ms of silence, or evicted.
    for (let wave = 0; wave < 3; wave++) {
      for (let i = 0; i < 4; i++) {
        const s = net.connect({ host: '127.0.0.1', port });
        s.on('error', () => {});
        sockets.push(s);
      }
      await until(() => sockets.every((s) => s.destroyed || s.closed), 3000, `wave ${wave} closed by the broker`);
    }
    assert.equal(broker.stats().handshakesFailed.MESH_ERR_HANDSHAKE_TIMEOUT, 12);
  } finally {
    for (const s of sockets) s.destroy();
    await broker.close();
  }
  const failed = seen.filter((e) => e.type === 'handshake-failed');
  assert.equal(failed.length, 1, 'one line for one source and code');
  assert.equal(failed[0]?.type === 'handshake-failed' && failed[0].error.code, 'MESH_ERR_HANDSHAKE_TIMEOUT');
  const flood = seen.filter((e) => e.type === 'handshake-flood');
  assert.equal(flood.length, 1, 'the summary comes at close, the window not being over');
  assert.deepEqual(flood[0]?.type === 'handshake-flood' && { failed: flood[0].failed, sources: flood[0].sources }, { failed: 11, sources: [{ source: '127.0.0.1', count: 11 }] });
});
