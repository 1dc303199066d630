// Test helper: runs spec/helpers/child-*.ts scripts as real child processes
// (`process.execPath --import tsx SCRIPT ARGS`), collects their stdout line
// by line, and kills them by pid. Every wait is bounded.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const helpersDir = fileURLToPath(new URL('.', import.meta.url));
const repoRoot = fileURLToPath(new URL('../..', import.meta.url));

/** The child scripts of spec/helpers/. */
export type ChildScript = 'child-worker.ts' | 'child-broker.ts' | 'child-flood.ts';

/** How a child ended. */
export interface ChildExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/** A running child script. */
export class ChildHandle {
  readonly child: ChildProcess;
  readonly pid: number;
  /** Every complete stdout line so far. */
  readonly lines: string[] = [];
  /** Everything written to stderr (kept for failure messages). */
  stderr = '';
  /** Set once the process has exited. */
  exit: ChildExit | undefined;
  readonly exited: Promise<ChildExit>;
  #partial = '';
  #waiters = new Set<() => void>();

  constructor(child: ChildProcess) {
    this.child = child;
    if (child.pid === undefined) throw new Error('child process did not start');
    this.pid = child.pid;
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (chunk: string) => {
      const parts = (this.#partial + chunk).split('\n');
      this.#partial = parts.pop()!;
      this.lines.push(...parts);
      this.#notify();
    });
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (chunk: string) => {
      if (this.stderr.length < 64 * 1024) this.stderr += chunk;
    });
    child.stdin!.on('error', () => {});
    this.exited = new Promise<ChildExit>((resolve) => {
      child.on('exit', (code, signal) => {
        this.exit = { code, signal };
        this.#notify();
        resolve(this.exit);
      });
    });
  }

  /** True while the process has not exited. */
  get alive(): boolean {
    return this.exit === undefined;
  }

  #notify(): void {
    for (const w of [...this.#waiters]) w();
  }

  /**
   * Resolves with the first line at index ≥ `from` that matches, waiting at
   * most `ms`. Rejects if the child exits first or the time runs out.
   */
  async waitForLine(match: RegExp | ((line: string) => boolean), ms: number, what: string, from = 0): Promise<{ line: string; index: number }> {
    const test = typeof match === 'function' ? match : (line: string) => match.test(line);
    const deadline = Date.now() + ms;
    // Bounded in time (deadline) and in count (each wait is ≥ 1 notification or ≤ 100 ms).
    for (let round = 0; round < 1_000_000; round++) {
      for (let i = from; i < this.lines.length; i++) {
        if (test(this.lines[i]!)) return { line: this.lines[i]!, index: i };
      }
      if (this.exit) throw new Error(`child ${this.pid} exited (${JSON.stringify(this.exit)}) before ${what}; stderr:\n${this.stderr}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out after ${ms} ms waiting for ${what} from child ${this.pid}; stderr:\n${this.stderr}`);
      await new Promise<void>((resolve) => {
        const done = (): void => {
          clearTimeout(timer);
          this.#waiters.delete(done);
          resolve();
        };
        const timer = setTimeout(done, Math.min(left, 100));
        this.#waiters.add(done);
      });
    }
    throw new Error(`gave up waiting for ${what} from child ${this.pid}`);
  }

  /** Writes one line to the child's stdin. */
  send(line: string): void {
    this.child.stdin!.write(`${line}\n`);
  }

  /** Resident set size of the child, in bytes (from /proc/PID/status VmRSS). */
  rss(): number {
    const status = readFileSync(`/proc/${this.pid}/status`, 'utf8');
    const m = /^VmRSS:\s+(\d+)\s+kB$/m.exec(status);
    if (!m) throw new Error(`no VmRSS in /proc/${this.pid}/status`);
    return Number(m[1]) * 1024;
  }

  /** Sends `signal` to the pid (if still running) and waits (bounded) for the exit. */
  async kill(signal: NodeJS.Signals = 'SIGKILL', ms = 5000): Promise<ChildExit | undefined> {
    if (this.exit) return this.exit;
    try {
      process.kill(this.pid, signal);
    } catch {
      // already gone
    }
    let timer: NodeJS.Timeout | undefined;
    const result = await Promise.race([this.exited, new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), ms)))]);
    clearTimeout(timer);
    return result;
  }
}

/** Starts `node NODE_FLAGS --import tsx spec/helpers/SCRIPT ARGS` with extra env. */
export function spawnChild(script: ChildScript, args: readonly string[], env: Record<string, string> = {}, nodeFlags: readonly string[] = []): ChildHandle {
  const child = spawn(process.execPath, [...nodeFlags, '--import', 'tsx', `${helpersDir}${script}`, ...args], {
    cwd: repoRoot,
    env: { ...process.env, ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  return new ChildHandle(child);
}

/** A status snapshot printed by child-broker.ts. */
export interface ChildBrokerStatus {
  readonly sessions: number;
  readonly handshakes: number;
  readonly pending: number;
  readonly rss: number;
  /** Broker.stats(): connections turned away by code, and evicted. */
  readonly handshakesFailed: Readonly<Record<string, number>>;
  readonly handshakesEvicted: number;
  readonly services: ReadonlyArray<{ name: string; workers: number; credits: number; queued: number; queuedBytes: number }>;
}

/** process.memoryUsage() of child-broker.ts right after a full garbage collection, in bytes. */
export interface ChildBrokerMemory {
  readonly rss: number;
  readonly heapTotal: number;
  readonly heapUsed: number;
  readonly external: number;
  readonly arrayBuffers: number;
}

/** An event line printed by child-broker.ts. */
export interface ChildBrokerEvent {
  readonly type: string;
  readonly name?: string;
  readonly key?: string;
  readonly code?: string;
  readonly message?: string;
}

/** Controls a child-broker.ts process. */
export class ChildBroker {
  readonly handle: ChildHandle;
  readonly address: string;
  #nextQuery = 1;

  private constructor(handle: ChildHandle, address: string) {
    this.handle = handle;
    this.address = address;
  }

  /** Spawns a broker child with the given config and waits (bounded) for its address. */
  static async start(config: ChildBrokerConfig, ms = 10_000): Promise<ChildBroker> {
    // --expose-gc: memory() collects garbage before it measures.
    const handle = spawnChild('child-broker.ts', [], { MESHD_TEST_BROKER: JSON.stringify(config) }, ['--expose-gc']);
    try {
      const { line } = await handle.waitForLine(/^listening /, ms, 'the broker address');
      return new ChildBroker(handle, line.slice('listening '.length).trim());
    } catch (error) {
      await handle.kill();
      throw error;
    }
  }

  get pid(): number {
    return this.handle.pid;
  }

  /** Asks the child for Broker.status() plus its RSS. */
  async status(ms = 3000): Promise<ChildBrokerStatus> {
    const n = this.#nextQuery++;
    const from = this.handle.lines.length;
    this.handle.send(`status ${n}`);
    const { line } = await this.handle.waitForLine((l) => l.startsWith(`status ${n} `), ms, `status reply ${n}`, from);
    return JSON.parse(line.slice(`status ${n} `.length)) as ChildBrokerStatus;
  }

  /**
   * Memory the broker child retains: it runs a full garbage collection, then
   * reports process.memoryUsage(). What is left in the heap is what the
   * broker holds on to, unlike RSS, which also counts the heap V8 keeps
   * committed for garbage to come.
   */
  async memory(ms = 5000): Promise<ChildBrokerMemory> {
    const n = this.#nextQuery++;
    const from = this.handle.lines.length;
    this.handle.send(`memory ${n}`);
    const { line } = await this.handle.waitForLine((l) => l.startsWith(`memory ${n} `), ms, `memory reply ${n}`, from);
    return JSON.parse(line.slice(`memory ${n} `.length)) as ChildBrokerMemory;
  }

  /** Event lines printed so far. */
  events(): ChildBrokerEvent[] {
    return this.handle.lines.filter((l) => l.startsWith('event ')).map((l) => JSON.parse(l.slice('event '.length)) as ChildBrokerEvent);
  }

  /** Polls status until `pred` holds (bounded). */
  async until(pred: (s: ChildBrokerStatus) => boolean, ms: number, what: string): Promise<ChildBrokerStatus> {
    const deadline = Date.now() + ms;
    let last: ChildBrokerStatus | undefined;
    for (let round = 0; round < 10_000 && Date.now() < deadline; round++) {
      last = await this.status();
      if (pred(last)) return last;
      await new Promise((r) => setTimeout(r, 25));
    }
    throw new Error(`timed out after ${ms} ms waiting for ${what}; last broker status: ${JSON.stringify(last)}`);
  }

  /** SIGKILLs the child by pid (bounded wait). */
  async kill(): Promise<void> {
    await this.handle.kill('SIGKILL');
  }
}

/** What child-broker.ts reads from MESHD_TEST_BROKER (JSON). */
export interface ChildBrokerConfig {
  /** The broker's private key, base64url. */
  readonly privateKey: string;
  /** Registry entries (Registry.fromEntries). */
  readonly registry: ReadonlyArray<{ key: string; name: string; role: string; call?: string[]; serve?: string[] }>;
  /** Broker options (numbers only). */
  readonly options?: {
    readonly maxOutboundBytes?: number;
    readonly stallTimeout?: number;
    readonly handshakeTimeout?: number;
    readonly maxHandshakes?: number;
    readonly maxHandshakesPerSource?: number;
    readonly firstMessageTimeout?: number;
    readonly maxPayload?: number;
  };
}
