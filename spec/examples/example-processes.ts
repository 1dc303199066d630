// The examples of examples/ as a user runs them: plain `node FILE.mjs` (no
// tsx, no loader, NODE_OPTIONS cleared), importing `meshd` by its package
// name, which Node resolves through package.json "exports" to the compiled
// dist/ (scripts/run-specs.js builds it first). Every child is tracked so an
// `after` hook can kill what is still running, by pid.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { get } from 'node:http';
import { join } from 'node:path';
import { ChildHandle } from '../helpers/child-harness.ts';
import type { ChildExit } from '../helpers/child-harness.ts';
import { root } from '../helpers/meshd-bin.ts';

export { ChildHandle, root };
export type { ChildExit };

/** Bound for an example to start (node start-up plus connecting), ms; generous for a busy 2-CPU machine. */
export const START_MS = 30_000;

/** The test run's environment without MESHD_*, NODE_OPTIONS (tsx) and the test runner's context, plus `extra`. */
export function plainEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (name.startsWith('MESHD_') || name === 'NODE_OPTIONS' || name === 'NODE_TEST_CONTEXT') continue;
    env[name] = value;
  }
  return { ...env, ...extra };
}

/** The example processes of one suite. */
export class Examples {
  readonly #running = new Set<ChildHandle>();

  /** Starts `node examples/FILE ...args` with `env` added to a plain environment. */
  start(file: string, env: Record<string, string>, args: readonly string[] = []): ChildHandle {
    const path = join(root, 'examples', file);
    if (!existsSync(join(root, 'dist', 'lib', 'index.js'))) throw new Error('dist/ is not built: run `node scripts/build.js` (scripts/run-specs.js does it)');
    const child = spawn(process.execPath, [path, ...args], { cwd: join(root, 'examples'), env: plainEnv(env), stdio: ['pipe', 'pipe', 'pipe'] });
    const handle = new ChildHandle(child);
    this.#running.add(handle);
    void handle.exited.then(() => this.#running.delete(handle));
    return handle;
  }

  /** Runs an example to completion (killed after `ms`); resolves with its stdout lines and exit. */
  async run(file: string, env: Record<string, string>, args: readonly string[] = [], ms = START_MS): Promise<{ lines: string[]; exit: ChildExit; stderr: string }> {
    const handle = this.start(file, env, args);
    const exit = await Promise.race([handle.exited, new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), ms).unref())]);
    if (exit === undefined) {
      await handle.kill('SIGKILL');
      throw new Error(`examples/${file} still running after ${ms} ms; stdout: ${handle.lines.join('\n')}; stderr: ${handle.stderr}`);
    }
    return { lines: handle.lines, exit, stderr: handle.stderr };
  }

  /** SIGKILLs, by pid, every example still running. */
  async killAll(): Promise<void> {
    await Promise.all([...this.#running].map((h) => h.kill('SIGKILL')));
  }
}

/** One HTTP GET without keep-alive; resolves with the status and the parsed JSON body. */
export function getJson(url: string, ms = 10_000): Promise<{ status: number; body: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = get(url, { agent: false, timeout: ms }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => {
        try {
          resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as Record<string, unknown> });
        } catch (error) {
          reject(new Error(`GET ${url}: status ${res.statusCode}, body not JSON: ${text}`, { cause: error }));
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url} timed out after ${ms} ms`)));
    req.on('error', reject);
  });
}
