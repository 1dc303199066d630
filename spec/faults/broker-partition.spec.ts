// Fault scenario 9 (issue 5): one broker (B3) cut off from the other brokers
// but not from the nodes. Every broker<->B3 connection goes through a TCP
// proxy in the test process: B1 and B2 know B3 (--peer) at proxy X3, which B3
// also announces (--advertise), and B3 knows B1 and B2 at proxies Y1 and Y2.
// The nodes are seeded with B3's real address and learn B1 and B2 at their
// real ones, so the proxies carry broker traffic only. Cutting the proxies (a
// black hole, both ways) is the partition. B3 is a minority of one: it must
// not declare anyone dead, and requests keep succeeding throughout. After the
// partition heals the three agree again.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sleep, urlOf, withCluster } from './harness.ts';
import type { Cluster } from './harness.ts';
import { assertFates, fates, report } from './fates.ts';
import { TcpProxy } from './tcp-proxy.ts';

const ROUND_MS = 1000;
const PARTITION_MS = 6000;

test('a broker cut off from the other brokers but not from the nodes: the minority declares no one dead, requests keep succeeding', { timeout: 180_000 }, async (t) => {
  const proxies: Record<'x3' | 'y1' | 'y2', TcpProxy | undefined> = { x3: undefined, y1: undefined, y2: undefined };
  const proxy = (name: keyof typeof proxies): TcpProxy => {
    const p = proxies[name];
    if (!p) throw new Error(`proxy ${name} not started`);
    return p;
  };
  const prepare = async (c: Cluster): Promise<void> => {
    c.onClose(async () => {
      for (const p of Object.values(proxies)) await p?.close();
    });
    const [b1, b2, b3] = c.brokers as [Cluster['brokers'][0], Cluster['brokers'][0], Cluster['brokers'][0]];
    proxies.x3 = await TcpProxy.start(b3.port);
    proxies.y1 = await TcpProxy.start(b1.port);
    proxies.y2 = await TcpProxy.start(b2.port);
  };
  await withCluster(
    {
      name: 'broker-partition',
      brokers: 3,
      workers: 2,
      gossipIntervalMs: ROUND_MS,
      seeds: [2],
      prepare,
      peers: (i, c) => {
        const [b1, b2, b3] = c.brokers as [Cluster['brokers'][0], Cluster['brokers'][0], Cluster['brokers'][0]];
        if (i === 2) return [urlOf(b1.key, proxy('y1').port), urlOf(b2.key, proxy('y2').port)];
        return [(i === 0 ? b2 : b1).url, urlOf(b3.key, proxy('x3').port)];
      },
      advertise: (i) => (i === 2 ? `127.0.0.1:${proxy('x3').port}` : undefined),
    },
    async (c) => {
      const [b1, b2, b3] = c.brokers as [Cluster['brokers'][0], Cluster['brokers'][0], Cluster['brokers'][0]];
      const all = c.brokers.map((b) => b.key);
      // Broker traffic to and from B3 really goes through the proxies (the nodes' does not).
      assert.ok(proxy('x3').open + proxy('y1').open + proxy('y2').open >= 2, 'the B1-B3 and B2-B3 connections go through the proxies');
      const marks: Record<string, number> = {};
      const fault = (async () => {
        await sleep(1500);
        marks.cutAt = performance.now();
        for (const p of Object.values(proxies)) p?.cut();
        await sleep(PARTITION_MS);
        marks.healAt = performance.now();
        for (const p of Object.values(proxies)) p?.heal();
        // The three agree again (bounded), then a little more load.
        const deadline = performance.now() + 40_000;
        for (let i = 0; i < 10_000 && performance.now() < deadline; i++) {
          if (c.brokers.every((b) => all.every((k) => b.currentView()?.includes(k)))) {
            marks.rejoinedAt = performance.now();
            break;
          }
          await sleep(50);
        }
        await sleep(1000);
      })();
      const load = await c.load({ durationMs: 5000, maxDurationMs: 120_000, until: fault });
      await c.quiesce(1500);
      const name = (keys: readonly string[]): string => keys.map((k) => c.brokerName(k)).join(',');
      const during = (b: typeof b1) => b.views().filter((v) => v.at >= marks.cutAt! && v.at <= marks.healAt!);
      const b3Views = during(b3).map((v) => name(v.live));
      const b3Dropped = during(b3).filter((v) => !all.every((k) => v.live.includes(k))).map((v) => `${Math.round(v.at - marks.cutAt!)}ms: ${name(v.live)}`);
      const majorityDroppedB3 = [b1, b2].map((b) => during(b).some((v) => !v.live.includes(b3.key)));
      // The partition happened: B1 and B2 lost their connection to B3.
      const peerDown = [b1, b2].map((b) => b.logs().some((l) => l.at >= marks.cutAt! && l.fields.event === 'peer-down' && l.fields.key === b3.key));
      const { summary, details } = fates(c, load.endedAt - load.startedAt, {
        partitionMs: PARTITION_MS,
        b3ViewsDuringPartition: b3Views,
        b3ViewAtHeal: name(b3.views().filter((v) => v.at <= marks.healAt!).pop()?.live ?? []),
        majorityDroppedB3,
        peerDownSeenByB1B2: peerDown,
        rejoinedAfterHealMs: marks.rejoinedAt === undefined ? null : Math.round(marks.rejoinedAt - marks.healAt!),
      });
      report(summary, (m) => t.diagnostic(m));
      assert.deepEqual(peerDown, [true, true], 'B1 and B2 saw their connection to B3 go down: the partition was real');
      assert.deepEqual(b3Dropped, [], 'B3, a minority of one, declared another broker dead');
      assert.ok(b3.currentView() !== undefined && all.every((k) => b3.currentView()!.includes(k)), `B3 lists all three at the end: ${name(b3.currentView() ?? [])}`);
      assertFates(c, summary, details, { noFailures: true });
      assert.ok(marks.rejoinedAt !== undefined, 'after the partition healed the three brokers agree again within 40 s');
    },
  );
});
