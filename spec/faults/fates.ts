// The fate of every request of a scenario: replied once, failed with a clear
// error, executed twice (with or without dup), or lost. Computed from the
// client's request records and the executions the workers reported; printed
// as one JSON line; checked against the required fates of issue 5.
import assert from 'node:assert/strict';
import { appendFileSync } from 'node:fs';
import type { Cluster, Execution, RequestRecord } from './harness.ts';

/**
 * Executions of one request reported by two workers within this many ms are
 * not ordered (each worker's lines come through its own pipe).
 */
const ORDER_SLACK_MS = 25;


/** Numbers of one scenario. */
export interface FateSummary {
  scenario: string;
  /** Wall time of the scenario from cluster start to the end of the checks, ms. */
  durationMs: number;
  /** Wall time of the load, ms. */
  loadMs: number;
  requests: number;
  replied: number;
  failed: number;
  failedCodes: Record<string, number>;
  /** Failures that are not a MeshError with a MESH_ERR_* code. */
  unclear: number;
  /** Never settled within deadline + grace, or replied with the wrong payload. */
  lost: number;
  wrong: number;
  /** Not settled within deadline + grace. */
  unsettled: number;
  executions: number;
  /** Requests that ran more than once. */
  executedTwice: number;
  /** Executions beyond the first of their request. */
  dupExecutions: number;
  /** Requests that ran more than once where an execution after the first lacked dup. */
  dupWithoutFlag: number;
  /** Requests run again although every earlier execution's worker was alive (not killed before the rerun), and not for the reason below. */
  rerunByLiveWorker: number;
  /** Requests run again because the broker that dispatched them crashed or froze before the client heard which worker had them (allowed, with dup). */
  rerunAfterBrokerStop: number;
  /** Replies for which no worker reported an execution. */
  repliedUnexecuted: number;
  maxLatencyMs: number;
  p99LatencyMs: number;
  /** Longest time to a failure, ms. */
  maxFailMs: number;
  /** Extra numbers of the scenario. */
  extra: Record<string, unknown>;
}

/** Details of the requests that broke a rule, for assertion messages. */
export interface FateDetails {
  readonly lost: string[];
  readonly unclear: string[];
  readonly dupWithoutFlag: string[];
  readonly rerunByLiveWorker: string[];
  readonly rerunAfterBrokerStop: string[];
  readonly repliedUnexecuted: string[];
  readonly slow: string[];
}

function describe(c: Cluster, r: RequestRecord, execs: readonly Execution[]): string {
  const outcome = r.outcome === undefined ? 'unsettled' : r.outcome.kind === 'reply' ? (r.outcome.ok ? 'reply' : 'WRONG reply') : `${r.outcome.code}: ${r.outcome.message}`;
  const t0 = c.startedAt;
  const brokerName = (key: string): string => c.brokers.find((b) => b.key === key)?.name ?? key.slice(0, 8);
  const ex = execs.map((e) => `${c.workers[e.worker]?.name ?? e.worker}(pid ${e.pid}) id=${e.idHex.slice(0, 12)} attempt=${e.attempt} dup=${e.dup} via=${brokerName(e.broker)} at=${Math.round(e.at - t0)}ms`);
  const workerName = (key: string): string => c.workers.find((w) => w.party.key === key)?.name ?? key.slice(0, 8);
  const heard = [...new Set(execs.map((e) => e.idHex))].flatMap((id) => c.dispatched.get(id) ?? []).map((d) => `${workerName(d.worker)} from ${brokerName(d.broker)} at=${Math.round(d.at - t0)}ms`);
  return `#${r.seq} ${r.payload} start=${Math.round(r.start - t0)}ms ${r.end === undefined ? '' : `took=${Math.round(r.end - r.start)}ms `}${outcome}; executions: [${ex.join('; ')}]; client heard DISPATCHED: [${heard.join('; ')}]`;
}

/** Computes the fates of every request the cluster's client sent. */
export function fates(c: Cluster, loadMs: number, extra: Record<string, unknown> = {}): { summary: FateSummary; details: FateDetails } {
  const byPayload = new Map<string, Execution[]>();
  for (const e of c.executions) {
    const list = byPayload.get(e.payload) ?? [];
    list.push(e);
    byPayload.set(e.payload, list);
  }
  const failedCodes: Record<string, number> = {};
  const details: FateDetails = { lost: [], unclear: [], dupWithoutFlag: [], rerunByLiveWorker: [], rerunAfterBrokerStop: [], repliedUnexecuted: [], slow: [] };
  const latencies: number[] = [];
  let replied = 0;
  let failed = 0;
  let unclear = 0;
  let wrong = 0;
  let unsettled = 0;
  let executedTwice = 0;
  let dupExecutions = 0;
  let dupWithoutFlag = 0;
  let rerun = 0;
  let rerunAfterBrokerStop = 0;
  let unexecuted = 0;
  let maxFailMs = 0;
  for (const r of c.records) {
    const execs = (byPayload.get(r.payload) ?? []).slice().sort((a, b) => a.at - b.at);
    if (r.outcome === undefined || r.end! - r.start > r.timeout + r.graceMs) {
      // Never settled, or settled after its deadline + grace: lost either way.
      unsettled++;
      details.lost.push(describe(c, r, execs));
    } else if (r.outcome.kind === 'reply') {
      latencies.push(r.end! - r.start);
      if (r.outcome.ok) replied++;
      else {
        wrong++;
        details.lost.push(describe(c, r, execs));
      }
      if (execs.length === 0) {
        unexecuted++;
        details.repliedUnexecuted.push(describe(c, r, execs));
      }
    } else {
      failed++;
      failedCodes[r.outcome.code] = (failedCodes[r.outcome.code] ?? 0) + 1;
      maxFailMs = Math.max(maxFailMs, r.end! - r.start);
      if (!/^MESH_ERR_[A-Z_]+$/.test(r.outcome.code)) {
        unclear++;
        details.unclear.push(describe(c, r, execs));
      }
    }
    if (execs.length > 1) {
      executedTwice++;
      dupExecutions += execs.length - 1;
      // Every execution after the first must carry dup. Two executions starting
      // within ORDER_SLACK_MS of each other may be seen here in either order.
      const late = execs.some((e, j) => j > 0 && !e.dup && e.at - execs[0]!.at > ORDER_SLACK_MS);
      if (late || execs.filter((e) => !e.dup).length > 1) {
        dupWithoutFlag++;
        details.dupWithoutFlag.push(describe(c, r, execs));
      }
      // A rerun is justified when every earlier execution's worker had been
      // killed by then, or when the broker that dispatched it was killed or
      // frozen before the client heard which worker had it (its DISPATCHED
      // goes at the end of the turn that dispatched): the client's resend
      // then carries no worker hint (docs/architecture.md).
      const reasons = execs.flatMap((later, j) => execs.slice(0, j).map((earlier) => {
        const killedAt = c.workers[earlier.worker]?.killedAt;
        if (killedAt !== undefined && killedAt <= later.at) return 'worker';
        const stops = c.brokers.find((b) => b.key === earlier.broker)?.stops ?? [];
        const workerKey = c.workers[earlier.worker]?.party.key;
        const heard = (c.dispatched.get(earlier.idHex) ?? []).some((d) => d.worker === workerKey && d.at <= later.at);
        return !heard && stops.some((at) => at <= later.at) ? 'broker' : 'none';
      }));
      if (reasons.includes('none')) {
        rerun++;
        details.rerunByLiveWorker.push(describe(c, r, execs));
      } else if (reasons.includes('broker')) {
        rerunAfterBrokerStop++;
        details.rerunAfterBrokerStop.push(describe(c, r, execs));
      }
    }
  }
  latencies.sort((a, b) => a - b);
  const p99 = latencies.length === 0 ? 0 : latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * 0.99))]!;
  const max = latencies.length === 0 ? 0 : latencies[latencies.length - 1]!;
  for (const r of c.records) {
    if (r.outcome?.kind === 'reply' && r.end! - r.start >= 1000) details.slow.push(describe(c, r, byPayload.get(r.payload) ?? []));
  }
  const summary: FateSummary = {
    scenario: c.name,
    durationMs: Math.round(performance.now() - c.startedAt),
    loadMs: Math.round(loadMs),
    requests: c.records.length,
    replied,
    failed,
    failedCodes,
    unclear,
    lost: unsettled + wrong,
    wrong,
    unsettled,
    executions: c.executions.length,
    executedTwice,
    dupExecutions,
    dupWithoutFlag,
    rerunByLiveWorker: rerun,
    rerunAfterBrokerStop,
    repliedUnexecuted: unexecuted,
    maxLatencyMs: Math.round(max),
    p99LatencyMs: Math.round(p99),
    maxFailMs: Math.round(maxFailMs),
    extra: {
      ...extra,
      clientDisconnects: c.clientEvents.filter((e) => e.event === 'disconnect').length,
      ...(details.rerunByLiveWorker.length > 0 ? { rerunExamples: details.rerunByLiveWorker.slice(0, 3) } : {}),
      ...(details.rerunAfterBrokerStop.length > 0 ? { rerunAfterBrokerStopExamples: details.rerunAfterBrokerStop.slice(0, 3) } : {}),
    },
  };
  return { summary, details };
}

/**
 * Reports the summary as one JSON line: through `diagnostic` (t.diagnostic,
 * shown by the test reporter) or else on stderr; and appended to
 * $FAULT_SUMMARY_FILE when set.
 */
export function report(summary: FateSummary, diagnostic?: (message: string) => void): void {
  const line = JSON.stringify(summary);
  if (diagnostic) diagnostic(`fault-summary ${line}`);
  else process.stderr.write(`fault-summary ${line}\n`);
  const file = process.env.FAULT_SUMMARY_FILE;
  if (file) appendFileSync(file, `${line}\n`);
}

const first = (list: readonly string[], n = 5): string => list.slice(0, n).join('\n  ') + (list.length > n ? `\n  ... and ${list.length - n} more` : '');

/** What a scenario requires beyond the rules that hold everywhere. */
export interface Required {
  /** failed = 0 and every request answered in under `maxLatencyMs` (scenarios 1-4). */
  readonly noFailures?: boolean;
  readonly maxLatencyMs?: number;
  /** No request executed twice by a worker that stayed alive (scenarios 1-4). */
  readonly noRerunByLiveWorker?: boolean;
  /** Failures must settle by their deadline + this slack, ms. */
  readonly failByDeadlineSlackMs?: number;
}

/**
 * Asserts the required fates: everywhere lost = 0, no unclear error, no
 * duplicate execution without dup, no reply without an execution; plus
 * `required`.
 */
export function assertFates(c: Cluster, s: FateSummary, d: FateDetails, required: Required = {}): void {
  const problems: string[] = [];
  if (s.requests === 0) problems.push('no request was sent');
  if (s.lost > 0) problems.push(`lost ${s.lost} (unsettled ${s.unsettled}, wrong payload ${s.wrong}):\n  ${first(d.lost)}`);
  if (s.unclear > 0) problems.push(`${s.unclear} failures without a MESH_ERR_* code:\n  ${first(d.unclear)}`);
  if (s.dupWithoutFlag > 0) problems.push(`${s.dupWithoutFlag} requests executed twice without dup:\n  ${first(d.dupWithoutFlag)}`);
  if (s.repliedUnexecuted > 0) problems.push(`${s.repliedUnexecuted} replies without a reported execution:\n  ${first(d.repliedUnexecuted)}`);
  if (required.noFailures && s.failed > 0) {
    const failures = c.records.filter((r) => r.outcome?.kind === 'error').map((r) => `#${r.seq} ${r.payload} start=${Math.round(r.start - c.startedAt)}ms ${(r.outcome as { code: string; message: string }).code}: ${(r.outcome as { message: string }).message}`);
    problems.push(`${s.failed} requests failed (${JSON.stringify(s.failedCodes)}):\n  ${first(failures)}`);
  }
  if (required.maxLatencyMs !== undefined && s.maxLatencyMs >= required.maxLatencyMs) problems.push(`max latency ${s.maxLatencyMs} ms (limit < ${required.maxLatencyMs} ms):\n  ${first(d.slow)}`);
  if (required.noRerunByLiveWorker && s.rerunByLiveWorker > 0) problems.push(`${s.rerunByLiveWorker} requests executed again although the worker that had them stayed alive:\n  ${first(d.rerunByLiveWorker)}`);
  if (required.failByDeadlineSlackMs !== undefined) {
    const late = c.records.filter((r) => r.outcome?.kind === 'error' && r.end! - r.start > r.timeout + required.failByDeadlineSlackMs!);
    if (late.length > 0) problems.push(`${late.length} failures came later than deadline + ${required.failByDeadlineSlackMs} ms: ${late.slice(0, 5).map((r) => `#${r.seq} after ${Math.round(r.end! - r.start)} ms`).join(', ')}`);
  }
  assert.equal(problems.length, 0, `${c.name}: ${JSON.stringify(s)}\n${problems.join('\n')}`);
}
