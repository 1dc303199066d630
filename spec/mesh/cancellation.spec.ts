// Cancellation end to end, through a real broker: the handler's req.signal
// (the request's ttl, the node's close), serve's signal option and the
// handle's [Symbol.asyncDispose] (docs/api.md#offering-a-service).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isMeshError } from '../../lib/errors.ts';
import type { HandlerResult, IncomingRequest } from '../../lib/node/service-runner.ts';
import { MeshFixture, party, registryOf, until } from '../helpers/mesh.ts';

const client = party('client-1');
const worker = party('worker-1');
const registry = registryOf([
  [client, { role: 'client', call: ['*'] }],
  [worker, { role: 'worker', serve: ['*'] }],
]);

/** A handler that answers only by failing with its signal's reason, once that aborts. */
function waitForAbort(seen: unknown[]): (req: IncomingRequest) => Promise<HandlerResult> {
  return (req) =>
    new Promise<HandlerResult>((_resolve, reject) => {
      seen.push('started');
      req.signal.addEventListener('abort', () => {
        seen.push(req.signal.reason);
        reject(req.signal.reason as Error);
      });
    });
}

function workersOf(mesh: MeshFixture, service: string): number {
  return mesh.broker.status().services.find((s) => s.name === service)?.workers ?? 0;
}

test('req.signal aborts with MESH_ERR_TIMEOUT when the request\'s ttl runs out; with MESH_ERR_CLOSED when close() stops waiting', async () => {
  const mesh = await MeshFixture.start(registry);
  try {
    const w = await mesh.node(worker, { closeTimeout: 100 });
    const timedOut: unknown[] = [];
    const closed: unknown[] = [];
    w.serve('hang', waitForAbort(timedOut));
    w.serve('stuck', waitForAbort(closed));
    const c = await mesh.node(client);
    // One attempt: its ttl is the whole deadline.
    await assert.rejects(c.request('hang', 'x', { timeout: 300, retries: 0 }), (e: unknown) => isMeshError(e, 'MESH_ERR_TIMEOUT'));
    await until(() => timedOut.length === 2, 5000, 'the handler\'s signal to abort');
    assert.ok(isMeshError(timedOut[1], 'MESH_ERR_TIMEOUT'), String(timedOut[1]));

    const pending = c.request('stuck', 'x', { timeout: 10_000, retries: 0 }).catch((e: unknown) => e);
    await until(() => closed.length === 1, 5000, 'the handler to start');
    await w.close();
    assert.ok(isMeshError(closed[1], 'MESH_ERR_CLOSED'), String(closed[1]));
    await c.close();
    assert.ok(isMeshError(await pending, 'MESH_ERR_CLOSED'));
  } finally {
    await mesh.close();
  }
});

test('aborting serve\'s signal withdraws the service; so does leaving an `await using` block; the iterator\'s items have signals and its loop ends on its signal', async () => {
  const mesh = await MeshFixture.start(registry);
  try {
    const w = await mesh.node(worker);
    const c = await mesh.node(client);
    const controller = new AbortController();
    w.serve('echo', (req) => req.payload, { signal: controller.signal });
    await until(() => workersOf(mesh, 'echo') === 1, 5000, 'echo offered');
    assert.equal(String(await c.request('echo', 'hi')), 'hi');
    controller.abort();
    await until(() => workersOf(mesh, 'echo') === 0, 5000, 'echo withdrawn');
    await assert.rejects(c.request('echo', 'x', { retries: 0 }), (e: unknown) => isMeshError(e, 'MESH_ERR_NO_SERVICE'));

    {
      await using _handle = w.serve('scoped', (req) => req.payload);
      await until(() => workersOf(mesh, 'scoped') === 1, 5000, 'scoped offered');
      assert.equal(String(await c.request('scoped', 'yo')), 'yo');
    }
    await until(() => workersOf(mesh, 'scoped') === 0, 5000, 'scoped withdrawn');

    const stop = new AbortController();
    const signals: AbortSignal[] = [];
    let ended = false;
    const loop = (async () => {
      for await (const req of w.requests('iter', { signal: stop.signal })) {
        signals.push(req.signal);
        if (String(req.payload) === 'slow') req.signal.addEventListener('abort', () => req.fail(req.signal.reason as Error));
        else req.reply(req.payload);
      }
      ended = true;
    })();
    await until(() => workersOf(mesh, 'iter') === 1, 5000, 'iter offered');
    assert.equal(String(await c.request('iter', 'one')), 'one');
    assert.equal(signals.length, 1);
    assert.equal(signals[0]!.aborted, false);
    await assert.rejects(c.request('iter', 'slow', { timeout: 300, retries: 0 }), (e: unknown) => isMeshError(e, 'MESH_ERR_TIMEOUT'));
    await until(() => signals[1]?.aborted === true, 5000, 'the item\'s signal to abort');
    assert.ok(isMeshError(signals[1]!.reason, 'MESH_ERR_TIMEOUT'));
    stop.abort();
    await until(() => ended, 5000, 'the loop to end');
    await loop;
    await until(() => workersOf(mesh, 'iter') === 0, 5000, 'iter withdrawn');
  } finally {
    await mesh.close();
  }
});
