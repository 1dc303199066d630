/**
 * Benchmark child processes and the line protocol between parent and child.
 *
 * A child is `node [flags] --import tsx <script> <args>` with stdin and
 * stdout as pipes (stderr is inherited, for its progress lines). Each side
 * writes one JSON object per line:
 *
 *   child → parent   {"type":"ready", ...info}            once, when serving
 *                    {"type":"reply","id":N,"result":…}    or "error":"text"
 *   parent → child   {"id":N,"cmd":"stats"|"exit"|…}
 *
 * `stats` (built in) answers the child's CPU time and event-loop counters
 * plus whatever the child adds; `exit` closes the child's resources
 * (bounded) and exits 0, so a `--cpu-prof` profile gets written. A child
 * also exits when its stdin ends (the parent is gone, however it died) and
 * after a hard deadline, so no child can outlive a benchmark run.
 *
 * The parent side ({@link ChildGroup}) knows every child by pid, kills them
 * all with SIGKILL on error or exit, and stops them gracefully otherwise.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

/** The package root (children run with it as cwd, so `--import tsx` resolves). */
export const PACKAGE_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** A child's process counters at one instant (what the built-in `stats` answers). */
export interface ProcessCounters {
  /** process.cpuUsage(), µs since the child started. */
  readonly cpu: { readonly user: number; readonly system: number };
  /** Event-loop time, ms since start: active (running JS or callbacks) and idle (waiting for I/O). */
  readonly eventLoop: { readonly active: number; readonly idle: number };
  /** Resident set size, bytes. */
  readonly rss: number;
}

/** The built-in part of a `stats` reply. */
export interface ChildStats {
  readonly process: ProcessCounters;
  readonly [extra: string]: unknown;
}

/** Reads this process's counters. */
export function processCounters(): ProcessCounters {
  const elu = performance.eventLoopUtilization();
  return { cpu: process.cpuUsage(), eventLoop: { active: elu.active, idle: elu.idle }, rss: process.memoryUsage.rss() };
}

// ---------------------------------------------------------------- child side

/** What a child script sets up: its ready info, extra stats, extra commands and how to close. */
export interface ChildService {
  /** Sent in the `ready` line (e.g. the address the child listens on). */
  readonly info: Record<string, unknown>;
  /** Merged into every `stats` reply. */
  readonly stats?: () => Record<string, unknown>;
  /** Closes what the child opened; bounded by the caller. */
  readonly close: () => Promise<void>;
}

/** Longest a child waits for its own close() before exiting anyway, ms. */
const CHILD_CLOSE_MS = 3000;

/**
 * Runs the child side: calls `setup`, announces `ready`, then answers
 * commands until `exit`, stdin's end, or `lifetimeMs`. Never returns.
 */
export function runChild(label: string, lifetimeMs: number, setup: () => Promise<ChildService>): void {
  const log = (text: string): void => {
    process.stderr.write(`[bench:${label} ${process.pid}] ${text}\n`);
  };
  const write = (line: Record<string, unknown>): void => {
    process.stdout.write(`${JSON.stringify(line)}\n`);
  };
  let service: ChildService | undefined;
  let exiting = false;
  const exit = (code: number, why: string): void => {
    if (exiting) return;
    exiting = true;
    if (code !== 0) log(why);
    const hard = setTimeout(() => process.exit(code === 0 ? 4 : code), CHILD_CLOSE_MS);
    hard.unref();
    (service ? service.close() : Promise.resolve()).then(
      () => process.exit(code),
      (error: unknown) => {
        log(`close failed: ${describe(error)}`);
        process.exit(code === 0 ? 5 : code);
      },
    );
  };
  const lifetime = setTimeout(() => exit(3, `still running after ${lifetimeMs} ms: exiting`), lifetimeMs);
  lifetime.unref();

  const lines = createInterface({ input: process.stdin });
  lines.on('close', () => exit(0, 'stdin closed'));
  lines.on('line', (line) => {
    let id = 0;
    try {
      const command = JSON.parse(line) as { id?: unknown; cmd?: unknown };
      id = typeof command.id === 'number' ? command.id : 0;
      switch (command.cmd) {
        case 'stats':
          write({ type: 'reply', id, result: { process: processCounters(), ...service?.stats?.() } });
          return;
        case 'exit':
          write({ type: 'reply', id, result: 'exiting' });
          exit(0, 'exit command');
          return;
        default:
          write({ type: 'reply', id, error: `unknown command ${JSON.stringify(command.cmd)}` });
      }
    } catch (error) {
      write({ type: 'reply', id, error: describe(error) });
    }
  });

  setup().then(
    (s) => {
      service = s;
      if (exiting) return; // process.exit is already on its way
      write({ type: 'ready', pid: process.pid, ...s.info });
    },
    (error: unknown) => exit(1, `setup failed: ${describe(error)}`),
  );
}

function describe(error: unknown): string {
  return error instanceof Error ? (error.stack ?? error.message) : String(error);
}

// ---------------------------------------------------------------- parent side

/** How to start one child. */
export interface ChildSpec {
  /** Short name for messages. */
  readonly name: string;
  /** Script path relative to the package root. */
  readonly script: string;
  readonly args?: readonly string[];
  /** Node flags before `--import tsx` (e.g. `--cpu-prof`). */
  readonly nodeFlags?: readonly string[];
  /** Load the TypeScript loader (default true); false runs a plain-JS script as users run their apps. */
  readonly loader?: boolean;
  /** Longest wait for the `ready` line, ms. */
  readonly readyTimeoutMs: number;
}

interface Waiter {
  readonly resolve: (value: unknown) => void;
  readonly reject: (error: Error) => void;
  readonly timer: NodeJS.Timeout;
}

/** How a child ended. */
export interface ChildExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  /** Whether the parent had to SIGKILL it. */
  readonly killed: boolean;
}

/** The parent's handle on one running child. */
export class BenchChild {
  readonly name: string;
  readonly pid: number;
  /** The `ready` line. */
  readonly info: Record<string, unknown>;
  /** Resolves when the process has exited. */
  readonly exited: Promise<ChildExit>;
  readonly #child: ChildProcess;
  readonly #waiters: Map<number, Waiter>;
  #nextId = 1;
  #killed = false;

  constructor(name: string, child: ChildProcess, info: Record<string, unknown>, waiters: Map<number, Waiter>, exited: Promise<ChildExit>) {
    this.name = name;
    this.pid = child.pid!;
    this.info = info;
    this.#child = child;
    this.#waiters = waiters;
    this.exited = exited;
  }

  /** Whether the process is still running. */
  get alive(): boolean {
    return this.#child.exitCode === null && this.#child.signalCode === null;
  }

  /** Whether the parent killed it. */
  get killed(): boolean {
    return this.#killed;
  }

  /** Sends a command (with an optional JSON argument) and resolves with the child's result. */
  command(cmd: string, timeoutMs = 5000, arg?: unknown): Promise<unknown> {
    if (!this.alive) return Promise.reject(new Error(`${this.name} (pid ${this.pid}) is not running`));
    const id = this.#nextId++;
    return new Promise<unknown>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters.delete(id);
        reject(new Error(`${this.name} (pid ${this.pid}) did not answer ${cmd} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#waiters.set(id, { resolve, reject, timer });
      this.#child.stdin!.write(`${JSON.stringify({ id, cmd, arg })}\n`);
    });
  }

  /** The built-in stats of the child. */
  async stats(): Promise<ChildStats> {
    return (await this.command('stats')) as ChildStats;
  }

  /** SIGKILL by pid, if it still runs. Synchronous, so it can run in an exit handler. */
  kill(): void {
    if (!this.alive) return;
    this.#killed = true;
    try {
      process.kill(this.pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }

  /** Asks the child to exit; SIGKILLs it by pid if it has not within `graceMs`. */
  async stop(graceMs: number): Promise<ChildExit> {
    if (this.alive) {
      try {
        await this.command('exit', graceMs);
      } catch {
        // It may be stuck or gone: the timer below decides.
      }
    }
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => {
      timer = setTimeout(() => resolve('late'), graceMs);
    });
    const first = await Promise.race([this.exited, late]);
    clearTimeout(timer);
    if (first === 'late') {
      this.kill();
      return this.exited;
    }
    return first;
  }
}

/** Every child of a benchmark run, so none can be left behind. */
export class ChildGroup {
  readonly #children = new Set<BenchChild>();
  readonly #starting = new Set<ChildProcess>();

  /** Starts a child and resolves once it printed `ready`; kills it if it does not in time. */
  spawn(spec: ChildSpec): Promise<BenchChild> {
    const loader = spec.loader === false ? [] : ['--import', 'tsx'];
    const child = spawn(process.execPath, [...(spec.nodeFlags ?? []), ...loader, spec.script, ...(spec.args ?? [])], {
      cwd: PACKAGE_ROOT,
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    this.#starting.add(child);
    const waiters = new Map<number, Waiter>();
    const exited = new Promise<ChildExit>((resolve) => {
      child.once('exit', (code, signal) => {
        this.#starting.delete(child);
        for (const w of waiters.values()) {
          clearTimeout(w.timer);
          w.reject(new Error(`${spec.name} exited (code ${code}, signal ${signal}) before answering`));
        }
        waiters.clear();
        resolve({ code, signal, killed: signal === 'SIGKILL' });
      });
    });
    // A write to a child that just died must not crash the parent.
    child.stdin.on('error', () => {});
    return new Promise<BenchChild>((resolve, reject) => {
      let handle: BenchChild | undefined;
      const fail = (error: Error): void => {
        clearTimeout(timer);
        if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
          try {
            process.kill(child.pid, 'SIGKILL');
          } catch {
            // Already gone.
          }
        }
        reject(error);
      };
      const timer = setTimeout(() => fail(new Error(`${spec.name} did not become ready within ${spec.readyTimeoutMs} ms`)), spec.readyTimeoutMs);
      child.once('error', (error) => fail(error));
      void exited.then((how) => {
        if (!handle) fail(new Error(`${spec.name} exited before it was ready (code ${how.code}, signal ${how.signal})`));
      });
      const lines = createInterface({ input: child.stdout });
      lines.on('line', (line) => {
        let message: { type?: unknown; id?: unknown; result?: unknown; error?: unknown } & Record<string, unknown>;
        try {
          message = JSON.parse(line) as typeof message;
        } catch {
          process.stderr.write(`[bench:${spec.name}] (stdout) ${line}\n`);
          return;
        }
        if (message.type === 'ready' && !handle) {
          clearTimeout(timer);
          handle = new BenchChild(spec.name, child, message, waiters, exited);
          this.#children.add(handle);
          resolve(handle);
          return;
        }
        if (message.type === 'reply' && typeof message.id === 'number') {
          const w = waiters.get(message.id);
          if (!w) return;
          waiters.delete(message.id);
          clearTimeout(w.timer);
          if (typeof message.error === 'string') w.reject(new Error(`${spec.name}: ${message.error}`));
          else w.resolve(message.result);
        }
      });
    });
  }

  /** SIGKILLs every child still running, by pid. Synchronous (safe in an exit handler). */
  killAll(): void {
    for (const c of this.#children) c.kill();
    for (const child of this.#starting) {
      if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
        try {
          process.kill(child.pid, 'SIGKILL');
        } catch {
          // Already gone.
        }
      }
    }
  }

  /** Stops one child (graceful, then SIGKILL) and forgets it. */
  async stop(child: BenchChild, graceMs: number): Promise<ChildExit> {
    try {
      return await child.stop(graceMs);
    } finally {
      this.#children.delete(child);
    }
  }

  /** Children still known (running or not yet stopped). */
  get size(): number {
    return this.#children.size;
  }
}
