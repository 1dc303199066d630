// Broker events: typed on()/off(), events of the start itself delivered to
// listeners attached as soon as start() resolves, a listener that throws
// does not stop the others, and start() takes an AbortSignal.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BROKER_EVENT_TYPES, Broker } from '../../lib/broker/broker.ts';
import type { BrokerEvent } from '../../lib/broker/broker.ts';
import { isMeshError } from '../../lib/errors.ts';
import { formatBrokerAddress } from '../../lib/protocol/broker-address.ts';
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
