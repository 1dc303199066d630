// scripts/run-specs.js against a hung spec file: the runner describes the
// run, kills the hung file's processes, lets the run go on, and runs the
// file once more on its own; the run passes only when the hung file was its
// sole failure and passes the second time. Each case runs the real script
// (copied, with the real reporter, stall report and exit watch) in a
// project of its own under a temporary directory, through tsx, with a
// 3-second quiet limit.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));

const PASSES = `import { test } from 'node:test';
test('passes', () => {});
`;

const FAILS = `import { test } from 'node:test';
import assert from 'node:assert/strict';
test('fails', () => assert.equal(1, 2));
`;

/** Hangs while loading, at zero CPU (as a deadlocked module loader would), the first `times` times it runs; then passes. */
function hangs(times: number): string {
  return `import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { test } from 'node:test';
const count = new URL('./runs', import.meta.url);
const runs = existsSync(count) ? Number(readFileSync(count, 'utf8')) : 0;
writeFileSync(count, String(runs + 1));
if (runs < ${times}) {
  setInterval(() => {}, 60_000);
  await new Promise(() => {});
}
test('passes once it loads', () => {});
`;
}

/** A project of its own: the real runner scripts and exit watch, no build, these spec files. */
function project(specs: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'meshd-run-specs-'));
  writeFileSync(join(dir, 'package.json'), '{ "type": "module" }\n');
  symlinkSync(join(root, 'node_modules'), join(dir, 'node_modules'));
  mkdirSync(join(dir, 'scripts'));
  for (const f of ['run-specs.js', 'stall-report.js', 'failed-files-reporter.js']) cpSync(join(root, 'scripts', f), join(dir, 'scripts', f));
  writeFileSync(join(dir, 'scripts', 'build.js'), '// This project has nothing to build.\n');
  mkdirSync(join(dir, 'spec', 'helpers'), { recursive: true });
  cpSync(join(root, 'spec', 'helpers', 'exit-watch.ts'), join(dir, 'spec', 'helpers', 'exit-watch.ts'));
  for (const [name, text] of Object.entries(specs)) {
    mkdirSync(join(dir, 'spec', name, '..'), { recursive: true });
    writeFileSync(join(dir, 'spec', name), text);
  }
  return dir;
}

/** Runs the project's run-specs.js (killed after 90 s); resolves with its exit code and output. */
function runSpecs(dir: string): Promise<{ code: number | null; stderr: string; stdout: string }> {
  return new Promise((resolve, reject) => {
    // Without NODE_TEST_CONTEXT: that is how node:test tells a test file it
    // runs under a runner, and a nested `node --test` would then run nothing.
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'NODE_TEST_CONTEXT'));
    const child = spawn(process.execPath, [join(dir, 'scripts', 'run-specs.js')], {
      cwd: dir,
      env: { ...env, SPEC_QUIET_MS: '3000', TMPDIR: dir, NODE_OPTIONS: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 90_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** The pids run-specs says it killed for hanging. */
function killedPids(stderr: string): number[] {
  return [...stderr.matchAll(/hangs \(pid \d+\); killing its processes \(([\d ]+)\)/g)].flatMap((m) => m[1]!.split(' ').map(Number));
}

/**
 * Undefined when `pid` is gone or a zombie (killed, not reaped), else its
 * /proc status lines, for an assertion message. A hung file's processes
 * include the esbuild service that tsx starts; killed together with its
 * parent, it is left to the machine's init to reap, and the init of a
 * container may never do so: a zombie is dead all the same.
 */
function living(pid: number): string | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The state letter follows the command name, which is in parentheses.
  if (stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) return undefined;
  try {
    return readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').slice(0, 8).join('; ');
  } catch {
    return undefined;
  }
}

/** Waits (at most 5 s) until every pid is gone or a zombie; resolves with those that are not, described. */
async function survivors(pids: readonly number[]): Promise<string[]> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const left = pids.flatMap((pid) => {
      const status = living(pid);
      return status === undefined ? [] : [`pid ${pid}: ${status}`];
    });
    if (left.length === 0 || Date.now() > deadline) return left;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describe('run-specs with a hung spec file', { concurrency: true }, () => {
  test('a file that hangs once is described, killed, run again and passes: the run passes and says so', async () => {
    const dir = project({ 'a/ok.spec.ts': PASSES, 'a/hang-once.spec.ts': hangs(1) });
    try {
      const { code, stderr } = await runSpecs(dir);
      assert.match(stderr, /no test output for \d+ s/, 'the run is described');
      assert.match(stderr, /node report of pid \d+/, 'with a diagnostic report of the test processes');
      assert.match(stderr, /spec\/a\/hang-once\.spec\.ts hangs \(pid \d+\)/);
      assert.match(stderr, /HUNG ONCE, PASSED WHEN RUN AGAIN: spec\/a\/hang-once\.spec\.ts/);
      assert.equal(code, 0, stderr);
      const pids = killedPids(stderr);
      assert.ok(pids.length > 0);
      assert.deepEqual(await survivors(pids), [], 'every process of the hung file was killed');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a file that hangs every time fails the run', async () => {
    const dir = project({ 'a/ok.spec.ts': PASSES, 'a/hang-always.spec.ts': hangs(2) });
    try {
      const { code, stderr } = await runSpecs(dir);
      assert.match(stderr, /spec\/a\/hang-always\.spec\.ts hangs/);
      assert.match(stderr, /spec\/a\/hang-always\.spec\.ts failed again/);
      assert.equal(code, 1);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a run with another failure fails, and its hung file is not run again', async () => {
    const dir = project({ 'a/fails.spec.ts': FAILS, 'a/hang-once.spec.ts': hangs(1) });
    try {
      const { code, stderr } = await runSpecs(dir);
      assert.match(stderr, /spec\/a\/hang-once\.spec\.ts hung; not run again, since the spec run failed otherwise too/);
      assert.equal(code, 1);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
