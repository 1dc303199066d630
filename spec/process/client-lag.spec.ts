// A client whose own event loop stalls past its attempt timeout must not
// resend what was answered meanwhile ("Lag" in
// docs/architecture.md#what-is-guaranteed-and-what-is-not). The broker and two workers are child processes, so they
// answer while this process is blocked; the replies wait in this process's
// socket buffers. Each request must still run exactly once. (Whether the
// overdue attempt timers or the reads run first after such a stall depends
// on where the loop was; this test passes with either order here, so it
// guards the outcome, not the requester's setImmediate deferral itself.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MeshNode } from '../../lib/node/mesh-node.ts';
import { encodeKey } from '../../lib/crypto/keys.ts';
import { getSuite } from '../../lib/crypto/suites.ts';
import { ChildBroker, spawnChild } from '../helpers/child-harness.ts';
import type { ChildHandle } from '../helpers/child-harness.ts';
import { party } from '../helpers/mesh.ts';

const suite = getSuite('node');

test('a client stalled past its attempt timeout reads the replies that came meanwhile instead of resending', async () => {
  const broker = party('broker');
  const client = party('client');
  const workers = [party('worker-a'), party('worker-b')];
  const b = await ChildBroker.start({
    privateKey: encodeKey(broker.keyPair.privateKey),
    registry: [
      { key: client.key, name: client.name, role: 'client', call: ['echo'] },
      ...workers.map((w) => ({ key: w.key, name: w.name, role: 'worker', serve: ['echo'] })),
    ],
  });
  const children: ChildHandle[] = [];
  let node: MeshNode | undefined;
  try {
    for (const w of workers) {
      const child = spawnChild('child-worker.ts', [b.address, 'echo', '0'], { MESHD_TEST_KEY: encodeKey(w.keyPair.privateKey) });
      children.push(child);
      await child.waitForLine(/^ready$/, 10_000, `${w.name} ready`);
    }
    await b.until((s) => s.services.find((x) => x.name === 'echo')?.workers === 2, 5000, 'both workers offering echo');
    node = await MeshNode.connect({ brokers: [b.address], key: client.keyPair, suite, timeout: 5000 });

    // Attempts of 300 ms; this process then blocks for 800 ms.
    const replies = Array.from({ length: 8 }, (_, i) => node!.request('echo', `r${i}`, { timeout: 3000, retries: 2, attemptTimeout: 300 }));
    // Let this turn's output go out (sends are flushed once per turn), then block.
    await new Promise((r) => setImmediate(r));
    const until = Date.now() + 800;
    while (Date.now() < until) {
      // Busy: no timer and no socket read runs in this process.
    }
    assert.deepEqual((await Promise.all(replies)).map((r) => r.toString()), ['r0', 'r1', 'r2', 'r3', 'r4', 'r5', 'r6', 'r7']);
    await new Promise((r) => setTimeout(r, 300));
    const started = children.flatMap((c) => c.lines.filter((l) => l.startsWith('started ')));
    assert.equal(started.length, 8, `each request ran once:\n${started.join('\n')}`);
  } finally {
    await node?.close();
    for (const c of children) await c.kill();
    await b.kill();
  }
});
