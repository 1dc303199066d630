// The broker's message handlers and the role checks in front of them,
// through a real Broker and raw protocol messages on real connections: what
// each message type does, the errors (with their retryable flags) a bad
// request gets, and that a message a party may not send closes only that
// party's connection while the broker keeps serving the others.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Broker } from '../../lib/broker/broker.ts';
import type { BrokerEvent, BrokerOptions } from '../../lib/broker/broker.ts';
import { MESSAGE_HANDLERS, handlerFor } from '../../lib/broker/handlers/handle-message.ts';
import { handleRequest } from '../../lib/broker/handlers/handle-request.ts';
import { Registry } from '../../lib/broker/registry.ts';
import type { KeyPair } from '../../lib/crypto/crypto-suite.ts';
import { encodeKey } from '../../lib/crypto/keys.ts';
import { getSuite } from '../../lib/crypto/suites.ts';
import type { RoleName } from '../../lib/protocol/hello.ts';
import type { RequestMessage } from '../../lib/protocol/messages.ts';
import { WireParty, waitFor } from './wire-party.ts';
import { onEveryEvent } from '../helpers/mesh.ts';

const suite = getSuite('node');
const keys = {
  broker: suite.generateKeyPair(),
  peer: suite.generateKeyPair(),
  client: suite.generateKeyPair(),
  worker1: suite.generateKeyPair(),
  worker2: suite.generateKeyPair(),
};
const registry = Registry.fromEntries([
  { key: encodeKey(keys.peer.publicKey), name: 'peer', role: 'broker' },
  { key: encodeKey(keys.client.publicKey), name: 'client-1', role: 'client', call: ['echo', 'nobody'] },
  { key: encodeKey(keys.worker1.publicKey), name: 'worker-1', role: 'worker', serve: ['echo'] },
  { key: encodeKey(keys.worker2.publicKey), name: 'worker-2', role: 'worker', serve: ['echo'] },
]);

const id = (n: number): Uint8Array => new Uint8Array(16).fill(n);
const hex = (bytes: Uint8Array | undefined): string => Buffer.from(bytes ?? []).toString('hex');
const request = (n: number, fields: Partial<RequestMessage> = {}): RequestMessage => ({ type: 'REQUEST', id: id(n), service: 'echo', attempt: 1, dup: false, ttl: 5000, payload: Buffer.from(`req-${n}`), ...fields });

interface Fixture {
  readonly broker: Broker;
  readonly events: BrokerEvent[];
  /** Connects a party; a node's WELCOME is taken already. */
  readonly connect: (keyPair: KeyPair, role: RoleName) => Promise<WireParty>;
  /** Connects a worker offering echo with `credits`, once the broker has taken the offer. */
  readonly worker: (keyPair: KeyPair, credits: number) => Promise<WireParty>;
}

async function withBroker(run: (f: Fixture) => Promise<void>, options: Partial<BrokerOptions> = {}): Promise<void> {
  const events: BrokerEvent[] = [];
  const broker = await Broker.start({ key: keys.broker, registry, suite, drainTimeout: 200, ...options });
  onEveryEvent(broker, (e) => events.push(e));
  const parties: WireParty[] = [];
  const connect = async (keyPair: KeyPair, role: RoleName): Promise<WireParty> => {
    const party = await WireParty.connect(broker, keyPair, role);
    parties.push(party);
    if (role !== 'broker') await party.take('WELCOME');
    return party;
  };
  const worker = async (keyPair: KeyPair, credits: number): Promise<WireParty> => {
    const party = await connect(keyPair, 'worker');
    const before = broker.status().services.find((s) => s.name === 'echo')?.workers ?? 0;
    party.send({ type: 'READY', service: 'echo', credits });
    await waitFor(() => (broker.status().services.find((s) => s.name === 'echo')?.workers ?? 0) > before, 5000, 'the offer');
    return party;
  };
  try {
    await run({ broker, events, connect, worker });
  } finally {
    for (const p of parties) p.close();
    await broker.close();
  }
}

test('one handler per message type a node may send, typed for that type', () => {
  assert.deepEqual(Object.keys(MESSAGE_HANDLERS).sort(), ['CANCEL', 'ERROR', 'READY', 'REFUSED', 'REPLY', 'REQUEST']);
  assert.equal(handlerFor(MESSAGE_HANDLERS, request(1)), handleRequest);
  assert.equal(handlerFor(MESSAGE_HANDLERS, { type: 'DISPATCHED', dispatched: [] }), undefined);
  assert.equal(handlerFor(MESSAGE_HANDLERS, { type: 'GOSSIP', bootId: id(0), incarnation: 0, view: [] }), undefined);
});

test('REQUEST is stamped and dispatched, DISPATCHED names the worker, REPLY is stamped and delivered', async () => {
  await withBroker(async ({ broker, connect, worker }) => {
    const w = await worker(keys.worker1, 2);
    const c = await connect(keys.client, 'client');
    c.send(request(1, { sender: keys.worker2.publicKey, senderName: 'forged' }));
    const got = await w.take('REQUEST');
    assert.equal(hex(got.id), hex(id(1)));
    assert.equal(hex(got.sender), hex(keys.client.publicKey), 'stamped with the real sender');
    assert.equal(got.senderName, 'client-1');
    assert.ok(got.ttl > 0 && got.ttl <= 5000, `ttl ${got.ttl}`);
    assert.equal(Buffer.from(got.payload).toString(), 'req-1');
    const dispatched = await c.take('DISPATCHED');
    assert.deepEqual(dispatched.dispatched.map((d) => [hex(d.id), hex(d.worker)]), [[hex(id(1)), hex(keys.worker1.publicKey)]]);
    assert.equal(broker.status().pending, 1);
    w.send({ type: 'REPLY', id: id(1), worker: keys.worker2.publicKey, payload: Buffer.from('done') });
    const reply = await c.take('REPLY');
    assert.equal(Buffer.from(reply.payload).toString(), 'done');
    assert.equal(hex(reply.worker), hex(keys.worker1.publicKey), 'stamped with the real worker');
    assert.equal(broker.status().pending, 0);
    c.send(request(2));
    await w.take('REQUEST');
    w.send({ type: 'REPLY', id: id(1), payload: Buffer.from('again') });
    w.send({ type: 'REPLY', id: id(2), payload: Buffer.from('two') });
    assert.equal(hex((await c.take('REPLY')).id), hex(id(2)), 'a second reply to an answered request is dropped');
  });
});

test('a hinted REQUEST reaches the hinted worker even without credit, and without the worker field', async () => {
  await withBroker(async ({ connect, worker }) => {
    const w1 = await worker(keys.worker1, 0);
    await worker(keys.worker2, 5);
    const c = await connect(keys.client, 'client');
    c.send(request(1, { worker: keys.worker1.publicKey }));
    const got = await w1.take('REQUEST');
    assert.equal(hex(got.id), hex(id(1)));
    assert.equal(got.worker, undefined, 'the hint was for the broker: B→W REQUEST has no key 6');
    assert.equal(hex(got.sender), hex(keys.client.publicKey));
  });
});

test('a hint naming a key that may not serve the service is ignored: the request goes to a worker', async () => {
  await withBroker(async ({ connect, worker }) => {
    const w = await worker(keys.worker1, 1);
    const c = await connect(keys.client, 'client');
    // The client names itself (connected, but a client may serve nothing).
    c.send(request(1, { worker: keys.client.publicKey }));
    const got = await w.take('REQUEST');
    assert.equal(hex(got.id), hex(id(1)));
    await new Promise((r) => setTimeout(r, 50));
    assert.ok(!c.inbox.some((m) => m.type === 'REQUEST'), 'the client was not sent its own request');
  });
});

test('a bad request gets a clear error with the code\'s retryable flag, and the client stays connected', async () => {
  await withBroker(
    async ({ events, connect, worker }) => {
      const w = await worker(keys.worker1, 1);
      const c = await connect(keys.client, 'client');
      const cases: Array<[RequestMessage, string, boolean, RegExp]> = [
        [request(1, { service: 'admin' }), 'MESH_ERR_FORBIDDEN', false, /client-1 may not call admin/],
        [request(2, { service: 'nobody' }), 'MESH_ERR_NO_SERVICE', true, /no worker offers nobody/],
        [request(3, { ttl: 0 }), 'MESH_ERR_TIMEOUT', true, /no time left/],
      ];
      for (const [req, code, retryable, text] of cases) {
        c.send(req);
        const e = await c.take('ERROR');
        assert.deepEqual([hex(e.id), e.code, e.retryable], [hex(req.id), code, retryable]);
        assert.match(e.text, text);
      }
      assert.deepEqual(events.filter((e) => e.type === 'forbidden').map((e) => 'what' in e && e.what), ['call admin']);
      c.send(request(4)); // held by the worker: the client's one pending request
      await w.take('REQUEST');
      c.send(request(5));
      const busy = await c.take('ERROR');
      assert.deepEqual([hex(busy.id), busy.code, busy.retryable], [hex(id(5)), 'MESH_ERR_BUSY', true]);
      assert.match(busy.text, /client-1 has 1 requests pending at this broker \(limit 1\)/);
      assert.ok(c.open);
    },
    { maxPendingPerClient: 1 },
  );
});

test('READY for a service the registry does not allow is refused; the worker stays connected', async () => {
  await withBroker(async ({ broker, events, connect }) => {
    const w = await connect(keys.worker1, 'worker');
    w.send({ type: 'READY', service: 'admin', credits: 5 });
    const e = await w.take('ERROR');
    assert.deepEqual([e.id, e.code, e.retryable], [undefined, 'MESH_ERR_FORBIDDEN', false]);
    assert.match(e.text, /worker-1 may not serve admin/);
    assert.ok(events.some((ev) => ev.type === 'forbidden' && ev.what === 'serve admin'));
    assert.deepEqual(broker.status().services, []);
    assert.ok(w.open);
  });
});

test('queued requests go out oldest first when credits come; a REFUSED request is routed again', async () => {
  await withBroker(async ({ broker, connect, worker }) => {
    const w1 = await worker(keys.worker1, 1);
    const c = await connect(keys.client, 'client');
    c.send(request(1));
    await w1.take('REQUEST');
    c.send(request(2));
    c.send(request(3));
    await waitFor(() => broker.status().services[0]?.queued === 2, 5000, 'two queued');
    w1.send({ type: 'REFUSED', id: id(1) }); // no credit anywhere: request 1 waits behind 2 and 3
    await waitFor(() => broker.status().services[0]?.queued === 3, 5000, 'three queued');
    const w2 = await worker(keys.worker2, 3);
    const order = [await w2.take('REQUEST'), await w2.take('REQUEST'), await w2.take('REQUEST')].map((m) => hex(m.id));
    assert.deepEqual(order, [hex(id(2)), hex(id(3)), hex(id(1))]);
    assert.equal(broker.status().services[0]?.queued, 0);
    assert.equal(w1.inbox.filter((m) => m.type === 'REQUEST').length, 0, 'the refusing worker got nothing more');
  });
});

test('a worker\'s ERROR about a request goes to its client; CANCEL withdraws the worker\'s offer', async () => {
  await withBroker(async ({ broker, connect, worker }) => {
    const w = await worker(keys.worker1, 2);
    const c = await connect(keys.client, 'client');
    c.send(request(1));
    await w.take('REQUEST');
    w.send({ type: 'ERROR', id: id(1), code: 'MESH_ERR_HANDLER', retryable: false, text: 'handler threw' });
    const e = await c.take('ERROR');
    assert.deepEqual([hex(e.id), e.code, e.retryable, e.text], [hex(id(1)), 'MESH_ERR_HANDLER', false, 'handler threw']);
    assert.equal(broker.status().pending, 0);
    w.send({ type: 'CANCEL', service: 'echo' });
    await waitFor(() => broker.status().services.length === 0, 5000, 'the offer withdrawn');
    c.send(request(2));
    assert.equal((await c.take('ERROR')).code, 'MESH_ERR_NO_SERVICE');
  });
});

test('the requests of a worker whose connection closed go to another worker, flagged dup', async () => {
  await withBroker(async ({ connect, worker }) => {
    const w1 = await worker(keys.worker1, 1);
    const w2 = await worker(keys.worker2, 1);
    const c = await connect(keys.client, 'client');
    c.send(request(1));
    const first = await Promise.race([w1.take('REQUEST').then(() => w1), w2.take('REQUEST').then(() => w2)]);
    const other = first === w1 ? w2 : w1;
    first.close();
    const again = await other.take('REQUEST');
    assert.equal(hex(again.id), hex(id(1)));
    assert.equal(again.dup, true);
    other.send({ type: 'REPLY', id: id(1), payload: Buffer.from('ok') });
    assert.equal(Buffer.from((await c.take('REPLY')).payload).toString(), 'ok');
  });
});

test('a message a party\'s role may not send closes its connection with MESH_ERR_PROTOCOL; others are still served', async () => {
  await withBroker(async ({ connect, worker }) => {
    const w = await worker(keys.worker1, 10);
    const offences: Array<[KeyPair, RoleName, Parameters<WireParty['send']>[0], RegExp]> = [
      [keys.client, 'client', { type: 'REFUSED', id: id(1) }, /REFUSED may not be sent to a broker by a client/],
      [keys.client, 'client', { type: 'CANCEL', service: 'echo' }, /CANCEL may not be sent to a broker by a client/],
      [keys.client, 'client', { type: 'REPLY', id: id(1), payload: Buffer.from('x') }, /REPLY may not be sent to a broker by a client/],
      [keys.client, 'client', { type: 'ERROR', id: id(1), code: 'MESH_ERR_HANDLER', retryable: false, text: 'x' }, /ERROR may not be sent to a broker by a client/],
      [keys.client, 'client', { type: 'GOSSIP', bootId: id(0), incarnation: 0, view: [] }, /GOSSIP may not be sent to a broker by a client/],
      [keys.worker2, 'worker', { type: 'DISPATCHED', dispatched: [] }, /DISPATCHED may not be sent to a broker by a worker/],
      [keys.worker2, 'worker', { type: 'DRAIN' }, /DRAIN may not be sent to a broker by a worker/],
      [keys.peer, 'broker', request(1), /REQUEST may not be sent to a broker by a broker/],
    ];
    for (const [keyPair, role, message, text] of offences) {
      const p = await connect(keyPair, role);
      p.send(message);
      const error = await p.closedWith();
      assert.equal(error?.code, 'MESH_ERR_PROTOCOL', `${message.type} from a ${role}: ${String(error)}`);
      assert.match(error.message, text);
    }
    // A connection-level notice (an ERROR without id whose code does not end the link) is no offence.
    const c = await connect(keys.client, 'client');
    c.send({ type: 'ERROR', code: 'MESH_ERR_BUSY', retryable: true, text: 'just saying' });
    c.send(request(7));
    const got = await w.take('REQUEST');
    assert.equal(hex(got.id), hex(id(7)));
    w.send({ type: 'REPLY', id: id(7), payload: Buffer.from('still served') });
    assert.equal(Buffer.from((await c.take('REPLY')).payload).toString(), 'still served');
    assert.ok(c.open && w.open);
  });
});
