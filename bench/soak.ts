/**
 * `npm run soak`: a long run of a 3-broker mesh under steady load and
 * constant change, looking for leaks and lost requests. Not part of
 * `npm test`.
 *
 *   npm run soak [-- --minutes 10 --rate 200 --clients 4 --workers 4 --churn-ms 3000 --restart-ms 60000
 *                    --snapshot-at-s 130 --heap-snapshots --broker-node-flags '']
 *
 * - Three `meshd broker` processes (the compiled CLI), peered.
 * - `--workers` echo worker processes (bench/peers/meshd/worker.mjs: plain
 *   node, the compiled package) and `--clients` client MeshNodes in this
 *   process sending `--rate` requests a second in all (unique payloads of
 *   16 B to 4 KiB, each reply checked byte for byte).
 * - Every `--churn-ms`, in turn: a client leaves (once its requests are
 *   answered) and a new one connects, or a worker leaves (MeshNode.close:
 *   it finishes what it runs) and a new one starts with the same key.
 * - Every `--restart-ms`, broker 2 or broker 3 (in turn) is stopped with
 *   SIGTERM (drain) and started again on its port. Broker 1 stays up the
 *   whole run: its memory is the leak witness.
 * - Every 10 s: RSS and open file descriptors of every process.
 * - At `--snapshot-at-s` and at the end, the load pauses until nothing is
 *   in flight, and broker 1 (started with --inspect on a loopback port) is
 *   made to run full garbage collections through the DevTools protocol;
 *   what its heap and external memory hold then is what it retains. With
 *   `--heap-snapshots` it also writes a heap snapshot each time (SIGUSR2),
 *   and the kinds of object that grew most are reported (for diagnosis:
 *   writing a snapshot leaves broker 1's RSS some 40 MiB higher).
 *
 * Prints one JSON document on stdout. Fails (exit 1) when a request is lost
 * (no reply and no error by the end), a reply is wrong, a request failed,
 * or broker 1 retains more than 10 % more at the end than at the first
 * measure (the leak check), or its RSS at the end (mean of the last
 * minute's samples) exceeds its RSS after the first minute by more than the
 * old space it may fill with garbage before collecting (see below).
 *
 * Why not 10 % of RSS: `meshd` runs node with --initial-old-space-size=128,
 * so V8 lets the old space fill with dead objects towards 128 MB before it
 * runs full collections, and RSS climbs for tens of minutes at this load
 * with nothing leaking. With `--broker-node-flags
 * --initial-old-space-size=0` (V8's default sizing) the soak shows RSS
 * without that policy; its 10 % growth after the first minute is reported
 * either way (`growthAfterMinute1Pct`).
 */
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { randomBytes } from 'node:crypto';
import { MeshNode } from '../lib/index.ts';
import { ChildGroup } from './lib/child.ts';
import type { BenchChild } from './lib/child.ts';
import { startMeshdBrokers } from './lib/meshd-mesh.ts';
import type { MeshdBrokers } from './lib/meshd-mesh.ts';
import { heapGrowth, summarizeHeapSnapshot } from './lib/heap-snapshot.ts';
import { InspectorClient } from './lib/inspector-client.ts';
import { freePorts } from '../spec/faults/harness.ts';

const { values: flags } = parseArgs({
  options: {
    minutes: { type: 'string', default: '10' },
    rate: { type: 'string', default: '200' },
    clients: { type: 'string', default: '4' },
    workers: { type: 'string', default: '4' },
    'churn-ms': { type: 'string', default: '3000' },
    'restart-ms': { type: 'string', default: '60000' },
    'sample-ms': { type: 'string', default: '10000' },
    'snapshot-at-s': { type: 'string', default: '130' },
    'broker-node-flags': { type: 'string', default: '' },
    'heap-snapshots': { type: 'boolean', default: false },
  },
});

const positive = (name: string, text: string | undefined): number => {
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0) {
    process.stderr.write(`soak: --${name} must be a positive number, not ${String(text)}\n`);
    process.exit(2);
  }
  return n;
};
const o = {
  durationMs: positive('minutes', flags.minutes) * 60_000,
  rate: positive('rate', flags.rate),
  clients: Math.ceil(positive('clients', flags.clients)),
  workers: Math.max(2, Math.ceil(positive('workers', flags.workers))),
  churnMs: positive('churn-ms', flags['churn-ms']),
  restartMs: positive('restart-ms', flags['restart-ms']),
  sampleMs: positive('sample-ms', flags['sample-ms']),
  snapshotAtMs: positive('snapshot-at-s', flags['snapshot-at-s']) * 1000,
  brokerNodeFlags: flags['broker-node-flags'].split(' ').filter((f) => f !== ''),
  heapSnapshots: flags['heap-snapshots'],
};

const REQUEST_TIMEOUT_MS = 5000;
/** Most requests in flight at once (the pacer waits beyond it). */
const MAX_IN_FLIGHT = 512;
const READY_MS = 30_000;
const MIB = 1024 * 1024;
/** Old space that broker 1 may fill with garbage before collecting: the --initial-old-space-size=128 of meshd's shebang. */
const LAZY_OLD_SPACE_MIB = 128;
/** Most growth of broker 1's retained memory (after a full GC) from the first measure to the end. */
const RETAINED_GROWTH_PCT = 10;
/** Longest wait for a heap snapshot to be written, ms. */
const SNAPSHOT_MS = 120_000;

const progress = (text: string): void => void process.stderr.write(`[soak ${new Date().toISOString().slice(11, 19)}] ${text}\n`);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Resident set size (bytes) and open file descriptors of a process, from /proc. */
function sampleProcess(pid: number): { rss: number; fds: number } | undefined {
  try {
    const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return { rss: m ? Number(m[1]) * 1024 : 0, fds: readdirSync(`/proc/${pid}/fd`).length };
  } catch {
    return undefined; // gone between the listing and the read
  }
}

interface Client {
  readonly node: MeshNode;
  readonly name: string;
  leaving: boolean;
  inFlight: number;
}

interface Counts {
  sent: number;
  replied: number;
  wrong: number;
  failed: Record<string, number>;
}

async function main(): Promise<number> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'meshd-soak-'));
  const group = new ChildGroup();
  let mesh: MeshdBrokers | undefined;
  const clients: Client[] = [];
  const workers: Array<BenchChild | undefined> = [];
  const counts: Counts = { sent: 0, replied: 0, wrong: 0, failed: {} };
  const inFlight = new Set<number>();
  const samples: Array<{ atS: number; processes: Record<string, { rssMiB: number; fds: number }> }> = [];
  const churn = { clientsReplaced: 0, workersReplaced: 0, brokerRestarts: 0, restartMs: [] as number[] };
  const timers: NodeJS.Timeout[] = [];
  let stopping = false;
  /** The load waits while broker 1's retained memory is measured. */
  let paused = false;
  let nextClient = 0;
  try {
    const workerNames = Array.from({ length: o.workers }, (_, i) => `worker-${i + 1}`);
    const clientNames = Array.from({ length: o.clients }, (_, i) => `client-${i + 1}`);
    const heapDir = path.join(dir, 'heap');
    mkdirSync(heapDir);
    const [inspectPort] = (await freePorts(1)) as [number];
    mesh = await startMeshdBrokers({
      dir,
      brokers: 3,
      // Broker 1 answers the DevTools protocol on inspectPort (full GC, then
      // memory usage) and, with --heap-snapshots, writes one on SIGUSR2.
      nodeFlags: (i) => [...(i === 0 ? [`--inspect=127.0.0.1:${inspectPort}`, ...(o.heapSnapshots ? ['--heapsnapshot-signal=SIGUSR2', `--diagnostic-dir=${heapDir}`] : [])] : []), ...o.brokerNodeFlags],
      parties: [...workerNames.map((name) => ({ name, entry: '  role: worker\n  serve: [echo]\n' })), ...clientNames.map((name) => ({ name, entry: '  role: client\n  call: [echo]\n' }))],
      // Broker 1's /metrics tells its JS heap from the rest of its RSS.
      admin: true,
      readyMs: READY_MS,
    });
    const m = mesh;
    progress(`3 brokers up: ${m.urls.join(' ')}`);

    const startWorker = async (i: number): Promise<void> => {
      const name = workerNames[i]!;
      workers[i] = await group.spawn({
        name,
        script: 'bench/peers/meshd/worker.mjs',
        args: ['--brokers', m.urls.join(','), '--key', m.parties.get(name)!.file, '--name', name, '--concurrency', '16', '--lifetime-ms', String(o.durationMs + 300_000)],
        loader: false,
        readyTimeoutMs: READY_MS,
      });
    };
    const startClient = async (): Promise<void> => {
      const name = clientNames[nextClient++ % clientNames.length]!;
      const node = await MeshNode.connect({ brokers: m.urls, key: m.parties.get(name)!.keyPair, name, timeout: 10_000 });
      clients.push({ node, name, leaving: false, inFlight: 0 });
    };
    for (let i = 0; i < o.workers; i++) await startWorker(i);
    for (let i = 0; i < o.clients; i++) await startClient();
    progress(`${o.workers} workers and ${o.clients} clients up; load ${o.rate}/s for ${o.durationMs / 60_000} min`);

    // ---------------------------------------------------------- load
    let seq = 0;
    const send = (c: Client): void => {
      const id = seq++;
      const payload = randomBytes(16 + (id % 4081));
      payload.writeUInt32BE(id >>> 0, 0);
      counts.sent++;
      inFlight.add(id);
      c.inFlight++;
      c.node.request('echo', payload, { timeout: REQUEST_TIMEOUT_MS }).then(
        (reply) => {
          if (reply.equals(payload)) counts.replied++;
          else counts.wrong++;
        },
        (error: unknown) => {
          const code = (error as { code?: string }).code ?? String(error);
          counts.failed[code] = (counts.failed[code] ?? 0) + 1;
        },
      ).finally(() => {
        inFlight.delete(id);
        c.inFlight--;
      });
    };
    const started = performance.now();
    const deadline = started + o.durationMs;
    const pacer = (async () => {
      // 10 ms ticks; bounded by the deadline.
      let due = 0;
      for (let tick = 0; !stopping && performance.now() < deadline; tick++) {
        due += o.rate / 100;
        const ready = paused ? [] : clients.filter((c) => !c.leaving);
        while (due >= 1 && inFlight.size < MAX_IN_FLIGHT && ready.length > 0) {
          send(ready[tick % ready.length]!);
          due--;
        }
        if (due > o.rate) due = o.rate; // do not pile up a backlog while at MAX_IN_FLIGHT
        await sleep(10);
      }
    })();

    // ---------------------------------------------------------- churn
    let churnTurn = 0;
    let churning = false;
    timers.push(
      setInterval(() => {
        if (churning || stopping) return;
        churning = true;
        const turn = churnTurn++;
        void (async () => {
          try {
            if (turn % 2 === 0) {
              const leaving = clients.find((c) => !c.leaving);
              if (!leaving) return;
              leaving.leaving = true;
              for (let i = 0; i < 200 && leaving.inFlight > 0; i++) await sleep(50);
              await leaving.node.close();
              clients.splice(clients.indexOf(leaving), 1);
              await startClient();
              churn.clientsReplaced++;
            } else {
              const i = Math.floor(turn / 2) % o.workers;
              await group.stop(workers[i]!, 10_000);
              await startWorker(i);
              churn.workersReplaced++;
            }
          } catch (error) {
            progress(`churn step failed: ${String(error)}`);
          } finally {
            churning = false;
          }
        })();
      }, o.churnMs),
    );

    // ---------------------------------------------------------- broker restarts
    let restartTurn = 0;
    let restarting = false;
    timers.push(
      setInterval(() => {
        if (restarting || stopping) return;
        restarting = true;
        const b = m.handles[1 + (restartTurn++ % 2)]!;
        const t0 = performance.now();
        b.restart('SIGTERM').then(
          () => {
            churn.brokerRestarts++;
            churn.restartMs.push(Math.round(performance.now() - t0));
            restarting = false;
          },
          (error: unknown) => {
            progress(`restart of ${b.name} failed: ${String(error)}`);
            restarting = false;
          },
        );
      }, o.restartMs),
    );

    // ---------------------------------------------------------- samples
    const heapOf = async (port: number): Promise<{ heapUsedMiB: number; heapTotalMiB: number; externalMiB: number } | undefined> => {
      try {
        const text = await (await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(2000) })).text();
        const metric = (name: string): number => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN) / MIB;
        return { heapUsedMiB: +metric('nodejs_heap_size_used_bytes').toFixed(1), heapTotalMiB: +metric('nodejs_heap_size_total_bytes').toFixed(1), externalMiB: +metric('nodejs_external_memory_bytes').toFixed(1) };
      } catch {
        return undefined;
      }
    };
    const heaps: Array<{ atS: number; heapUsedMiB: number; heapTotalMiB: number; externalMiB: number }> = [];
    const sample = (): void => {
      const processes: Record<string, { rssMiB: number; fds: number }> = {};
      const add = (name: string, pid: number | undefined): void => {
        const s = pid === undefined ? undefined : sampleProcess(pid);
        if (s) processes[name] = { rssMiB: +(s.rss / MIB).toFixed(1), fds: s.fds };
      };
      m.handles.forEach((h) => add(h.name, h.proc?.alive ? h.proc.pid : undefined));
      workers.forEach((w, i) => add(workerNames[i]!, w?.alive ? w.pid : undefined));
      add('soak (clients)', process.pid);
      const atS = Math.round((performance.now() - started) / 1000);
      samples.push({ atS, processes });
      void heapOf(m.adminPorts[0]!).then((h) => h && heaps.push({ atS, ...h }));
      const b1 = processes['broker-1'];
      progress(`${atS} s: sent ${counts.sent}, replied ${counts.replied}, failed ${Object.values(counts.failed).reduce((a, b) => a + b, 0)}, in flight ${inFlight.size}; broker-1 ${b1?.rssMiB ?? '?'} MiB ${b1?.fds ?? '?'} fds`);
    };
    sample();
    timers.push(setInterval(sample, o.sampleMs));

    // ---------------------------------------------------------- retained memory
    const retained: Array<{ label: string; atS: number; heapUsedMiB: number; externalMiB: number; retainedMiB: number; rssMiB: number; pauseMs: number; snapshot?: string }> = [];
    let measuring: Promise<void> | undefined;
    const measure = async (label: string): Promise<void> => {
      const pauseStarted = performance.now();
      paused = true;
      let inspector: InspectorClient | undefined;
      try {
        for (let i = 0; i < 400 && inFlight.size > 0; i++) await sleep(50);
        inspector = await InspectorClient.connect(inspectPort);
        const r = await inspector.retained();
        const atS = Math.round((performance.now() - started) / 1000);
        const row = { label, atS, heapUsedMiB: +(r.heapUsed / MIB).toFixed(2), externalMiB: +(r.external / MIB).toFixed(2), retainedMiB: +((r.heapUsed + r.external) / MIB).toFixed(2), rssMiB: +(r.rss / MIB).toFixed(1) };
        const snapshot = o.heapSnapshots ? await writeSnapshot() : undefined;
        retained.push({ ...row, pauseMs: Math.round(performance.now() - pauseStarted), ...(snapshot === undefined ? {} : { snapshot }) });
        progress(`${atS} s: broker-1 retains ${row.retainedMiB} MiB after a full GC (heap ${row.heapUsedMiB}, external ${row.externalMiB}; RSS ${row.rssMiB})`);
      } catch (error) {
        progress(`measuring broker-1's retained memory (${label}) failed: ${String(error)}`);
      } finally {
        inspector?.close();
        paused = false;
      }
    };
    /** Has broker 1 write a heap snapshot (SIGUSR2); resolves with its path once complete. */
    const writeSnapshot = async (): Promise<string> => {
      const known = new Set(readdirSync(heapDir));
      if (!m.handles[0]!.signal('SIGUSR2')) throw new Error('broker-1 is not running');
      // Written on broker 1's main thread: once the file is there and
      // /metrics answers again, it is complete.
      for (let waited = 0; waited < SNAPSHOT_MS; waited += 100) {
        await sleep(100);
        const file = readdirSync(heapDir).find((f) => !known.has(f) && f.endsWith('.heapsnapshot'));
        if (file !== undefined && (await heapOf(m.adminPorts[0]!)) !== undefined) return path.join(heapDir, file);
      }
      throw new Error(`broker-1 wrote no heap snapshot within ${SNAPSHOT_MS} ms`);
    };
    timers.push(
      setTimeout(() => {
        measuring = measure('first');
      }, o.snapshotAtMs),
    );

    await pacer;
    stopping = true;
    for (const t of timers) clearInterval(t);
    progress('load over: waiting for the requests in flight');
    for (let i = 0; i < 400 && inFlight.size > 0; i++) await sleep(50);
    // Let a restart or churn step in progress finish before judging.
    for (let i = 0; i < 400 && (restarting || churning); i++) await sleep(50);
    sample();
    const elapsedMs = Math.round(performance.now() - started);
    await measuring;
    await measure('end');

    // ---------------------------------------------------------- verdict
    const series = samples.map((s) => ({ atS: s.atS, rssMiB: s.processes['broker-1']?.rssMiB, fds: s.processes['broker-1']?.fds })).filter((s): s is { atS: number; rssMiB: number; fds: number } => s.rssMiB !== undefined);
    const mean = (xs: number[]): number => (xs.length === 0 ? NaN : xs.reduce((a, b) => a + b, 0) / xs.length);
    const minute2 = series.filter((s) => s.atS >= 60 && s.atS < 120);
    const lastMinute = series.filter((s) => s.atS >= series.at(-1)!.atS - 60);
    const rssAfterMinute1 = mean(minute2.map((s) => s.rssMiB));
    const rssEnd = mean(lastMinute.map((s) => s.rssMiB));
    const pct = (end: number, start: number): number => +((end / start - 1) * 100).toFixed(1);
    const rssBoundMiB = rssAfterMinute1 * 1.1 + LAZY_OLD_SPACE_MIB;
    const first = retained.find((r) => r.label === 'first');
    const last = retained.find((r) => r.label === 'end');
    const retainedGrowthPct = first && last ? pct(last.retainedMiB, first.retainedMiB) : NaN;
    const snapshotGrowth = first?.snapshot !== undefined && last?.snapshot !== undefined ? heapGrowth(summarizeHeapSnapshot(first.snapshot), summarizeHeapSnapshot(last.snapshot)) : undefined;
    const failed = Object.values(counts.failed).reduce((a, b) => a + b, 0);
    const lost = inFlight.size;
    const reasons: string[] = [];
    if (lost > 0) reasons.push(`${lost} requests lost (no reply, no error)`);
    if (counts.wrong > 0) reasons.push(`${counts.wrong} wrong replies`);
    if (failed > 0) reasons.push(`${failed} requests failed: ${JSON.stringify(counts.failed)}`);
    if (!first || !last) reasons.push(`broker-1's retained memory was not measured at ${first ? 'the end' : `${o.snapshotAtMs / 1000} s (is the run longer than that?)`}`);
    else if (retainedGrowthPct > RETAINED_GROWTH_PCT) reasons.push(`broker-1 retains ${retainedGrowthPct} % more after a full GC at the end than at ${first.atS} s (bound: ${RETAINED_GROWTH_PCT} %)`);
    if (!Number.isFinite(rssAfterMinute1) || lastMinute[0]!.atS < 120) reasons.push('run too short to compare RSS (needs 3 minutes or more)');
    else if (rssEnd > rssBoundMiB) reasons.push(`broker-1 RSS ${rssEnd.toFixed(1)} MiB at the end, over its bound ${rssBoundMiB.toFixed(1)} MiB (110 % of the RSS after minute 1 plus the ${LAZY_OLD_SPACE_MIB} MiB old space V8 may fill before collecting)`);
    const doc = {
      type: 'meshd-soak',
      machine: `${os.cpus().length} × ${os.cpus()[0]?.model ?? '?'}, node ${process.version}`,
      settings: { ...o, requestTimeoutMs: REQUEST_TIMEOUT_MS },
      elapsedMs,
      requests: { ...counts, lost, perSecond: Math.round(counts.sent / (elapsedMs / 1000)) },
      churn,
      witness: {
        name: 'broker-1',
        rssAfterMinute1MiB: +rssAfterMinute1.toFixed(1),
        rssEndMiB: +rssEnd.toFixed(1),
        rssBoundMiB: +rssBoundMiB.toFixed(1),
        rssMaxMiB: Math.max(...series.map((s) => s.rssMiB)),
        growthAfterMinute1Pct: pct(rssEnd, rssAfterMinute1),
        // After a full GC (DevTools protocol), with the load paused.
        retained,
        retainedGrowthPct,
        ...(snapshotGrowth ? { snapshotGrowth } : {}),
        fdsAfterMinute1: minute2[0]?.fds,
        fdsEnd: series.at(-1)?.fds,
        // JS heap (used after whatever collections ran), total heap and external memory, from its /metrics.
        heap: heaps,
      },
      samples,
      ok: reasons.length === 0,
      reasons,
    };
    process.stdout.write(`${JSON.stringify(doc, null, 2)}\n`);
    return doc.ok ? 0 : 1;
  } finally {
    stopping = true;
    for (const t of timers) clearInterval(t);
    for (const c of clients) await c.node.close().catch(() => {});
    await Promise.all(workers.flatMap((w) => (w?.alive ? [group.stop(w, 5000)] : [])));
    group.killAll();
    for (const h of mesh?.handles ?? []) {
      if (h.proc?.alive) await h.terminate(10_000);
      if (h.proc?.alive) await h.kill();
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`soak: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  },
);
