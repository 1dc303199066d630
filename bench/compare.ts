/**
 * `npm run bench:compare`: meshd beside NATS, measured the way users run
 * them, in one invocation with the systems alternating inside each round.
 *
 * Every round starts each system fresh: NATS (one `nats-server`, a queue
 * group, the client's request API), meshd with one broker, and meshd with
 * three brokers (the client and the workers given all three). Each has two
 * echo worker processes and one client process, all plain-JS apps with
 * Node's default flags; the meshd broker runs as `meshd broker` (the CLI).
 * The client sends 4 KiB payloads and checks every reply byte for byte, at
 * K=1 (latency) and K=64 (throughput). Server CPU per request is read from
 * /proc. Each round prints one JSON line on stdout; the summary (medians and
 * meshd/NATS ratios) follows as one JSON document, and a markdown table is
 * written to bench/results/compare.md (and into README.md with --readme).
 *
 *   npm run bench:compare [-- --rounds 5 --k1-count 3000 --k64-count 60000]
 *   npm run bench:compare -- --rounds 1 --systems meshd-1 --profile DIR
 *       (a --cpu-prof profile of every meshd process in DIR/SYSTEM-round-N/ROLE/;
 *        summarize one with bench/lib/cpuprofile-top.ts)
 *
 * With --failover it measures failover instead (bench/lib/compare-failover.ts):
 * a 3-server NATS cluster beside 3 meshd brokers, the server the client uses
 * SIGKILLed, or SIGSTOPped for 5 s, under load at K=16.
 *
 *   npm run bench:compare -- --failover [--failover-rounds 3] [--readme]
 *
 * With --scale it measures scale instead (bench/lib/compare-scale.ts): one
 * server with 1,000 idle nodes (NATS beside meshd), and one meshd broker
 * with 10,000 requests queued for a slow service.
 *
 *   npm run bench:compare -- --scale [--scale-idle 1000] [--scale-queued 10000]
 *       [--scale-parts idle-nats,idle-meshd,queue] [--readme]
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { ChildGroup, PACKAGE_ROOT } from './lib/child.ts';
import { runFailover } from './lib/compare-failover.ts';
import { runScale, SCALE_PARTS } from './lib/compare-scale.ts';
import type { ScalePart } from './lib/compare-scale.ts';
import { cpuMsOf, machine, preflight, rssOf, startSystem, SYSTEMS } from './lib/compare-systems.ts';
import type { RunningSystem, SystemName } from './lib/compare-systems.ts';
import { writeReadmeBlock } from './lib/readme-block.ts';
import { progressFor, runBench } from './lib/run-bench.ts';
import { MIB, ratio, round as roundTo } from './lib/stats.ts';

const progress = progressFor('compare');

/** What the client peer's `run` answers (bench/peers/load.mjs). */
interface LoadResult {
  readonly k: number;
  readonly requests: number;
  readonly ok: number;
  readonly wrong: number;
  readonly failed: number;
  readonly failures: Record<string, number>;
  readonly elapsedMs: number;
  readonly requestsPerSec: number;
  readonly latencyUs: { readonly p50: number; readonly p99: number; readonly max: number };
}

/** One system in one round. */
interface SystemRound {
  readonly round: number;
  readonly system: SystemName;
  readonly k1: LoadResult;
  readonly k64: LoadResult;
  /** CPU of the server processes (nats-server or every broker) during the K=64 run, µs per request. */
  readonly serverCpuUsPerRequest: number;
  /** CPU of client + workers during the K=64 run, µs per request. */
  readonly appCpuUsPerRequest: number;
  /** RSS of the server processes after the K=64 run, MiB (summed). */
  readonly serverRssMiB: number;
}

const METRICS = {
  'K=1 p50 µs': (r: SystemRound) => r.k1.latencyUs.p50,
  'K=1 p99 µs': (r: SystemRound) => r.k1.latencyUs.p99,
  'K=1 max µs': (r: SystemRound) => r.k1.latencyUs.max,
  'K=64 req/s': (r: SystemRound) => r.k64.requestsPerSec,
  'K=64 p50 µs': (r: SystemRound) => r.k64.latencyUs.p50,
  'K=64 p99 µs': (r: SystemRound) => r.k64.latencyUs.p99,
  'server CPU µs/req': (r: SystemRound) => r.serverCpuUsPerRequest,
  'apps CPU µs/req': (r: SystemRound) => r.appCpuUsPerRequest,
  'server RSS MiB': (r: SystemRound) => r.serverRssMiB,
} as const;
type MetricName = keyof typeof METRICS;

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};

const cpuOf = (pids: readonly number[]): number => pids.reduce((sum, pid) => sum + cpuMsOf(pid), 0);

async function measure(system: RunningSystem, round: number, counts: { k1: number; k64: number; warmup: number }): Promise<SystemRound> {
  const run = async (k: number, count: number, maxMs: number): Promise<LoadResult> =>
    (await system.client.command('run', maxMs + 30_000, { k, count, maxMs, payloadBytes: 4096 })) as LoadResult;
  await run(64, counts.warmup, 10_000);
  const k1 = await run(1, counts.k1, 10_000);
  const serverPids = system.servers.map((s) => s.pid);
  const appPids = [system.client.pid, ...system.workers.map((w) => w.pid)];
  const server0 = cpuOf(serverPids);
  const app0 = cpuOf(appPids);
  const k64 = await run(64, counts.k64, 10_000);
  const perRequest = (ms: number): number => roundTo((ms * 1000) / Math.max(1, k64.requests), 1);
  const result: SystemRound = {
    round,
    system: system.name,
    k1,
    k64,
    serverCpuUsPerRequest: perRequest(cpuOf(serverPids) - server0),
    appCpuUsPerRequest: perRequest(cpuOf(appPids) - app0),
    serverRssMiB: roundTo(serverPids.reduce((sum, pid) => sum + rssOf(pid), 0) / MIB, 1),
  };
  for (const r of [k1, k64]) {
    if (r.wrong > 0 || r.failed > 0 || r.ok !== r.requests) throw new Error(`${system.name} round ${round} K=${r.k}: ${r.wrong} wrong and ${r.failed} failed replies of ${r.requests} (${JSON.stringify(r.failures)})`);
  }
  return result;
}

function summarize(rounds: readonly SystemRound[]): Record<SystemName, Record<MetricName, number>> {
  const out = {} as Record<SystemName, Record<MetricName, number>>;
  for (const system of SYSTEMS) {
    const mine = rounds.filter((r) => r.system === system);
    out[system] = Object.fromEntries(Object.entries(METRICS).map(([name, get]) => [name, roundTo(median(mine.map(get)), 1)])) as Record<MetricName, number>;
  }
  return out;
}

function ratios(summary: Record<SystemName, Record<MetricName, number>>): Record<string, Record<string, number>> {
  const out: Record<string, Record<string, number>> = {};
  for (const system of ['meshd-1', 'meshd-3'] as const) {
    out[`${system}/nats`] = {
      'K=1 p50': ratio(summary[system]['K=1 p50 µs'], summary.nats['K=1 p50 µs']),
      'K=1 p99': ratio(summary[system]['K=1 p99 µs'], summary.nats['K=1 p99 µs']),
      'K=64 req/s': ratio(summary[system]['K=64 req/s'], summary.nats['K=64 req/s']),
      'K=64 p99': ratio(summary[system]['K=64 p99 µs'], summary.nats['K=64 p99 µs']),
    };
  }
  return out;
}

function markdown(summary: Record<SystemName, Record<MetricName, number>>, roundCount: number, machineLine: string): string {
  const names = Object.keys(METRICS) as MetricName[];
  const rows = [`| | ${SYSTEMS.join(' | ')} | meshd-1 / nats |`, `|---|${SYSTEMS.map(() => '---:').join('|')}|---:|`];
  for (const name of names) {
    const cells = SYSTEMS.map((s) => summary[s][name].toLocaleString('en-US'));
    rows.push(`| ${name} | ${cells.join(' | ')} | ×${ratio(summary['meshd-1'][name], summary.nats[name])} |`);
  }
  const date = new Date().toISOString().slice(0, 10);
  return `${rows.join('\n')}\n\nMedians of ${roundCount} rounds (systems alternating within each round), 4 KiB echo, 2 worker processes, 1 client process; measured ${date} on ${machineLine}. \`npm run bench:compare\` reproduces it.\n`;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      rounds: { type: 'string', default: '5' },
      'k1-count': { type: 'string', default: '3000' },
      'k64-count': { type: 'string', default: '60000' },
      warmup: { type: 'string', default: '3000' },
      systems: { type: 'string', default: SYSTEMS.join(',') },
      readme: { type: 'boolean', default: false },
      profile: { type: 'string' },
      failover: { type: 'boolean', default: false },
      'failover-rounds': { type: 'string', default: '1' },
      scale: { type: 'boolean', default: false },
      'scale-idle': { type: 'string', default: '1000' },
      'scale-processes': { type: 'string', default: '4' },
      'scale-queued': { type: 'string', default: '10000' },
      'scale-idle-ms': { type: 'string', default: '10000' },
      'scale-parts': { type: 'string', default: SCALE_PARTS.join(',') },
    },
  });
  const { natsServer, natsVersion } = preflight(progress);
  if (values.failover) {
    await runFailover(natsServer, natsVersion, progress, { rounds: Number(values['failover-rounds']), readme: values.readme });
    return;
  }
  if (values.scale) {
    const parts = values['scale-parts'].split(',') as ScalePart[];
    for (const p of parts) if (!SCALE_PARTS.includes(p)) throw new Error(`unknown scale part ${p} (known: ${SCALE_PARTS.join(', ')})`);
    await runScale(natsServer, natsVersion, progress, {
      parts,
      idle: Number(values['scale-idle']),
      processes: Number(values['scale-processes']),
      queued: Number(values['scale-queued']),
      idleMs: Number(values['scale-idle-ms']),
      readme: values.readme,
      profileDir: values.profile === undefined ? undefined : path.resolve(values.profile),
    });
    return;
  }
  const roundCount = Number(values.rounds);
  const counts = { k1: Number(values['k1-count']), k64: Number(values['k64-count']), warmup: Number(values.warmup) };
  const systems = values.systems.split(',') as SystemName[];
  for (const s of systems) if (!SYSTEMS.includes(s)) throw new Error(`unknown system ${s} (known: ${SYSTEMS.join(', ')})`);
  const group = new ChildGroup();
  process.once('exit', () => group.killAll());
  const dir = mkdtempSync(path.join(os.tmpdir(), 'meshd-compare-'));
  const rounds: SystemRound[] = [];
  try {
    for (let round = 1; round <= roundCount; round++) {
      // Rotate the order so no system always runs first (or last) in a round.
      const order = systems.map((_, i) => systems[(i + round - 1) % systems.length]!);
      for (const name of order) {
        progress(`round ${round}/${roundCount}: ${name}`);
        const profileDir = values.profile === undefined ? undefined : path.resolve(values.profile, `${name}-round-${round}`);
        const system = await startSystem(name, { dir, group, workers: 2, timeoutMs: 5000, profileDir }, natsServer);
        try {
          const result = await measure(system, round, counts);
          rounds.push(result);
          process.stdout.write(`${JSON.stringify(result)}\n`);
        } finally {
          await system.close();
        }
      }
    }
  } finally {
    group.killAll();
    rmSync(dir, { recursive: true, force: true });
  }
  if (systems.length !== SYSTEMS.length) return;
  const summary = summarize(rounds);
  const machineLine = machine(natsVersion);
  process.stdout.write(`${JSON.stringify({ summary, ratios: ratios(summary), rounds: roundCount, machine: machineLine }, null, 2)}\n`);
  const table = markdown(summary, roundCount, machineLine);
  mkdirSync(path.join(PACKAGE_ROOT, 'bench', 'results'), { recursive: true });
  writeFileSync(path.join(PACKAGE_ROOT, 'bench', 'results', 'compare.md'), `# meshd beside NATS\n\n${table}`);
  if (values.readme) writeReadmeBlock('compare', table, { required: true });
  progress('table written to bench/results/compare.md');
}

runBench(main, progress);
