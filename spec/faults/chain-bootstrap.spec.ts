// Fault scenario 8 (issue 5): a chain bootstrap. Five brokers, each started
// with only the next one as --peer (the last with the one before it),
// converge to every broker listing all five as live within 5 quorum rounds
// of the last one starting. Read from their `brokers` log events.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sleep, withCluster } from './harness.ts';
import { report } from './fates.ts';
import type { FateSummary } from './fates.ts';

const N = 5;
const ROUND_MS = 1000;
const ROUNDS = 5;

test('chain bootstrap of 5 brokers converges to all-know-all within 5 rounds', { timeout: 120_000 }, async (t) => {
  await withCluster(
    {
      name: 'chain-bootstrap',
      brokers: N,
      workers: 0,
      client: false,
      gossipIntervalMs: ROUND_MS,
      peers: (i, c) => [c.brokers[i === N - 1 ? i - 1 : i + 1]!.url],
    },
    async (c) => {
      // Cluster.start waits until every broker lists all five (settled), bounded; measure from the last `listening`.
      const lastListening = Math.max(...c.brokers.map((b) => b.proc!.lines.find((l) => l.text.startsWith('listening '))!.at));
      const all = c.brokers.map((b) => b.key);
      const convergedAt = c.brokers.map((b) => b.views().find((v) => all.every((k) => v.live.includes(k)))?.at);
      const slowest = Math.max(...convergedAt.map((x) => x ?? Infinity));
      const ms = slowest - lastListening;
      // Nobody drops anyone afterwards (no flapping) over 2 more rounds.
      await sleep(2 * ROUND_MS);
      const flaps = c.brokers.flatMap((b) => b.views().filter((v) => v.at > slowest && !all.every((k) => v.live.includes(k))).map((v) => `${b.name}: ${v.live.map((k) => c.brokerName(k)).join(',')}`));
      const summary: FateSummary = {
        scenario: c.name,
        durationMs: Math.round(performance.now() - c.startedAt),
        loadMs: 0,
        requests: 0,
        replied: 0,
        failed: 0,
        failedCodes: {},
        unclear: 0,
        lost: 0,
        wrong: 0,
        unsettled: 0,
        executions: 0,
        executedTwice: 0,
        dupExecutions: 0,
        dupWithoutFlag: 0,
        rerunByLiveWorker: 0, rerunAfterBrokerStop: 0,
        repliedUnexecuted: 0,
        maxLatencyMs: 0,
        p99LatencyMs: 0,
        maxFailMs: 0,
        extra: { convergedMs: Math.round(ms), rounds: Number((ms / ROUND_MS).toFixed(2)), perBrokerMs: convergedAt.map((x) => (x === undefined ? null : Math.round(x - lastListening))), flaps },
      };
      report(summary, (m) => t.diagnostic(m));
      assert.ok(ms <= ROUNDS * ROUND_MS, `converged ${Math.round(ms)} ms after the last broker started: more than ${ROUNDS} rounds of ${ROUND_MS} ms`);
      assert.deepEqual(flaps, [], 'a converged view lost a broker');
    },
  );
});
