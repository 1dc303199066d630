// Worker loss (docs/architecture.md#a-worker-failure, and the promise in
// docs/architecture.md#what-is-guaranteed-and-what-is-not): a worker process is
// SIGKILLed while running requests; the broker re-dispatches them to another
// worker with `dup` set, and every request is answered once, well within its
// deadline. Worker A is a real child process (spec/helpers/child-worker.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { BrokerEvent } from '../../lib/broker/broker.ts';
import { encodeKey } from '../../lib/crypto/keys.ts';
import { MeshFixture, onEveryEvent, party, registryOf, until } from '../helpers/mesh.ts';
import { spawnChild } from '../helpers/child-harness.ts';
import type { ChildHandle } from '../helpers/child-harness.ts';
import { FateBook } from './tools.ts';

const client = party('client');
const workerA = party('worker-a');
const workerB = party('worker-b');
const registry = registryOf([
  [client, { role: 'client', call: ['slow'] }],
  [workerA, { role: 'worker', serve: ['slow'] }],
  [workerB, { role: 'worker', serve: ['slow'] }],
]);

/** Starts worker A as a child process and waits until the broker has its offer. */
async function startChildWorker(mesh: MeshFixture, concurrency: number): Promise<ChildHandle> {
  const child = spawnChild('child-worker.ts', [mesh.broker.address, 'slow', '5000', String(concurrency)], { MESHD_TEST_KEY: encodeKey(workerA.keyPair.privateKey) });
  await child.waitForLine(/^ready$/, 10_000, 'worker A ready');
  await until(() => mesh.broker.status().services.find((s) => s.name === 'slow')?.workers === 1, 5000, 'worker A offering slow');
  return child;
}

const startedLines = (child: ChildHandle): string[] => child.lines.filter((l) => l.startsWith('started '));

test('SIGKILL of the worker running a request: worker B answers it with dup, well within the deadline', async () => {
  const events: BrokerEvent[] = [];
  const mesh = await MeshFixture.start(registry);
  onEveryEvent(mesh.broker, (e) => events.push(e));
  let childA: ChildHandle | undefined;
  try {
    childA = await startChildWorker(mesh, 16);
    const c = await mesh.node(client);
    const book = new FateBook();
    const payload = randomBytes(1024);
    const done = book.track('only', payload, c.request('slow', payload, { timeout: 5000, retries: 2 }));
    await childA.waitForLine(/^started /, 3000, 'worker A starting the request');

    // Worker A has the request (it was the only worker). Now B joins.
    const b = await mesh.node(workerB);
    const seenByB: Array<{ dup: boolean; attempt: number }> = [];
    b.serve('slow', (req) => {
      seenByB.push({ dup: req.dup, attempt: req.attempt });
      return req.payload;
    });
    await until(() => mesh.broker.status().services.find((s) => s.name === 'slow')?.workers === 2, 5000, 'worker B offering slow');
    assert.equal(seenByB.length, 0, 'B must not have the request before A dies');

    const killedAt = performance.now();
    const exit = await childA.kill('SIGKILL');
    assert.equal(exit?.signal, 'SIGKILL');
    await done;
    const afterKill = performance.now() - killedAt;

    const s = book.summary();
    assert.deepEqual({ replied: s.replied, failed: s.failed, pending: s.pending, wrong: s.wrong, multi: s.multi }, { replied: 1, failed: 0, pending: 0, wrong: 0, multi: 0 }, JSON.stringify(book.fates));
    assert.equal(seenByB.length, 1, 'B ran the request exactly once');
    assert.equal(seenByB[0]!.dup, true, 'the second execution carries dup');
    assert.equal(startedLines(childA).length, 1, 'A started it exactly once');
    assert.ok(afterKill < 1500, `reply came ${Math.round(afterKill)} ms after the kill; the client's deadline was 5000 ms`);

    // The broker has forgotten A: its session is gone and it no longer offers slow.
    await until(() => mesh.broker.status().sessions === 2, 3000, 'broker sessions = B + client');
    assert.equal(mesh.broker.status().services.find((x) => x.name === 'slow')?.workers, 1);
    assert.equal(mesh.broker.status().pending, 0);
    assert.ok(events.some((e) => e.type === 'disconnected' && e.key === workerA.key), 'broker reported A disconnected');
  } finally {
    await childA?.kill('SIGKILL');
    await mesh.close();
  }
});

test('SIGKILL of a worker with 4 requests running and 2 queued: all 6 answered once; only the 4 re-dispatched carry dup', async () => {
  const events: BrokerEvent[] = [];
  const mesh = await MeshFixture.start(registry);
  onEveryEvent(mesh.broker, (e) => events.push(e));
  let childA: ChildHandle | undefined;
  try {
    childA = await startChildWorker(mesh, 4);
    const c = await mesh.node(client);
    const book = new FateBook();
    const payloads = Array.from({ length: 6 }, (_, i) => Buffer.concat([Buffer.from(`req-${i}:`), randomBytes(64)]));
    const done = payloads.map((p, i) => book.track(`req-${i}`, p, c.request('slow', p, { timeout: 5000, retries: 2 })));
    const childHandle = childA;
    await until(() => startedLines(childHandle).length === 4, 3000, 'worker A running 4 requests');
    await until(() => mesh.broker.status().services.find((s) => s.name === 'slow')?.queued === 2, 3000, '2 requests queued at the broker');

    const b = await mesh.node(workerB);
    const seenByB: Array<{ id: string; dup: boolean; payload: string }> = [];
    b.serve('slow', (req) => {
      seenByB.push({ id: Buffer.from(req.id).toString('hex'), dup: req.dup, payload: req.payload.subarray(0, 6).toString() });
      return req.payload;
    });
    // B takes the 2 queued requests at once: first executions, no dup.
    await until(() => seenByB.length === 2, 3000, 'B taking the 2 queued requests');
    assert.deepEqual(
      seenByB.map((x) => x.dup),
      [false, false],
    );

    const killedAt = performance.now();
    await childA.kill('SIGKILL');
    await Promise.all(done);
    const afterKill = performance.now() - killedAt;

    const s = book.summary();
    assert.deepEqual({ replied: s.replied, failed: s.failed, pending: s.pending, wrong: s.wrong, multi: s.multi }, { replied: 6, failed: 0, pending: 0, wrong: 0, multi: 0 }, JSON.stringify(book.fates));
    assert.equal(seenByB.length, 6, 'B ran each request once');
    assert.equal(new Set(seenByB.map((x) => x.id)).size, 6, 'six distinct request ids');
    assert.equal(seenByB.filter((x) => x.dup).length, 4, 'exactly the 4 that A was running are flagged dup');
    const aIds = new Set(startedLines(childA).map((l) => l.split(' ')[1]));
    for (const x of seenByB) assert.equal(x.dup, aIds.has(x.id), `dup flag of ${x.payload} matches whether A had started it`);
    assert.ok(afterKill < 1500, `replies came ${Math.round(afterKill)} ms after the kill`);
    await until(() => mesh.broker.status().sessions === 2 && mesh.broker.status().pending === 0, 3000, 'broker: A gone, nothing pending');
    assert.ok(events.some((e) => e.type === 'disconnected' && e.key === workerA.key));
  } finally {
    await childA?.kill('SIGKILL');
    await mesh.close();
  }
});
