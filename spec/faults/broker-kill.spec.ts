// Fault scenario 1 (issue 5): SIGKILL one broker under load. The clients and
// workers route around it at once: every request is answered once, in under
// 1 s, and no worker that stayed alive runs a request twice (but a request
// the broker dispatched in its last instant, before the client heard where:
// that may run again, with dup).
import { test } from 'node:test';
import { after, withCluster } from './harness.ts';
import { assertFates, fates, report } from './fates.ts';

test('SIGKILL of one broker under load: failed = 0, lost = 0, every reply in under 1 s, nothing run twice but what the broker dispatched as it stopped (with dup)', { timeout: 120_000 }, async (t) => {
  await withCluster({ name: 'broker-kill', brokers: 3, workers: 2 }, async (c) => {
    const victim = c.brokers[0]!;
    let killedAt = 0;
    const fault = after(1500, async () => {
      killedAt = performance.now();
      await victim.kill();
    });
    const load = await c.load({ durationMs: 5000, until: fault });
    await c.quiesce(1500);
    const { summary, details } = fates(c, load.endedAt - load.startedAt, { killed: victim.name, killedAtMs: Math.round(killedAt - load.startedAt), exit: victim.proc?.exit?.signal });
    report(summary, (m) => t.diagnostic(m));
    assertFates(c, summary, details, { noFailures: true, maxLatencyMs: 1000, noRerunByLiveWorker: true });
  });
});
