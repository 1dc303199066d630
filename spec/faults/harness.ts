// The fault suite's cluster: N real `meshd broker` processes on 127.0.0.1
// (fixed ports picked up front, so a broker restarts on the same port and
// key), W fault-worker.ts processes, and one client MeshNode in the test
// process. Every request the client sends goes through `request()`, which
// records its fate; workers report every execution, so executions map back
// to requests (by their unique payload). Fault helpers signal, kill and
// restart brokers and workers by pid. `close()` kills everything.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { MeshNode } from '../../lib/node/mesh-node.ts';
import { DISPATCHED_CHANNEL } from '../../lib/node/requester.ts';
import type { DispatchedMessage } from '../../lib/node/requester.ts';
import { MeshError } from '../../lib/errors.ts';
import { getSuite } from '../../lib/crypto/suites.ts';
import { encodeKey, writeKeyFileSync } from '../../lib/crypto/keys.ts';
import { formatBrokerAddress } from '../../lib/protocol/broker-address.ts';
import type { KeyPair } from '../../lib/crypto/crypto-suite.ts';
import { FaultProcess, meshdArgs, root } from './processes.ts';
import type { LogLine } from './processes.ts';

const suite = getSuite('node');
export const SERVICE = 'echo';

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

// ------------------------------------------------------------ ports and keys

/** `n` distinct free TCP ports on 127.0.0.1, picked at once (all held open together, then released). */
export async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<net.Server>((resolve, reject) => {
          const s = net.createServer();
          s.once('error', reject);
          s.listen({ host: '127.0.0.1', port: 0 }, () => resolve(s));
        }),
    ),
  );
  const ports = servers.map((s) => (s.address() as net.AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  return ports;
}

interface Party {
  readonly name: string;
  readonly keyPair: KeyPair;
  readonly key: string;
}

function party(name: string): Party {
  const keyPair = suite.generateKeyPair();
  return { name, keyPair, key: encodeKey(keyPair.publicKey) };
}

const keyOfUrl = (url: string): string => /^mesh:\/\/([^@]+)@/.exec(url)?.[1] ?? url;

// ------------------------------------------------------------ brokers

/** One broker slot: a key, a port, and the processes that have run it (restarts keep key and port). */
export class BrokerHandle {
  readonly index: number;
  readonly party: Party;
  readonly port: number;
  readonly keyFile: string;
  /** Every process that ran this broker, oldest first. */
  readonly generations: FaultProcess[] = [];
  /**
   * When the test crashed or froze it (SIGKILL, SIGSTOP; performance.now()):
   * a request it dispatched in the instant before, whose client never heard
   * which worker had it (DISPATCHED), may run again elsewhere, with dup.
   */
  readonly stops: number[] = [];
  #args: string[] = [];
  #nodeFlags: string[] = [];

  constructor(index: number, party: Party, port: number, keyFile: string) {
    this.index = index;
    this.party = party;
    this.port = port;
    this.keyFile = keyFile;
  }

  get name(): string {
    return this.party.name;
  }

  /** The broker's public key, base64url. */
  get key(): string {
    return this.party.key;
  }

  /** Its real address. */
  get url(): string {
    return urlOf(this.key, this.port);
  }

  /** The process now (the latest generation). */
  get proc(): FaultProcess | undefined {
    return this.generations[this.generations.length - 1];
  }

  get alive(): boolean {
    return this.proc?.alive ?? false;
  }

  /** @internal */
  setArgs(args: string[]): void {
    this.#args = args;
  }

  /** Extra Node flags for the next processes (the benchmarks' `--cpu-prof`). */
  setNodeFlags(flags: string[]): void {
    this.#nodeFlags = flags;
  }

  /** Starts a process for this broker (same port, key and flags) and waits for `listening` (bounded). */
  async start(ms = 30_000): Promise<FaultProcess> {
    if (this.proc?.alive) throw new Error(`${this.name} is already running (pid ${this.proc.pid})`);
    const proc = new FaultProcess(`${this.name}#${this.generations.length + 1}`, meshdArgs(['broker', ...this.#args], this.#nodeFlags));
    this.generations.push(proc);
    await proc.line(/^listening mesh:\/\//, ms);
    return proc;
  }

  /** Sends a signal to the current process by pid. */
  signal(signal: NodeJS.Signals): boolean {
    if ((signal === 'SIGSTOP' || signal === 'SIGKILL') && this.alive) this.stops.push(performance.now());
    return this.proc?.signal(signal) ?? false;
  }

  /** SIGKILL and wait for the exit (bounded). */
  async kill(): Promise<void> {
    if (this.alive) this.stops.push(performance.now());
    this.proc?.signal('SIGCONT');
    await this.proc?.kill();
  }

  /**
   * Stops the current process (SIGKILL: a crash, or SIGTERM: a drain, each
   * waited for, bounded) and starts a new one on the same port with the same
   * key and flags; resolves once it listens.
   */
  async restart(how: 'SIGKILL' | 'SIGTERM' = 'SIGKILL', drainMs = 15_000): Promise<FaultProcess> {
    if (how === 'SIGKILL') await this.kill();
    else if (!(await this.terminate(drainMs))) throw new Error(`${this.name} did not exit within ${drainMs} ms of SIGTERM`);
    return this.start();
  }

  /** SIGTERM (drain), then wait for the exit (bounded). */
  async terminate(ms: number): Promise<{ code: number | null; signal: NodeJS.Signals | null } | undefined> {
    this.signal('SIGTERM');
    return this.proc?.waitExit(ms);
  }

  /** Every JSON log line of every generation, in order. */
  logs(): LogLine[] {
    return this.generations.flatMap((g) => g.logs);
  }

  /** The `brokers` log events (live sets) of every generation, with their time. */
  views(): Array<{ at: number; live: string[]; generation: number }> {
    const out: Array<{ at: number; live: string[]; generation: number }> = [];
    this.generations.forEach((g, generation) => {
      for (const l of g.logs) {
        if (l.fields.event === 'brokers' && Array.isArray(l.fields.live)) out.push({ at: l.at, live: (l.fields.live as unknown[]).map(String), generation });
      }
    });
    return out;
  }

  /** The live set of the current process's latest `brokers` event. */
  currentView(): string[] | undefined {
    const g = this.generations.length - 1;
    const v = this.views().filter((x) => x.generation === g);
    return v[v.length - 1]?.live;
  }
}

/** `mesh://KEY@127.0.0.1:PORT`. */
export function urlOf(key: string, port: number, host = '127.0.0.1'): string {
  return formatBrokerAddress({ key, host, port });
}

// ------------------------------------------------------------ workers

/** One execution a worker reported. */
export interface Execution {
  readonly worker: number;
  readonly pid: number;
  readonly idHex: string;
  readonly attempt: number;
  readonly dup: boolean;
  /** The key of the broker it came through. */
  readonly broker: string;
  readonly payload: string;
  readonly at: number;
}

/** A worker process. */
export class WorkerHandle {
  readonly index: number;
  readonly party: Party;
  proc: FaultProcess | undefined;
  /** When the test killed it (performance.now()), if it did. */
  killedAt: number | undefined;

  constructor(index: number, party: Party) {
    this.index = index;
    this.party = party;
  }

  get name(): string {
    return this.party.name;
  }

  get alive(): boolean {
    return this.proc?.alive ?? false;
  }

  /** The broker keys of its latest `healthy` line. */
  healthy(): string[] {
    const lines = this.proc?.lines ?? [];
    for (let i = lines.length - 1; i >= 0; i--) {
      const text = lines[i]!.text;
      if (text.startsWith('healthy ')) return text.slice('healthy '.length).split(',').filter((k) => k.length > 0);
      if (text === 'healthy') return [];
    }
    return [];
  }

  /** SIGKILL by pid and wait (bounded). */
  async kill(): Promise<void> {
    this.killedAt ??= performance.now();
    await this.proc?.kill();
  }
}

// ------------------------------------------------------------ requests and fates

/** How one request ended. */
export type Outcome = { kind: 'reply'; ok: boolean } | { kind: 'error'; code: string; message: string };

/** One request the client sent. */
export interface RequestRecord {
  readonly seq: number;
  readonly tag: string;
  readonly payload: string;
  readonly start: number;
  readonly timeout: number;
  /** After timeout + graceMs without settling, the request counts as lost (even if it settles later). */
  readonly graceMs: number;
  /** The broker (key) the first attempt was asked to go through, if any. */
  readonly broker: string | undefined;
  end: number | undefined;
  outcome: Outcome | undefined;
}

/** Options of {@link Cluster.start}. */
export interface ClusterOptions {
  /** Scenario name (in payloads, file names and summaries). */
  readonly name: string;
  readonly brokers?: number;
  readonly workers?: number;
  /** Handler time of the workers, ms (default 20). */
  readonly workerDelayMs?: number;
  readonly workerConcurrency?: number;
  /** Whether to start a client MeshNode (default true). */
  readonly client?: boolean;
  /** Broker indexes nodes are seeded with (default: the first only when brokers form a mesh, else all). */
  readonly seeds?: readonly number[];
  /** The URLs the client is seeded with (default: from `seeds`). */
  readonly clientSeeds?: (c: Cluster) => string[];
  /** Peer URLs of broker i (default: every other broker's real address). */
  readonly peers?: (i: number, c: Cluster) => string[];
  /** `HOST:PORT` broker i announces (--advertise; default none). */
  readonly advertise?: (i: number, c: Cluster) => string | undefined;
  /** --gossip-interval, ms (default 1000). */
  readonly gossipIntervalMs?: number;
  /** --drain-timeout, ms (default 5000). */
  readonly drainTimeoutMs?: number;
  /** Called after ports and keys are set, before any process starts (e.g. to start proxies). */
  readonly prepare?: (c: Cluster) => Promise<void>;
}

/** The running cluster of one scenario. */
export class Cluster {
  readonly name: string;
  readonly dir: string;
  readonly brokers: BrokerHandle[] = [];
  readonly workers: WorkerHandle[] = [];
  readonly clientParty: Party;
  readonly registryFile: string;
  readonly gossipIntervalMs: number;
  client: MeshNode | undefined;
  readonly records: RequestRecord[] = [];
  readonly executions: Execution[] = [];
  /**
   * What the client heard of where its requests run (the DISPATCHED it took
   * as worker hints, from the diagnostics channel), by request id in hex.
   */
  readonly dispatched = new Map<string, Array<{ at: number; broker: string; worker: string }>>();
  readonly #onDispatched = (m: unknown): void => {
    const d = m as DispatchedMessage;
    const idHex = Buffer.from(d.id).toString('hex');
    const list = this.dispatched.get(idHex) ?? [];
    list.push({ at: performance.now(), broker: d.broker, worker: d.worker });
    this.dispatched.set(idHex, list);
  };
  /** Client link events: `connect` / `disconnect` / `drain` with the broker key. */
  readonly clientEvents: Array<{ at: number; event: string; broker: string; code?: string | undefined }> = [];
  readonly startedAt = performance.now();
  readonly #options: ClusterOptions;
  readonly #cleanups: Array<() => Promise<void> | void> = [];
  #seq = 0;
  readonly #inflight = new Set<Promise<void>>();

  private constructor(options: ClusterOptions, dir: string, ports: number[]) {
    this.#options = options;
    this.name = options.name;
    this.dir = dir;
    this.gossipIntervalMs = options.gossipIntervalMs ?? 1000;
    const nb = options.brokers ?? 3;
    const nw = options.workers ?? 2;
    for (let i = 0; i < nb; i++) {
      const p = party(`broker-${i + 1}`);
      const keyFile = join(dir, `${p.name}.key`);
      writeKeyFileSync(keyFile, p.keyPair, { suite });
      this.brokers.push(new BrokerHandle(i, p, ports[i]!, keyFile));
    }
    for (let i = 0; i < nw; i++) this.workers.push(new WorkerHandle(i, party(`worker-${i + 1}`)));
    this.clientParty = party('fault-client');
    this.registryFile = join(dir, 'registry.yaml');
    const entries = [
      ...this.brokers.map((b) => `- key: ${b.key}\n  name: ${b.name}\n  role: broker\n`),
      ...this.workers.map((w) => `- key: ${w.party.key}\n  name: ${w.name}\n  role: worker\n  serve: [${SERVICE}]\n`),
      `- key: ${this.clientParty.key}\n  name: ${this.clientParty.name}\n  role: client\n  call: [${SERVICE}]\n`,
    ];
    writeFileSync(this.registryFile, `# fault suite ${options.name}\n${entries.join('')}`);
  }

  /** Starts brokers, workers and the client, and waits until everyone is connected (bounded). */
  static async start(options: ClusterOptions): Promise<Cluster> {
    const dir = mkdtempSync(join(tmpdir(), `meshd-faults-${options.name}-`));
    const ports = await freePorts(options.brokers ?? 3);
    const c = new Cluster(options, dir, ports);
    try {
      await options.prepare?.(c);
      for (const b of c.brokers) b.setArgs(c.#brokerArgs(b));
      await Promise.all(c.brokers.map((b) => b.start()));
      await Promise.all(c.workers.map((w) => c.#startWorker(w)));
      if (options.client !== false) {
        subscribe(DISPATCHED_CHANNEL, c.#onDispatched);
        const client = await MeshNode.connect({ brokers: c.clientSeeds(), key: c.clientParty.keyPair, name: c.clientParty.name, suite, timeout: 15_000 });
        c.client = client;
        const log = (event: string) => (e: { broker: string; error?: MeshError | undefined }) => c.clientEvents.push({ at: performance.now(), event, broker: keyOfUrl(e.broker), code: e.error?.code });
        client.on('broker-up', log('connect'));
        client.on('broker-down', log('disconnect'));
        client.on('broker-draining', log('drain'));
      }
      await c.settled(30_000);
      return c;
    } catch (error) {
      await c.close();
      throw error;
    }
  }

  /** Seed broker indexes of the nodes. */
  get seedIndexes(): number[] {
    return [...(this.#options.seeds ?? [0])];
  }

  /** The URLs the client is seeded with. */
  clientSeeds(): string[] {
    return this.#options.clientSeeds?.(this) ?? this.seedIndexes.map((i) => this.brokers[i]!.url);
  }

  /** The flags of broker b: its port, key, registry, peers, gossip interval and (optionally) advertised address. */
  #brokerArgs(b: BrokerHandle): string[] {
    const args = ['--listen', `127.0.0.1:${b.port}`, '--key', b.keyFile, '--registry', this.registryFile, '--name', b.name];
    args.push('--drain-timeout', String(this.#options.drainTimeoutMs ?? 5000));
    const peers = this.#options.peers?.(b.index, this) ?? this.brokers.filter((o) => o !== b).map((o) => o.url);
    for (const url of peers) args.push('--peer', url);
    args.push('--gossip-interval', String(this.gossipIntervalMs));
    const advertise = this.#options.advertise?.(b.index, this);
    if (advertise !== undefined) args.push('--advertise', advertise);
    return args;
  }

  async #startWorker(w: WorkerHandle): Promise<void> {
    const config = {
      privateKey: encodeKey(w.party.keyPair.privateKey),
      brokers: this.seedIndexes.map((i) => this.brokers[i]!.url),
      service: SERVICE,
      delayMs: this.#options.workerDelayMs ?? 20,
      concurrency: this.#options.workerConcurrency ?? 16,
      name: w.name,
    };
    const proc = new FaultProcess(w.name, ['--import', 'tsx', join(root, 'spec', 'faults', 'fault-worker.ts')], {
      env: { FAULT_WORKER_CONFIG: JSON.stringify(config) },
      stdin: true,
      onLine: (line) => {
        if (!line.text.startsWith('exec ')) return;
        const [, idHex, attempt, dup, broker, payload] = line.text.split(' ');
        this.executions.push({ worker: w.index, pid: proc.pid, idHex: idHex ?? '', attempt: Number(attempt), dup: dup === '1', broker: broker ?? '', payload: payload ?? '', at: line.at });
      },
    });
    w.proc = proc;
    await proc.line(/^ready$/, 30_000);
  }

  /** Registers a cleanup run by close() (proxies, ...). */
  onClose(cleanup: () => Promise<void> | void): void {
    this.#cleanups.push(cleanup);
  }

  /** Keys of the brokers whose process runs now. */
  aliveBrokerKeys(): string[] {
    return this.brokers.filter((b) => b.alive).map((b) => b.key);
  }

  /** Broker keys the client may send requests to now. */
  clientHealthy(): string[] {
    return (this.client?.healthyBrokers ?? []).map(keyOfUrl);
  }

  /**
   * Waits (bounded) until the client and every live worker are connected to
   * every running broker in `keys` (default: all running ones), and, when the
   * brokers form a mesh, every running broker lists all of them as live.
   */
  async settled(ms: number, keys: readonly string[] = this.aliveBrokerKeys()): Promise<number> {
    const start = performance.now();
    const deadline = start + ms;
    let last = '';
    for (let round = 0; round < 100_000; round++) {
      const missing: string[] = [];
      if (this.client) {
        const h = this.clientHealthy();
        for (const k of keys) if (!h.includes(k)) missing.push(`client-${this.#brokerName(k)}`);
      }
      for (const w of this.workers.filter((x) => x.alive)) {
        const h = w.healthy();
        for (const k of keys) if (!h.includes(k)) missing.push(`${w.name}-${this.#brokerName(k)}`);
      }
      // A lone broker has no peers and logs no views.
      for (const b of this.brokers.length < 2 ? [] : this.brokers.filter((x) => x.alive && keys.includes(x.key))) {
        const view = b.currentView() ?? [];
        for (const k of keys) if (!view.includes(k)) missing.push(`${b.name}-view-${this.#brokerName(k)}`);
      }
      if (missing.length === 0) return performance.now() - start;
      last = missing.join(' ');
      if (performance.now() > deadline) break;
      await sleep(25);
    }
    throw new Error(`${this.name}: not settled after ${ms} ms; still missing: ${last}`);
  }

  #brokerName(key: string): string {
    return this.brokers.find((b) => b.key === key)?.name ?? key.slice(0, 8);
  }

  /** Name of a broker by key (for messages). */
  brokerName(key: string): string {
    return this.#brokerName(key);
  }

  /**
   * Sends one request with a unique payload and records its fate. Never
   * rejects. Resolves once it settled, or after timeout + graceMs (then it
   * stays unsettled: lost, unless it settles later).
   */
  async request(tag: string, options: { timeout?: number; retries?: number; graceMs?: number; broker?: string | undefined } = {}): Promise<RequestRecord> {
    const client = this.client;
    if (!client) throw new Error('no client in this cluster');
    const seq = this.#seq++;
    const timeout = options.timeout ?? 1000;
    const payload = `${this.name}-${tag}-${seq}-${randomBytes(6).toString('hex')}`;
    const graceMs = options.graceMs ?? 1000;
    const record: RequestRecord = { seq, tag, payload, start: performance.now(), timeout, graceMs, broker: options.broker, end: undefined, outcome: undefined };
    this.records.push(record);
    const settled = client.request(SERVICE, payload, { timeout, retries: options.retries ?? 2, broker: options.broker }).then(
      (reply) => {
        record.end = performance.now();
        record.outcome = { kind: 'reply', ok: reply.toString('latin1') === payload };
      },
      (error: unknown) => {
        record.end = performance.now();
        record.outcome = error instanceof MeshError ? { kind: 'error', code: error.code, message: error.message } : { kind: 'error', code: 'NOT_A_MESH_ERROR', message: String(error) };
      },
    );
    this.#inflight.add(settled);
    void settled.then(() => this.#inflight.delete(settled));
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([settled, new Promise<void>((resolve) => (timer = setTimeout(resolve, timeout + graceMs)))]);
    clearTimeout(timer);
    return record;
  }

  /**
   * Runs `concurrency` request loops (each: send, wait for the fate, send
   * the next) until `durationMs` has passed and `until` (the fault script)
   * has settled, but never past `maxDurationMs`. Resolves when every loop
   * has stopped; rejects with the fault script's error, after the loops.
   */
  async load(options: {
    concurrency?: number;
    durationMs?: number;
    maxDurationMs?: number;
    timeout?: number;
    retries?: number;
    until?: Promise<unknown>;
    tag?: string;
    /** The broker (key) request n's first attempt should go through (default: the client's round-robin). */
    broker?: (n: number) => string | undefined;
  }): Promise<{ startedAt: number; endedAt: number }> {
    let sent = 0;
    const startedAt = performance.now();
    const minEnd = startedAt + (options.durationMs ?? 5000);
    const maxEnd = startedAt + (options.maxDurationMs ?? 60_000);
    let faultDone = options.until === undefined;
    let faultError: unknown;
    const until = options.until?.then(
      () => void (faultDone = true),
      (error: unknown) => {
        faultDone = true;
        faultError = error ?? new Error('fault script failed');
      },
    );
    const loop = async (): Promise<void> => {
      for (let i = 0; i < 1_000_000; i++) {
        const now = performance.now();
        if (now >= maxEnd || (now >= minEnd && faultDone)) return;
        const r = await this.request(options.tag ?? 'load', { timeout: options.timeout, retries: options.retries, broker: options.broker?.(sent++) });
        // A client that got an error at once (no broker, no service) waits a moment instead of spinning.
        if (r.outcome?.kind === 'error' && r.end! - r.start < 10) await sleep(10);
      }
    };
    await Promise.all(Array.from({ length: options.concurrency ?? 16 }, loop));
    const endedAt = performance.now();
    await until;
    if (faultError !== undefined) throw faultError instanceof Error ? faultError : new Error(`fault script failed: ${JSON.stringify(faultError)}`);
    if (!faultDone) throw new Error(`${this.name}: the fault script did not finish within ${options.maxDurationMs ?? 60_000} ms`);
    return { startedAt, endedAt };
  }

  /** Waits (bounded) for requests still unsettled, then `ms` more for late executions to show up. */
  async quiesce(ms: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.all([...this.#inflight]), new Promise<void>((resolve) => (timer = setTimeout(resolve, 3000)))]);
    clearTimeout(timer);
    await sleep(ms);
  }

  /**
   * Writes every child's stdout lines and stderr log lines, and the client's
   * request records and link events, under `dir`/<scenario>/ (for a look
   * after a failure: set FAULT_LOG_DIR). Times are ms since the cluster start.
   */
  dumpLogs(dir: string): string {
    const out = join(dir, this.name);
    mkdirSync(out, { recursive: true });
    const t = (at: number): number => Math.round(at - this.startedAt);
    const procs = [...this.brokers.flatMap((b) => b.generations), ...this.workers.flatMap((w) => (w.proc ? [w.proc] : []))];
    for (const p of procs) {
      const file = p.label.replace(/[^A-Za-z0-9_.-]/g, '_');
      writeFileSync(join(out, `${file}.stdout`), p.lines.map((l) => `${t(l.at)} ${l.text}\n`).join(''));
      writeFileSync(join(out, `${file}.log`), p.logs.map((l) => `${t(l.at)} ${JSON.stringify(l.fields)}\n`).join(''));
    }
    writeFileSync(join(out, 'client-requests.jsonl'), this.records.map((r) => `${JSON.stringify({ ...r, start: t(r.start), end: r.end === undefined ? undefined : t(r.end) })}\n`).join(''));
    writeFileSync(join(out, 'client-events.jsonl'), this.clientEvents.map((e) => `${JSON.stringify({ ...e, at: t(e.at), broker: this.#brokerName(e.broker) })}\n`).join(''));
    return out;
  }

  /** Kills everything, by pid; closes the client and the registered cleanups; removes the temp dir. Idempotent, bounded. */
  async close(): Promise<void> {
    const logDir = process.env.FAULT_LOG_DIR;
    if (logDir) this.dumpLogs(logDir);
    unsubscribe(DISPATCHED_CHANNEL, this.#onDispatched);
    const client = this.client;
    this.client = undefined;
    if (client) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([client.close(), new Promise<void>((resolve) => (timer = setTimeout(resolve, 3000)))]);
      clearTimeout(timer);
    }
    await Promise.all([...this.workers.map((w) => w.proc?.kill()), ...this.brokers.flatMap((b) => b.generations.map((g) => (g.signal('SIGCONT'), g.kill())))]);
    for (const cleanup of this.#cleanups.splice(0)) {
      try {
        await cleanup();
      } catch {
        // best effort
      }
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Runs `fault` after `delayMs` (the load runs meanwhile). */
export async function after(delayMs: number, fault: () => Promise<void>): Promise<void> {
  await sleep(delayMs);
  await fault();
}

/** Starts a cluster, runs `body`, and always closes the cluster (every child killed by pid). */
export async function withCluster<T>(options: ClusterOptions, body: (c: Cluster) => Promise<T>): Promise<T> {
  const c = await Cluster.start(options);
  try {
    return await body(c);
  } finally {
    await c.close();
  }
}
