// Fault scenario 3 (issue 5): a broker crashes (SIGKILL) under load and is
// started again at once on the same port with the same key (a new boot id).
// Nodes route around it while it is gone and reconnect to it when it is
// back; every request is answered once, in under 1 s, and no worker that
// stayed alive runs a request twice.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { after, sleep, withCluster } from './harness.ts';
import { assertFates, fates, report } from './fates.ts';

test('restart of a broker on the same port and key under load: failed = 0, lost = 0, every reply in under 1 s, nothing run twice but what the broker dispatched as it stopped (with dup)', { timeout: 120_000 }, async (t) => {
  await withCluster({ name: 'broker-restart', brokers: 3, workers: 2 }, async (c) => {
    const victim = c.brokers[2]!;
    const marks: Record<string, number> = {};
    const fault = after(1500, async () => {
      marks.killedAt = performance.now();
      await victim.restart('SIGKILL');
      marks.listeningAt = performance.now();
      marks.settledMs = Math.round(await c.settled(15_000));
      await sleep(1500);
    });
    const load = await c.load({ durationMs: 5000, until: fault });
    await c.quiesce(1500);
    const rel = (x: number | undefined): number | undefined => (x === undefined ? undefined : Math.round(x - load.startedAt));
    // The restarted broker took the client and both workers back.
    const second = victim.generations[1]!;
    const connected = second.logs.filter((l) => l.fields.event === 'connected').map((l) => String(l.fields.name));
    const { summary, details } = fates(c, load.endedAt - load.startedAt, { restarted: victim.name, killedAtMs: rel(marks.killedAt), listeningAgainAtMs: rel(marks.listeningAt), settledAfterRestartMs: marks.settledMs, reconnected: connected });
    report(summary, (m) => t.diagnostic(m));
    for (const name of [c.clientParty.name, ...c.workers.map((w) => w.name)]) assert.ok(connected.includes(name), `${name} reconnected to the restarted ${victim.name}; it logged: ${connected.join(', ')}`);
    assertFates(c, summary, details, { noFailures: true, maxLatencyMs: 1000, noRerunByLiveWorker: true });
  });
});
