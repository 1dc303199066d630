// BrokerLink against a scripted broker on loopback: the first message must be
// WELCOME, and after it a message no broker may send a node (READY, CANCEL,
// GOSSIP, a second WELCOME) closes the connection with MESH_ERR_PROTOCOL,
// as a broker does with a node's misplaced message
// (docs/protocol.md#who-may-send-what). What a broker may send is delivered.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { getSuite } from '../../lib/crypto/suites.ts';
import type { MeshError } from '../../lib/errors.ts';
import { BrokerLink } from '../../lib/node/broker-link.ts';
import { formatBrokerAddress, parseBrokerAddress } from '../../lib/protocol/broker-address.ts';
import type { Connection } from '../../lib/protocol/connection.ts';
import type { Message } from '../../lib/protocol/messages.ts';
import { TestServer, waitFor } from '../helpers/raw-peer.ts';

const suite = getSuite('node');
const brokerKey = suite.generateKeyPair();
const bootId = new Uint8Array(16).fill(0xbb);
const welcome: Message = { type: 'WELCOME', brokerId: brokerKey.publicKey, bootId, brokers: [] };

/** A broker that sends `script` on every accepted connection; a link to it that records what it sees. */
async function scripted(script: Message[]) {
  const server = new TestServer({ keyPair: brokerKey, suite, role: 'broker', name: 'scripted', bootId });
  const port = await server.listen();
  const seen: Message[] = [];
  const downs: Array<MeshError | undefined> = [];
  const failed: Array<MeshError | undefined> = [];
  const link = new BrokerLink(
    parseBrokerAddress(formatBrokerAddress({ publicKey: brokerKey.publicKey, host: '127.0.0.1', port })),
    true,
    { keyPair: suite.generateKeyPair(), suite, role: 'node', random: () => 0.5 },
    {
      onUp: () => {},
      onDown: (_l, error) => void downs.push(error),
      onMessage: (_l, m) => void seen.push(m),
      onAttemptFailed: (_l, error) => void failed.push(error),
      onDrain: () => {},
    },
  );
  await server.until(() => server.accepted.length === 1, 5000, 'the link to connect');
  const connection: Connection = server.accepted[0]!;
  for (const m of script) connection.send(m);
  return { server, link, seen, downs, failed, connection };
}

for (const intruder of [
  { type: 'READY', service: 'echo', credits: 1 },
  { type: 'CANCEL', service: 'echo' },
  { type: 'GOSSIP', bootId, incarnation: 0, view: [] },
  welcome,
] as Message[]) {
  test(`${intruder.type} from a broker after WELCOME closes the link with MESH_ERR_PROTOCOL`, async () => {
    const { server, link, seen, downs } = await scripted([welcome, intruder]);
    try {
      await waitFor(() => downs.length === 1, 5000, 'the link to go down');
      assert.equal(downs[0]?.code, 'MESH_ERR_PROTOCOL');
      assert.match(downs[0].message, new RegExp(`${intruder.type} may not be sent to a node`));
      assert.deepEqual(seen.map((m) => m.type), ['WELCOME']);
      // The broker was told why before the close.
      await server.until(() => server.closes.length >= 1, 5000, 'the broker side to close');
      assert.equal(server.closes[0]!.error?.code, 'MESH_ERR_PROTOCOL');
    } finally {
      link.close();
      await server.close();
    }
  });
}

test('a first message other than WELCOME closes the link; after WELCOME, what a broker may send arrives', async () => {
  const bad = await scripted([{ type: 'BROKERS', brokers: [] }]);
  try {
    await waitFor(() => bad.failed.length >= 1, 5000, 'the attempt to fail');
    assert.equal(bad.failed[0]?.code, 'MESH_ERR_PROTOCOL');
    assert.match(bad.failed[0].message, /expected WELCOME, got BROKERS/);
    assert.deepEqual(bad.seen, []);
  } finally {
    bad.link.close();
    await bad.server.close();
  }
  const good = await scripted([welcome, { type: 'BROKERS', brokers: [] }, { type: 'DRAIN' }]);
  try {
    await waitFor(() => good.seen.length === 3, 5000, 'three messages');
    assert.deepEqual(good.seen.map((m) => m.type), ['WELCOME', 'BROKERS', 'DRAIN']);
    assert.deepEqual(good.downs, []);
  } finally {
    good.link.close();
    await good.server.close();
  }
});
