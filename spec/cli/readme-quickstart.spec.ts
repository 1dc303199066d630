// The README's quickstart ("By hand: keys, registry, broker, worker,
// request"), run from the README's own text: its four `sh` blocks, in bash,
// with `npx meshd` being the compiled CLI (dist/bin/meshd.js, through a
// stand-in `npx` first on PATH) and port 4222 replaced by a free one. The
// first block runs to completion; the broker's and the worker's blocks run as
// "terminals" (each its own process group, killed by its pid in `after`);
// the client's block must print what its comment says.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ChildHandle } from '../helpers/child-harness.ts';
import { freePort } from '../helpers/ports.ts';
import { MESHD_BIN, MESHD_NODE_FLAGS, root } from '../helpers/meshd-bin.ts';
import { childEnv } from './children.ts';

const START_MS = 30_000;
const SECTION = '### By hand';

/** The `sh` blocks of the README section whose heading starts with `section`. */
function quickstartBlocks(section = SECTION): string[] {
  const lines = readFileSync(join(root, 'README.md'), 'utf8').split('\n');
  const start = lines.findIndex((l) => l.startsWith(section));
  assert.ok(start >= 0, `README.md has a "${section}" heading`);
  const blocks: string[] = [];
  let current: string[] | undefined;
  for (const line of lines.slice(start + 1)) {
    if (current === undefined && /^#{1,3} /.test(line)) break; // the next heading, outside a block
    if (current === undefined && line === '```sh') current = [];
    else if (current !== undefined && line === '```') {
      blocks.push(current.join('\n'));
      current = undefined;
    } else current?.push(line);
  }
  return blocks;
}


/** A bash process running one block, in its own process group (its pid is the group's id). */
function bash(script: string, cwd: string, env: NodeJS.ProcessEnv): ChildHandle {
  return new ChildHandle(spawn('bash', ['-c', script], { cwd, env, detached: true, stdio: ['pipe', 'pipe', 'pipe'] }));
}

/** Runs a block to completion in its own process group (SIGKILLed after `ms`): its whole stdout, stderr and exit. */
function runBash(script: string, cwd: string, env: NodeJS.ProcessEnv, ms = START_MS): Promise<{ stdout: string; stderr: string; code: number | null; signal: NodeJS.Signals | null }> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['-c', script], { cwd, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const timer = setTimeout(() => signalGroup(child.pid!, 'SIGKILL'), ms);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ stdout, stderr, code, signal });
    });
  });
}

/** True while any process of the group `pgid` is alive. */
function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

function signalGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    // already gone
  }
}

async function groupGone(pgid: number, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  for (let round = 0; round < 10_000 && groupAlive(pgid); round++) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 20));
  }
  return !groupAlive(pgid);
}

void describe('README quickstart, run from the README text', () => {
  const dir = mkdtempSync(join(tmpdir(), 'meshd-readme-'));
  const terminals: ChildHandle[] = [];
  let blocks: string[] = [];
  let env: NodeJS.ProcessEnv = {};

  before(async () => {
    // `npx meshd ARGS` runs the compiled CLI, as npx does in a clone after `npm ci`.
    const bin = join(dir, 'bin');
    const npx = [
      '#!/bin/sh',
      'if [ "$1" != meshd ]; then echo "this test runs npx meshd only, not: npx $*" >&2; exit 127; fi',
      'shift',
      `exec '${process.execPath}' ${MESHD_NODE_FLAGS.join(' ')} '${MESHD_BIN}' "$@"`,
      '',
    ].join('\n');
    mkdirSync(bin);
    writeFileSync(join(bin, 'npx'), npx);
    chmodSync(join(bin, 'npx'), 0o755);
    env = childEnv({ PATH: `${bin}:${process.env.PATH ?? ''}`, NODE_OPTIONS: '' });
    const port = await freePort();
    blocks = quickstartBlocks().map((b) => b.replaceAll('4222', String(port)));
  });

  after(async () => {
    for (const t of terminals) signalGroup(t.pid, 'SIGKILL');
    await Promise.all(terminals.map((t) => groupGone(t.pid, 5000)));
    rmSync(dir, { recursive: true, force: true });
  });

  void test('the section has four sh blocks: set-up, broker, worker, client', () => {
    assert.equal(blocks.length, 4, blocks.join('\n----\n'));
    assert.match(blocks[0]!, /npx meshd keygen/);
    assert.match(blocks[1]!, /^npx meshd broker /m);
    assert.match(blocks[2]!, /^npx meshd serve /m);
    assert.match(blocks[3]!, /^npx meshd request .*# prints \S+$/m);
  });

  void test('set-up: three keys (their public keys on stdout) and a registry of three entries', async () => {
    const setup = await runBash(blocks[0]!, dir, env);
    assert.deepEqual([setup.code, setup.signal], [0, null], setup.stderr);
    const keys = setup.stdout.split('\n');
    assert.equal(keys.pop(), '', 'ends with a newline');
    assert.equal(keys.length, 3, setup.stdout);
    for (const key of keys) assert.match(key, /^[A-Za-z0-9_-]{43}$/);
    const registry = readFileSync(join(dir, 'demo', 'registry.yaml'), 'utf8');
    for (const name of ['broker-1', 'echo-worker', 'client']) assert.match(registry, new RegExp(`name: ${name}$`, 'm'));
  });

  void test('terminal 1 and 2: the broker prints its address, the worker prints ready', async () => {
    const broker = bash(blocks[1]!, dir, env);
    terminals.push(broker);
    await broker.waitForLine(/^listening mesh:\/\/[A-Za-z0-9_-]{43}@127\.0\.0\.1:\d+$/, START_MS, 'the listening line');
    const worker = bash(blocks[2]!, dir, env);
    terminals.push(worker);
    await worker.waitForLine(/^ready$/, START_MS, 'ready');
  });

  void test('terminal 3: the request prints what the README says', async () => {
    const expected = /# prints (\S+)$/m.exec(blocks[3]!)![1]!;
    const client = await runBash(blocks[3]!, dir, env);
    assert.deepEqual([client.code, client.signal], [0, null], client.stderr);
    assert.equal(client.stdout, expected, 'the reply, with no newline added');
    assert.equal(client.stderr, '');
  });

  void test('Ctrl-C in terminals 2 and 1 (SIGINT to each group): the worker and the broker drain and exit', async () => {
    for (const t of [...terminals].reverse()) {
      signalGroup(t.pid, 'SIGINT');
      assert.ok(await groupGone(t.pid, 15_000), `terminal ${t.pid} still running 15 s after SIGINT; stderr: ${t.stderr}`);
      assert.match(t.stderr, /"event":"closed"/, 'closed after draining');
    }
  });

  void test('"In the background": the installed command started with &, then kill "$BROKER_PID", leaves no process behind', async () => {
    const background = quickstartBlocks('### In the background');
    assert.equal(background.length, 1);
    // What npm install creates in an app: node_modules/.bin/meshd, a link to the package's bin.
    mkdirSync(join(dir, 'node_modules', '.bin'), { recursive: true });
    symlinkSync(MESHD_BIN, join(dir, 'node_modules', '.bin', 'meshd'));
    const port = await freePort();
    const child = spawn('bash', ['-c', background[0]!.replaceAll('4222', String(port))], { cwd: dir, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const timer = setTimeout(() => signalGroup(child.pid!, 'SIGKILL'), START_MS);
    const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) => child.on('exit', (c, s) => resolve([c, s])));
    clearTimeout(timer);
    assert.deepEqual([code, signal], [0, null], `the block exits 0 (the broker's own exit status, from wait); stderr: ${stderr}`);
    assert.equal(await groupGone(child.pid!, 5000), true, 'no process of the block is left: the signal reached the broker itself');
    assert.match(readFileSync(join(dir, 'broker.log'), 'utf8'), /"event":"closed"/, 'the broker drained and closed');
  });
});
