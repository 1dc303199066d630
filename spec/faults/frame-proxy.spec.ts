// Fault scenario 10 (issue 5): a proxy between the client and one broker
// (B1) that delays every frame (0-20 ms, order kept), then, one at a time,
// duplicates a frame, swaps two frames (each way), and cuts the connection
// in the middle of a frame (each way). A duplicated or reordered Noise frame
// must never be accepted: the side that receives it closes the connection.
// The client reconnects through the proxy each time and resends what was in
// flight through another broker; nothing is lost, nothing runs twice without
// dup, every failure is a clear error, and B1 keeps serving.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sleep, urlOf, withCluster } from './harness.ts';
import type { Cluster } from './harness.ts';
import { assertFates, fates, report } from './fates.ts';
import { FrameProxy } from './tcp-proxy.ts';
import type { Direction, FrameFault } from './tcp-proxy.ts';

const FAULTS: ReadonlyArray<[Direction, FrameFault]> = [
  ['up', 'dup'],
  ['down', 'dup'],
  ['up', 'reorder'],
  ['down', 'reorder'],
  ['up', 'cut'],
  ['down', 'cut'],
];

test('a proxy that delays, duplicates, reorders and cuts frames between the client and a broker: lost = 0, clear errors, the link recovers', { timeout: 180_000 }, async (t) => {
  let proxy: FrameProxy | undefined;
  const prepare = async (c: Cluster): Promise<void> => {
    proxy = await FrameProxy.start(c.brokers[0]!.port);
    proxy.maxDelayMs = 20;
    c.onClose(() => proxy?.close());
  };
  // The client reaches B1 only through the proxy (its seed); the others it learns, or (no mesh) is given.
  const clientSeeds = (c: Cluster): string[] => [urlOf(c.brokers[0]!.key, proxy!.port), ...c.seedIndexes.filter((i) => i !== 0).map((i) => c.brokers[i]!.url)];
  await withCluster({ name: 'frame-proxy', brokers: 3, workers: 2, prepare, clientSeeds }, async (c) => {
    const p = proxy!;
    const b1 = c.brokers[0]!;
    const steps: Array<{ fault: string; applied: string; disconnectMs: number | null; reconnectMs: number | null }> = [];
    const disconnects = (): number => c.clientEvents.filter((e) => e.event === 'disconnect' && e.broker === b1.key).length;
    const fault = (async () => {
      await sleep(1500);
      for (const [direction, kind] of FAULTS) {
        const before = disconnects();
        const appliedBefore = p.stats.applied.length;
        const t0 = performance.now();
        p.inject(direction, kind);
        let disconnectMs: number | null = null;
        let reconnectMs: number | null = null;
        // Bounded: the fault is applied to the next frame that way, and the link must drop and come back.
        for (let i = 0; i < 2000 && performance.now() - t0 < 10_000; i++) {
          if (disconnectMs === null && disconnects() > before) disconnectMs = Math.round(performance.now() - t0);
          if (disconnectMs !== null && c.clientHealthy().includes(b1.key)) {
            reconnectMs = Math.round(performance.now() - t0);
            break;
          }
          await sleep(10);
        }
        steps.push({ fault: `${direction}:${kind}`, applied: p.stats.applied.slice(appliedBefore).join(',') || 'not applied', disconnectMs, reconnectMs });
        await sleep(700);
      }
      await sleep(1000);
    })();
    const load = await c.load({ durationMs: 5000, maxDurationMs: 120_000, until: fault });
    await c.quiesce(1500);
    const { summary, details } = fates(c, load.endedAt - load.startedAt, { steps, proxy: { connections: p.stats.connections, framesUp: p.stats.framesUp, framesDown: p.stats.framesDown } });
    report(summary, (m) => t.diagnostic(m));
    assertFates(c, summary, details);
    for (const s of steps) {
      assert.equal(s.applied, s.fault, `fault ${s.fault} was applied to a frame`);
      assert.ok(s.disconnectMs !== null, `after ${s.fault} the connection was closed (a duplicated, reordered or cut frame must never be accepted)`);
      assert.ok(s.reconnectMs !== null, `after ${s.fault} the client reconnected to ${b1.name} through the proxy within 10 s`);
    }
    assert.ok(b1.alive, `${b1.name} survived`);
    assert.ok(c.clientHealthy().includes(b1.key), `the client is connected to ${b1.name} again at the end`);
  });
});
