// The events of a pair of peer brokers, one per fact: when both dial each
// other at once (each has the other as --peer), each broker reports the
// peer once as peer-up, by registry name, and never as connected or
// disconnected (those are for nodes); when one goes, the other reports one
// peer-down.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Broker } from '../../lib/broker/broker.ts';
import type { BrokerEvent } from '../../lib/broker/broker.ts';
import { BROKER_EVENT_TYPES } from '../../lib/broker/broker-event.ts';
import { getSuite } from '../../lib/crypto/suites.ts';
import { formatBrokerAddress } from '../../lib/protocol/broker-address.ts';
import { freePorts } from '../faults/harness.ts';
import { party, registryOf, sleep, until } from '../helpers/mesh.ts';

const suite = getSuite('node');
const b1 = party('broker-one');
const b2 = party('broker-two');
const registry = registryOf([
  [b1, { role: 'broker' }],
  [b2, { role: 'broker' }],
]);

test('two brokers that dial each other report each other once (peer-up by name), and one peer-down when one goes', async () => {
  const [p1, p2] = await freePorts(2);
  const url = (p: typeof b1, port: number): string => formatBrokerAddress({ key: p.key, host: '127.0.0.1', port });
  const seen: Record<string, BrokerEvent[]> = { one: [], two: [] };
  const start = (who: typeof b1, port: number, peer: string, into: BrokerEvent[]): Promise<Broker> =>
    Broker.start({ key: who.keyPair, registry, suite, port: port, peers: [peer], gossipInterval: 100 }).then((b) => {
      for (const type of BROKER_EVENT_TYPES) b.on(type, (e) => void into.push(e));
      return b;
    });
  const [one, two] = await Promise.all([start(b1, p1!, url(b2, p2!), seen.one!), start(b2, p2!, url(b1, p1!), seen.two!)]);
  try {
    await until(() => seen.one!.some((e) => e.type === 'peer-up') && seen.two!.some((e) => e.type === 'peer-up'), 5000, 'both peer-ups');
    // A few rounds for a second connection of the pair to come and go.
    await sleep(500);
    for (const [who, events] of Object.entries(seen)) {
      const ups = events.filter((e) => e.type === 'peer-up');
      assert.equal(ups.length, 1, `${who}: one peer-up, got ${JSON.stringify(ups)}`);
      assert.equal(ups[0]?.type === 'peer-up' && ups[0].name, who === 'one' ? 'broker-two' : 'broker-one');
      assert.deepEqual(events.filter((e) => e.type === 'connected' || e.type === 'disconnected' || e.type === 'peer-down'), [], `${who}: no connected, disconnected or peer-down for a peer`);
    }
  } finally {
    await two.close();
  }
  try {
    await until(() => seen.one!.some((e) => e.type === 'peer-down'), 5000, 'peer-down at broker one');
    await sleep(300);
    const downs = seen.one!.filter((e) => e.type === 'peer-down');
    assert.equal(downs.length, 1);
    assert.equal(downs[0]?.type === 'peer-down' && downs[0].name, 'broker-two');
  } finally {
    await one.close();
  }
});
