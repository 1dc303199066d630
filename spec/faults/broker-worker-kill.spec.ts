// Fault scenario 6 (issue 5): SIGKILL a broker and a worker at the same
// moment, under load. Requests the worker was running through the dead broker
// lose both their path and their execution: the client resends them through
// another broker, where they run again with dup. Nothing is lost, nothing
// runs twice without dup, and only what the dead worker had is run again.
import { test } from 'node:test';
import { after, withCluster } from './harness.ts';
import { assertFates, fates, report } from './fates.ts';

test('SIGKILL of a broker and a worker together under load: lost = 0, reruns only of what the worker had and always with dup', { timeout: 120_000 }, async (t) => {
  await withCluster({ name: 'broker-worker-kill', brokers: 3, workers: 3 }, async (c) => {
    const broker = c.brokers[0]!;
    const worker = c.workers[0]!;
    let killedAt = 0;
    const fault = after(1500, async () => {
      killedAt = performance.now();
      await Promise.all([broker.kill(), worker.kill()]);
    });
    const load = await c.load({ durationMs: 5000, until: fault });
    await c.quiesce(1500);
    const { summary, details } = fates(c, load.endedAt - load.startedAt, { killed: [broker.name, worker.name], killedAtMs: Math.round(killedAt - load.startedAt) });
    report(summary, (m) => t.diagnostic(m));
    assertFates(c, summary, details, { noRerunByLiveWorker: true });
  });
});
