// Child processes of the meshd command (dist/bin/meshd.js) for the CLI specs: short commands run
// to completion, long-running ones (broker, serve) watched line by line. Every
// wait is bounded, and every child is tracked so `killAll()` (in an after or
// finally) can end it by pid.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { meshdArgs, root } from '../helpers/meshd-bin.ts';

export { root };

/** A child's start-up alone is ~0.1 s; on a busy 2-CPU machine many at once take far longer. */
export const RUN_TIMEOUT_MS = 60_000;

/** The outcome of a command run to completion. */
export interface Run {
  readonly status: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stdoutBytes: Buffer;
  readonly stderr: string;
}

/** What went wrong with a run, for assertion messages. */
export function describeRun(r: Pick<Run, 'status' | 'signal' | 'stderr'>): string {
  return `exit ${r.status ?? 'none'}${r.signal === null ? '' : ` (killed by ${r.signal})`}; stderr: ${r.stderr}`;
}

/** The environment of the test run without MESHD_* variables, plus `extra`. */
export function childEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (!name.startsWith('MESHD_') && name !== 'NODE_TEST_CONTEXT') env[name] = value;
  }
  return { ...env, ...extra };
}

/** Options of a child. */
export interface ChildOptions {
  readonly env?: Record<string, string>;
  /** Bytes for stdin (a run's stdin is otherwise empty). */
  readonly input?: Uint8Array | string;
  readonly timeoutMs?: number;
}

/** A long-running child (broker, serve). */
export interface Daemon {
  readonly child: ChildProcess;
  readonly pid: number;
  stdout(): string;
  stderr(): string;
  /** Resolves with the first stdout line matching `pattern`; rejects after `ms` or if the child exits first. */
  line(pattern: RegExp, ms: number): Promise<string>;
  /** Resolves once stderr matches `pattern`; rejects after `ms` or if the child exits first. */
  stderrMatch(pattern: RegExp, ms: number): Promise<void>;
  /** Resolves with the exit status; rejects after `ms`. */
  exited(ms: number): Promise<{ status: number | null; signal: NodeJS.Signals | null }>;
}

/** Tracks children so that none outlives the test. */
export class Children {
  readonly #running = new Set<ChildProcess>();

  #spawn(args: readonly string[], options: ChildOptions, stdin: 'pipe' | 'ignore'): ChildProcess {
    const child = spawn(process.execPath, meshdArgs(args), { cwd: root, env: childEnv(options.env), stdio: [stdin, 'pipe', 'pipe'] });
    this.#running.add(child);
    child.once('exit', () => this.#running.delete(child));
    return child;
  }

  /** Runs `meshd ...args` to completion (killed by SIGKILL after the timeout). */
  run(args: readonly string[], options: ChildOptions = {}): Promise<Run> {
    return new Promise((resolve, reject) => {
      const child = this.#spawn(args, options, 'pipe');
      const out: Buffer[] = [];
      let stderr = '';
      child.stdout!.on('data', (chunk: Buffer) => out.push(chunk));
      child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
      const timer = setTimeout(() => kill(child), options.timeoutMs ?? RUN_TIMEOUT_MS);
      child.on('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      child.on('close', (status, signal) => {
        clearTimeout(timer);
        const stdoutBytes = Buffer.concat(out);
        resolve({ status, signal, stdout: stdoutBytes.toString('utf8'), stdoutBytes, stderr });
      });
      child.stdin!.on('error', () => undefined); // the child may exit before reading it all
      child.stdin!.end(options.input ?? '');
    });
  }

  /** Starts `meshd ...args` and keeps it running. */
  start(args: readonly string[], options: ChildOptions = {}): Daemon {
    const child = this.#spawn(args, options, 'ignore');
    if (child.pid === undefined) throw new Error(`could not start meshd ${args.join(' ')}`);
    let stdout = '';
    let stderr = '';
    let exit: { status: number | null; signal: NodeJS.Signals | null } | undefined;
    const changed = new Set<() => void>();
    const notify = (): void => {
      for (const f of [...changed]) f();
    };
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
      notify();
    });
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
      notify();
    });
    child.on('close', (status, signal) => {
      exit = { status, signal };
      notify();
    });
    /** Waits until `check` returns a value (or throws), bounded by `ms`. */
    const until = <T>(what: string, ms: number, check: () => T | undefined): Promise<T> =>
      new Promise<T>((resolve, reject) => {
        const done = (): void => {
          clearTimeout(timer);
          changed.delete(poll);
        };
        const poll = (): void => {
          try {
            const value = check();
            if (value !== undefined) {
              done();
              resolve(value);
            }
          } catch (err) {
            done();
            reject(err instanceof Error ? err : new Error(String(err)));
          }
        };
        const timer = setTimeout(() => {
          done();
          reject(new Error(`timed out after ${ms} ms waiting for ${what} from meshd ${args.join(' ')}; stdout: ${stdout}; stderr: ${stderr}`));
        }, ms);
        changed.add(poll);
        poll();
      });
    const exitedEarly = (what: string): Error => new Error(`meshd ${args.join(' ')} exited (${describeRun({ status: exit?.status ?? null, signal: exit?.signal ?? null, stderr })}) before ${what}`);
    return {
      child,
      pid: child.pid,
      stdout: () => stdout,
      stderr: () => stderr,
      line: (pattern, ms) =>
        until(`a stdout line matching ${pattern}`, ms, () => {
          const found = stdout.split('\n').slice(0, -1).find((l) => pattern.test(l));
          if (found !== undefined) return found;
          if (exit) throw exitedEarly(`printing ${pattern}`);
          return undefined;
        }),
      stderrMatch: (pattern, ms) =>
        until(`stderr matching ${pattern}`, ms, () => {
          if (pattern.test(stderr)) return true;
          if (exit) throw exitedEarly(`logging ${pattern}`);
          return undefined;
        }).then(() => undefined),
      exited: (ms) => until('the exit', ms, () => exit),
    };
  }

  /** Kills (SIGKILL, by pid) every child still running. */
  killAll(): void {
    for (const child of this.#running) kill(child);
  }
}

function kill(child: ChildProcess): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(child.pid, 'SIGKILL');
  } catch {
    // Already gone.
  }
}

/** The JSON log lines of a broker's or worker's stderr. */
export function logLines(stderr: string): Array<Record<string, unknown>> {
  return stderr
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}
