// Fault scenario 5 (issue 5): SIGKILL one of three workers under load. The
// brokers re-dispatch what it was running to another worker with dup set;
// nothing is lost, nothing runs twice without dup, and only requests the dead
// worker had are run again.
import { test } from 'node:test';
import { after, withCluster } from './harness.ts';
import { assertFates, fates, report } from './fates.ts';

test('SIGKILL of a worker under load: lost = 0, reruns only of what it had and always with dup', { timeout: 120_000 }, async (t) => {
  await withCluster({ name: 'worker-kill', brokers: 3, workers: 3 }, async (c) => {
    const victim = c.workers[0]!;
    let killedAt = 0;
    const fault = after(1500, async () => {
      killedAt = performance.now();
      await victim.kill();
    });
    const load = await c.load({ durationMs: 5000, until: fault });
    await c.quiesce(1500);
    const { summary, details } = fates(c, load.endedAt - load.startedAt, { killed: victim.name, killedAtMs: Math.round(killedAt - load.startedAt) });
    report(summary, (m) => t.diagnostic(m));
    assertFates(c, summary, details, { noRerunByLiveWorker: true });
  });
});
