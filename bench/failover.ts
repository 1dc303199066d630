/**
 * `npm run bench:failover`: what a client sees when a broker fails under
 * load (issue 5). Three `meshd broker` processes, two worker processes, one
 * client in this process keeping K requests in flight (small unique payloads,
 * 20 ms handlers, default timeout 1000 ms and 2 retries); 1.5 s into the
 * load one broker is SIGKILLed, or SIGSTOPped for 5 s then SIGCONTed. For
 * each scenario and K it prints the fate of every request (lost, failed,
 * executed twice) and latencies as one JSON document on stdout.
 *
 *   npm run bench:failover [-- --k 16,64 --scenarios kill,stop --load-ms 5000]
 *
 * The cluster and the fate bookkeeping are the fault suite's
 * (spec/faults/harness.ts, spec/faults/fates.ts): the benchmark measures the
 * same thing the tests assert, at more load.
 */
import { parseArgs } from 'node:util';
import { after, sleep, withCluster } from '../spec/faults/harness.ts';
import type { Cluster } from '../spec/faults/harness.ts';
import { fates } from '../spec/faults/fates.ts';
import { progressFor, runBench } from './lib/run-bench.ts';

const progress = progressFor('failover');

type Scenario = 'kill' | 'stop';

interface Result {
  readonly scenario: string;
  readonly k: number;
  readonly requests: number;
  readonly replied: number;
  readonly failed: number;
  readonly lost: number;
  /** Extra executions of requests run more than once. */
  readonly duplicates: number;
  /** Requests run again without the dup flag (must be 0). */
  readonly duplicatesWithoutDup: number;
  readonly p50LatencyMs: number;
  readonly p99LatencyMs: number;
  readonly maxLatencyMs: number;
  /** p99 of the requests sent before the fault: the baseline of this run. */
  readonly p99BeforeFaultMs: number;
  /** Requests whose first attempt went to the failed broker and were in flight at the fault. */
  readonly hitByFault: number;
  /** From the fault to the first reply to one of those. */
  readonly faultToFirstSuccessMs: number | null;
  /** From the fault to the last reply to one of those. */
  readonly faultToLastHitSettledMs: number | null;
  /** From the fault until every request in flight at that moment was settled. */
  readonly faultToAllSettledMs: number | null;
  /** Longest time after the fault with no reply at all. */
  readonly longestReplyGapMs: number;
}

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

const round1 = (x: number): number => Math.round(x * 10) / 10;

async function runOne(scenario: Scenario, k: number, loadMs: number): Promise<Result> {
  return withCluster({ name: `failover-${scenario}-k${k}`, brokers: 3, workers: 2 }, async (c: Cluster) => {
    const victim = c.brokers[1]!;
    let faultAt = 0;
    const fault = after(1500, async () => {
      faultAt = performance.now();
      if (scenario === 'kill') {
        await victim.kill();
        return;
      }
      victim.signal('SIGSTOP');
      await sleep(5000);
      victim.signal('SIGCONT');
      await c.settled(15_000);
    });
    // First attempts go round-robin over the three brokers, by name, so the
    // requests the fault hit are known exactly.
    const keys = c.brokers.map((b) => b.key);
    const load = await c.load({ concurrency: k, durationMs: loadMs, until: fault, broker: (n) => keys[n % keys.length] });
    await c.quiesce(2000);
    const { summary } = fates(c, load.endedAt - load.startedAt);
    const done = c.records.filter((r) => r.end !== undefined);
    const latencies = done.map((r) => r.end! - r.start).sort((a, b) => a - b);
    const before = done
      .filter((r) => r.end! < faultAt)
      .map((r) => r.end! - r.start)
      .sort((a, b) => a - b);
    const baseline = percentile(before, 99);
    const inFlight = c.records.filter((r) => r.start <= faultAt && (r.end === undefined || r.end > faultAt));
    const hit = inFlight.filter((r) => r.broker === victim.key);
    const hitReplies = hit.filter((r) => r.outcome?.kind === 'reply' && r.end !== undefined).map((r) => r.end! - faultAt);
    const settled = inFlight.map((r) => r.end);
    const replyEnds = done
      .filter((r) => r.outcome?.kind === 'reply' && r.end! >= faultAt)
      .map((r) => r.end!)
      .sort((a, b) => a - b);
    let gap = 0;
    let prev = faultAt;
    for (const end of replyEnds) {
      gap = Math.max(gap, end - prev);
      prev = end;
    }
    return {
      scenario: scenario === 'kill' ? 'SIGKILL one broker of 3' : 'SIGSTOP one broker of 3 for 5 s, then SIGCONT',
      k,
      requests: summary.requests,
      replied: summary.replied,
      failed: summary.failed,
      lost: summary.lost,
      duplicates: summary.dupExecutions,
      duplicatesWithoutDup: summary.dupWithoutFlag,
      p50LatencyMs: round1(percentile(latencies, 50)),
      p99LatencyMs: round1(percentile(latencies, 99)),
      maxLatencyMs: round1(latencies[latencies.length - 1] ?? 0),
      p99BeforeFaultMs: round1(baseline),
      hitByFault: hit.length,
      faultToFirstSuccessMs: hitReplies.length > 0 ? round1(Math.min(...hitReplies)) : null,
      faultToLastHitSettledMs: hitReplies.length > 0 ? round1(Math.max(...hitReplies)) : null,
      faultToAllSettledMs: settled.every((e) => e !== undefined) && settled.length > 0 ? round1(Math.max(...settled.map((e) => e - faultAt))) : null,
      longestReplyGapMs: round1(gap),
    };
  });
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      k: { type: 'string', default: '16,64' },
      scenarios: { type: 'string', default: 'kill,stop' },
      'load-ms': { type: 'string', default: '5000' },
    },
  });
  const ks = values.k.split(',').map(Number);
  const scenarios = values.scenarios.split(',') as Scenario[];
  const loadMs = Number(values['load-ms']);
  if (ks.some((k) => !Number.isInteger(k) || k < 1 || k > 1024)) throw new Error('--k: integers from 1 to 1024, comma-separated');
  if (scenarios.some((s) => s !== 'kill' && s !== 'stop')) throw new Error('--scenarios: kill and/or stop');
  if (!Number.isInteger(loadMs) || loadMs < 2000 || loadMs > 60_000) throw new Error('--load-ms: 2000..60000');
  const results: Result[] = [];
  for (const scenario of scenarios) {
    for (const k of ks) {
      progress(`${scenario}, K=${k}`);
      const r = await runOne(scenario, k, loadMs);
      progress(`  ${r.requests} requests: lost ${r.lost}, failed ${r.failed}, duplicates ${r.duplicates}, p99 ${r.p99LatencyMs} ms, max ${r.maxLatencyMs} ms`);
      results.push(r);
    }
  }
  const load = (await import('node:os')).loadavg();
  process.stdout.write(
    `${JSON.stringify(
      {
        bench: 'failover',
        node: process.version,
        loadAverage: load.map((x) => round1(x)),
        setup: { brokers: 3, workers: 2, workerConcurrency: 16, handlerMs: 20, timeoutMs: 1000, retries: 2, faultAtMs: 1500, loadMs },
        results,
      },
      null,
      2,
    )}\n`,
  );
}

runBench(main, progress);
