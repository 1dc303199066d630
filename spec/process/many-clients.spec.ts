// Many clients at once: 200 MeshNodes (each its own key, TCP connection and
// Noise session) send requests through one broker to 2 echo workers. Every
// request is answered exactly once with its own payload and executed once;
// closing the clients brings the broker's session count back down.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { MeshNode } from '../../lib/node/mesh-node.ts';
import { MeshFixture, party, registryOf, until } from '../helpers/mesh.ts';
import type { Party } from '../helpers/mesh.ts';
import { FateBook } from './tools.ts';

const CLIENTS = 200;
const REQUESTS_EACH = 4;
const workers = [party('echo-1'), party('echo-2')];
const clients: Party[] = Array.from({ length: CLIENTS }, (_, i) => party(`client-${i}`));
const registry = registryOf([...workers.map((w): [Party, { role: 'worker'; serve: string[] }] => [w, { role: 'worker', serve: ['echo'] }]), ...clients.map((c): [Party, { role: 'client'; call: string[] }] => [c, { role: 'client', call: ['echo'] }])]);

test(`${CLIENTS} concurrent clients × ${REQUESTS_EACH} requests through one broker to 2 workers: each replied once with its own payload`, async (t) => {
  const mesh = await MeshFixture.start(registry);
  const clientNodes: MeshNode[] = [];
  try {
    // Executions per payload (hex), and who ran them.
    const executions = new Map<string, number>();
    const perWorker = new Map<string, number>();
    let dups = 0;
    for (const w of workers) {
      const node = await mesh.node(w);
      node.serve(
        'echo',
        async (req) => {
          const k = req.payload.toString('hex');
          executions.set(k, (executions.get(k) ?? 0) + 1);
          perWorker.set(w.name, (perWorker.get(w.name) ?? 0) + 1);
          if (req.dup) dups++;
          await new Promise((r) => setImmediate(r));
          return req.payload;
        },
        { concurrency: 32 },
      );
    }
    await until(() => mesh.broker.status().services.find((s) => s.name === 'echo')?.workers === 2, 5000, '2 workers');

    // Connect all clients at once (the handshake cap, 256, is above 200).
    const connectStarted = performance.now();
    const connected = await Promise.allSettled(clients.map((c) => mesh.node(c, { timeout: 10_000 })));
    const connectMs = Math.round(performance.now() - connectStarted);
    for (const r of connected) if (r.status === 'fulfilled') clientNodes.push(r.value);
    const refused = connected.flatMap((r) => (r.status === 'rejected' ? [String(r.reason)] : []));
    assert.deepEqual(refused, [], 'every client connected');
    assert.equal(mesh.broker.status().sessions, CLIENTS + 2);

    // Every client sends REQUESTS_EACH requests at once; all in flight together.
    const book = new FateBook();
    const sentPayloads: string[] = [];
    const requestStarted = performance.now();
    await Promise.all(
      clientNodes.flatMap((node, i) =>
        Array.from({ length: REQUESTS_EACH }, (_, j) => {
          const payload = Buffer.concat([Buffer.from(`${i}/${j}/`), randomBytes(16 + ((i * 7 + j * 131) % 2048))]);
          sentPayloads.push(payload.toString('hex'));
          // One attempt may take the whole 10 s: a request goes out again
          // (flagged dup) only when its link fails (a heartbeat verdict, say),
          // never because a loaded machine made the queue slow.
          return book.track(`client-${i}/${j}`, payload, node.request('echo', payload, { timeout: 10_000, attemptTimeout: 10_000, retries: 2 }));
        }),
      ),
    );
    const requestMs = Math.round(performance.now() - requestStarted);

    const s = book.summary();
    t.diagnostic(JSON.stringify({ connectMs, requestMs, perWorker: Object.fromEntries(perWorker), load: s }));
    assert.equal(s.sent, CLIENTS * REQUESTS_EACH);
    assert.equal(s.pending, 0, 'no request lost');
    assert.equal(s.multi, 0, 'no request settled twice');
    assert.equal(s.failed, 0, `no request failed: ${JSON.stringify(s.codes)}`);
    assert.equal(s.wrong, 0, 'every reply carries its own payload');
    assert.equal(s.replied, CLIENTS * REQUESTS_EACH);
    // Executed exactly once each, never as a duplicate.
    assert.equal(executions.size, CLIENTS * REQUESTS_EACH);
    for (const p of sentPayloads) assert.equal(executions.get(p), 1, `payload ${p.slice(0, 16)}… ran once`);
    assert.equal(dups, 0, 'no execution was flagged dup');
    for (const w of workers) assert.ok((perWorker.get(w.name) ?? 0) >= (CLIENTS * REQUESTS_EACH) / 4, `${w.name} did a fair share: ${perWorker.get(w.name)}`);
    assert.equal(mesh.broker.status().pending, 0);

    // All clients leave: the broker drops back to the 2 workers.
    await Promise.all(clientNodes.map((n) => n.close()));
    await until(() => mesh.broker.status().sessions === 2, 5000, 'broker sessions back to 2');
    assert.equal(mesh.broker.status().handshakes, 0);
  } finally {
    await Promise.all(clientNodes.map((n) => n.close()));
    await mesh.close();
  }
});
