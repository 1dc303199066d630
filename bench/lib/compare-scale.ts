/**
 * `npm run bench:compare -- --scale`: one server with many connected idle
 * nodes, and one broker with a deep queue.
 *
 * Idle: one `meshd broker` (the CLI) and 1,000 registered nodes spread over
 * a few processes (bench/peers/meshd/idle-nodes.mjs, one MeshNode per key,
 * as apps embed it), all dialling at once with a bounded number of
 * handshakes in flight per process; beside it one `nats-server` and the same
 * number of nats.js connections. Measured: time to connect them all (and so
 * handshakes per second), the server's RSS once they are connected, and its
 * CPU over an idle window (heartbeats only), as a share of one core. Every
 * node must stay connected through the window.
 *
 * Queue: one `meshd broker --queue-max N`, one worker process serving a slow
 * service whose handlers wait behind a gate (bench/peers/meshd/slow-worker.mjs),
 * and one client that sends N requests at once. Once the broker's admin
 * endpoint shows the queue full, the broker's RSS is read, the gate opens and
 * the time to drain the queue is measured; every reply is checked against
 * its request. NATS core has no broker-side queue to set beside it (a message
 * for a busy subscriber waits in that subscriber's own client), so this part
 * is meshd's alone.
 *
 * Each part prints one JSON line; a markdown table goes to
 * bench/results/compare-scale.md (and into README.md with --readme).
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import type { BrokerHandle } from '../../spec/faults/harness.ts';
import { startMeshdBrokers } from './meshd-mesh.ts';
import type { FaultProcess } from '../../spec/faults/processes.ts';
import { ChildGroup, PACKAGE_ROOT } from './child.ts';
import type { BenchChild } from './child.ts';
import { cpuMsOf, machine, rssOf, startNats } from './compare-systems.ts';
import { writeReadmeBlock } from './readme-block.ts';
import { MIB, round as roundTo } from './stats.ts';

/** The parts of the scale run: idle nodes on NATS, idle nodes on meshd, the deep queue. */
export const SCALE_PARTS = ['idle-nats', 'idle-meshd', 'queue'] as const;
export type ScalePart = (typeof SCALE_PARTS)[number];

export interface ScaleOptions {
  /** Idle nodes (default 1,000). */
  readonly idle?: number;
  /** Processes the idle nodes are spread over (default 4). */
  readonly processes?: number;
  /** Handshakes in flight per process while connecting (default 16). */
  readonly parallel?: number;
  /** The idle window CPU is measured over, ms (default 10,000). */
  readonly idleMs?: number;
  /** Requests queued for the slow service (default 10,000). */
  readonly queued?: number;
  /** Payload of each queued request, bytes (default 1,024: 10,000 of them stay under the 16 MiB of payload a queue holds by default). */
  readonly payloadBytes?: number;
  readonly readme?: boolean;
  /** Which parts to run (default all; the table is written only when all ran). */
  readonly parts?: readonly ScalePart[];
  /** Write a `--cpu-prof` profile of each meshd broker into DIR/ (none by default). */
  readonly profileDir?: string | undefined;
}

/** The idle part, for one system. */
export interface IdleResult {
  readonly part: 'idle';
  readonly system: 'nats' | 'meshd';
  readonly nodes: number;
  readonly processes: number;
  readonly connected: number;
  readonly failures: Record<string, number>;
  readonly connectMs: number;
  readonly handshakesPerSec: number;
  readonly serverRssBeforeMiB: number;
  readonly serverRssMiB: number;
  /** Server CPU over the idle window, % of one core, and how much of it was in the kernel. */
  readonly serverIdleCpuPercent: number;
  readonly serverIdleSysPercent: number;
  /** CPU of the processes holding the nodes over the same window, % of one core (all of them). */
  readonly nodesIdleCpuPercent: number;
  /** Links that went down during the window (must be 0). */
  readonly downs: number;
}

/** The queue part (meshd). */
export interface QueueResult {
  readonly part: 'queue';
  readonly system: 'meshd';
  readonly requests: number;
  readonly payloadBytes: number;
  readonly workerConcurrency: number;
  /** Deepest queue the admin endpoint showed. */
  readonly queuedSeen: number;
  readonly brokerRssBeforeMiB: number;
  readonly brokerRssQueuedMiB: number;
  readonly drainMs: number;
  readonly drainedPerSec: number;
  readonly ok: number;
  readonly wrong: number;
  readonly failed: number;
  readonly failures: Record<string, number>;
}

/** The options with every default filled in. */
type Settings = Required<Omit<ScaleOptions, 'profileDir'>> & Pick<ScaleOptions, 'profileDir'>;

const DEFAULTS = { parts: SCALE_PARTS, idle: 1000, processes: 4, parallel: 16, idleMs: 10_000, queued: 10_000, payloadBytes: 1024 } as const;
const WORKER_CONCURRENCY = 16;
const READY_MS = 30_000;
const wallMs = (): number => performance.timeOrigin + performance.now();
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** GET a JSON document from the broker's admin endpoint (bounded). */
function getJson(port: number, pathName: string): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: pathName, timeout: 5000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        try {
          resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')));
        } catch (error) {
          reject(error instanceof Error ? error : new Error(String(error)));
        }
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${pathName}: no answer in 5 s`)));
    req.on('error', reject);
  });
}

/** The queue length of `service` in a broker's /status (0 when absent). */
async function queuedOf(adminPort: number, service: string): Promise<number> {
  const status = (await getJson(adminPort, '/status')) as { services?: ReadonlyArray<{ name: string; queued: number }> };
  return status.services?.find((s) => s.name === service)?.queued ?? 0;
}

interface Broker {
  readonly handle: BrokerHandle;
  readonly proc: FaultProcess;
  readonly url: string;
  readonly adminPort: number;
}

/**
 * Writes a broker key, `parties` keys (each party: its key file goes in
 * `dirOf(name)`) and a registry, and starts one `meshd broker` with an
 * admin endpoint and `extraArgs`.
 */
async function startBroker(dir: string, parties: ReadonlyArray<{ name: string; dir: string; entry: string }>, extraArgs: string[], profileDir: string | undefined): Promise<{ broker: Broker; keyFiles: Map<string, string> }> {
  const mesh = await startMeshdBrokers({
    dir,
    brokers: 1,
    parties,
    admin: true,
    extraArgs: () => extraArgs,
    nodeFlags: () => (profileDir === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${profileDir}`]),
    readyMs: READY_MS,
  });
  const handle = mesh.handles[0]!;
  const keyFiles = new Map([...mesh.parties].map(([name, p]) => [name, p.file]));
  return { broker: { handle, proc: handle.proc!, url: mesh.urls[0]!, adminPort: mesh.adminPorts[0]! }, keyFiles };
}

async function stopServer(proc: FaultProcess): Promise<void> {
  if (proc.signal('SIGTERM')) await proc.waitExit(5000);
  if (proc.alive) await proc.kill();
}

/** Connects every idle-node process at once, then measures RSS and the idle window. */
async function measureIdle(system: 'nats' | 'meshd', server: FaultProcess, peers: readonly BenchChild[], nodes: number, o: Settings, rssBefore: number): Promise<IdleResult> {
  const start = wallMs();
  const answers = (await Promise.all(peers.map((p) => p.command('connect', 180_000, { parallel: o.parallel })))) as Array<{ connected: number; failures: Record<string, number>; ms: number }>;
  const connectMs = Math.round(wallMs() - start);
  const connected = answers.reduce((n, a) => n + a.connected, 0);
  const failures: Record<string, number> = {};
  for (const a of answers) for (const [code, n] of Object.entries(a.failures)) failures[code] = (failures[code] ?? 0) + n;
  // Let the connect burst's garbage settle before the idle window.
  await sleep(2000);
  const downs0 = (await Promise.all(peers.map((p) => p.command('downs', 10_000)))) as number[];
  const server0 = cpuMsOf(server.pid);
  const serverSys0 = cpuMsOf(server.pid, 'system');
  const nodes0 = peers.reduce((ms, p) => ms + cpuMsOf(p.pid), 0);
  const t0 = performance.now();
  await sleep(o.idleMs);
  const windowMs = performance.now() - t0;
  const serverCpu = cpuMsOf(server.pid) - server0;
  const serverSys = cpuMsOf(server.pid, 'system') - serverSys0;
  const nodesCpu = peers.reduce((ms, p) => ms + cpuMsOf(p.pid), 0) - nodes0;
  const downs1 = (await Promise.all(peers.map((p) => p.command('downs', 10_000)))) as number[];
  return {
    part: 'idle',
    system,
    nodes,
    processes: peers.length,
    connected,
    failures,
    connectMs,
    handshakesPerSec: Math.round((connected / connectMs) * 1000),
    serverRssBeforeMiB: roundTo(rssBefore / MIB, 1),
    serverRssMiB: roundTo(rssOf(server.pid) / MIB, 1),
    serverIdleCpuPercent: roundTo((serverCpu / windowMs) * 100, 2),
    serverIdleSysPercent: roundTo((serverSys / windowMs) * 100, 2),
    nodesIdleCpuPercent: roundTo((nodesCpu / windowMs) * 100, 2),
    downs: downs1.reduce((a, b) => a + b, 0) - downs0.reduce((a, b) => a + b, 0),
  };
}

async function idleMeshd(dir: string, group: ChildGroup, o: Settings): Promise<IdleResult> {
  const perProcess = Math.ceil(o.idle / o.processes);
  const parties = Array.from({ length: o.idle }, (_, i) => ({
    name: `idle-${String(i + 1).padStart(5, '0')}`,
    dir: path.join(dir, `idle-keys-${Math.floor(i / perProcess) + 1}`),
    entry: '  role: client\n  call: [echo]\n',
  }));
  const { broker } = await startBroker(dir, parties, [], o.profileDir && path.join(o.profileDir, 'idle'));
  const peers: BenchChild[] = [];
  try {
    const keyDirs = [...new Set(parties.map((p) => p.dir))];
    for (const [i, keyDir] of keyDirs.entries()) {
      peers.push(await group.spawn({ name: `meshd-idle-${i + 1}`, script: 'bench/peers/meshd/idle-nodes.mjs', args: ['--brokers', broker.url, '--key-dir', keyDir], loader: false, readyTimeoutMs: READY_MS }));
    }
    return await measureIdle('meshd', broker.proc, peers, o.idle, o, rssOf(broker.proc.pid));
  } finally {
    await Promise.all(peers.map((p) => group.stop(p, 10_000)));
    await stopServer(broker.proc);
  }
}

async function idleNats(natsServer: string, group: ChildGroup, o: Settings): Promise<IdleResult> {
  const servers: FaultProcess[] = [];
  const urls = await startNats(1, natsServer, servers);
  const peers: BenchChild[] = [];
  try {
    const perProcess = Math.ceil(o.idle / o.processes);
    for (let i = 0, left = o.idle; left > 0; i++, left -= perProcess) {
      peers.push(await group.spawn({ name: `nats-idle-${i + 1}`, script: 'bench/peers/nats/idle-nodes.mjs', args: ['--servers', urls.join(','), '--count', String(Math.min(perProcess, left))], loader: false, readyTimeoutMs: READY_MS }));
    }
    return await measureIdle('nats', servers[0]!, peers, o.idle, o, rssOf(servers[0]!.pid));
  } finally {
    await Promise.all(peers.map((p) => group.stop(p, 10_000)));
    await Promise.all(servers.map(stopServer));
  }
}

async function queueMeshd(dir: string, group: ChildGroup, o: Settings, progress: (t: string) => void): Promise<QueueResult> {
  const keyDir = path.join(dir, 'queue-keys');
  const { broker, keyFiles } = await startBroker(
    dir,
    [
      { name: 'slow-worker', dir: keyDir, entry: '  role: worker\n  serve: [slow]\n' },
      { name: 'queue-client', dir: keyDir, entry: '  role: client\n  call: [slow]\n' },
    ],
    ['--queue-max', String(o.queued)],
    o.profileDir && path.join(o.profileDir, 'queue'),
  );
  const peers: BenchChild[] = [];
  try {
    const worker = await group.spawn({ name: 'meshd-slow-worker', script: 'bench/peers/meshd/slow-worker.mjs', args: ['--brokers', broker.url, '--key', keyFiles.get('slow-worker')!, '--concurrency', String(WORKER_CONCURRENCY)], loader: false, readyTimeoutMs: READY_MS });
    peers.push(worker);
    const client = await group.spawn({ name: 'meshd-queue-client', script: 'bench/peers/meshd/queue-client.mjs', args: ['--brokers', broker.url, '--key', keyFiles.get('queue-client')!], loader: false, readyTimeoutMs: READY_MS });
    peers.push(client);
    const rssBefore = rssOf(broker.proc.pid);
    await client.command('flood', 60_000, { count: o.queued, payloadBytes: o.payloadBytes, timeout: 300_000 });
    // Wait (bounded) for the broker to hold every request the worker has no slot for.
    const want = o.queued - WORKER_CONCURRENCY;
    let queuedSeen = 0;
    const until = performance.now() + 60_000;
    while (performance.now() < until) {
      queuedSeen = Math.max(queuedSeen, await queuedOf(broker.adminPort, 'slow'));
      if (queuedSeen >= want) break;
      await sleep(100);
    }
    if (queuedSeen < want) progress(`  queue: only ${queuedSeen} of ${want} requests were seen queued`);
    await sleep(500);
    const rssQueued = rssOf(broker.proc.pid);
    const openAt = wallMs();
    await worker.command('open', 10_000);
    const counts = (await client.command('wait', 600_000)) as { ok: number; wrong: number; failed: number; failures: Record<string, number>; lastAt: number };
    const drainMs = Math.round(counts.lastAt - openAt);
    return {
      part: 'queue',
      system: 'meshd',
      requests: o.queued,
      payloadBytes: o.payloadBytes,
      workerConcurrency: WORKER_CONCURRENCY,
      queuedSeen,
      brokerRssBeforeMiB: roundTo(rssBefore / MIB, 1),
      brokerRssQueuedMiB: roundTo(rssQueued / MIB, 1),
      drainMs,
      drainedPerSec: Math.round((counts.ok / Math.max(1, drainMs)) * 1000),
      ok: counts.ok,
      wrong: counts.wrong,
      failed: counts.failed,
      failures: counts.failures,
    };
  } finally {
    await Promise.all(peers.map((p) => group.stop(p, 10_000)));
    await stopServer(broker.proc);
  }
}

function markdown(idle: readonly IdleResult[], queue: QueueResult, o: Settings, machineLine: string): string {
  const nats = idle.find((r) => r.system === 'nats')!;
  const meshd = idle.find((r) => r.system === 'meshd')!;
  const n = (x: number): string => x.toLocaleString('en-US');
  const date = new Date().toISOString().slice(0, 10);
  return [
    `| ${n(meshd.nodes)} idle nodes on one server | NATS | meshd | target (meshd) |`,
    '|---|---:|---:|---|',
    `| connected | ${n(nats.connected)} | ${n(meshd.connected)} | all |`,
    `| time to connect them all (handshakes/s) | ${n(nats.connectMs)} ms (${n(nats.handshakesPerSec)}/s) | ${n(meshd.connectMs)} ms (${n(meshd.handshakesPerSec)}/s) | |`,
    `| server RSS, connected | ${nats.serverRssMiB} MiB | ${meshd.serverRssMiB} MiB | < 200 MiB |`,
    `| server CPU, idle | ${nats.serverIdleCpuPercent} % | ${meshd.serverIdleCpuPercent} % | < 2 % of a core |`,
    `| links down while idle | ${nats.downs} | ${meshd.downs} | 0 |`,
    '',
    `| ${n(queue.requests)} requests queued for a slow service (meshd, one broker) | |`,
    '|---|---:|',
    `| broker RSS before → with the queue full | ${queue.brokerRssBeforeMiB} → ${queue.brokerRssQueuedMiB} MiB (target < 300 MiB) |`,
    `| deepest queue seen | ${n(queue.queuedSeen)} (the worker holds ${queue.workerConcurrency}) |`,
    `| time to drain, once the worker answers | ${n(queue.drainMs)} ms (${n(queue.drainedPerSec)} requests/s) |`,
    `| answered / wrong / failed | ${n(queue.ok)} / ${queue.wrong} / ${queue.failed} |`,
    '',
    `Idle nodes: ${meshd.processes} processes, each dialling with ${o.parallel} handshakes in flight, one MeshNode or nats.js connection per node; CPU over a ${o.idleMs / 1000} s idle window. Queue: ${n(queue.payloadBytes)}-byte payloads, \`--queue-max ${queue.requests}\`, the worker's handlers held until the queue is full. Measured ${date} on ${machineLine}. \`npm run bench:compare -- --scale\` reproduces it.`,
    '',
  ].join('\n');
}

/** Runs the idle part for NATS and meshd, then the queue part; prints JSON lines and writes the table. */
export async function runScale(natsServer: string, natsVersion: string, progress: (t: string) => void, options: ScaleOptions = {}): Promise<void> {
  const o: Settings = { ...DEFAULTS, readme: false, ...options };
  const group = new ChildGroup();
  process.once('exit', () => group.killAll());
  const dir = mkdtempSync(path.join(os.tmpdir(), 'meshd-scale-'));
  try {
    const idle: IdleResult[] = [];
    for (const system of ['nats', 'meshd'] as const) {
      if (!o.parts.includes(`idle-${system}`)) continue;
      progress(`idle: ${o.idle} ${system} nodes over ${o.processes} processes`);
      const r = system === 'nats' ? await idleNats(natsServer, group, o) : await idleMeshd(mkdtempSync(path.join(dir, 'idle-')), group, o);
      idle.push(r);
      process.stdout.write(`${JSON.stringify(r)}\n`);
    }
    for (const r of idle) if (r.connected !== r.nodes || r.downs > 0) throw new Error(`${r.system}: ${r.connected} of ${r.nodes} nodes connected (${JSON.stringify(r.failures)}), ${r.downs} links down while idle`);
    if (!o.parts.includes('queue')) return;
    progress(`queue: ${o.queued} requests for a slow service`);
    const queue = await queueMeshd(mkdtempSync(path.join(dir, 'queue-')), group, o, progress);
    process.stdout.write(`${JSON.stringify(queue)}\n`);
    if (queue.ok !== queue.requests) throw new Error(`queue: ${queue.ok} of ${queue.requests} answered (${queue.wrong} wrong, failures ${JSON.stringify(queue.failures)})`);
    if (idle.length < 2) return;
    const table = markdown(idle, queue, o, machine(natsVersion));
    mkdirSync(path.join(PACKAGE_ROOT, 'bench', 'results'), { recursive: true });
    writeFileSync(path.join(PACKAGE_ROOT, 'bench', 'results', 'compare-scale.md'), `# Scale: idle nodes and a deep queue\n\n${table}`);
    if (o.readme) writeReadmeBlock('compare-scale', table, { required: true });
    progress('table written to bench/results/compare-scale.md');
  } finally {
    group.killAll();
    rmSync(dir, { recursive: true, force: true });
  }
}
