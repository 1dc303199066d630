// A trace context (header key 20, e.g. a W3C traceparent) travels untouched:
// client → broker → worker as `req.trace`, and back in the REPLY; a bad one
// is refused before anything is sent (docs/protocol.md#header-keys).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isMeshError } from '../../lib/errors.ts';
import { WireParty } from '../broker/wire-party.ts';
import { MeshFixture, party, registryOf } from '../helpers/mesh.ts';

const client = party('client-1');
const worker = party('worker-1');
const registry = registryOf([
  [client, { role: 'client', call: ['*'] }],
  [worker, { role: 'worker', serve: ['*'] }],
]);
const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';

test('the worker sees the client trace untouched, and none when none was sent', async () => {
  const mesh = await MeshFixture.start(registry);
  try {
    const seen: Array<string | undefined> = [];
    (await mesh.node(worker)).serve('echo', (req) => {
      seen.push(req.trace);
      return req.payload;
    });
    const c = await mesh.node(client);
    assert.equal((await c.request('echo', Buffer.from('a'), { trace: traceparent })).toString(), 'a');
    assert.equal((await c.request('echo', Buffer.from('b'))).toString(), 'b');
    assert.deepEqual(seen, [traceparent, undefined]);
  } finally {
    await mesh.close();
  }
});

test('the trace comes back in the REPLY, forwarded untouched by the broker', async () => {
  const mesh = await MeshFixture.start(registry);
  try {
    (await mesh.node(worker)).serve('echo', (req) => req.payload);
    const c = await WireParty.connect(mesh.broker, client.keyPair, 'client');
    await c.take('WELCOME');
    const id = new Uint8Array(16).fill(7);
    c.send({ type: 'REQUEST', id, service: 'echo', attempt: 1, dup: false, ttl: 2000, trace: traceparent, payload: Buffer.from('x') });
    const reply = await c.take('REPLY');
    assert.equal(reply.trace, traceparent);
    c.close();
  } finally {
    await mesh.close();
  }
});

test('a trace that is not 1 to 256 printable ASCII characters is refused with MESH_ERR_CONFIG', async () => {
  const mesh = await MeshFixture.start(registry);
  try {
    const c = await mesh.node(client);
    for (const bad of ['', 'has space', 'x'.repeat(257), 'é']) {
      await assert.rejects(c.request('echo', Buffer.from('a'), { trace: bad }), (e) => isMeshError(e, 'MESH_ERR_CONFIG'));
    }
  } finally {
    await mesh.close();
  }
});
