// FramedSocket over real loopback TCP (127.0.0.1, port 0).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { FramedSocket } from '../../lib/framing/framed-socket.ts';
import { connectSocket } from '../../lib/framing/connect-socket.ts';
import { MeshError, isMeshError } from '../../lib/errors.ts';
import { bytes, loopback, recorder, waitFor, within } from './loopback.ts';
import type { FramedSocketOptions } from '../../lib/framing/framed-socket.ts';
import type { Loopback, Recorder } from './loopback.ts';

const T = { timeout: 15_000 };
const PREAMBLE = Buffer.from('MESH\x01\x00\x00\x00', 'latin1');

interface Pair {
  lb: Loopback;
  client: FramedSocket;
  server: FramedSocket;
  c: Recorder;
  s: Recorder;
}

/** A loopback connection with a FramedSocket on each end. */
async function framedPair(clientOptions: FramedSocketOptions = {}, serverOptions: FramedSocketOptions = {}): Promise<Pair> {
  const lb = await loopback();
  const accepted = lb.accept();
  const raw = lb.track(await connectSocket({ host: '127.0.0.1', port: lb.port, timeout: 5000 }));
  const c = recorder();
  const client = new FramedSocket(raw, clientOptions, c);
  const s = recorder();
  const server = new FramedSocket(await accepted, serverOptions, s);
  return { lb, client, server, c, s };
}

void test('prefix and frames both ways', T, async () => {
  const { lb, client, server, c, s } = await framedPair({ prefixLength: 8 }, { prefixLength: 8 });
  try {
    assert.equal(client.remoteAddress, '127.0.0.1');
    assert.equal(client.remotePort, lb.port);
    assert.equal(server.localPort, lb.port);
    assert.equal(typeof client.localPort, 'number');

    assert.equal(client.writeRaw(PREAMBLE), true);
    client.writeFrame(Buffer.from('hello'));
    client.writeFrame(new Uint8Array(0));
    server.writeRaw(PREAMBLE);
    server.writeFrames([Buffer.from('a'), [Buffer.from('b'), Buffer.from('c')], [Buffer.alloc(0), Buffer.from('de'), Buffer.alloc(0)]]);

    await waitFor(() => s.frames.length === 2 && c.frames.length === 3, 5000, 'frames');
    assert.deepEqual(s.prefixes, [PREAMBLE]);
    assert.deepEqual(c.prefixes, [PREAMBLE]);
    assert.deepEqual(s.frames, [Buffer.from('hello'), Buffer.alloc(0)]);
    assert.deepEqual(c.frames, [Buffer.from('a'), Buffer.from('bc'), Buffer.from('de')], 'a body given as parts is one frame');
  } finally {
    client.close();
    server.close();
    await lb.close();
  }
});

void test('writeFrames of many frames arrives in order', T, async () => {
  const { lb, client, server, s } = await framedPair();
  try {
    assert.equal(client.writeFrames([]), true, 'nothing queued: no need to wait for drain');
    const bodies = Array.from({ length: 3000 }, (_, i) => bytes(i % 517, i));
    for (let i = 0; i < bodies.length; i += 100) client.writeFrames(bodies.slice(i, i + 100));
    await waitFor(() => s.frames.length === bodies.length, 10_000, 'all frames');
    for (let i = 0; i < bodies.length; i++) assert.ok(s.frames[i]!.equals(bodies[i]!), `frame ${i}`);
  } finally {
    client.close();
    server.close();
    await lb.close();
  }
});

void test('max-size (65535-byte) frames both ways', T, async () => {
  const { lb, client, server, c, s } = await framedPair();
  try {
    const bodies = Array.from({ length: 40 }, (_, i) => bytes(65535, i));
    for (const b of bodies) client.writeFrame(b);
    server.writeFrames(bodies);
    await waitFor(() => s.frames.length === 40 && c.frames.length === 40, 10_000, 'big frames');
    for (let i = 0; i < 40; i++) {
      assert.ok(s.frames[i]!.equals(bodies[i]!), `server frame ${i}`);
      assert.ok(c.frames[i]!.equals(bodies[i]!), `client frame ${i}`);
    }
  } finally {
    client.close();
    server.close();
    await lb.close();
  }
});

void test('writing a body over 65535 bytes throws before writing anything', T, async () => {
  const { lb, client, server, s } = await framedPair();
  try {
    assert.throws(() => client.writeFrame(new Uint8Array(65536)), (e: unknown) => isMeshError(e, 'MESH_ERR_FRAME_TOO_LARGE'));
    assert.throws(
      () => client.writeFrames([Buffer.from('fine'), new Uint8Array(65536)]),
      (e: unknown) => isMeshError(e, 'MESH_ERR_FRAME_TOO_LARGE'),
    );
    client.writeFrame(Buffer.from('after'));
    await waitFor(() => s.frames.length === 1, 5000, 'frame');
    await sleep(50);
    assert.deepEqual(s.frames, [Buffer.from('after')]);
    assert.equal(client.closed, false);
  } finally {
    client.close();
    server.close();
    await lb.close();
  }
});

void test('over-limit length from a raw peer closes with MESH_ERR_FRAME_TOO_LARGE', T, async () => {
  const lb = await loopback();
  try {
    const accepted = lb.accept();
    const raw = lb.track(await connectSocket({ host: '127.0.0.1', port: lb.port }));
    raw.on('error', () => undefined);
    const rawClosed = new Promise<void>((resolve) => raw.once('close', () => resolve()));
    const s = recorder();
    const server = new FramedSocket(await accepted, { maxFrameLength: 1024 }, s);
    raw.write(Buffer.from([0x04, 0x01])); // 1025, and no body ever follows
    const err = await within(s.closed, 5000, 'server close');
    assert.ok(isMeshError(err, 'MESH_ERR_FRAME_TOO_LARGE'), String(err));
    assert.match(err.message, /1025/);
    assert.match(err.message, /1024/);
    await within(rawClosed, 5000, 'raw peer sees the close');
    assert.equal(s.closes.length, 1);
    assert.equal(s.frames.length, 0);
    assert.equal(server.destroyed, true);
    assert.equal(server.writeFrame(Buffer.from('x')), false);
  } finally {
    await lb.close();
  }
});

void test('peer that stops reading: outbound cap closes with MESH_ERR_BACKPRESSURE', T, async () => {
  const lb = await loopback({ pauseOnConnect: true }); // the server side never reads
  try {
    const raw = lb.track(await connectSocket({ host: '127.0.0.1', port: lb.port }));
    const c = recorder();
    const client = new FramedSocket(raw, { maxOutboundBytes: 256 * 1024, stallTimeout: 60_000 }, c);
    const body = bytes(16 * 1024);
    const started = Date.now();
    let writes = 0;
    while (!client.closed && writes < 20_000 && Date.now() - started < 8000) {
      client.writeFrame(body);
      writes++;
      if (writes % 64 === 0) await new Promise((resolve) => setImmediate(resolve));
    }
    assert.equal(client.closed, true, `still open after ${writes} writes`);
    const err = await within(c.closed, 5000, 'close');
    assert.ok(isMeshError(err, 'MESH_ERR_BACKPRESSURE'), String(err));
    assert.match(err.message, /outbound cap/);
    assert.equal(err.retryable, true);
    assert.equal(c.closes.length, 1);
    // Writes after close are ignored, never throw.
    assert.equal(client.writeFrame(body), false);
    assert.equal(client.writeFrames([body]), false);
    assert.equal(client.writeRaw(body), false);
  } finally {
    await lb.close();
  }
});

void test('peer that stops reading: stall timeout closes with MESH_ERR_BACKPRESSURE', T, async () => {
  const lb = await loopback({ pauseOnConnect: true });
  try {
    const raw = lb.track(await connectSocket({ host: '127.0.0.1', port: lb.port }));
    const c = recorder();
    const client = new FramedSocket(raw, { maxOutboundBytes: 256 * 1024 * 1024, stallTimeout: 200 }, c);
    const body = bytes(65535);
    // Fill the kernel buffers until our own queue holds bytes, then stop writing.
    let writes = 0;
    while (client.writableLength < 512 * 1024 && writes < 4000) {
      client.writeFrame(body);
      writes++;
      if (writes % 32 === 0) await new Promise((resolve) => setImmediate(resolve));
    }
    assert.ok(client.writableLength > 0, 'bytes are queued');
    assert.equal(client.closed, false, 'the byte cap is far away: only the stall timer may close it');
    const err = await within(c.closed, 5000, 'stall close');
    assert.ok(isMeshError(err, 'MESH_ERR_BACKPRESSURE'), String(err));
    assert.match(err.message, /no progress for 200 ms/);
    assert.equal(c.closes.length, 1);
  } finally {
    await lb.close();
  }
});

void test('a peer that reads keeps the connection open under a short stall timeout', T, async () => {
  const { lb, client, server, c, s } = await framedPair({ stallTimeout: 500, maxOutboundBytes: 64 * 1024 * 1024 });
  try {
    const body = bytes(65535);
    const total = 200; // ~13 MB
    let sent = 0;
    while (sent < total) {
      const ok = client.writeFrame(body);
      sent++;
      if (!ok) {
        const drainsBefore = c.drains;
        await waitFor(() => c.drains > drainsBefore || client.closed, 5000, 'drain');
      }
    }
    await waitFor(() => s.frames.length === total, 10_000, 'all frames');
    await sleep(600); // past one stall period with nothing queued
    assert.equal(client.closed, false);
    assert.deepEqual(c.closes, []);
    assert.ok(c.drains > 0, 'onDrain was called');
  } finally {
    client.close();
    server.close();
    await lb.close();
  }
});

void test('close() is idempotent and onClose runs once with undefined', T, async () => {
  const { lb, client, server, c, s } = await framedPair();
  try {
    client.close();
    client.close();
    assert.equal(client.closed, true);
    assert.equal(client.writeFrame(Buffer.from('ignored')), false);
    assert.equal(client.writeRaw(Buffer.from('ignored')), false);
    assert.equal(await within(c.closed, 5000, 'client close'), undefined);
    const serverErr = await within(s.closed, 5000, 'server close');
    assert.ok(isMeshError(serverErr, 'MESH_ERR_CONNECTION'), String(serverErr));
    assert.equal(serverErr.message, 'closed by peer');
    client.close();
    client.close(new MeshError('MESH_ERR_CLOSED', 'after the end'));
    await sleep(20);
    assert.deepEqual(c.closes, [undefined]);
    assert.equal(s.closes.length, 1);
    assert.equal(client.destroyed, true);
    assert.equal(s.frames.length, 0);
  } finally {
    client.close();
    server.close();
    await lb.close();
  }
});

void test('a clean close flushes queued frames first', T, async () => {
  const { lb, client, server, c, s } = await framedPair();
  try {
    const bodies = Array.from({ length: 100 }, (_, i) => bytes(40_000, i)); // ~4 MB
    client.writeFrames(bodies);
    client.close();
    assert.equal(await within(c.closed, 5000, 'client close'), undefined);
    const serverErr = await within(s.closed, 5000, 'server close');
    assert.ok(isMeshError(serverErr, 'MESH_ERR_CONNECTION'));
    assert.equal(s.frames.length, bodies.length);
    for (let i = 0; i < bodies.length; i++) assert.ok(s.frames[i]!.equals(bodies[i]!), `frame ${i}`);
  } finally {
    client.close();
    server.close();
    await lb.close();
  }
});

void test('close(error) destroys at once and reports that error', T, async () => {
  const { lb, client, server, c, s } = await framedPair();
  try {
    const reason = new MeshError('MESH_ERR_PROTOCOL', 'bad envelope');
    client.close(reason);
    client.close();
    assert.equal(await within(c.closed, 5000, 'client close'), reason);
    const serverErr = await within(s.closed, 5000, 'server close');
    assert.ok(isMeshError(serverErr, 'MESH_ERR_CONNECTION'), String(serverErr));
    await sleep(20);
    assert.equal(c.closes.length, 1);
  } finally {
    client.close();
    server.close();
    await lb.close();
  }
});

void test('clean close: a peer that never closes its side is cut after closeGrace', T, async () => {
  const lb = await loopback({ allowHalfOpen: true }); // server side stays half-open forever
  try {
    const accepted = lb.accept();
    const raw = lb.track(await connectSocket({ host: '127.0.0.1', port: lb.port }));
    const peer = await accepted;
    peer.on('error', () => undefined);
    peer.resume();
    const c = recorder();
    const client = new FramedSocket(raw, { closeGrace: 150 }, c);
    const started = Date.now();
    client.close();
    assert.equal(await within(c.closed, 5000, 'client close'), undefined);
    const elapsed = Date.now() - started;
    assert.ok(elapsed >= 100, `closed after ${elapsed} ms, before the grace`);
  } finally {
    await lb.close();
  }
});

void test('close(error) during a clean close destroys at once; the reason stays undefined', T, async () => {
  const lb = await loopback({ allowHalfOpen: true });
  try {
    const accepted = lb.accept();
    const raw = lb.track(await connectSocket({ host: '127.0.0.1', port: lb.port }));
    const peer = await accepted;
    peer.on('error', () => undefined);
    peer.resume();
    const c = recorder();
    const client = new FramedSocket(raw, { closeGrace: 60_000 }, c);
    client.close();
    await sleep(30);
    assert.deepEqual(c.closes, []);
    client.close(new MeshError('MESH_ERR_TIMEOUT', 'shutdown deadline'));
    assert.equal(await within(c.closed, 2000, 'client close'), undefined);
    assert.equal(c.closes.length, 1);
  } finally {
    await lb.close();
  }
});

/** A FramedSocket client talking to a raw (unframed) server-side socket. */
async function rawPeer(options: FramedSocketOptions = {}): Promise<{ lb: Loopback; client: FramedSocket; c: Recorder; peer: net.Socket }> {
  const lb = await loopback();
  const accepted = lb.accept();
  const raw = lb.track(await connectSocket({ host: '127.0.0.1', port: lb.port }));
  const peer = await accepted;
  peer.on('error', () => undefined);
  const c = recorder();
  return { lb, client: new FramedSocket(raw, options, c), c, peer };
}

void test('peer reset maps to MESH_ERR_CONNECTION with the socket error as cause', T, async () => {
  const { lb, client, c, peer } = await rawPeer();
  try {
    peer.resetAndDestroy();
    const err = await within(c.closed, 5000, 'client close');
    assert.ok(isMeshError(err, 'MESH_ERR_CONNECTION'), String(err));
    assert.equal(err.retryable, true);
    assert.equal((err.cause as NodeJS.ErrnoException).code, 'ECONNRESET');
    assert.match(err.message, /ECONNRESET/);
    assert.equal(c.closes.length, 1);
  } finally {
    client.close();
    await lb.close();
  }
});

void test('peer closing in the middle of a frame is reported as such', T, async () => {
  const { lb, client, c, peer } = await rawPeer();
  try {
    peer.write(Buffer.from([0x00, 0x02, 0x61, 0x62, 0x00, 0x05, 0x61])); // "ab", then 1 of 5 bytes
    peer.end();
    const err = await within(c.closed, 5000, 'client close');
    assert.ok(isMeshError(err, 'MESH_ERR_CONNECTION'), String(err));
    assert.equal(err.message, 'closed by peer in the middle of a frame');
    assert.deepEqual(c.frames, [Buffer.from('ab')]);
  } finally {
    client.close();
    await lb.close();
  }
});

void test('pause() stops delivery mid-chunk; resume() delivers the rest in order', T, async () => {
  const { lb, client, c, peer } = await rawPeer();
  try {
    const bodies = Array.from({ length: 50 }, (_, i) => Buffer.from(`frame ${i}`));
    const wire = Buffer.concat(bodies.map((b) => Buffer.concat([Buffer.from([0, b.length]), b])));
    c.onEachFrame = () => {
      if (c.frames.length === 1) client.pause();
    };
    peer.write(wire); // one write: typically one chunk holding all 50 frames
    await waitFor(() => c.frames.length >= 1, 5000, 'first frame');
    await sleep(100);
    assert.equal(c.frames.length, 1, 'no frames while paused');
    assert.equal(client.paused, true);
    c.onEachFrame = undefined;
    client.resume();
    assert.equal(c.frames.length, 1, 'resume() never delivers synchronously');
    await waitFor(() => c.frames.length === 50, 5000, 'all frames');
    assert.deepEqual(c.frames, bodies);
    // Data after resume keeps flowing.
    peer.write(Buffer.from([0, 1, 0x7a]));
    await waitFor(() => c.frames.length === 51, 5000, 'later frame');
  } finally {
    client.close();
    await lb.close();
  }
});

void test('pause() before data arrives holds every frame until resume()', T, async () => {
  const { lb, client, server, c } = await framedPair();
  try {
    client.pause();
    client.pause();
    const bodies = Array.from({ length: 200 }, (_, i) => bytes(100 + i, i));
    server.writeFrames(bodies);
    server.writeFrame(Buffer.from('last'));
    await sleep(150);
    assert.equal(c.frames.length, 0, 'no frames while paused');
    client.resume();
    client.resume();
    await waitFor(() => c.frames.length === 201, 5000, 'all frames');
    for (let i = 0; i < 200; i++) assert.ok(c.frames[i]!.equals(bodies[i]!), `frame ${i}`);
    assert.deepEqual(c.frames[200], Buffer.from('last'));
  } finally {
    client.close();
    server.close();
    await lb.close();
  }
});

void test('pause and resume repeatedly from inside onFrame loses and reorders nothing', T, async () => {
  const { lb, client, server, c } = await framedPair();
  try {
    c.onEachFrame = () => {
      if (c.frames.length % 7 === 0) {
        client.pause();
        setTimeout(() => client.resume(), 1);
      }
    };
    const bodies = Array.from({ length: 300 }, (_, i) => bytes(i % 50, i));
    for (let i = 0; i < 300; i += 30) server.writeFrames(bodies.slice(i, i + 30));
    await waitFor(() => c.frames.length === 300, 10_000, 'all frames');
    for (let i = 0; i < 300; i++) assert.ok(c.frames[i]!.equals(bodies[i]!), `frame ${i}`);
  } finally {
    client.close();
    server.close();
    await lb.close();
  }
});

void test('an onFrame that throws closes the connection with that error', T, async () => {
  const { lb, client, server, c } = await framedPair();
  try {
    const reason = new MeshError('MESH_ERR_PROTOCOL', 'malformed envelope');
    c.onEachFrame = () => {
      throw reason;
    };
    server.writeFrames([Buffer.from('a'), Buffer.from('b')]);
    assert.equal(await within(c.closed, 5000, 'client close'), reason);
    assert.equal(c.frames.length, 1, 'nothing delivered after the throw');
  } finally {
    client.close();
    server.close();
    await lb.close();
  }
});

void test('close() inside onFrame stops delivery of the rest of the chunk', T, async () => {
  const { lb, client, server, c } = await framedPair();
  try {
    c.onEachFrame = () => client.close();
    server.writeFrames([Buffer.from('a'), Buffer.from('b'), Buffer.from('c')]);
    assert.equal(await within(c.closed, 5000, 'client close'), undefined);
    assert.deepEqual(c.frames, [Buffer.from('a')]);
  } finally {
    client.close();
    server.close();
    await lb.close();
  }
});

void test('an onFrame that throws a plain error closes with MESH_ERR_PROTOCOL', T, async () => {
  const { lb, client, server, c } = await framedPair();
  try {
    const boom = new TypeError('bug');
    c.onEachFrame = () => {
      throw boom;
    };
    server.writeFrame(Buffer.from('a'));
    const err = await within(c.closed, 5000, 'client close');
    assert.ok(isMeshError(err, 'MESH_ERR_PROTOCOL'), String(err));
    assert.equal(err.cause, boom);
  } finally {
    client.close();
    server.close();
    await lb.close();
  }
});

void test('wrapping an already destroyed socket reports a close once', T, async () => {
  const lb = await loopback();
  try {
    const raw = lb.track(await connectSocket({ host: '127.0.0.1', port: lb.port }));
    raw.destroy();
    await new Promise((resolve) => raw.once('close', resolve));
    const c = recorder();
    const framed = new FramedSocket(raw, {}, c);
    assert.equal(framed.writeFrame(Buffer.from('x')), false);
    const err = await within(c.closed, 5000, 'close');
    assert.ok(isMeshError(err, 'MESH_ERR_CONNECTION'), String(err));
    await sleep(20);
    assert.equal(c.closes.length, 1);
  } finally {
    await lb.close();
  }
});

void test('invalid options are rejected with MESH_ERR_CONFIG', T, async () => {
  const lb = await loopback();
  try {
    const raw = lb.track(await connectSocket({ host: '127.0.0.1', port: lb.port }));
    for (const options of [{ maxFrameLength: 70_000 }, { maxOutboundBytes: 0 }, { stallTimeout: -1 }, { closeGrace: Number.NaN }, { prefixLength: -1 }]) {
      assert.throws(() => new FramedSocket(raw, options, recorder()), (e: unknown) => isMeshError(e, 'MESH_ERR_CONFIG'), JSON.stringify(options));
    }
  } finally {
    await lb.close();
  }
});

void test('a dialled socket reads into one reused buffer: transient frames, spanning frames and frames held while paused all arrive intact', T, async () => {
  const { lb, client, c, peer } = await rawPeer();
  try {
    client.transientFrames = true;
    // Large frames (they span reads of the 64 KiB buffer) between small ones, each with its own content.
    const bodies = Array.from({ length: 60 }, (_, i) => Buffer.alloc(i % 3 === 0 ? 50_000 : 7 + i, i));
    const wire = Buffer.concat(bodies.map((b) => Buffer.concat([Buffer.from([b.length >> 8, b.length & 0xff]), b])));
    let pauses = 0;
    c.onEachFrame = () => {
      // Pause in the middle of chunks a few times: what is held must be a copy, not a view of the reused buffer.
      if (c.frames.length % 17 === 5 && pauses < 3) {
        pauses++;
        client.pause();
        setTimeout(() => client.resume(), 30);
      }
    };
    peer.write(wire);
    await waitFor(() => c.frames.length === bodies.length, 10_000, 'all frames');
    assert.equal(pauses, 3);
    c.frames.forEach((f, i) => assert.ok(f.equals(bodies[i]!), `frame ${i} intact`));
  } finally {
    client.close();
    await lb.close();
  }
});
