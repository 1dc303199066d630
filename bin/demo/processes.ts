/**
 * The child processes of `meshd demo`: started with plain node from the
 * package's compiled files (dist/bin/demo/demo-broker.js, demo-worker.js and
 * demo-client.js), each in its own
 * process group (a Ctrl-C at the terminal reaches the demo only, which then
 * stops them itself), watched line by line, killed by pid. Every wait is
 * bounded.
 */

import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FromChild, ToChild } from './ipc.ts';

/**
 * The Node flags of every child: those of bin/meshd.ts's shebang (a broker
 * under load collects garbage far less often with them; see the comment
 * there). Nothing else: no loader, whatever the demo itself runs under.
 */
const NODE_FLAGS: readonly string[] = ['--initial-old-space-size=128'];

/**
 * A file of the compiled package: `demo/demo-worker.js`, ...,
 * relative to dist/bin/. Next to this module when it runs compiled; when it
 * runs from the TypeScript sources (a test, through a loader), the build's
 * copy in dist/, which must exist: children never run TypeScript.
 */
export function packageFile(relative: string): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const compiled = import.meta.url.endsWith('.js');
  const file = compiled ? join(here, '..', relative) : join(here, '..', '..', 'dist', 'bin', relative);
  if (!existsSync(file)) throw new DemoFailure(`${file} is missing: meshd demo runs its processes from the compiled package (npm run build)`);
  return file;
}

/** A failure that stops the demo: printed as `meshd demo: message`, exit 1. */
export class DemoFailure extends Error {
  override readonly name = 'DemoFailure';
}

/** How a child ended. */
export interface ChildExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/** The environment of the children: the demo's own, without MESHD_* variables (they would reach the brokers' options). */
function childEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) if (!name.startsWith('MESHD')) env[name] = value;
  return env;
}

/** Most bytes of a child's stderr kept, for the message when it fails. */
const STDERR_TAIL = 4096;

/** One child process. */
export class DemoProcess {
  readonly label: string;
  readonly pid: number;
  readonly #child: ChildProcess;
  readonly #lines: string[] = [];
  #partial = '';
  #stderr = '';
  #exit: ChildExit | undefined;
  readonly exited: Promise<ChildExit>;
  readonly #changed = new Set<() => void>();

  constructor(label: string, file: string, args: readonly string[], ipc: boolean) {
    this.label = label;
    const child = spawn(process.execPath, [...NODE_FLAGS, file, ...args], {
      stdio: ['ignore', 'pipe', 'pipe', ...(ipc ? (['ipc'] as const) : [])],
      detached: true,
      env: childEnv(),
    });
    if (child.pid === undefined) throw new DemoFailure(`could not start ${label} (${file})`);
    this.#child = child;
    this.pid = child.pid;
    child.on('error', () => undefined); // a failed send or kill; the exit tells the rest
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      const parts = (this.#partial + chunk).split('\n');
      this.#partial = parts.pop() ?? '';
      // Only the first lines matter (`listening ...`); keep a few.
      for (const line of parts) if (this.#lines.length < 16) this.#lines.push(line);
      this.#notify();
    });
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      this.#stderr = (this.#stderr + chunk).slice(-STDERR_TAIL);
    });
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.#exit = { code, signal };
        this.#notify();
        resolve(this.#exit);
      });
    });
  }

  /** Whether the process is still running. */
  get alive(): boolean {
    return this.#exit === undefined;
  }

  get exit(): ChildExit | undefined {
    return this.#exit;
  }

  /** The last lines of its stderr, for a failure message. */
  stderrTail(): string {
    return this.#stderr.trim();
  }

  /** How it ended, in words. */
  describeExit(): string {
    const e = this.#exit;
    if (e === undefined) return 'running';
    return e.signal !== null ? `killed by ${e.signal}` : `exit code ${e.code ?? '?'}`;
  }

  #notify(): void {
    for (const f of [...this.#changed]) f();
  }

  /**
   * The first stdout line matching `pattern`. Rejects with a DemoFailure
   * when the process exits first or after `ms`; with `signal`'s reason when
   * it aborts.
   */
  line(pattern: RegExp, ms: number, signal: AbortSignal): Promise<string> {
    return new Promise<string>((resolve, reject) => {
      const done = (): void => {
        clearTimeout(timer);
        this.#changed.delete(check);
        signal.removeEventListener('abort', aborted);
      };
      const check = (): void => {
        const found = this.#lines.find((l) => pattern.test(l));
        if (found !== undefined) {
          done();
          resolve(found);
        } else if (this.#exit !== undefined) {
          done();
          reject(new DemoFailure(`${this.label} ${this.describeExit()} before it was up${this.#stderr === '' ? '' : `:\n${this.stderrTail()}`}`));
        }
      };
      const aborted = (): void => {
        done();
        reject(signal.reason instanceof Error ? signal.reason : new Error(String(signal.reason)));
      };
      const timer = setTimeout(() => {
        done();
        reject(new DemoFailure(`${this.label} was not up after ${ms / 1000} s`));
      }, ms);
      this.#changed.add(check);
      signal.addEventListener('abort', aborted, { once: true });
      if (signal.aborted) aborted();
      else check();
    });
  }

  /** Calls `listener` with every IPC message the child sends. */
  onMessage(listener: (message: FromChild) => void): void {
    this.#child.on('message', (message) => listener(message as FromChild));
  }

  /** Sends an IPC message; false when the channel is gone. */
  send(message: ToChild): boolean {
    if (!this.#child.connected) return false;
    try {
      return this.#child.send(message);
    } catch {
      return false;
    }
  }

  /** Sends `signal` by pid; false when the process is gone. */
  signal(signal: NodeJS.Signals): boolean {
    if (this.#exit !== undefined) return false;
    try {
      process.kill(this.pid, signal);
      return true;
    } catch {
      return false;
    }
  }
}

/** Every child the demo started, so that none outlives it. */
export class ProcessGroup {
  readonly #all: DemoProcess[] = [];

  /** Starts `node FLAGS file ...args`; with `ipc`, an IPC channel to it. */
  start(label: string, file: string, args: readonly string[], ipc = false): DemoProcess {
    const p = new DemoProcess(label, file, args, ipc);
    this.#all.push(p);
    return p;
  }

  /** Every process started, in order. */
  get all(): readonly DemoProcess[] {
    return this.#all;
  }

  /** SIGKILLs every process still running, by pid (synchronous: fit for an 'exit' hook). */
  killAll(): void {
    for (const p of this.#all) p.signal('SIGKILL');
  }

  /** SIGKILLs every process still running and waits (at most `ms`) for them to exit; resolves with those still running. */
  async stopAll(ms: number): Promise<DemoProcess[]> {
    this.killAll();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.all(this.#all.map((p) => p.exited)), new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))]);
    clearTimeout(timer);
    return this.#all.filter((p) => p.alive);
  }
}
