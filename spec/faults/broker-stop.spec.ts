// Fault scenario 2 (issue 5): SIGSTOP one broker for 5 s under load, then
// SIGCONT. The frozen broker is routed around within the heartbeat bounds
// (an attempt times out after timeout / (retries + 1) and is resent with the
// worker hint); when it wakes up, whatever it had buffered must not run a
// request a second time. Every request is answered once, in under 1 s.
import { test } from 'node:test';
import { after, sleep, withCluster } from './harness.ts';
import { assertFates, fates, report } from './fates.ts';

test('SIGSTOP of one broker for 5 s, then SIGCONT: failed = 0, lost = 0, every reply in under 1 s, nothing run twice but what the broker dispatched as it stopped (with dup)', { timeout: 120_000 }, async (t) => {
  await withCluster({ name: 'broker-stop', brokers: 3, workers: 2 }, async (c) => {
    const victim = c.brokers[1]!;
    const marks: Record<string, number> = {};
    const fault = after(1500, async () => {
      marks.stoppedAt = performance.now();
      victim.signal('SIGSTOP');
      await sleep(5000);
      marks.continuedAt = performance.now();
      victim.signal('SIGCONT');
      // Back in the mesh: the client and the workers reconnect to it (bounded).
      marks.settledMs = Math.round(await c.settled(15_000));
      // Keep the load on a while after it woke up, to catch stale copies it runs.
      await sleep(1500);
    });
    const load = await c.load({ durationMs: 5000, until: fault });
    await c.quiesce(2000);
    const rel = (x: number | undefined): number | undefined => (x === undefined ? undefined : Math.round(x - load.startedAt));
    const { summary, details } = fates(c, load.endedAt - load.startedAt, { stopped: victim.name, stoppedAtMs: rel(marks.stoppedAt), continuedAtMs: rel(marks.continuedAt), settledAfterContMs: marks.settledMs });
    report(summary, (m) => t.diagnostic(m));
    assertFates(c, summary, details, { noFailures: true, maxLatencyMs: 1000, noRerunByLiveWorker: true });
  });
});
