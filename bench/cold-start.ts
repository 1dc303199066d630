/**
 * Cold start of the meshd command, `npm run bench:start`: wall time of
 * `meshd --version` and of a one-shot `meshd request echo hello` (start,
 * read the key, handshake with the broker, one request, exit), each run
 * RUNS times, median and every sample.
 *
 * The command is run the way a user's shell runs it: the bin file executed
 * directly, so its shebang (and its Node flags) apply. The broker and the
 * echo worker it talks to are started with the same bin, on 127.0.0.1 with a
 * free port, in a temporary directory removed at the end; both are stopped
 * by pid. `--bin=PATH` measures another build of the command (default: the
 * compiled dist/bin/meshd.js). Prints one JSON document on stdout.
 */
import { execFileSync, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { now, round } from './lib/stats.ts';
import { progressFor, runBench } from './lib/run-bench.ts';

const RUNS = 5;
/** Longest wait for the broker's or the worker's first line, ms. */
const READY_MS = 30_000;
/** Longest a single measured command may take, ms. */
const COMMAND_MS = 30_000;

const progress = progressFor('bench:start');
const root = fileURLToPath(new URL('..', import.meta.url));

function binPath(argv: readonly string[]): string {
  const given = argv.find((a) => a.startsWith('--bin='));
  const bin = given === undefined ? path.join(root, 'dist', 'bin', 'meshd.js') : path.resolve(given.slice('--bin='.length));
  if (!existsSync(bin)) throw new Error(`${bin} does not exist (run \`npm run build\` first, or pass --bin=PATH)`);
  return bin;
}

/** Runs the bin to completion; returns its stdout. Throws on a non-zero exit. */
function run(bin: string, args: readonly string[]): string {
  return execFileSync(bin, args, { encoding: 'utf8', timeout: COMMAND_MS, stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Starts a long-running command and resolves once its stdout has a line matching `pattern`. */
function start(bin: string, args: readonly string[], pattern: RegExp, children: ChildProcess[]): Promise<string> {
  const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  child.stderr.resume();
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`${args[0]} printed no ${String(pattern)} within ${READY_MS} ms`)), READY_MS);
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      out += chunk;
      const line = out.split('\n').find((l) => pattern.test(l));
      if (line !== undefined) {
        clearTimeout(timer);
        resolve(line);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${args[0]} exited with ${code} before printing ${String(pattern)}`));
    });
  });
}

function time(label: string, runOnce: () => void): { median: number; samples: number[] } {
  const samples: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const t = now();
    runOnce();
    samples.push(round(now() - t));
  }
  const median = [...samples].sort((a, b) => a - b)[Math.floor(RUNS / 2)]!;
  progress(`${label}: median ${median} ms (${samples.join(', ')})`);
  return { median, samples };
}

async function main(): Promise<void> {
  const bin = binPath(process.argv.slice(2));
  const dir = mkdtempSync(path.join(os.tmpdir(), 'meshd-bench-start-'));
  const children: ChildProcess[] = [];
  try {
    const file = (name: string): string => path.join(dir, name);
    for (const who of ['broker', 'worker', 'client']) run(bin, ['keygen', '--out', file(`${who}.key`)]);
    const registry = file('registry.yaml');
    run(bin, ['registry', 'add', '--registry', registry, '--key-file', file('broker.key'), '--name', 'broker', '--role', 'broker']);
    run(bin, ['registry', 'add', '--registry', registry, '--key-file', file('worker.key'), '--name', 'worker', '--role', 'worker', '--serve', 'echo']);
    run(bin, ['registry', 'add', '--registry', registry, '--key-file', file('client.key'), '--name', 'client', '--role', 'client', '--call', 'echo']);
    const listening = await start(bin, ['broker', '--listen', '127.0.0.1:0', '--key', file('broker.key'), '--registry', registry], /^listening /, children);
    const url = listening.slice('listening '.length).trim();
    await start(bin, ['serve', '--broker', url, '--key', file('worker.key'), 'echo', '--echo'], /^ready$/, children);

    const version = time('--version', () => run(bin, ['--version']));
    const request = time('request', () => {
      const reply = run(bin, ['request', '--broker', url, '--key', file('client.key'), 'echo', 'hello']);
      if (reply !== 'hello') throw new Error(`request replied ${JSON.stringify(reply)}`);
    });
    const report = {
      bench: 'cold-start',
      bin: path.relative(root, bin),
      node: process.version,
      cpu: os.cpus()[0]?.model ?? 'unknown',
      runs: RUNS,
      unit: 'ms wall time per command',
      version,
      request,
    };
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  } finally {
    for (const child of children) if (child.exitCode === null && child.pid !== undefined) child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}

runBench(main, progress);
