/**
 * `npm run bench:compare -- --failover`: what a client of NATS and a client
 * of meshd see when the server they use fails under load.
 *
 * NATS runs as a cluster of three `nats-server` processes (the client is
 * connected to the first: no randomizing), meshd as three `meshd broker`
 * processes in a full mesh (the client is given all three and spreads its
 * requests over them); each system has two echo worker processes and one
 * client process, started fresh for every run. The client keeps K=16
 * requests of 4 KiB in flight for 8 s, every reply checked byte for byte,
 * with a per-request timeout of 2000 ms in both clients. At 3 s the parent
 * either SIGKILLs the first server (`kill`) or SIGSTOPs it for 5 s, then
 * SIGCONTs it (`stop`). Each run is one JSON line on stdout: requests, ok,
 * failed (by code), lost (never settled), duplicates executed (from the
 * workers' execution logs), latencies, the requests in flight at the fault,
 * the time from the fault to the first success, and the longest time
 * without a reply after it. The summary follows as one JSON document, and a
 * markdown table goes to bench/results/compare-failover.md (and into
 * README.md with --readme, where README.md has the block's markers).
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ChildGroup, PACKAGE_ROOT } from './child.ts';
import { machine, startSystem } from './compare-systems.ts';
import type { RunningSystem, SystemName } from './compare-systems.ts';
import { writeReadmeBlock } from './readme-block.ts';
import { round as roundTo } from './stats.ts';

export const FAILOVER_SCENARIOS = ['kill', 'stop'] as const;
export type FailoverScenario = (typeof FAILOVER_SCENARIOS)[number];
export const FAILOVER_SYSTEMS = ['nats', 'meshd-3'] as const satisfies readonly SystemName[];
export type FailoverSystem = (typeof FAILOVER_SYSTEMS)[number];

export interface FailoverOptions {
  /** Runs of each scenario and system (default 1). */
  readonly rounds?: number;
  /** Also write the table into README.md (if it has the markers). */
  readonly readme?: boolean;
  readonly scenarios?: readonly FailoverScenario[];
  readonly systems?: readonly FailoverSystem[];
}

/** The fixed setup of every run. */
const SETUP = {
  k: 16,
  payloadBytes: 4096,
  durationMs: 8000,
  settleMs: 5000,
  faultAtMs: 3000,
  stopMs: 5000,
  timeoutMs: 2000,
  workers: 2,
  warmup: { k: 16, count: 2000, maxMs: 5000, attempts: 20, pauseMs: 500 },
} as const;

const SCENARIO_TEXT: Record<FailoverScenario, string> = {
  kill: 'SIGKILL of the first server at 3 s',
  stop: 'SIGSTOP of the first server at 3 s, SIGCONT 5 s later',
};

const SYSTEM_TEXT: Record<FailoverSystem, string> = {
  nats: 'NATS (3-server cluster)',
  'meshd-3': 'meshd (3 brokers)',
};

/** What the client peer's `run` answers (bench/peers/load.mjs). */
interface LoadResult {
  readonly requests: number;
  readonly ok: number;
  readonly failed: number;
  readonly failures: Record<string, number>;
}

/** What the client peer's `timed` answers: [sentAtWallMs, settledAtWallMs or -1, outcome] per request. */
interface TimedResult {
  readonly k: number;
  readonly records: ReadonlyArray<readonly [number, number, string]>;
}

/** What a worker peer's `executions` answers. */
interface Executions {
  readonly seqs: readonly number[];
  readonly dropped: number;
}

/** One run: one system, one scenario. */
export interface FailoverRun {
  readonly round: number;
  readonly scenario: FailoverScenario;
  readonly system: FailoverSystem;
  readonly requests: number;
  readonly ok: number;
  /** Requests that settled with an error. */
  readonly failed: number;
  /** Failed requests by error code. */
  readonly failures: Record<string, number>;
  /** Replies that differ from the request. */
  readonly wrong: number;
  /** Requests still unsettled `settleMs` after the load ended. */
  readonly lost: number;
  /** Executions of a request beyond its first, over both workers. */
  readonly duplicatesExecuted: number;
  /** Executions the workers recorded (and how many their log dropped: must be 0). */
  readonly executions: number;
  readonly executionsDropped: number;
  /** Latency of every settled request (replies and errors), ms. */
  readonly p50LatencyMs: number;
  readonly p99LatencyMs: number;
  readonly maxLatencyMs: number;
  /** Requests that took 1 s or more to settle. */
  readonly slowerThan1s: number;
  /** When the fault came, ms after the first request was sent. */
  readonly faultAfterStartMs: number;
  readonly inFlightAtFault: number;
  /** From the fault to the first good reply to a request in flight at the fault (null: none). */
  readonly faultToFirstInFlightSuccessMs: number | null;
  /** From the fault to the first good reply to a request sent after the fault (null: none). */
  readonly faultToFirstNewSuccessMs: number | null;
  /** Longest time after the fault without a good reply (null: none after the fault). */
  readonly longestReplyGapMs: number | null;
  /** Failed or lost requests a worker executed anyway (a caller that retries them runs them twice). */
  readonly failedButExecuted: number;
  /** Good replies per second of the run, from the first request sent (the fault is in second 4). */
  readonly okPerSecond: readonly number[];
  /** When the failed, wrong and lost requests were sent and settled, ms relative to the fault (the first 20). */
  readonly notOk: ReadonlyArray<readonly [number, number | null, string]>;
}

/** A run's figures over its rounds: counts summed, times the worst (p50/p99: the median). */
export type FailoverSummary = Record<FailoverScenario, Partial<Record<FailoverSystem, SummaryCell>>>;

interface SummaryCell {
  readonly runs: number;
  readonly requests: number;
  readonly ok: number;
  readonly failed: number;
  readonly failures: Record<string, number>;
  readonly wrong: number;
  readonly lost: number;
  readonly duplicatesExecuted: number;
  readonly failedButExecuted: number;
  readonly inFlightAtFault: number;
  readonly p50LatencyMs: number;
  readonly p99LatencyMs: number;
  readonly maxLatencyMs: number;
  readonly faultToFirstInFlightSuccessMs: number | null;
  readonly faultToFirstNewSuccessMs: number | null;
  readonly longestReplyGapMs: number | null;
}

const wallMs = (): number => performance.timeOrigin + performance.now();
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function percentile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};

/** Warm-up until a whole run succeeds (NATS: the workers' queue subscriptions reach every server of the cluster), bounded. */
async function warmUp(system: RunningSystem, progress: (t: string) => void): Promise<void> {
  const { k, count, maxMs, attempts, pauseMs } = SETUP.warmup;
  let last = '';
  for (let attempt = 1; attempt <= attempts; attempt++) {
    const r = (await system.client.command('run', maxMs + 30_000, { k, count, maxMs, payloadBytes: SETUP.payloadBytes })) as LoadResult;
    if (r.requests === count && r.ok === count) return;
    last = `${r.ok} of ${r.requests} ok, failures ${JSON.stringify(r.failures)}`;
    progress(`  warm-up ${attempt}: ${last}; again in ${pauseMs} ms`);
    await sleep(pauseMs);
  }
  throw new Error(`${system.name}: warm-up did not succeed in ${attempts} attempts (last: ${last})`);
}

async function takeExecutions(system: RunningSystem): Promise<Executions[]> {
  return Promise.all(system.workers.map(async (w) => (await w.command('executions', 30_000)) as Executions));
}

/** Starts the system fresh, warms it up, runs the timed load with the fault, and measures. */
async function runOne(name: FailoverSystem, scenario: FailoverScenario, round: number, dir: string, group: ChildGroup, natsServer: string, progress: (t: string) => void): Promise<FailoverRun> {
  const system = await startSystem(name, { dir, group, workers: SETUP.workers, natsServers: 3, timeoutMs: SETUP.timeoutMs }, natsServer);
  const victim = system.servers[0]!;
  try {
    await warmUp(system, progress);
    await takeExecutions(system);
    const { k, durationMs, settleMs, payloadBytes } = SETUP;
    const timed = system.client.command('timed', durationMs + settleMs + 60_000, { k, durationMs, settleMs, payloadBytes }) as Promise<TimedResult>;
    // Seen by the await below; this only keeps a rejection during the fault from going unhandled.
    timed.catch(() => undefined);
    await sleep(SETUP.faultAtMs);
    const faultAt = wallMs();
    if (scenario === 'kill') {
      victim.signal('SIGKILL');
    } else {
      victim.signal('SIGSTOP');
      try {
        await sleep(SETUP.stopMs);
      } finally {
        victim.signal('SIGCONT');
      }
    }
    const result = await timed;
    const executions = await takeExecutions(system);
    if (scenario === 'kill' && (await victim.waitExit(5000)) === undefined) throw new Error(`${victim.label} (pid ${victim.pid}) still runs after SIGKILL`);
    return measure(name, scenario, round, result, executions, faultAt);
  } finally {
    victim.signal('SIGCONT');
    await system.close();
  }
}

function measure(system: FailoverSystem, scenario: FailoverScenario, round: number, result: TimedResult, executions: readonly Executions[], faultAt: number): FailoverRun {
  const records = result.records;
  let ok = 0;
  let wrong = 0;
  let lost = 0;
  const failures: Record<string, number> = {};
  const latencies: number[] = [];
  const notOk: Array<readonly [number, number | null, string]> = [];
  let firstInFlight: number | null = null;
  let firstNew: number | null = null;
  let inFlightAtFault = 0;
  const okAfterFault: number[] = [];
  const rel = (t: number): number => roundTo(t - faultAt, 1);
  for (const [sent, settled, outcome] of records) {
    const inFlight = sent <= faultAt && (settled < 0 || settled > faultAt);
    if (inFlight) inFlightAtFault++;
    if (settled >= 0) latencies.push(settled - sent);
    if (outcome === 'ok') {
      ok++;
      if (settled > faultAt) {
        okAfterFault.push(settled);
        if (inFlight && (firstInFlight === null || settled < firstInFlight)) firstInFlight = settled;
        if (sent > faultAt && (firstNew === null || settled < firstNew)) firstNew = settled;
      }
      continue;
    }
    if (outcome === 'wrong') wrong++;
    else if (outcome === 'unsettled') lost++;
    else failures[outcome] = (failures[outcome] ?? 0) + 1;
    if (notOk.length < 20) notOk.push([rel(sent), settled < 0 ? null : rel(settled), outcome]);
  }
  latencies.sort((a, b) => a - b);
  okAfterFault.sort((a, b) => a - b);
  let gap: number | null = null;
  if (okAfterFault.length > 0) {
    let prev = faultAt;
    gap = 0;
    for (const t of okAfterFault) {
      gap = Math.max(gap, t - prev);
      prev = t;
    }
  }
  const counts = new Map<number, number>();
  let executed = 0;
  for (const e of executions) {
    for (const seq of e.seqs) {
      counts.set(seq, (counts.get(seq) ?? 0) + 1);
      executed++;
    }
  }
  const firstSent = records.reduce((min, r) => Math.min(min, r[0]), Infinity);
  const okPerSecond: number[] = [];
  let failedButExecuted = 0;
  // The client numbers its requests from 0 in the order it sends them, as `records` lists them.
  records.forEach(([, settled, outcome], seq) => {
    if (outcome === 'ok') {
      const second = Math.floor((settled - firstSent) / 1000);
      while (okPerSecond.length <= second) okPerSecond.push(0);
      okPerSecond[second]!++;
    } else if (outcome !== 'wrong' && counts.has(seq)) {
      failedButExecuted++;
    }
  });
  const failed = Object.values(failures).reduce((a, b) => a + b, 0);
  return {
    round,
    scenario,
    system,
    requests: records.length,
    ok,
    failed,
    failures,
    wrong,
    lost,
    duplicatesExecuted: executed - counts.size,
    executions: executed,
    executionsDropped: executions.reduce((sum, e) => sum + e.dropped, 0),
    p50LatencyMs: roundTo(percentile(latencies, 0.5), 1),
    p99LatencyMs: roundTo(percentile(latencies, 0.99), 1),
    maxLatencyMs: roundTo(latencies[latencies.length - 1] ?? 0, 1),
    slowerThan1s: latencies.filter((l) => l >= 1000).length,
    faultAfterStartMs: Number.isFinite(firstSent) ? roundTo(faultAt - firstSent, 1) : 0,
    inFlightAtFault,
    faultToFirstInFlightSuccessMs: firstInFlight === null ? null : rel(firstInFlight),
    faultToFirstNewSuccessMs: firstNew === null ? null : rel(firstNew),
    longestReplyGapMs: gap === null ? null : roundTo(gap, 1),
    failedButExecuted,
    okPerSecond,
    notOk,
  };
}

/** The worst of some times, null if any run had none. */
const worst = (xs: ReadonlyArray<number | null>): number | null => (xs.some((x) => x === null) ? null : roundTo(Math.max(...(xs as number[])), 1));

function summarize(runs: readonly FailoverRun[]): FailoverSummary {
  const out = { kill: {}, stop: {} } as FailoverSummary;
  for (const scenario of FAILOVER_SCENARIOS) {
    for (const system of FAILOVER_SYSTEMS) {
      const mine = runs.filter((r) => r.scenario === scenario && r.system === system);
      if (mine.length === 0) continue;
      const sum = (get: (r: FailoverRun) => number): number => mine.reduce((s, r) => s + get(r), 0);
      const failures: Record<string, number> = {};
      for (const r of mine) for (const [code, n] of Object.entries(r.failures)) failures[code] = (failures[code] ?? 0) + n;
      out[scenario][system] = {
        runs: mine.length,
        requests: sum((r) => r.requests),
        ok: sum((r) => r.ok),
        failed: sum((r) => r.failed),
        failures,
        wrong: sum((r) => r.wrong),
        lost: sum((r) => r.lost),
        duplicatesExecuted: sum((r) => r.duplicatesExecuted),
        failedButExecuted: sum((r) => r.failedButExecuted),
        inFlightAtFault: roundTo(median(mine.map((r) => r.inFlightAtFault)), 1),
        p50LatencyMs: roundTo(median(mine.map((r) => r.p50LatencyMs)), 1),
        p99LatencyMs: roundTo(median(mine.map((r) => r.p99LatencyMs)), 1),
        maxLatencyMs: roundTo(Math.max(...mine.map((r) => r.maxLatencyMs)), 1),
        faultToFirstInFlightSuccessMs: worst(mine.map((r) => r.faultToFirstInFlightSuccessMs)),
        faultToFirstNewSuccessMs: worst(mine.map((r) => r.faultToFirstNewSuccessMs)),
        longestReplyGapMs: worst(mine.map((r) => r.longestReplyGapMs)),
      };
    }
  }
  return out;
}

/** meshd's target in each scenario: nothing lost, nothing failed, max latency under 1 s. */
function targets(summary: FailoverSummary): Partial<Record<FailoverScenario, { met: boolean; lost: number; failed: number; wrong: number; maxLatencyMs: number }>> {
  const out: Partial<Record<FailoverScenario, { met: boolean; lost: number; failed: number; wrong: number; maxLatencyMs: number }>> = {};
  for (const scenario of FAILOVER_SCENARIOS) {
    const m = summary[scenario]['meshd-3'];
    if (m) out[scenario] = { met: m.lost === 0 && m.failed === 0 && m.wrong === 0 && m.maxLatencyMs < 1000, lost: m.lost, failed: m.failed, wrong: m.wrong, maxLatencyMs: m.maxLatencyMs };
  }
  return out;
}

const ms = (x: number | null): string => (x === null ? '—' : `${x.toLocaleString('en-US')} ms`);

function markdown(summary: FailoverSummary, rounds: number, machineLine: string): string {
  const columns: Array<{ title: string; cell: SummaryCell }> = [];
  for (const scenario of FAILOVER_SCENARIOS) {
    for (const system of FAILOVER_SYSTEMS) {
      const cell = summary[scenario][system];
      if (cell) columns.push({ title: `${scenario === 'kill' ? 'SIGKILL' : 'SIGSTOP 5 s'}: ${SYSTEM_TEXT[system]}`, cell });
    }
  }
  const failuresText = (c: SummaryCell): string => {
    const codes = Object.entries(c.failures).map(([code, n]) => `${n} ${code}`);
    return codes.length === 0 ? `${c.failed}` : `${c.failed} (${codes.join(', ')})`;
  };
  const rows: Array<[string, (c: SummaryCell) => string]> = [
    ['requests', (c) => c.requests.toLocaleString('en-US')],
    ['lost (never settled)', (c) => String(c.lost)],
    ['failed', failuresText],
    ['wrong replies', (c) => String(c.wrong)],
    ['duplicates executed', (c) => String(c.duplicatesExecuted)],
    ['failed or lost, yet executed', (c) => String(c.failedButExecuted)],
    ['in flight at the fault', (c) => String(c.inFlightAtFault)],
    ['p50 latency', (c) => ms(c.p50LatencyMs)],
    ['p99 latency', (c) => ms(c.p99LatencyMs)],
    ['max latency', (c) => ms(c.maxLatencyMs)],
    ['fault → first success (in flight at the fault)', (c) => ms(c.faultToFirstInFlightSuccessMs)],
    ['fault → first success (sent after the fault)', (c) => ms(c.faultToFirstNewSuccessMs)],
    ['longest gap without a reply after the fault', (c) => ms(c.longestReplyGapMs)],
  ];
  const lines = [`| | ${columns.map((c) => c.title).join(' | ')} |`, `|---|${columns.map(() => '---:').join('|')}|`];
  for (const [name, get] of rows) lines.push(`| ${name} | ${columns.map((c) => get(c.cell)).join(' | ')} |`);
  const date = new Date().toISOString().slice(0, 10);
  const over = rounds === 1 ? 'One run of each' : `${rounds} runs of each (counts summed; max latency and the times after the fault: the worst run, — if a run had none; p50/p99: the median over runs)`;
  return (
    `${lines.join('\n')}\n\n` +
    `K=${SETUP.k} requests in flight, ${SETUP.payloadBytes / 1024} KiB echo, 2 worker processes, 1 client process, ${SETUP.durationMs / 1000} s of load; ` +
    `at ${SETUP.faultAtMs / 1000} s the first server is SIGKILLed, or SIGSTOPped for ${SETUP.stopMs / 1000} s then SIGCONTed. ` +
    `NATS: a 3-server cluster, the client connected to the first (no randomizing); core request-reply, no retry. ` +
    `meshd: 3 brokers in a full mesh, the client given all three (it spreads requests over them; default retries). ` +
    `Per-request timeout ${SETUP.timeoutMs} ms in both clients. ` +
    `The client is closed-loop: each of the K loops sends its next request only once the previous one settled, so while every request in flight waits out its timeout no new one is sent. Lost: no outcome ${SETUP.settleMs / 1000} s after the load ended; latencies include failed requests; — : no such success. ` +
    `${over}, systems alternating; measured ${date} on ${machineLine}. \`npm run bench:compare -- --failover\` reproduces it.\n`
  );
}

/**
 * Runs every scenario against every system (`rounds` times, the order
 * alternating), prints one JSON line per run and the summary, and writes
 * the table. Every process it starts is stopped by pid before it returns.
 */
export async function runFailover(natsServer: string, natsVersion: string, progress: (t: string) => void, options: FailoverOptions = {}): Promise<void> {
  const rounds = options.rounds ?? 1;
  if (!Number.isInteger(rounds) || rounds < 1 || rounds > 100) throw new Error(`--failover-rounds: a whole number from 1 to 100, got ${rounds}`);
  const scenarios = options.scenarios ?? FAILOVER_SCENARIOS;
  const systems = options.systems ?? FAILOVER_SYSTEMS;
  progress(`failover: ${scenarios.join(', ')} × ${systems.join(', ')}, ${rounds} round(s); per-request timeout ${SETUP.timeoutMs} ms in both clients`);
  const group = new ChildGroup();
  const killAll = (): void => group.killAll();
  process.once('exit', killAll);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'meshd-compare-failover-'));
  const runs: FailoverRun[] = [];
  try {
    let turn = 0;
    for (let round = 1; round <= rounds; round++) {
      for (const scenario of scenarios) {
        // Alternate which system goes first, run after run.
        const order = turn++ % 2 === 0 ? systems : [...systems].reverse();
        for (const name of order) {
          progress(`round ${round}/${rounds}: ${name}, ${SCENARIO_TEXT[scenario]}`);
          const run = await runOne(name, scenario, round, dir, group, natsServer, progress);
          runs.push(run);
          const failures = Object.entries(run.failures).map(([c, n]) => `${n} ${c}`).join(', ');
          progress(
            `  ${run.requests} requests: lost ${run.lost}, failed ${run.failed}${failures ? ` (${failures})` : ''}, wrong ${run.wrong}, duplicates ${run.duplicatesExecuted}, ` +
              `max ${run.maxLatencyMs} ms, fault → first success ${run.faultToFirstInFlightSuccessMs ?? '—'} ms (in flight) / ${run.faultToFirstNewSuccessMs ?? '—'} ms (new)`,
          );
          process.stdout.write(`${JSON.stringify(run)}\n`);
        }
      }
    }
  } finally {
    group.killAll();
    process.removeListener('exit', killAll);
    rmSync(dir, { recursive: true, force: true });
  }
  const summary = summarize(runs);
  const machineLine = machine(natsVersion);
  const setup = { ...SETUP, natsServers: 3, meshdBrokers: 3, faultOn: 'servers[0]: the server the NATS client is connected to; the first of the meshd client\'s three brokers' };
  process.stdout.write(`${JSON.stringify({ bench: 'compare-failover', summary, meshdTarget: targets(summary), rounds, setup, machine: machineLine }, null, 2)}\n`);
  const table = markdown(summary, rounds, machineLine);
  mkdirSync(path.join(PACKAGE_ROOT, 'bench', 'results'), { recursive: true });
  writeFileSync(path.join(PACKAGE_ROOT, 'bench', 'results', 'compare-failover.md'), `# meshd beside NATS: failover\n\n${table}`);
  progress('table written to bench/results/compare-failover.md');
  if (options.readme === true) {
    if (writeReadmeBlock('compare-failover', table)) progress('table written into README.md');
    else progress('README.md has no <!-- bench:compare-failover:begin/end --> markers: not written there');
  }
}
