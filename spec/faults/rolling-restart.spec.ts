// Fault scenario 4 (issue 5): a rolling restart under load. Each broker in
// turn gets SIGTERM (it drains: DRAIN to nodes, queued requests handed back,
// replies in flight delivered, exit 0), is started again on the same port and
// key, and the next one goes only once the nodes are connected to it again.
// Nothing fails, nothing is lost, every reply comes in under 1 s, and no
// worker that stayed alive runs a request twice.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sleep, withCluster } from './harness.ts';
import { assertFates, fates, report } from './fates.ts';

test('rolling SIGTERM restart of all three brokers under load: failed = 0, lost = 0, every reply in under 1 s, nothing run twice', { timeout: 180_000 }, async (t) => {
  await withCluster({ name: 'rolling-restart', brokers: 3, workers: 2, drainTimeoutMs: 5000 }, async (c) => {
    const steps: Array<{ broker: string; exit: string; drainMs: number; downMs: number; settledMs: number }> = [];
    const fault = (async () => {
      await sleep(1000);
      for (const b of c.brokers) {
        const t0 = performance.now();
        const exit = await b.terminate(15_000);
        const drained = performance.now();
        assert.ok(exit, `${b.name} did not exit within 15 s of SIGTERM`);
        await b.start();
        const listening = performance.now();
        const settledMs = await c.settled(20_000);
        steps.push({ broker: b.name, exit: `${exit.code ?? exit.signal}`, drainMs: Math.round(drained - t0), downMs: Math.round(listening - drained), settledMs: Math.round(settledMs) });
        await sleep(1000);
      }
    })();
    const load = await c.load({ durationMs: 5000, maxDurationMs: 120_000, until: fault });
    await c.quiesce(1500);
    const { summary, details } = fates(c, load.endedAt - load.startedAt, { steps });
    report(summary, (m) => t.diagnostic(m));
    for (const s of steps) assert.equal(s.exit, '0', `${s.broker} exited with ${s.exit} after SIGTERM, not 0`);
    assertFates(c, summary, details, { noFailures: true, maxLatencyMs: 1000, noRerunByLiveWorker: true });
  });
});
