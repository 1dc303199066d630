// A Noise initiator may send transport messages right after message 3,
// without waiting for WELCOME (docs/protocol.md "After message 3" does not
// ask it to wait). A REQUEST written in the same TCP segment as message 3
// must be routed (or answered with an ERROR), never dropped in silence.
//
// Regression: the broker used to set its session up one microtask after
// message 3 and drop, in silence, messages decoded from the rest of the same
// chunk (fixed in 5c39573: they are kept, bounded, until the session exists).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { getSuite } from '../../lib/crypto/suites.ts';
import { parseBrokerAddress } from '../../lib/protocol/broker-address.ts';
import { InitiatorHandshake } from '../../lib/protocol/handshake.ts';
import { DEFAULT_HEARTBEAT } from '../../lib/protocol/hello.ts';
import { EnvelopeCodec } from '../../lib/protocol/envelope-codec.ts';
import { SegmentReader } from '../../lib/protocol/segments.ts';
import { encodeFrame } from '../../lib/framing/frame-encoder.ts';
import { FrameSplitter } from '../helpers/raw-peer.ts';
import { MeshFixture, party, registryOf, until } from '../helpers/mesh.ts';
import { plaintextsOf } from './tools.ts';

const suite = getSuite('node');
const client = party('client');
const worker = party('worker');
const registry = registryOf([
  [client, { role: 'client', call: ['echo'] }],
  [worker, { role: 'worker', serve: ['echo'] }],
]);

test('a REQUEST sent in the same segment as handshake message 3 is answered, not dropped', async () => {
  const mesh = await MeshFixture.start(registry);
  let socket: net.Socket | undefined;
  try {
    const w = await mesh.node(worker);
    w.serve('echo', (req) => req.payload);
    await until(() => mesh.broker.status().services.some((s) => s.name === 'echo' && s.workers === 1), 5000, 'worker');
    const address = parseBrokerAddress(mesh.broker.address);
    socket = net.connect(address.port, '127.0.0.1');
    socket.on('error', () => {});
    const connected = once(socket, 'connect');
    const connectTimer = setTimeout(() => socket?.destroy(new Error('connect timed out')), 3000);
    await connected;
    clearTimeout(connectTimer);
    const splitter = new FrameSplitter();
    const frames: Buffer[] = [];
    socket.on('data', (c: Buffer) => frames.push(...splitter.push(c)));
    const hs = new InitiatorHandshake({ suite, keyPair: client.keyPair, remoteKey: address.publicKey, hello: { role: 'client', version: { major: 1, minor: 0 }, heartbeat: DEFAULT_HEARTBEAT, maxPayload: 1 << 20 } });
    const { preamble, message1 } = hs.start();
    socket.write(Buffer.concat([preamble, encodeFrame(message1)]));
    await until(() => frames.length >= 2, 3000, 'preamble and message 2');
    hs.readPreamble(frames[0]!);
    const message3 = hs.readMessage2(frames[1]!.subarray(2));
    const keys = hs.result();
    const request = plaintextsOf({ type: 'REQUEST', id: randomBytes(16), service: 'echo', attempt: 1, dup: false, ttl: 3000, payload: Buffer.from('pipelined') });
    // One write: message 3 and the first transport message arrive together.
    socket.write(Buffer.concat([encodeFrame(message3), ...request.map((p) => encodeFrame(keys.send.encryptWithAd(new Uint8Array(0), p)))]));

    const codec = new EnvelopeCodec();
    const reader = new SegmentReader(1 << 21);
    const seen: string[] = [];
    const replies: string[] = [];
    let opened = 2;
    const deadline = Date.now() + 2000;
    for (let i = 0; i < 500 && !seen.some((t) => t === 'REPLY' || t === 'ERROR') && Date.now() < deadline; i++) {
      for (; opened < frames.length; opened++) reader.push(keys.receive.decryptWithAd(new Uint8Array(0), frames[opened]!.subarray(2)), (e) => {
          const m = codec.decode(e);
          seen.push(m.type);
          if (m.type === 'REPLY') replies.push(Buffer.from(m.payload).toString());
        });
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.ok(seen.includes('REPLY') || seen.includes('ERROR'), `the pipelined REQUEST got no answer within 2 s; received ${JSON.stringify(seen)}`);
    assert.deepEqual(replies, ['pipelined'], `received ${JSON.stringify(seen)}`);
    assert.equal(seen[0], 'WELCOME', 'WELCOME is still the first transport message');
  } finally {
    socket?.destroy();
    await mesh.close();
  }
});
