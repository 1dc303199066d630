// Child processes of the fault suite: `meshd broker` (dist/bin/meshd.js) and the
// fault-worker.ts script, each watched line by line with timestamps, signalled
// and killed by pid. Every wait is bounded. Every child is tracked, and a
// process 'exit' hook SIGKILLs whatever is still running, so no child
// outlives the test file even when a test crashes.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { childEnv } from '../cli/children.ts';
import { meshdArgs, root } from '../helpers/meshd-bin.ts';

export { meshdArgs, root };

/** Most stdout lines / stderr log lines kept per child (older ones are dropped, counted in `dropped`). */
const MAX_LINES = 200_000;

/** One line a child printed, with the time it arrived here (performance.now()). */
export interface Line {
  readonly at: number;
  readonly text: string;
}

/** One JSON log line of a child's stderr. */
export interface LogLine {
  readonly at: number;
  readonly fields: Record<string, unknown>;
}

/** How a child ended. */
export interface ChildExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly at: number;
}

const running = new Set<ChildProcess>();
let hooked = false;

/** SIGKILLs every child still running (synchronous: safe in an 'exit' hook). */
export function killAllChildren(): void {
  for (const child of running) {
    if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
      try {
        process.kill(child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
}

function track(child: ChildProcess): void {
  running.add(child);
  child.once('exit', () => running.delete(child));
  if (!hooked) {
    hooked = true;
    process.once('exit', killAllChildren);
  }
}

/** A running child process. */
export class FaultProcess {
  readonly label: string;
  readonly child: ChildProcess;
  readonly pid: number;
  readonly startedAt = performance.now();
  /** Complete stdout lines. */
  readonly lines: Line[] = [];
  /** Parsed JSON stderr lines. */
  readonly logs: LogLine[] = [];
  /** The last 64 KiB of stderr (for failure messages). */
  stderrTail = '';
  dropped = 0;
  exit: ChildExit | undefined;
  readonly exited: Promise<ChildExit>;
  #out = '';
  #err = '';
  readonly #waiters = new Set<() => void>();
  readonly #onLine: ((line: Line) => void) | undefined;

  /**
   * Runs `executable` (default: this Node) with `command` as its arguments.
   * `executable` lets the benchmarks watch other servers (nats-server) the same way.
   */
  constructor(label: string, command: readonly string[], options: { env?: Record<string, string>; stdin?: boolean; onLine?: (line: Line) => void; executable?: string } = {}) {
    this.label = label;
    this.#onLine = options.onLine;
    const child = spawn(options.executable ?? process.execPath, command, { cwd: root, env: childEnv(options.env), stdio: [options.stdin === true ? 'pipe' : 'ignore', 'pipe', 'pipe'] });
    if (child.pid === undefined) throw new Error(`${label}: could not start ${command.join(' ')}`);
    track(child);
    this.child = child;
    this.pid = child.pid;
    child.stdin?.on('error', () => undefined);
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      const parts = (this.#out + chunk).split('\n');
      this.#out = parts.pop()!;
      const at = performance.now();
      for (const text of parts) {
        const line = { at, text };
        if (this.lines.length >= MAX_LINES) {
          this.lines.shift();
          this.dropped++;
        }
        this.lines.push(line);
        this.#onLine?.(line);
      }
      this.#notify();
    });
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      this.stderrTail = (this.stderrTail + chunk).slice(-64 * 1024);
      const parts = (this.#err + chunk).split('\n');
      this.#err = parts.pop()!;
      const at = performance.now();
      for (const text of parts) {
        if (!text.startsWith('{')) continue;
        try {
          if (this.logs.length >= MAX_LINES) {
            this.logs.shift();
            this.dropped++;
          }
          this.logs.push({ at, fields: JSON.parse(text) as Record<string, unknown> });
        } catch {
          // not a log line
        }
      }
      this.#notify();
    });
    this.exited = new Promise<ChildExit>((resolve) => {
      child.once('close', (code, signal) => {
        this.exit = { code, signal, at: performance.now() };
        this.#notify();
        resolve(this.exit);
      });
    });
  }

  /** True until the process has exited (a SIGSTOPped process is alive). */
  get alive(): boolean {
    return this.exit === undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  #notify(): void {
    for (const w of [...this.#waiters]) w();
  }

  /**
   * Resolves with check()'s first non-undefined value, re-checked on every
   * line and every 50 ms; rejects after `ms`, or when the child exits first
   * (unless `allowExit`).
   */
  async until<T>(what: string, ms: number, check: () => T | undefined, allowExit = false): Promise<T> {
    const deadline = performance.now() + ms;
    for (let round = 0; round < 1_000_000; round++) {
      const value = check();
      if (value !== undefined) return value;
      if (this.exit && !allowExit) throw new Error(`${this.label} (pid ${this.pid}) exited (${JSON.stringify(this.exit)}) before ${what}; stderr:\n${this.stderrTail.slice(-4000)}`);
      const left = deadline - performance.now();
      if (left <= 0) throw new Error(`timed out after ${ms} ms waiting for ${what} from ${this.label} (pid ${this.pid}); stderr:\n${this.stderrTail.slice(-4000)}`);
      await new Promise<void>((resolve) => {
        const done = (): void => {
          clearTimeout(timer);
          this.#waiters.delete(done);
          resolve();
        };
        const timer = setTimeout(done, Math.min(left, 50));
        this.#waiters.add(done);
      });
    }
    throw new Error(`gave up waiting for ${what} from ${this.label}`);
  }

  /** The first stdout line at index ≥ from matching `pattern` (bounded wait). */
  line(pattern: RegExp, ms: number, from = 0): Promise<Line> {
    return this.until(`a stdout line matching ${pattern}`, ms, () => this.lines.slice(from).find((l) => pattern.test(l.text)));
  }

  /** Sends a signal by pid; false if the process is already gone. */
  signal(signal: NodeJS.Signals): boolean {
    if (!this.alive) return false;
    try {
      process.kill(this.pid, signal);
      return true;
    } catch {
      return false;
    }
  }

  /** Waits (bounded) for the exit; undefined if still running after `ms`. */
  async waitExit(ms: number): Promise<ChildExit | undefined> {
    if (this.exit) return this.exit;
    let timer: NodeJS.Timeout | undefined;
    const result = await Promise.race([this.exited, new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), ms)))]);
    clearTimeout(timer);
    return result;
  }

  /** SIGKILLs the process by pid and waits (bounded) for its exit. */
  async kill(ms = 5000): Promise<ChildExit | undefined> {
    this.signal('SIGKILL');
    return this.waitExit(ms);
  }

  /** Writes one line to the child's stdin (if it has one). */
  send(text: string): void {
    this.child.stdin?.write(`${text}\n`);
  }
}
