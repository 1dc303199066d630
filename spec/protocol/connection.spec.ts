import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Connection } from '../../lib/protocol/connection.ts';
import type { Message, RequestMessage } from '../../lib/protocol/messages.ts';
import { getSuite } from '../../lib/crypto/suites.ts';
import type { SuiteName } from '../../lib/crypto/suites.ts';
import { MeshError } from '../../lib/errors.ts';
import { TamperProxy, TestServer, waitFor } from '../helpers/raw-peer.ts';

const MiB = 1024 * 1024;

async function pair(initiatorSuite: SuiteName, responderSuite: SuiteName, extra: { heartbeat?: { idleMs: number; activeMs: number; deadMs: number } } = {}) {
  const serverKey = getSuite(responderSuite).generateKeyPair();
  const clientKey = getSuite(initiatorSuite).generateKeyPair();
  const server = new TestServer({ keyPair: serverKey, suite: getSuite(responderSuite), role: 'broker', name: 'b1', bootId: randomBytes(16), ...extra });
  const port = await server.listen();
  const received: Message[] = [];
  const closes: Array<MeshError | undefined> = [];
  const client = await Connection.connect(
    { host: '127.0.0.1', port, remoteKey: serverKey.publicKey, keyPair: clientKey, suite: getSuite(initiatorSuite), role: 'node', name: 'n1', ...extra },
    { onMessage: (m) => received.push(m), onClose: (e) => closes.push(e) },
  );
  await server.until(() => server.accepted.length === 1, 5000, 'accept');
  return { server, client, serverConn: server.accepted[0]!, received, closes, serverKey, clientKey };
}

/** A client Connection to a TestServer through a TamperProxy, both with `heartbeat`; `closes` gets the client's close reasons. */
async function proxied(heartbeat: { idleMs: number; activeMs: number; deadMs: number }) {
  const serverKey = getSuite('node').generateKeyPair();
  const server = new TestServer({ keyPair: serverKey, role: 'broker', heartbeat });
  const proxy = new TamperProxy(await server.listen());
  const closes: Array<MeshError | undefined> = [];
  const client = await Connection.connect(
    { host: '127.0.0.1', port: await proxy.listen(), remoteKey: serverKey.publicKey, keyPair: getSuite('node').generateKeyPair(), role: 'node', heartbeat },
    { onMessage: () => {}, onClose: (e) => closes.push(e) },
  );
  const close = async (): Promise<void> => {
    client.close();
    await proxy.close();
    await server.close();
  };
  return { proxy, client, closes, close };
}

const request = (payload: Uint8Array, i = 0): RequestMessage => ({ type: 'REQUEST', id: Buffer.alloc(16, i), service: 'echo', attempt: 1, dup: false, ttl: 1000, payload });

for (const [a, b] of [['node', 'node'], ['noble', 'noble'], ['node', 'noble'], ['noble', 'node']] as Array<[SuiteName, SuiteName]>) {
  test(`handshake and 1 MiB envelopes both ways (${a} initiator, ${b} responder)`, async () => {
    const { server, client, serverConn, received, closes, serverKey, clientKey } = await pair(a, b);
    try {
      assert.deepEqual(Buffer.from(client.remoteKey), Buffer.from(serverKey.publicKey));
      assert.deepEqual(Buffer.from(serverConn.remoteKey), Buffer.from(clientKey.publicKey));
      assert.deepEqual(Buffer.from(client.handshakeHash), Buffer.from(serverConn.handshakeHash));
      assert.equal(client.remoteHello.role, 'broker');
      assert.equal(client.remoteHello.name, 'b1');
      assert.equal(serverConn.remoteHello.role, 'node');
      const up = randomBytes(MiB);
      const down = randomBytes(MiB);
      client.send(request(up));
      serverConn.send({ type: 'REPLY', id: Buffer.alloc(16, 0), payload: down });
      await server.until(() => server.messages.length === 1, 10_000, 'request');
      await waitFor(() => received.length === 1, 10_000, 'reply');
      const got = server.messages[0]!.message as RequestMessage;
      assert.equal(got.type, 'REQUEST');
      assert.ok(Buffer.from(got.payload).equals(up));
      const reply = received[0]!;
      assert.ok(reply.type === 'REPLY' && Buffer.from(reply.payload).equals(down));
      assert.deepEqual(closes, []);
    } finally {
      client.close();
      await server.close();
    }
  });
}

test('messages sent in one turn travel in one sealed frame, in order', async () => {
  const { server, client } = await pair('node', 'node');
  try {
    const before = client.stats.framesSent;
    for (let i = 0; i < 100; i++) client.send(request(Buffer.from([i]), i));
    await server.until(() => server.messages.length === 100, 5000, '100 requests');
    assert.equal(client.stats.framesSent - before, 1);
    assert.deepEqual(server.messages.map((m) => (m.message as RequestMessage).payload[0]), Array.from({ length: 100 }, (_, i) => i));
  } finally {
    client.close();
    await server.close();
  }
});

test('a payload over the peer limit is refused locally, and the connection stays up', async () => {
  const { server, client } = await pair('node', 'node');
  try {
    assert.throws(() => client.send(request(new Uint8Array(MiB + 1))), (e: unknown) => e instanceof MeshError && e.code === 'MESH_ERR_ENVELOPE_TOO_LARGE');
    client.send(request(Buffer.from('ok')));
    await server.until(() => server.messages.length === 1);
  } finally {
    client.close();
    await server.close();
  }
});

test('idle connections ping and stay up; close() is idempotent and reports a clean close once', async () => {
  const heartbeat = { idleMs: 40, activeMs: 20, deadMs: 80 };
  const { server, client, closes } = await pair('node', 'node', { heartbeat });
  try {
    const t0 = client.stats.framesReceived;
    await new Promise((r) => setTimeout(r, 400));
    assert.ok(client.stats.framesReceived - t0 >= 3, `PONGs and PINGs arrived (${client.stats.framesReceived - t0})`);
    assert.equal(client.closed, false);
    client.close();
    client.close();
    await waitFor(() => closes.length === 1);
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(closes, [undefined]);
    await server.until(() => server.closes.length === 1);
    assert.equal(server.closes[0]!.error?.code, 'MESH_ERR_CONNECTION');
  } finally {
    await server.close();
  }
});

test('a REQUEST written late (the process was busy after queueing it) carries its ttl less the wait; 0 once the wait used it up', async () => {
  const { server, client } = await pair('node', 'node');
  try {
    const busy = (ms: number): void => {
      const until = performance.now() + ms;
      while (performance.now() < until);
    };
    const sentAt = performance.now();
    client.send({ ...request(Buffer.from('a'), 1), ttl: 300 });
    client.send({ type: 'PING' }); // not a REQUEST: written as it is
    client.send({ ...request(Buffer.from('b'), 2), ttl: 1000 });
    busy(120); // the batch is written at the end of this turn, 120 ms on
    const requests = (): RequestMessage[] => server.messages.filter((m) => m.message.type === 'REQUEST').map((m) => m.message as RequestMessage);
    await server.until(() => requests().length >= 2, 5000, 'the batch');
    const elapsed = performance.now() - sentAt;
    const ttls = requests().map((m) => m.ttl);
    assert.equal(ttls.length, 2);
    assert.ok(ttls[0]! <= 180 && ttls[0]! >= 300 - Math.ceil(elapsed), `ttl ${ttls[0]} after a wait of at least 120 ms`);
    assert.ok(ttls[1]! <= 880 && ttls[1]! >= 1000 - Math.ceil(elapsed), `ttl ${ttls[1]}`);
    client.send({ ...request(Buffer.from('c'), 3), ttl: 100 });
    busy(150);
    await server.until(() => requests().length >= 3, 5000, 'the late one');
    assert.equal(requests()[2]!.ttl, 0, 'a wait past the ttl leaves none');
  } finally {
    client.close();
    await server.close();
  }
});

test('a dead verdict waits for the input that has already arrived: a PONG sitting unread after a busy turn keeps the connection up', async () => {
  const { proxy, client, closes, close } = await proxied({ idleMs: 5000, activeMs: 100, deadMs: 600 });
  try {
    // Quiet for a while, so going active starts the silence at activeMs:
    // the client pings every 100 ms and its dead check falls due 500 ms on.
    await new Promise((r) => setTimeout(r, 300));
    proxy.holdingDown = true; // the server's PONGs wait in the proxy
    const activeAt = performance.now();
    client.setActive(true);
    await new Promise<void>((resolve) => {
      setTimeout(() => {
        // The PONGs reach the client's socket; then this process stays busy
        // until 20 ms past the dead check, less than the lag it forgives.
        proxy.release();
        while (performance.now() < activeAt + 520);
        resolve();
      }, 440);
    });
    // The overdue check runs before the next poll reads the PONGs.
    await new Promise((r) => setTimeout(r, 400));
    assert.deepEqual(
      closes.map((e) => e?.message),
      [],
      'the connection is up: the unread PONGs counted',
    );
    assert.equal(client.closed, false);
  } finally {
    await close();
  }
});

test('a frozen peer is declared dead within the active heartbeat bound', async () => {
  const { proxy, client, closes, close } = await proxied({ idleMs: 1000, activeMs: 50, deadMs: 150 });
  try {
    proxy.frozen = true; // nothing gets through any more, but TCP stays up
    const frozenAt = performance.now();
    client.setActive(true);
    await waitFor(() => closes.length === 1, 3000, 'heartbeat death');
    const took = performance.now() - frozenAt;
    assert.equal(closes[0]?.code, 'MESH_ERR_HEARTBEAT');
    assert.ok(took < 1500, `declared dead after ${Math.round(took)} ms`);
  } finally {
    await close();
  }
});
