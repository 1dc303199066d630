// Local stand-ins for the containers of docker-compose.yml: child processes
// (`sh -c SCRIPT`, or node running the compiled CLI) watched line by line.
// Every wait is bounded; every child is tracked so `killAll()` ends it by
// pid, and a process 'exit' hook does the same if a test crashes.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';

/** How a child ended. */
export interface Exit {
  readonly status: number | null;
  readonly signal: NodeJS.Signals | null;
}

/** A running child. */
export interface Proc {
  readonly name: string;
  readonly pid: number;
  stdout(): string;
  stderr(): string;
  /** The JSON log lines of its stderr. */
  logs(): Array<Record<string, unknown>>;
  /** Resolves with the value `check` returns once it is not undefined; rejects after `ms`, or if the child exits first. */
  until<T>(what: string, ms: number, check: () => T | undefined): Promise<T>;
  /** Resolves with the exit; rejects after `ms`. */
  exited(ms: number): Promise<Exit>;
  /** The exit, if it has exited. */
  exit(): Exit | undefined;
}

const running = new Set<ChildProcess>();
let hooked = false;

function kill(child: ChildProcess): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(child.pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

/** SIGKILLs every child still running, by pid (synchronous: safe in an 'exit' hook). */
export function killAll(): void {
  for (const child of running) kill(child);
}

/** Describes a child for assertion messages. */
export function describeProc(p: Proc): string {
  const e = p.exit();
  return `${p.name} (pid ${p.pid}${e === undefined ? ', running' : `, exit ${e.status ?? 'none'}${e.signal === null ? '' : ` by ${e.signal}`}`}); stdout: ${p.stdout().slice(-4000)}; stderr: ${p.stderr().slice(-4000)}`;
}

/** Starts `command ...args` with `env`, in `cwd`. */
export function start(name: string, command: string, args: readonly string[], env: NodeJS.ProcessEnv, cwd: string): Proc {
  const child = spawn(command, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  if (child.pid === undefined) throw new Error(`could not start ${name}: ${command}`);
  running.add(child);
  if (!hooked) {
    hooked = true;
    process.once('exit', killAll);
  }
  let stdout = '';
  let stderr = '';
  let exit: Exit | undefined;
  const changed = new Set<() => void>();
  const notify = (): void => {
    for (const f of [...changed]) f();
  };
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk;
    notify();
  });
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
    notify();
  });
  child.on('close', (status, signal) => {
    running.delete(child);
    exit = { status, signal };
    notify();
  });
  const logs = (): Array<Record<string, unknown>> =>
    stderr
      .split('\n')
      .filter((l) => l.startsWith('{') && l.endsWith('}'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  const proc: Proc = {
    name,
    pid: child.pid,
    stdout: () => stdout,
    stderr: () => stderr,
    logs,
    exit: () => exit,
    until: <T>(what: string, ms: number, check: () => T | undefined): Promise<T> =>
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
            } else if (exit !== undefined && what !== 'the exit') {
              done();
              reject(new Error(`${name} exited before ${what}: ${describeProc(proc)}`));
            }
          } catch (err) {
            done();
            reject(err instanceof Error ? err : new Error(String(err)));
          }
        };
        const timer = setTimeout(() => {
          done();
          reject(new Error(`timed out after ${ms} ms waiting for ${what}: ${describeProc(proc)}`));
        }, ms);
        changed.add(poll);
        poll();
      }),
    exited: (ms) => proc.until('the exit', ms, () => exit),
  };
  return proc;
}
