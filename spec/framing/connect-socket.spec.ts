import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { setImmediate as nextCheckPhase } from 'node:timers/promises';
import { connectSocket } from '../../lib/framing/connect-socket.ts';
import { isMeshError } from '../../lib/errors.ts';
import { loopback } from './loopback.ts';

const T = { timeout: 10_000 };

/** A port on 127.0.0.1 that nothing listens on (just released by us). */
async function closedPort(): Promise<number> {
  const lb = await loopback();
  const port = lb.port;
  await lb.close();
  return port;
}

void test('connects and resolves with a connected socket', T, async () => {
  const lb = await loopback();
  try {
    const accepted = lb.accept();
    const socket = lb.track(await connectSocket({ host: '127.0.0.1', port: lb.port, timeout: 5000, signal: new AbortController().signal }));
    assert.ok(socket instanceof net.Socket);
    assert.equal(socket.remotePort, lb.port);
    assert.equal(socket.pending, false);
    await accepted;
    // No listener is left behind.
    assert.equal(socket.listenerCount('error'), 0);
    assert.equal(socket.listenerCount('connect'), 0);
  } finally {
    await lb.close();
  }
});

void test('refused → MESH_ERR_CONNECTION with the socket error as cause', T, async () => {
  const port = await closedPort();
  await assert.rejects(connectSocket({ host: '127.0.0.1', port }), (err: unknown) => {
    assert.ok(isMeshError(err, 'MESH_ERR_CONNECTION'), String(err));
    assert.equal((err.cause as NodeJS.ErrnoException).code, 'ECONNREFUSED');
    assert.match(err.message, /ECONNREFUSED/);
    assert.equal(err.retryable, true);
    return true;
  });
});

void test('already aborted signal → MESH_ERR_ABORTED without connecting', T, async () => {
  const lb = await loopback();
  try {
    let connections = 0;
    lb.server.on('connection', () => connections++);
    const ac = new AbortController();
    const reason = new Error('stop');
    ac.abort(reason);
    await assert.rejects(connectSocket({ host: '127.0.0.1', port: lb.port, signal: ac.signal }), (err: unknown) => {
      assert.ok(isMeshError(err, 'MESH_ERR_ABORTED'), String(err));
      assert.equal(err.cause, reason);
      return true;
    });
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(connections, 0);
  } finally {
    await lb.close();
  }
});

void test('abort during connect → MESH_ERR_ABORTED, the socket is destroyed', T, async () => {
  const lb = await loopback();
  try {
    const ac = new AbortController();
    const pending = connectSocket({ host: '127.0.0.1', port: lb.port, signal: ac.signal });
    ac.abort();
    await assert.rejects(pending, (err: unknown) => isMeshError(err, 'MESH_ERR_ABORTED'));
  } finally {
    await lb.close();
  }
});

void test('timeout → MESH_ERR_TIMEOUT', T, async () => {
  const lb = await loopback();
  try {
    // From the check phase, block until the 1 ms timer is due: the event loop
    // runs timers before it polls for the connect, so the deadline wins.
    await nextCheckPhase();
    const pending = connectSocket({ host: '127.0.0.1', port: lb.port, timeout: 1 });
    const until = Date.now() + 20;
    while (Date.now() < until) {
      // busy-wait
    }
    await assert.rejects(pending, (err: unknown) => {
      assert.ok(isMeshError(err, 'MESH_ERR_TIMEOUT'), String(err));
      assert.match(err.message, /1 ms/);
      return true;
    });
  } finally {
    await lb.close();
  }
});

void test('invalid port or timeout → MESH_ERR_CONFIG', T, async () => {
  await assert.rejects(connectSocket({ host: '127.0.0.1', port: 70_000 }), (err: unknown) => isMeshError(err, 'MESH_ERR_CONFIG'));
  await assert.rejects(connectSocket({ host: '127.0.0.1', port: 1, timeout: 0 }), (err: unknown) => isMeshError(err, 'MESH_ERR_CONFIG'));
});
