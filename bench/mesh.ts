/**
 * Mesh benchmark (docs/architecture.md#performance), `npm run bench`: one
 * broker, 2 echo workers, one client, 4 KiB payloads, per crypto suite (node,
 * noble; the suite is used by every party).
 *
 * Topology, as in production (one broker per core):
 *   - the broker runs alone in a child process (bench/lib/broker-child.ts);
 *   - the 2 workers (2 MeshNodes) share a second child (bench/lib/worker-child.ts);
 *   - the client (a MeshNode) is this process, so it measures only itself
 *     plus the network path.
 * Per suite: request/echo with K=1 (sequential: p50/p99 latency and req/s)
 * and K=64 in flight, through the drivers of bench/lib/drivers.ts (the same
 * loop, clock and percentiles as bench/micro.ts), after a warm-up.
 *
 * Same-run baselines, to read ratios against ("broker hop cost" = mesh / raw):
 *   - rawCrossProcess: raw TCP echo, client here and the echo server in its
 *     own child (bench/lib/raw-echo-child.ts): the mesh's topology minus the
 *     broker, crypto, headers and node logic. The main denominator.
 *   - rawInProcess: bench/lib/raw.ts's RawLink, client and server in this
 *     process (the baseline of bench/micro.ts).
 * Each phase also reports every process's CPU time per request and its
 * core / event-loop utilization, so a saturated broker shows as such.
 *
 * Prints one JSON document on stdout; progress goes to stderr. Every loop is
 * bounded by a count and a time budget; the run takes about 30-40 s. Every
 * child is stopped at the end (SIGKILLed by pid if it does not exit, and on
 * any error or signal), and the process exits by itself.
 *
 * Options (after `npm run bench --`):
 *   --suites=node,noble   suites to run (default both)
 *   --cpu-prof[=DIR]      run the broker and worker children with --cpu-prof,
 *                         into DIR/broker-<suite>/ and DIR/workers-<suite>/
 *                         (default DIR: a new temporary directory); the report
 *                         names each child's main-thread profile. Numbers
 *                         taken while profiling are not comparable.
 *   --child-node-flags="F …"  extra Node flags for the broker and worker
 *                         (added to --initial-old-space-size=128, which they
 *                         always get, as the meshd command does)
 *                         children (e.g. "--trace-gc"; their non-JSON stdout
 *                         lines are passed on to stderr)
 * Summarize a profile with `node --import tsx bench/lib/cpuprofile-top.ts FILE`.
 */
import { accessSync, constants, mkdirSync, mkdtempSync, readdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { getSuite, MeshNode, SUITE_NAMES } from '../lib/internal.ts';
import type { RegistryEntryInit, SuiteName } from '../lib/internal.ts';
import { ChildGroup, processCounters } from './lib/child.ts';
import type { BenchChild, ChildExit, ProcessCounters } from './lib/child.ts';
import { runEcho } from './lib/drivers.ts';
import type { Bounds, EchoResult, Link } from './lib/drivers.ts';
import { MeshLink, RemoteRawLink } from './lib/links.ts';
import { makeParty, partyConfig, TempDir } from './lib/mesh-config.ts';
import type { BrokerChildConfig, WorkerChildConfig } from './lib/mesh-config.ts';
import { RawLink } from './lib/raw.ts';
import { now, ratio, round } from './lib/stats.ts';
import { progressFor, runBench } from './lib/run-bench.ts';

const CONFIG = {
  payloadBytes: 4096,
  service: 'bench.echo',
  workers: 2,
  /** Requests each worker runs at once: its credits at the broker. 2 × 64 ≥ K, so the broker never queues at K=64. */
  workerConcurrency: 64,
  /** Per request; no retries, so every error is visible (and ends the run). */
  request: { timeout: 10_000, retries: 0 },
  echoK1: { maxCount: 5000, maxMs: 3000, inFlight: 1 },
  echoK64: { maxCount: 100_000, maxMs: 4000, inFlight: 64 },
  warmup: {
    k64: { maxCount: 5000, maxMs: 700 },
    k1: { maxCount: 500, maxMs: 300 },
  },
  /** Longest wait for a child's `ready` line (tsx compiles on first start). */
  childReadyMs: 30_000,
  /** Longest wait for a child to exit after `exit`, before SIGKILL. */
  childStopMs: 4000,
  /** Longest wait for both workers' credits to reach the broker. */
  workersReadyMs: 10_000,
} as const;

const progress = progressFor('bench:mesh');

// ---------------------------------------------------------------- options

interface Options {
  readonly suites: readonly SuiteName[];
  /** Directory for children's CPU profiles, when profiling. */
  readonly cpuProfDir: string | undefined;
  /** Extra Node flags for the broker and worker children. */
  readonly childNodeFlags: readonly string[];
}

/** The V8 flags `meshd` runs with (the shebang of bin/meshd.ts): children get them too, so the bench measures what users run. */
const MESHD_NODE_FLAGS = ['--initial-old-space-size=128'];

function parseOptions(argv: readonly string[]): Options {
  let suites: SuiteName[] = [...SUITE_NAMES];
  let cpuProfDir: string | undefined;
  let childNodeFlags: string[] = [...MESHD_NODE_FLAGS];
  for (const arg of argv) {
    if (arg.startsWith('--suites=')) {
      const names = arg.slice('--suites='.length).split(',').filter((s) => s !== '');
      for (const n of names) if (!(SUITE_NAMES as readonly string[]).includes(n)) throw new Error(`unknown suite ${JSON.stringify(n)}; expected ${SUITE_NAMES.join(', ')}`);
      suites = names as SuiteName[];
    } else if (arg === '--cpu-prof') {
      cpuProfDir = mkdtempSync(path.join(os.tmpdir(), 'meshd-bench-prof-'));
    } else if (arg.startsWith('--cpu-prof=')) {
      cpuProfDir = path.resolve(arg.slice('--cpu-prof='.length));
      mkdirSync(cpuProfDir, { recursive: true });
    } else if (arg.startsWith('--child-node-flags=')) {
      childNodeFlags = [...MESHD_NODE_FLAGS, ...arg.slice('--child-node-flags='.length).split(' ').filter((f) => f !== '')];
    } else {
      throw new Error(`unknown option ${JSON.stringify(arg)} (known: --suites=node,noble, --cpu-prof[=DIR], --child-node-flags="…")`);
    }
  }
  return { suites, cpuProfDir, childNodeFlags };
}

/** The path of an executable on PATH, or null. */
function onPath(name: string): string | null {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (dir === '') continue;
    const file = path.join(dir, name);
    try {
      accessSync(file, constants.X_OK);
      return file;
    } catch {
      // Not here.
    }
  }
  return null;
}

// ---------------------------------------------------------------- process accounting

/** One process's share of a phase. */
interface ProcessShare {
  /** CPU time (user + system) per round trip, µs. */
  readonly cpuUsPerRoundTrip: number;
  /** CPU time / wall time: 1 = one core busy all the time. */
  readonly coreUtilization: number;
  /** Share of that CPU time spent in the kernel (syscalls, loopback TCP). */
  readonly systemShare: number;
  /** Share of wall time the event loop was running callbacks (not waiting for I/O). */
  readonly eventLoopUtilization: number;
}

/** Who takes part in a phase besides this process. */
type Processes = Readonly<Record<string, BenchChild>>;

interface Snapshot {
  readonly at: number;
  readonly counters: Readonly<Record<string, ProcessCounters>>;
}

async function snapshot(children: Processes): Promise<Snapshot> {
  const counters: Record<string, ProcessCounters> = {};
  for (const [role, child] of Object.entries(children)) counters[role] = (await child.stats()).process;
  counters.client = processCounters();
  return { at: now(), counters };
}

function shares(before: Snapshot, after: Snapshot, roundTrips: number): Record<string, ProcessShare> {
  const wallMs = after.at - before.at;
  const out: Record<string, ProcessShare> = {};
  for (const [role, a] of Object.entries(after.counters)) {
    const b = before.counters[role];
    if (!b) continue;
    const systemUs = a.cpu.system - b.cpu.system;
    const cpuUs = a.cpu.user - b.cpu.user + systemUs;
    const active = a.eventLoop.active - b.eventLoop.active;
    const idle = a.eventLoop.idle - b.eventLoop.idle;
    out[role] = {
      cpuUsPerRoundTrip: roundTrips > 0 ? round(cpuUs / roundTrips, 1) : NaN,
      coreUtilization: round(cpuUs / 1000 / wallMs, 3),
      systemShare: cpuUs > 0 ? round(systemUs / cpuUs, 3) : NaN,
      eventLoopUtilization: active + idle > 0 ? round(active / (active + idle), 3) : NaN,
    };
  }
  return out;
}

/** An echo phase with the CPU share of every process. */
type Phase = EchoResult & { readonly processes?: Record<string, ProcessShare> };

async function measureEcho(label: string, link: Link, bounds: Bounds, inFlight: number, children?: Processes): Promise<Phase> {
  progress(`${label}: echo K=${inFlight}`);
  const before = children ? await snapshot(children) : undefined;
  const result = await runEcho(link, bounds, inFlight);
  if (!children || !before) return result;
  const after = await snapshot(children);
  return { ...result, processes: shares(before, after, result.roundTrips) };
}

interface EchoPair {
  readonly echoK1: Phase;
  readonly echoK64: Phase;
}

/** Warm-up (K=64 then K=1), then the measured K=1 and K=64 loops. */
async function measurePair(label: string, link: Link, children?: Processes): Promise<EchoPair> {
  const { echoK1, echoK64, warmup } = CONFIG;
  progress(`${label}: warm-up`);
  await runEcho(link, warmup.k64, echoK64.inFlight);
  await runEcho(link, warmup.k1, echoK1.inFlight);
  const k1 = await measureEcho(label, link, bounds(echoK1), echoK1.inFlight, children);
  const k64 = await measureEcho(label, link, bounds(echoK64), echoK64.inFlight, children);
  return { echoK1: k1, echoK64: k64 };
}

function bounds(b: Bounds): Bounds {
  return { maxCount: b.maxCount, maxMs: b.maxMs };
}

// ---------------------------------------------------------------- runs

/** What the report says about a child's life. */
interface ChildRecord {
  readonly readyMs: number;
  readonly exit?: ChildExit;
}

async function spawnTimed(group: ChildGroup, records: Record<string, ChildRecord>, key: string, spec: Parameters<ChildGroup['spawn']>[0]): Promise<BenchChild> {
  const t0 = now();
  const child = await group.spawn(spec);
  records[key] = { readyMs: round(now() - t0, 0) };
  progress(`${spec.name} ready (pid ${child.pid}) in ${records[key].readyMs} ms`);
  return child;
}

async function stopTimed(group: ChildGroup, records: Record<string, ChildRecord>, key: string, child: BenchChild): Promise<void> {
  const exit = await group.stop(child, CONFIG.childStopMs);
  records[key] = { ...records[key]!, exit };
  if (exit.killed || exit.code !== 0) progress(`${child.name} (pid ${child.pid}) ended with code ${exit.code}, signal ${exit.signal}`);
}

async function rawCrossProcess(group: ChildGroup, records: Record<string, ChildRecord>): Promise<EchoPair> {
  const server = await spawnTimed(group, records, 'rawEcho', { name: 'raw-echo', script: 'bench/lib/raw-echo-child.ts', readyTimeoutMs: CONFIG.childReadyMs });
  let link: RemoteRawLink | undefined;
  try {
    link = await RemoteRawLink.open(Number(server.info.port), CONFIG.payloadBytes);
    return await measurePair('raw cross-process', link, { server });
  } finally {
    await link?.close();
    await stopTimed(group, records, 'rawEcho', server);
  }
}

async function rawInProcess(): Promise<EchoPair> {
  const link = await RawLink.open(CONFIG.payloadBytes);
  try {
    return await measurePair('raw in-process', link);
  } finally {
    await link.close();
  }
}

interface MeshResult extends EchoPair {
  /** Requests each worker served over the whole run (warm-up included): round-robin balance. */
  readonly servedPerWorker: Record<string, number>;
  /** Requests the broker still tracked after the last phase (should be 0). */
  readonly brokerPendingAfter: number;
  /** Resident set size of each child after the last phase, MiB. */
  readonly rssMiBAfter: Record<string, number>;
  readonly children: Record<string, ChildRecord>;
  readonly profiles?: readonly string[];
}

/** The main thread's `.cpuprofile` that `--cpu-prof` wrote for process `pid` into `dir` (names end `.<pid>.<thread>.<seq>.cpuprofile`). */
function mainThreadProfile(dir: string, pid: number): string {
  let names: string[] = [];
  try {
    names = readdirSync(dir);
  } catch {
    // No profile written.
  }
  const name = names.find((n) => n.includes(`.${pid}.0.`) && n.endsWith('.cpuprofile'));
  return name ? path.join(dir, name) : `${dir} (no main-thread profile found for pid ${pid})`;
}

/** Polls the broker until every worker's credits arrived. */
async function waitForWorkers(broker: BenchChild): Promise<void> {
  const want = CONFIG.workers * CONFIG.workerConcurrency;
  const deadline = now() + CONFIG.workersReadyMs;
  let seen = 'no status yet';
  while (now() < deadline) {
    const stats = await broker.stats();
    const status = stats.broker as { services: Array<{ name: string; workers: number; credits: number }> };
    const s = status.services.find((x) => x.name === CONFIG.service);
    seen = s ? `${s.workers} workers, ${s.credits} credits` : 'service not offered';
    if (s && s.workers === CONFIG.workers && s.credits >= want) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`workers not ready at the broker within ${CONFIG.workersReadyMs} ms (${seen}; want ${CONFIG.workers} workers, ${want} credits)`);
}

async function mesh(group: ChildGroup, tmp: TempDir, suite: SuiteName, options: Options): Promise<MeshResult> {
  const { cpuProfDir, childNodeFlags } = options;
  const broker = makeParty('bench-broker', suite);
  const workers = Array.from({ length: CONFIG.workers }, (_, i) => makeParty(`bench-worker-${i + 1}`, suite));
  const client = makeParty('bench-client', suite);
  const registry: RegistryEntryInit[] = [
    { key: partyConfig(client).publicKey, name: client.name, role: 'client', call: [CONFIG.service] },
    ...workers.map((w): RegistryEntryInit => ({ key: partyConfig(w).publicKey, name: w.name, role: 'worker', serve: [CONFIG.service] })),
  ];
  const brokerConfig: BrokerChildConfig = { suite, broker: partyConfig(broker), registry };
  const workerConfig: WorkerChildConfig = { suite, service: CONFIG.service, workerConcurrency: CONFIG.workerConcurrency, workers: workers.map(partyConfig) };
  // One directory per child: with tsx, Node profiles the module-hooks thread too, so its main thread's profile is the one with thread id 0.
  const profDir = (name: string): string => path.join(cpuProfDir ?? '', `${name}-${suite}`);
  const profFlags = (name: string): string[] => [...childNodeFlags, ...(cpuProfDir ? ['--cpu-prof', `--cpu-prof-dir=${profDir(name)}`] : [])];
  const records: Record<string, ChildRecord> = {};

  const brokerChild = await spawnTimed(group, records, 'broker', { name: `broker(${suite})`, script: 'bench/lib/broker-child.ts', args: [tmp.writeJson(`broker-${suite}.json`, brokerConfig)], nodeFlags: profFlags('broker'), readyTimeoutMs: CONFIG.childReadyMs });
  let workerChild: BenchChild | undefined;
  let link: MeshLink | undefined;
  try {
    const address = String(brokerChild.info.address);
    workerChild = await spawnTimed(group, records, 'workers', { name: `workers(${suite})`, script: 'bench/lib/worker-child.ts', args: [tmp.writeJson(`workers-${suite}.json`, workerConfig), address], nodeFlags: profFlags('workers'), readyTimeoutMs: CONFIG.childReadyMs });
    const node = await MeshNode.connect({ brokers: [address], key: client.keyPair, name: client.name, role: 'client', suite: getSuite(suite), timeout: 10_000 });
    link = new MeshLink(node, CONFIG.service, CONFIG.payloadBytes, CONFIG.request);
    await waitForWorkers(brokerChild);
    const pair = await measurePair(`mesh ${suite}`, link, { broker: brokerChild, workers: workerChild });
    const workerStats = await workerChild.stats();
    const brokerStats = await brokerChild.stats();
    const served = (workerStats.served ?? {}) as Record<string, number>;
    const status = brokerStats.broker as { pending: number };
    const rssMiBAfter = { broker: round(brokerStats.process.rss / 2 ** 20, 1), workers: round(workerStats.process.rss / 2 ** 20, 1) };
    await link.close();
    link = undefined;
    await stopTimed(group, records, 'workers', workerChild);
    await stopTimed(group, records, 'broker', brokerChild);
    return {
      ...pair,
      servedPerWorker: served,
      brokerPendingAfter: status.pending,
      rssMiBAfter,
      children: records,
      ...(cpuProfDir ? { profiles: [mainThreadProfile(profDir('broker'), brokerChild.pid), mainThreadProfile(profDir('workers'), workerChild.pid)] } : {}),
    };
  } finally {
    // On error: stop whatever still runs (graceful first, then SIGKILL by pid).
    await link?.close().catch(() => {});
    if (workerChild?.alive) await group.stop(workerChild, CONFIG.childStopMs);
    if (brokerChild.alive) await group.stop(brokerChild, CONFIG.childStopMs);
  }
}

// ---------------------------------------------------------------- report

/** mesh / baseline for each figure; latency ratios > 1 and throughput ratios < 1 are the hop's cost. */
function hopCost(m: EchoPair, base: EchoPair): Record<string, number> {
  return {
    echoK1P50Latency: ratio(m.echoK1.latencyUs.p50, base.echoK1.latencyUs.p50),
    echoK1P99Latency: ratio(m.echoK1.latencyUs.p99, base.echoK1.latencyUs.p99),
    echoK1RoundTripsPerSec: ratio(m.echoK1.roundTripsPerSec, base.echoK1.roundTripsPerSec),
    echoK64RoundTripsPerSec: ratio(m.echoK64.roundTripsPerSec, base.echoK64.roundTripsPerSec),
    echoK64P50Latency: ratio(m.echoK64.latencyUs.p50, base.echoK64.latencyUs.p50),
    echoK64P99Latency: ratio(m.echoK64.latencyUs.p99, base.echoK64.latencyUs.p99),
    /** Absolute: µs the mesh adds to a sequential request at p50. */
    echoK1P50ExtraUs: round(m.echoK1.latencyUs.p50 - base.echoK1.latencyUs.p50, 0),
  };
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  const started = now();
  const cpus = os.cpus();
  const group = new ChildGroup();
  const tmp = new TempDir('meshd-bench-');
  // Whatever ends this process, no child and no key file outlives it.
  process.on('exit', () => {
    group.killAll();
    tmp.remove();
  });
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      progress(`${signal}: killing children`);
      group.killAll();
      tmp.remove();
      process.exit(130);
    });
  }

  const meta = {
    benchmark: 'meshd bench/mesh.ts',
    date: new Date().toISOString(),
    node: process.version,
    v8: process.versions.v8,
    openssl: process.versions.openssl,
    platform: `${process.platform} ${os.release()} ${process.arch}`,
    cpu: cpus[0]?.model ?? 'unknown',
    cpuCount: cpus.length,
    loadAverage1mAtStart: round(os.loadavg()[0] ?? NaN, 2),
    topology:
      'broker alone in a child process; the 2 workers (one MeshNode each) together in a second child; the client (a MeshNode) in the parent; all over 127.0.0.1 TCP. ' +
      'rawCrossProcess: raw TCP echo, client in the parent, server in a child. rawInProcess: bench/lib/raw.ts RawLink, both ends in the parent.',
    cpuCaveat:
      cpus.length < 3
        ? `${cpus.length} CPUs for 3 busy processes (broker, workers, client): they compete for cores, so K=64 figures are bounded by the machine, not by the broker alone`
        : null,
    payloadBytes: CONFIG.payloadBytes,
    workers: CONFIG.workers,
    workerConcurrency: CONFIG.workerConcurrency,
    request: CONFIG.request,
    units: 'latencyUs in µs (nearest-rank percentiles over every request of the phase); roundTripsPerSec = completed requests / s; processes.*.cpuUsPerRoundTrip = user+system CPU µs per request; coreUtilization = CPU time / wall time; systemShare = kernel share of that CPU time',
    ratios: 'mesh / baseline per figure: latency ratios above 1 and throughput ratios below 1 are what the broker hop (plus crypto, headers, node logic) costs',
    natsServer: { path: onPath('nats-server'), compared: false, note: 'the NATS comparison is a later issue' },
    profiling: options.cpuProfDir ?? false,
    childNodeFlags: options.childNodeFlags,
  };
  if (options.cpuProfDir) progress(`profiling broker and workers into ${options.cpuProfDir} (numbers are not comparable)`);

  try {
    const baselineChildren: Record<string, ChildRecord> = {};
    const inProcess = await rawInProcess();
    const crossProcess = await rawCrossProcess(group, baselineChildren);
    const meshResults: Partial<Record<SuiteName, MeshResult>> = {};
    for (const suite of options.suites) meshResults[suite] = await mesh(group, tmp, suite, options);

    const ratios: Record<string, unknown> = {};
    for (const suite of options.suites) {
      const m = meshResults[suite]!;
      ratios[suite] = { overRawCrossProcess: hopCost(m, crossProcess), overRawInProcess: hopCost(m, inProcess) };
    }
    const node = meshResults.node;
    const noble = meshResults.noble;
    if (node && noble) {
      ratios.nodeOverNoble = {
        echoK1RoundTripsPerSec: ratio(node.echoK1.roundTripsPerSec, noble.echoK1.roundTripsPerSec),
        echoK64RoundTripsPerSec: ratio(node.echoK64.roundTripsPerSec, noble.echoK64.roundTripsPerSec),
        echoK1P50Latency: ratio(node.echoK1.latencyUs.p50, noble.echoK1.latencyUs.p50),
      };
    }
    const report = {
      meta: {
        ...meta,
        loadAverage1mAtEnd: round(os.loadavg()[0] ?? NaN, 2),
        totalMs: round(now() - started, 0),
        bounds: { echoK1: bounds(CONFIG.echoK1), echoK64: bounds(CONFIG.echoK64), warmup: CONFIG.warmup },
        baselineChildren,
      },
      mesh: meshResults,
      baseline: { rawCrossProcess: crossProcess, rawInProcess: inProcess },
      ratios,
    };
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    progress(`done in ${round((now() - started) / 1000, 1)} s`);
  } finally {
    group.killAll();
    tmp.remove();
  }
}

runBench(main, progress);
