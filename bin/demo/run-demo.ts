/**
 * `meshd demo`: a local mesh on 127.0.0.1, every party its own process, run
 * for a few seconds under load with a broker crash in the middle, then a
 * summary. The command module (bin/commands/demo.ts) imports this lazily.
 *
 *  1. A temporary directory gets a key file per party and a registry.
 *  2. Every process starts at once (loading Node and meshd is the slow
 *     part): brokers (demo-broker.js, which runs the `meshd broker` command),
 *     workers (demo-worker.js) and the client (demo-client.js), each with an
 *     IPC channel to the demo. The first broker then listens on port 0
 *     alone, the others with it as --peer; workers and the client get every
 *     broker as a seed.
 *  3. Once every node reaches every broker (bounded wait), the client runs
 *     its request loops for --duration seconds. Unless --no-fault, one
 *     broker is SIGKILLed at 30 % of the time (its successor process starts
 *     loading at once) and started again (same key and port) at 60 %.
 *  4. The client stops sending, waits for the requests in flight and
 *     reports the last ones; the workers report their last executions;
 *     every child is SIGKILLed by pid and waited for; the directory is
 *     removed; the summary is printed.
 *
 * SIGINT, SIGTERM or SIGHUP jump to step 4 (a partial summary); a second
 * one kills every child and removes the directory at once, then exits with
 * 128 + the signal number.
 */

import { rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { addRegistryEntry, encodeKey, generateKeyPair, writeKeyFile } from '../../lib/index.ts';
import type { RoleName } from '../../lib/index.ts';
import type { CliContext, HostSignal } from '../context.ts';
import { signalExitCode } from '../options.ts';
import { DEMO_SERVICE } from './ipc.ts';
import type { ChildConfig, ClientConfig, FromChild } from './ipc.ts';
import { DemoFailure, ProcessGroup, packageFile } from './processes.ts';
import type { DemoProcess } from './processes.ts';
import { Tally, percentile } from './tally.ts';
import { BrokerState, LiveView, secs, summaryText } from './view.ts';
import type { DemoSummary, FaultReport, Frame } from './view.ts';

/** What `meshd demo` was asked for. */
export interface DemoOptions {
  /** Seconds of load. */
  readonly durationS: number;
  readonly brokers: number;
  readonly workers: number;
  /** Kill and restart a broker (only with 2 brokers or more). */
  readonly fault: boolean;
  /** The summary as JSON on stdout; the live view on stderr. */
  readonly json: boolean;
}

/** Requests in flight at once: one client loop each. */
export const IN_FLIGHT = 8;
/** Least time between two sends of one loop, ms: at most 62.5 requests/s a loop, 500/s in all (the demo shares the machine with whatever else runs). */
const PACING_MS = 16;
/** Deadline and retries of each request. */
const REQUEST_TIMEOUT_MS = 2000;
const RETRIES = 2;
/** The brokers' quorum round, ms: a restarted broker is in everyone's list within a round or two. */
const GOSSIP_INTERVAL_MS = 500;
/** Longest wait for a process to be up (listening, connected), ms. */
const START_MS = 20_000;
/** Longest wait, before the load, for every node to reach every broker, ms. */
const SETTLE_MS = 5000;
/** Longest wait for the client's last report after `stop`, ms (its requests settle by their deadline). */
const CLIENT_END_MS = REQUEST_TIMEOUT_MS + 2500;
/** Longest wait for the workers' last reports, ms. */
const WORKERS_END_MS = 1500;
/** Longest wait for the SIGKILLed children to exit, ms. */
const KILL_WAIT_MS = 3000;
/** The fault: SIGKILL at this share of the duration (not before 1 s), restart at the second. */
const KILL_AT = 0.3;
const RESTART_AT = 0.6;
/** Most lost seqs listed in the summary. */
const LOST_LISTED = 10;

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));

/** The reason of the demo's abort signal: a signal interrupted it. */
class Interrupted extends Error {
  override readonly name = 'Interrupted';
}

/**
 * Polls `check` every 25 ms until it returns a value (resolves with it), `ms`
 * pass (resolves undefined) or `signal` aborts (rejects with its reason).
 * `check` may throw to give up.
 */
async function poll<T>(check: () => T | undefined, ms: number, signal?: AbortSignal): Promise<T | undefined> {
  const deadline = performance.now() + ms;
  for (;;) {
    if (signal?.aborted) throw signal.reason instanceof Error ? signal.reason : new Interrupted(String(signal.reason));
    const value = check();
    if (value !== undefined) return value;
    if (performance.now() >= deadline) return undefined;
    await sleep(25);
  }
}

/** Sleeps `ms`, or less when `signal` aborts (never rejects). */
function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, Math.max(0, ms));
    signal.addEventListener('abort', done, { once: true });
  });
}

/** One broker slot: its key, its port once known, and the processes that ran it. */
interface BrokerSlot {
  readonly name: string;
  readonly keyFile: string;
  url: string | undefined;
  port: number;
  state: BrokerState;
  /** Every process started for it (a restart's successor is started when the broker is killed). */
  readonly procs: DemoProcess[];
  /** The pids of those that ran the broker. */
  readonly ran: number[];
}

/** A client or worker process and what it said last. */
interface Node {
  readonly name: string;
  readonly keyFile: string;
  proc: DemoProcess | undefined;
  ready: boolean;
  healthy: readonly number[];
  /** Client: `done` received; worker: `stopped` received. */
  finished: boolean;
  failure: string | undefined;
}

const node = (name: string, dir: string): Node => ({ name, keyFile: join(dir, `${name}.key`), proc: undefined, ready: false, healthy: [], finished: false, failure: undefined });

/** Runs the demo; resolves with the exit code. */
export async function runDemo(ctx: CliContext, options: DemoOptions): Promise<number> {
  const view = new LiveView(options.json ? ctx.io.stderr : ctx.io.stdout, process.env);
  const group = new ProcessGroup();
  const abort = new AbortController();
  let interruptedBy: HostSignal | undefined;
  let dir = '';
  // The last resort (a crash of the demo, a second signal): nothing outlives it.
  const hardStop = (): void => {
    group.killAll();
    if (dir !== '') rmSync(dir, { recursive: true, force: true });
  };
  process.once('exit', hardStop);
  const offs = (['SIGINT', 'SIGTERM', 'SIGHUP'] as const).map((signal) =>
    ctx.host.onSignal(signal, () => {
      if (interruptedBy === undefined) {
        interruptedBy = signal;
        abort.abort(new Interrupted(signal));
        return;
      }
      hardStop();
      ctx.host.exit(signalExitCode(signal));
    }),
  );

  const fault = options.fault && options.brokers > 1;
  const brokers: BrokerSlot[] = [];
  const workers: Node[] = [];
  let client: Node | undefined;
  const tally = new Tally(
    Array.from({ length: options.brokers }, (_, i) => `broker-${i + 1}`),
    Array.from({ length: options.workers }, (_, i) => `worker-${i + 1}`),
  );
  const events: string[] = [];
  let loadStart: number | undefined;
  let loadMs = 0;
  let faultReport: FaultReport | null = null;
  let failure: Error | undefined;
  /** Set once the demo kills its children itself: their exits are no news. */
  let ending = false;
  const at = (): string => (loadStart === undefined ? 'start' : `${secs((performance.now() - loadStart) / 1000)} s`);
  const event = (text: string): void => {
    events.push(`${at()}  ${text}`);
    if (!view.terminal) view.note(`t=${at().replace(' ', '')} ${text}`);
  };

  try {
    dir = await mkdtemp(join(tmpdir(), 'meshd-demo-'));
    const registry = join(dir, 'registry.yaml');
    for (let i = 0; i < options.brokers; i++) brokers.push({ name: `broker-${i + 1}`, keyFile: join(dir, `broker-${i + 1}.key`), url: undefined, port: 0, state: BrokerState.STARTING, procs: [], ran: [] });
    for (let i = 0; i < options.workers; i++) workers.push(node(`worker-${i + 1}`, dir));
    client = node('client', dir);
    const c = client;

    // 1. Keys and the registry.
    const parties: Array<{ name: string; keyFile: string; role: RoleName; call?: string[]; serve?: string[] }> = [
      ...brokers.map((b) => ({ name: b.name, keyFile: b.keyFile, role: 'broker' as const })),
      ...workers.map((w) => ({ name: w.name, keyFile: w.keyFile, role: 'worker' as const, serve: [DEMO_SERVICE] })),
      { name: c.name, keyFile: c.keyFile, role: 'client' as const, call: [DEMO_SERVICE] },
    ];
    for (const p of parties) {
      const keyPair = generateKeyPair();
      await writeKeyFile(p.keyFile, keyPair);
      await addRegistryEntry(registry, { key: encodeKey(keyPair.publicKey), name: p.name, role: p.role, call: p.call, serve: p.serve });
    }
    view.note(`meshd demo: ${options.brokers} broker${options.brokers === 1 ? '' : 's'}, ${options.workers} echo worker${options.workers === 1 ? '' : 's'} and a client on 127.0.0.1, each its own process; keys and registry in ${dir}`);

    // 2. Workers and the client start first (loading Node takes a while) and learn the brokers over IPC once those listen.
    const listen = (n: Node, index: number) => (m: FromChild): void => {
      switch (m.type) {
        case 'ready':
          n.ready = true;
          return;
        case 'links':
          n.healthy = m.healthy;
          return;
        case 'batch':
          tally.addBatch(m.at, m.sent, m.perBroker, m.inFlight, m.results);
          return;
        case 'done':
          tally.clientDone();
          n.finished = true;
          return;
        case 'execs':
          tally.addExecutions(index, m.seqs);
          return;
        case 'stopped':
          n.finished = true;
          return;
        case 'failed':
          n.failure = m.message;
          return;
      }
    };
    const startNode = (n: Node, file: string, config: ChildConfig, index: number): void => {
      n.proc = group.start(n.name, file, [JSON.stringify(config)], true);
      n.proc.onMessage(listen(n, index));
    };
    const workerFile = packageFile('demo/demo-worker.js');
    workers.forEach((w, i) => startNode(w, workerFile, { name: w.name, keyFile: w.keyFile }, i));
    const clientConfig: ClientConfig = { name: c.name, keyFile: c.keyFile, inFlight: IN_FLIGHT, pacingMs: PACING_MS, timeoutMs: REQUEST_TIMEOUT_MS, retries: RETRIES };
    startNode(c, packageFile('demo/demo-client.js'), clientConfig, -1);
    const nodes = [...workers, c];

    // Brokers: each process loads meshd at once; then the first listens alone, the others with it as their peer.
    const brokerFile = packageFile('demo/demo-broker.js');
    const spawnBroker = (b: BrokerSlot): DemoProcess => {
      const p = group.start(b.name, brokerFile, [JSON.stringify({ name: b.name, keyFile: b.keyFile } satisfies ChildConfig)], true);
      b.procs.push(p);
      void p.exited.then(() => {
        // A broker that ends when the demo did not kill it.
        if (b.procs[b.procs.length - 1] === p && b.state !== BrokerState.KILLED && !ending && !abort.signal.aborted && loadStart !== undefined) {
          b.state = BrokerState.EXITED;
          event(`${b.name} ${p.describeExit()} (pid ${p.pid})`);
        }
      });
      return p;
    };
    const runBroker = async (b: BrokerSlot, p: DemoProcess, peers: readonly string[]): Promise<void> => {
      const args = ['--listen', `127.0.0.1:${b.port}`, '--key', b.keyFile, '--registry', registry, '--name', b.name, '--gossip-interval', String(GOSSIP_INTERVAL_MS), ...peers.flatMap((u) => ['--peer', u])];
      p.send({ type: 'run', args });
      const line = await p.line(/^listening mesh:\/\//, START_MS, abort.signal);
      b.url = line.slice('listening '.length).trim();
      b.port = Number(/:(\d+)$/.exec(b.url)?.[1] ?? '0');
      b.ran.push(p.pid);
      b.state = BrokerState.UP;
    };
    const brokerProcs = brokers.map(spawnBroker);
    const first = brokers[0]!;
    const announce = (i: number): void => view.note(`  ${brokers[i]!.name.padEnd(8)} pid ${String(brokerProcs[i]!.pid).padEnd(7)} listening ${brokers[i]!.url ?? ''}`);
    await runBroker(first, brokerProcs[0]!, []);
    announce(0);
    await Promise.all(brokers.slice(1).map((b, i) => runBroker(b, brokerProcs[i + 1]!, [first.url!])));
    for (let i = 1; i < brokers.length; i++) announce(i);
    // Every broker a seed of every node.
    const urls = brokers.map((b) => b.url!);
    for (const n of nodes) n.proc!.send({ type: 'connect', brokers: urls });
    const up = await poll(
      () => {
        for (const n of nodes) {
          if (n.failure !== undefined) throw new DemoFailure(`${n.name} could not connect: ${n.failure}`);
          if (n.proc?.alive === false) throw new DemoFailure(`${n.name} ${n.proc.describeExit()} before it was up${n.proc.stderrTail() === '' ? '' : `:\n${n.proc.stderrTail()}`}`);
        }
        return nodes.every((n) => n.ready) ? true : undefined;
      },
      START_MS,
      abort.signal,
    );
    if (up === undefined) throw new DemoFailure(`${nodes.filter((n) => !n.ready).map((n) => n.name).join(', ')} not connected after ${START_MS / 1000} s`);
    for (const n of nodes) view.note(`  ${n.name.padEnd(8)} pid ${String(n.proc?.pid ?? '-').padEnd(7)} connected`);
    const everywhere = await poll(() => (nodes.every((n) => n.healthy.length === options.brokers) ? true : undefined), SETTLE_MS, abort.signal);
    if (everywhere === undefined) view.note(`  (not every node reached every broker within ${SETTLE_MS / 1000} s; starting anyway)`);

    // 3. The load, the live view and the fault.
    const victim = fault ? brokers[1]! : undefined;
    const killAtMs = Math.max(1000, Math.round(options.durationS * 1000 * KILL_AT));
    const restartAtMs = Math.round(options.durationS * 1000 * RESTART_AT);
    view.note(
      `load: ${IN_FLIGHT} requests in flight (at most ${Math.round((IN_FLIGHT * 1000) / PACING_MS)}/s), each checked against its reply, for ${options.durationS} s; ` +
        (victim === undefined ? 'no fault' : `SIGKILL ${victim.name} at ${secs(killAtMs / 1000)} s, restart it at ${secs(restartAtMs / 1000)} s`),
    );
    const start = performance.now();
    loadStart = start;
    c.proc!.send({ type: 'start' });
    const timers: NodeJS.Timeout[] = [];
    if (victim !== undefined) {
      const report: { -readonly [K in keyof FaultReport]: FaultReport[K] } = { broker: victim.name, killedAtMs: null, killedPid: null, restartedAtMs: null, listeningAgainAtMs: null, newPid: null };
      faultReport = report;
      timers.push(
        setTimeout(() => {
          const p = victim.procs[victim.procs.length - 1]!;
          victim.state = BrokerState.KILLED;
          p.signal('SIGKILL');
          report.killedAtMs = Math.round(performance.now() - start);
          report.killedPid = p.pid;
          event(`SIGKILL ${victim.name} (pid ${p.pid})`);
          // Its successor loads meshd now, to listen the moment it is restarted.
          if (!ending) spawnBroker(victim);
        }, killAtMs),
        setTimeout(() => {
          const next = victim.procs[victim.procs.length - 1]!;
          if (abort.signal.aborted || victim.state !== BrokerState.KILLED || !next.alive) return;
          victim.state = BrokerState.RESTARTING;
          report.restartedAtMs = Math.round(performance.now() - start);
          event(`restarting ${victim.name} on port ${victim.port} (same key)`);
          const peers = brokers.filter((b) => b !== victim && b.state === BrokerState.UP).map((b) => b.url!);
          runBroker(victim, next, peers).then(
            () => {
              report.listeningAgainAtMs = Math.round(performance.now() - start);
              report.newPid = next.pid;
              event(`${victim.name} listening again (pid ${next.pid})`);
            },
            (error: unknown) => {
              if (ending || error instanceof Interrupted) return;
              victim.state = BrokerState.EXITED;
              event(`${victim.name} did not restart: ${error instanceof Error ? error.message : String(error)}`);
            },
          );
        }, restartAtMs),
      );
    }
    const tickMs = view.terminal ? 250 : 1000;
    // Worker rates from the demo's samples of their reports; the client's rates by its own clock (Tally.rates).
    const samples: Array<{ at: number; perWorker: number[] }> = [{ at: start, perWorker: tally.executionsPerWorker() }];
    const recent: Array<{ at: number; latencies: number[] }> = [];
    const frame = (now: number): Frame => {
      const sample = { at: now, perWorker: tally.executionsPerWorker() };
      samples.push(sample);
      recent.push({ at: now, latencies: tally.takeRecentLatencies() });
      // Over the last second (or what there is of it).
      const base = [...samples].reverse().find((s) => s.at <= now - 999) ?? samples[0]!;
      const dt = Math.max(1, now - base.at) / 1000;
      while (samples.length > 2 && samples[1]!.at <= now - 1000) samples.shift();
      while (recent.length > 0 && recent[0]!.at <= now - 1000) recent.shift();
      const latencies = recent.flatMap((r) => r.latencies).sort((a, b) => a - b);
      const counts = tally.counts();
      const rates = tally.rates();
      return {
        t: (now - start) / 1000,
        durationS: options.durationS,
        rate: rates.settled,
        sent: counts.sent,
        replied: counts.replied,
        failed: counts.failed,
        inFlight: tally.inFlight,
        p50: percentile(latencies, 50),
        p99: percentile(latencies, 99),
        brokers: brokers.map((b, i) => ({ name: b.name, state: b.state, rate: rates.perBroker[i] ?? 0 })),
        workers: workers.map((w, i) => ({ name: w.name, rate: (sample.perWorker[i]! - base.perWorker[i]!) / dt })),
        clientLinks: c.healthy.length,
        events,
      };
    };
    const end = start + options.durationS * 1000;
    for (let tick = 1; !abort.signal.aborted; tick++) {
      const next = Math.min(end, start + tick * tickMs);
      await pause(next - performance.now(), abort.signal);
      if (abort.signal.aborted) break;
      const f = frame(performance.now());
      view.draw(f);
      view.line(f);
      if (next >= end) break;
    }
    for (const t of timers) clearTimeout(t);
    loadMs = performance.now() - start;
    if (abort.signal.aborted) event(`${interruptedBy ?? 'a signal'}: stopping`);

    // 4. The end: the client's last requests, then the workers' last executions.
    c.proc!.send({ type: 'stop' });
    await poll(() => (c.finished || !c.proc!.alive ? true : undefined), CLIENT_END_MS);
    for (const w of workers) w.proc!.send({ type: 'stop' });
    await poll(() => (workers.every((w) => w.finished || !w.proc!.alive) ? true : undefined), WORKERS_END_MS);
    if (view.terminal) view.draw(frame(performance.now()));
  } catch (error) {
    if (!(error instanceof Interrupted)) failure = error instanceof Error ? error : new Error(String(error));
  } finally {
    ending = true;
  }

  const leftRunning = await group.stopAll(KILL_WAIT_MS);
  let removed = dir === '';
  if (dir !== '') {
    await rm(dir, { recursive: true, force: true }).then(
      () => (removed = true),
      () => undefined,
    );
  }
  // Signals stay handled until here: a second one during the clean-up still kills every child first.
  for (const off of offs) off();
  process.off('exit', hardStop);

  if (failure !== undefined) {
    if (!(failure instanceof DemoFailure)) throw failure;
    ctx.io.stderr.write(`meshd demo: ${failure.message}\n`);
    ctx.io.stderr.write(`meshd demo: stopped ${group.all.length} processes${leftRunning.length === 0 ? '' : ` (still running: ${leftRunning.map((p) => p.pid).join(' ')})`}; ${removed ? 'temp dir removed' : `temp dir NOT removed: ${dir}`}\n`);
    return 1;
  }

  const counts = tally.counts();
  const lost = tally.unsettled();
  const summary: DemoSummary = {
    ok: counts.lost === 0 && leftRunning.length === 0 && removed,
    complete: interruptedBy === undefined,
    interruptedBy: interruptedBy ?? null,
    durationS: options.durationS,
    loadMs: Math.round(loadMs),
    brokers: options.brokers,
    workers: options.workers,
    inFlight: IN_FLIGHT,
    fault: faultReport,
    requests: counts,
    latencyMs: tally.latency(),
    perBroker: tally.perBroker().map((b, i) => ({ ...b, state: brokers[i]?.state ?? BrokerState.STARTING, pids: brokers[i]?.ran ?? [] })),
    perWorker: tally.perWorker().map((w, i) => ({ ...w, pid: workers[i]?.proc?.pid ?? null })),
    client: { pid: client?.proc?.pid ?? null },
    withoutBroker: tally.withoutBroker(),
    lostSeqs: lost.slice(0, LOST_LISTED),
    pids: group.all.map((p) => p.pid),
    leftRunning: leftRunning.map((p) => p.pid),
    tempDir: dir,
    tempDirRemoved: removed,
  };
  if (options.json) ctx.io.stdout.write(`${JSON.stringify(summary)}\n`);
  else for (const line of summaryText(summary)) ctx.io.stdout.write(`${line}\n`);
  return summary.ok ? 0 : 1;
}
