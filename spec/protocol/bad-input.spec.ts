// Every hostile or broken input gets a clear MESH_ERR_* and a closed
// connection, and nothing else on the same server is disturbed: each test
// keeps a healthy bystander connection and checks it still works afterwards.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { Connection, HANDSHAKE_MAX_FRAME } from '../../lib/protocol/connection.ts';
import type { RequestMessage } from '../../lib/protocol/messages.ts';
import { EnvelopeCodec } from '../../lib/protocol/envelope-codec.ts';
import { getSuite } from '../../lib/crypto/suites.ts';
import { MeshError } from '../../lib/errors.ts';
import { encodeFrame } from '../../lib/framing/frame-encoder.ts';
import { encodePreamble } from '../../lib/protocol/preamble.ts';
import { flipBit, noiseClient, rawSocket, segment, TamperProxy, TestServer, waitFor } from '../helpers/raw-peer.ts';
import type { Tamper } from '../helpers/raw-peer.ts';

const suite = getSuite('node');
const codec = new EnvelopeCodec();
const request = (payload: string): RequestMessage => ({ type: 'REQUEST', id: Buffer.alloc(16, 1), service: 'echo', attempt: 1, dup: false, ttl: 1000, payload: Buffer.from(payload) });

/** A server with a bystander connection that must keep working through the test. */
async function fixture(options: { handshakeTimeout?: number; maxPayload?: number } = {}) {
  const serverKey = suite.generateKeyPair();
  const server = new TestServer({ keyPair: serverKey, role: 'broker', ...options });
  const port = await server.listen();
  const bystanderReplies: string[] = [];
  const bystander = await Connection.connect(
    { host: '127.0.0.1', port, remoteKey: serverKey.publicKey, keyPair: suite.generateKeyPair(), role: 'node' },
    { onMessage: (m) => m.type === 'REPLY' && bystanderReplies.push(Buffer.from(m.payload).toString()), onClose: () => {} },
  );
  await server.until(() => server.accepted.length === 1, 5000, 'bystander accepted');
  const bystanderServerSide = server.accepted[0]!;
  return {
    server,
    port,
    serverKey,
    /** Asserts the bystander still round-trips, then tears everything down. */
    async finish() {
      try {
        const before = server.messages.length;
        bystander.send(request('still-alive'));
        await server.until(() => server.messages.length > before, 5000, 'bystander request');
        bystanderServerSide.send({ type: 'REPLY', id: Buffer.alloc(16, 1), payload: Buffer.from('pong') });
        await waitFor(() => bystanderReplies.includes('pong'), 5000, 'bystander reply');
        assert.equal(bystander.closed, false);
        assert.equal(bystanderServerSide.closed, false);
      } finally {
        bystander.close();
        await server.close();
      }
    },
  };
}

function assertMeshError(e: unknown, code: string, re?: RegExp): asserts e is MeshError {
  assert.ok(e instanceof MeshError, `expected a MeshError, got ${String(e)}`);
  assert.equal(e.code, code, e.message);
  if (re) assert.match(e.message, re);
}

async function connectThrough(port: number, remoteKey: Uint8Array, closes: Array<MeshError | undefined> = []): Promise<Connection> {
  return Connection.connect({ host: '127.0.0.1', port, remoteKey, keyPair: suite.generateKeyPair(), role: 'node' }, { onMessage: () => {}, onClose: (e) => closes.push(e) });
}

test('wrong responder key: the responder fails to open message 1, the initiator sees the handshake fail', async () => {
  const f = await fixture();
  await assert.rejects(connectThrough(f.port, suite.generateKeyPair().publicKey), (e) => {
    assertMeshError(e, 'MESH_ERR_HANDSHAKE');
    // The responder answered the preamble and closed without message 2: the initiator says why.
    assert.match(e.message, /did not accept our handshake: the key in the address is probably not this broker's/);
    assert.equal(e.retryable, false);
    return true;
  });
  await f.server.until(() => f.server.failures.length === 1);
  assertMeshError(f.server.failures[0], 'MESH_ERR_DECRYPT');
  await f.finish();
});

for (const [name, direction, index, side] of [
  ['message 1', 'up', 1, 'responder'],
  ['message 2', 'down', 1, 'initiator'],
  ['message 3', 'up', 2, 'responder'],
] as const) {
  for (const at of ['first', 'last'] as const) {
    test(`a bit flip in handshake ${name} (${at} byte) fails the handshake on the ${side}`, async () => {
      const f = await fixture();
      const tamper: Tamper = (frame, i, dir) => (dir === direction && i === index ? flipBit(frame, at === 'first' ? 2 : frame.length - 1) : frame);
      const proxy = new TamperProxy(f.port, tamper);
      const proxyPort = await proxy.listen();
      const closes: Array<MeshError | undefined> = [];
      try {
        const attempt = connectThrough(proxyPort, f.serverKey.publicKey, closes);
        if (side === 'initiator') {
          await assert.rejects(attempt, (e) => {
            assertMeshError(e, at === 'first' ? (e as MeshError).code : 'MESH_ERR_DECRYPT');
            assert.ok(['MESH_ERR_DECRYPT', 'MESH_ERR_BAD_KEY'].includes((e).code));
            return true;
          });
        } else {
          // The initiator may finish (message 3 is its last word) or see the close.
          const c = await attempt.catch((e: unknown) => e);
          if (c instanceof Connection) {
            await waitFor(() => closes.length === 1, 5000, 'initiator close');
            assert.ok(closes[0] instanceof MeshError);
          } else assertMeshError(c, 'MESH_ERR_HANDSHAKE');
          await f.server.until(() => f.server.failures.length === 1);
          assert.ok(['MESH_ERR_DECRYPT', 'MESH_ERR_BAD_KEY'].includes(f.server.failures[0]!.code), f.server.failures[0]!.message);
          assert.equal(f.server.accepted.length, 1, 'no connection besides the bystander was accepted');
        }
      } finally {
        await proxy.close();
      }
      await f.finish();
    });
  }
}

test('a truncated handshake message fails with MESH_ERR_HANDSHAKE', async () => {
  const f = await fixture();
  // A whole frame that is too short to be message 1.
  const a = await rawSocket(f.port);
  a.socket.write(Buffer.concat([encodePreamble(), encodeFrame(Buffer.alloc(20, 7))]));
  await a.closed;
  // A frame cut off mid-way, then EOF.
  const b = await rawSocket(f.port);
  b.socket.end(Buffer.concat([encodePreamble(), Buffer.from([0, 48]), Buffer.alloc(20, 7)]));
  await b.closed;
  await f.server.until(() => f.server.failures.length === 2);
  for (const e of f.server.failures) assertMeshError(e, 'MESH_ERR_HANDSHAKE');
  await f.finish();
});

test('a replayed first message cannot complete a handshake', async () => {
  const f = await fixture();
  const proxy = new TamperProxy(f.port);
  const c = await connectThrough(await proxy.listen(), f.serverKey.publicKey);
  await f.server.until(() => f.server.accepted.length === 2);
  c.close();
  const [preamble, msg1, msg3] = proxy.captured.up;
  await proxy.close();
  const r = await rawSocket(f.port);
  r.socket.write(Buffer.concat([preamble!, msg1!]));
  await waitFor(() => r.received().length >= 8 + 2 + 48, 3000, 'message 2');
  r.socket.write(msg3!);
  await r.closed;
  await f.server.until(() => f.server.failures.length === 1);
  assertMeshError(f.server.failures[0], 'MESH_ERR_DECRYPT');
  assert.equal(f.server.accepted.length, 2);
  await f.finish();
});

test('a preamble with another major version: the responder answers with its own and closes, naming both versions', async () => {
  const f = await fixture();
  const r = await rawSocket(f.port);
  r.socket.write(Buffer.from('MESH\x02\x00\x00\x00', 'latin1'));
  await r.closed;
  assert.deepEqual(r.received().subarray(0, 8), encodePreamble());
  await f.server.until(() => f.server.failures.length === 1);
  assertMeshError(f.server.failures[0], 'MESH_ERR_VERSION', /v2\.0.*v1\.0/);
  await f.finish();
});

test('an initiator facing a v2 responder fails with MESH_ERR_VERSION naming both versions', async () => {
  const fake = net.createServer((s) => {
    s.on('error', () => {});
    s.end(Buffer.from('MESH\x02\x01\x00\x00', 'latin1'));
  });
  fake.listen(0, '127.0.0.1');
  await once(fake, 'listening');
  try {
    await assert.rejects(connectThrough((fake.address() as net.AddressInfo).port, suite.generateKeyPair().publicKey), (e) => {
      assertMeshError(e, 'MESH_ERR_VERSION', /responder speaks wire protocol v2\.1, this side speaks v1\.0/);
      return true;
    });
  } finally {
    fake.close();
  }
});

test('not a meshd peer: a wrong magic fails with MESH_ERR_PROTOCOL', async () => {
  const f = await fixture();
  const r = await rawSocket(f.port);
  r.socket.write('GET / HTTP/1.1\r\n\r\n');
  await r.closed;
  await f.server.until(() => f.server.failures.length === 1);
  assertMeshError(f.server.failures[0], 'MESH_ERR_PROTOCOL', /not a meshd peer/);
  await f.finish();
});

test('a peer that sends nothing is dropped at the handshake timeout', async () => {
  const f = await fixture({ handshakeTimeout: 200 });
  const r = await rawSocket(f.port);
  await r.closed;
  await f.server.until(() => f.server.failures.length === 1);
  assertMeshError(f.server.failures[0], 'MESH_ERR_HANDSHAKE_TIMEOUT', /200 ms/);
  await f.finish();
});

const LOW_ORDER = [
  Buffer.alloc(32),
  Buffer.concat([Buffer.from([1]), Buffer.alloc(31)]),
  Buffer.from('e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800', 'hex'),
];

test('an all-zero or low-order responder key is refused before anything is sent', async () => {
  for (const key of LOW_ORDER) {
    await assert.rejects(connectThrough(1, key), (e) => {
      assert.ok(e instanceof MeshError && ['MESH_ERR_BAD_KEY', 'MESH_ERR_CONNECTION'].includes(e.code), String(e));
      return true;
    });
  }
  const f = await fixture();
  for (const key of LOW_ORDER) {
    await assert.rejects(connectThrough(f.port, key), (e) => {
      assertMeshError(e, 'MESH_ERR_BAD_KEY');
      return true;
    });
  }
  await f.finish();
});

test('an all-zero or low-order ephemeral key in message 1 fails with MESH_ERR_BAD_KEY', async () => {
  const f = await fixture();
  for (const key of LOW_ORDER) {
    const r = await rawSocket(f.port);
    r.socket.write(Buffer.concat([encodePreamble(), encodeFrame(Buffer.concat([key, Buffer.alloc(16)]))]));
    await r.closed;
  }
  await f.server.until(() => f.server.failures.length === LOW_ORDER.length);
  for (const e of f.server.failures) assertMeshError(e, 'MESH_ERR_BAD_KEY');
  await f.finish();
});

test('a bit flip in a transport frame closes the connection with MESH_ERR_DECRYPT', async () => {
  const f = await fixture();
  const proxy = new TamperProxy(f.port, (frame, i, dir) => (dir === 'up' && i === 3 ? flipBit(frame, 10) : frame));
  const closes: Array<MeshError | undefined> = [];
  const c = await connectThrough(await proxy.listen(), f.serverKey.publicKey, closes);
  c.send(request('tampered'));
  await f.server.until(() => f.server.closes.some((x) => x.error?.code === 'MESH_ERR_DECRYPT'), 5000, 'decrypt failure');
  await waitFor(() => closes.length === 1);
  assert.equal(f.server.messages.length, 0, 'the tampered message was not delivered');
  await proxy.close();
  await f.finish();
});

test('a frame length over the limit closes the connection as soon as the length is read', async () => {
  const f = await fixture();
  const r = await rawSocket(f.port);
  // During the handshake the limit is HANDSHAKE_MAX_FRAME; send the header only, no body.
  r.socket.write(Buffer.concat([encodePreamble(), Buffer.from([0xff, 0xff])]));
  await r.closed;
  await f.server.until(() => f.server.failures.length === 1);
  assertMeshError(f.server.failures[0], 'MESH_ERR_FRAME_TOO_LARGE', new RegExp(`65535 is over the maximum frame length ${HANDSHAKE_MAX_FRAME}`));
  await f.finish();
});

async function sealedAttack(plaintexts: Buffer[], code: string, re: RegExp, options: { maxPayload?: number } = {}) {
  const f = await fixture(options);
  const client = await noiseClient(f.port, { keyPair: suite.generateKeyPair(), remoteKey: f.serverKey.publicKey, suite });
  for (const p of plaintexts) client.sendPlaintext(p);
  await client.closed;
  await f.server.until(() => f.server.closes.length === 1, 5000, 'attacker closed');
  const victim = f.server.closes.find((x) => x.error !== undefined);
  assert.ok(victim, 'the server closed the attacker');
  assertMeshError(victim.error, code, re);
  // The attacker was told why, in an encrypted ERROR.
  const errors = client.received().map((p) => codec.decode(p.subarray(3)));
  assert.ok(errors.some((m) => m.type === 'ERROR' && m.code === code), JSON.stringify(errors.map((m) => m.type)));
  await f.finish();
}

test('an envelope whose reassembly exceeds its bound is refused with MESH_ERR_ENVELOPE_TOO_LARGE', async () => {
  const chunk = Buffer.alloc(60_000, 1);
  await sealedAttack([segment(chunk, true), segment(chunk, true)], 'MESH_ERR_ENVELOPE_TOO_LARGE', /bound/, { maxPayload: 1000 });
});

test('malformed CBOR in a header is refused with MESH_ERR_PROTOCOL', async () => {
  const bad = Buffer.from([0, 4, 0xbf, 0x00, 0x09, 0xff]);
  await sealedAttack([segment(bad)], 'MESH_ERR_PROTOCOL', /indefinite/);
});

test('an unknown message type is refused with MESH_ERR_PROTOCOL', async () => {
  await sealedAttack([segment(Buffer.from([0, 4, 0xa1, 0x00, 0x18, 99]))], 'MESH_ERR_PROTOCOL', /unknown message type/);
});

test('a header that lies about its length is refused with MESH_ERR_PROTOCOL', async () => {
  const env = codec.encodeToBuffer({ type: 'PING' });
  env.writeUInt16BE(200, 0);
  await sealedAttack([segment(env)], 'MESH_ERR_PROTOCOL', /runs past/);
});

test('a malformed segment is refused with MESH_ERR_PROTOCOL', async () => {
  await sealedAttack([Buffer.from([0x80, 0, 1, 0])], 'MESH_ERR_PROTOCOL', /reserved flag/);
});
