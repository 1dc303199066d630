// Fault scenario 7 (issue 5): every broker is down for 3 s under load
// (SIGKILL all three), then all are started again on the same ports and keys.
// Requests sent while no broker is up fail by their deadline with a clear
// MESH_ERR_* error; the client and the workers recover by themselves (no
// restart of any node), within a bounded time; nothing is lost and nothing
// runs twice without dup.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sleep, withCluster } from './harness.ts';
import { assertFates, fates, report } from './fates.ts';

/** Longest wait from "every broker listens again" to the first reply: the reconnect backoff is capped at 5 s (full jitter), plus a handshake and a READY. */
const RECOVERY_LIMIT_MS = 7000;

test('all brokers down for 3 s then back: failures are clear and by the deadline, the nodes recover without a restart', { timeout: 180_000 }, async (t) => {
  await withCluster({ name: 'all-brokers-down', brokers: 3, workers: 2 }, async (c) => {
    const marks: Record<string, number> = {};
    const fault = (async () => {
      await sleep(1500);
      marks.downAt = performance.now();
      await Promise.all(c.brokers.map((b) => b.kill()));
      await sleep(3000);
      marks.restartAt = performance.now();
      await Promise.all(c.brokers.map((b) => b.start()));
      marks.listeningAt = performance.now();
      // The first reply to a request sent after every broker listens again.
      for (let i = 0; i < 10_000 && marks.recoveredAt === undefined; i++) {
        const ok = c.records.find((r) => r.start >= marks.listeningAt! && r.outcome?.kind === 'reply');
        if (ok) marks.recoveredAt = ok.end!;
        else if (performance.now() - marks.listeningAt > RECOVERY_LIMIT_MS + 5000) break;
        else await sleep(20);
      }
      marks.settledMs = await c.settled(20_000);
      marks.settledAt = performance.now();
      await sleep(2000);
    })();
    const load = await c.load({ durationMs: 5000, maxDurationMs: 120_000, until: fault });
    await c.quiesce(1500);
    const rel = (x: number | undefined): number | undefined => (x === undefined ? undefined : Math.round(x - load.startedAt));
    const recoveryMs = marks.recoveredAt === undefined ? undefined : Math.round(marks.recoveredAt - marks.listeningAt!);
    // Everything sent once the nodes are connected again is answered.
    const afterSettled = c.records.filter((r) => r.start >= marks.settledAt!);
    const notReplied = afterSettled.filter((r) => r.outcome?.kind !== 'reply');
    const { summary, details } = fates(c, load.endedAt - load.startedAt, {
      downAtMs: rel(marks.downAt),
      listeningAgainAtMs: rel(marks.listeningAt),
      firstReplyAfterRestartMs: recoveryMs,
      settledAfterRestartMs: marks.settledMs === undefined ? undefined : Math.round(marks.settledMs + (marks.settledAt! - marks.settledMs - marks.listeningAt!)),
      sentAfterSettled: afterSettled.length,
      failedAfterSettled: notReplied.length,
    });
    report(summary, (m) => t.diagnostic(m));
    assertFates(c, summary, details, { failByDeadlineSlackMs: 250 });
    assert.ok(summary.failed > 0, 'requests sent while every broker was down must fail (with a clear error), not wait');
    assert.ok(recoveryMs !== undefined && recoveryMs < RECOVERY_LIMIT_MS, `first reply ${recoveryMs ?? 'never'} ms after the brokers listened again (limit ${RECOVERY_LIMIT_MS} ms)`);
    assert.ok(afterSettled.length > 0, 'requests were sent after recovery');
    assert.deepEqual(notReplied.map((r) => `#${r.seq} ${JSON.stringify(r.outcome)}`), [], 'every request sent after the nodes reconnected is answered');
  });
});
