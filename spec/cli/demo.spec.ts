// `meshd demo`, run as a user runs it: the compiled dist/bin/meshd.js in a
// child process, stdout a pipe (so the plain view, one line per second). A
// whole run with the broker kill and restart; a SIGINT during the load and
// one during start-up, each a clean exit with a partial summary; usage
// errors. After each run: no process the demo started is left (its reported
// pids, and any process whose arguments name its temp dir), and the temp dir
// is gone. Every wait is bounded; whatever is left is killed by pid in
// `finally`.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { describe, test } from 'node:test';
import { main } from '../../bin/cli.ts';
import { percentile, Tally } from '../../bin/demo/tally.ts';
import { plainLine } from '../../bin/demo/view.ts';
import type { Frame } from '../../bin/demo/view.ts';
import { childEnv, root } from './children.ts';
import { meshdArgs } from '../helpers/meshd-bin.ts';

/** Longest a demo child may run before the test kills it: start-up on a busy machine, the load, the end. */
const DEMO_TIMEOUT_MS = 60_000;

/** A running `meshd demo`. */
interface DemoRun {
  readonly child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Resolves once `stream` matches `pattern`; rejects after `ms` or if the demo exits first. */
  waitFor(stream: 'stdout' | 'stderr', pattern: RegExp, ms: number): Promise<void>;
  /** Resolves with the exit status; rejects after `ms`. */
  exited(ms: number): Promise<{ status: number | null; signal: NodeJS.Signals | null }>;
}

function startDemo(args: readonly string[]): DemoRun {
  const child = spawn(process.execPath, meshdArgs(['demo', ...args]), { cwd: root, env: childEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  let exit: { status: number | null; signal: NodeJS.Signals | null } | undefined;
  const changed = new Set<() => void>();
  const notify = (): void => {
    for (const f of [...changed]) f();
  };
  child.stdout.setEncoding('utf8').on('data', (c: string) => {
    out += c;
    notify();
  });
  child.stderr.setEncoding('utf8').on('data', (c: string) => {
    err += c;
    notify();
  });
  child.on('close', (status, signal) => {
    exit = { status, signal };
    notify();
  });
  const until = (what: string, ms: number, check: () => boolean): Promise<void> =>
    new Promise((resolve, reject) => {
      const poll = (): void => {
        if (check()) finish(resolve);
        else if (exit) finish(() => reject(new Error(`the demo exited (${JSON.stringify(exit)}) before ${what}; stdout: ${out}; stderr: ${err}`)));
      };
      const finish = (f: () => void): void => {
        clearTimeout(timer);
        changed.delete(poll);
        f();
      };
      const timer = setTimeout(() => finish(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}; stdout: ${out}; stderr: ${err}`))), ms);
      changed.add(poll);
      poll();
    });
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    waitFor: (stream, pattern, ms) => until(`${stream} matching ${pattern}`, ms, () => pattern.test(stream === 'stdout' ? out : err)),
    exited: async (ms) => {
      await until('the exit', ms, () => exit !== undefined);
      return exit!;
    },
  };
}

/** The command line of a process, or undefined if it is gone. */
function cmdline(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
  } catch {
    return undefined;
  }
}

/** Whether a process runs (on systems without /proc: whether a signal 0 reaches it). */
function running(pid: number, tempDir: string): boolean {
  if (existsSync('/proc')) {
    const line = cmdline(pid);
    return line !== undefined && line.includes(tempDir);
  }
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The pids of every process whose command line names `tempDir` (none where there is no /proc). */
function processesNaming(tempDir: string): number[] {
  if (!existsSync('/proc')) return [];
  return readdirSync('/proc')
    .filter((name) => /^\d+$/.test(name))
    .map(Number)
    .filter((pid) => pid !== process.pid && (cmdline(pid)?.includes(tempDir) ?? false));
}

/** Kills by pid whatever a failed test may have left: the demo, the pids it reported, anything naming its temp dir. */
function killLeftovers(run: DemoRun | undefined, pids: readonly number[], tempDir: string | undefined): void {
  const all = [...(run?.child.pid === undefined ? [] : [run.child.pid]), ...pids, ...(tempDir === undefined ? [] : processesNaming(tempDir))];
  for (const pid of all) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

/** The temp dir the demo announced on its first line. */
function tempDirOf(text: string): string {
  const m = /keys and registry in (\S+)/.exec(text);
  assert.ok(m, `the demo names its temp dir: ${text}`);
  return m[1]!;
}

/** Asserts that nothing the demo started runs and its temp dir is gone. */
function assertCleanedUp(pids: readonly number[], tempDir: string): void {
  assert.ok(pids.length > 0, 'the demo reported its processes');
  assert.deepEqual(
    pids.filter((pid) => running(pid, tempDir)),
    [],
    'no process the demo reported is running',
  );
  assert.deepEqual(processesNaming(tempDir), [], `no process names ${tempDir}`);
  assert.equal(existsSync(tempDir), false, `${tempDir} was removed`);
}

const PLAIN_LINE = /^t=(\d+)s req\/s=(\d+) sent=(\d+) replied=(\d+) failed=(\d+) in-flight=(\d+) p50=[\d.]+ms p99=[\d.]+ms broker-1=(\w+):\d+\/s broker-2=(\w+):\d+\/s broker-3=(\w+):\d+\/s worker-1=\d+\/s worker-2=\d+\/s$/;

void describe('meshd demo (the compiled CLI, as a child process)', () => {
  void test('--duration 9: a line per second, broker-2 killed and restarted, a summary with nothing lost, exit 0, nothing left behind', { timeout: 90_000 }, async () => {
    let run: DemoRun | undefined;
    let pids: number[] = [];
    let tempDir: string | undefined;
    try {
      // 9 s: the restart at 5.4 s has 3.6 s to finish before the summary, room
      // for a slow broker start on a busy machine (6 s left 2.4 s, once too few).
      run = startDemo(['--duration', '9']);
      await run.waitFor('stdout', /keys and registry in \S+\n/, DEMO_TIMEOUT_MS);
      tempDir = tempDirOf(run.stdout());
      const { status, signal } = await run.exited(DEMO_TIMEOUT_MS);
      const out = run.stdout();
      pids = [...out.matchAll(/\bpid (\d+)\b/g), ...out.matchAll(/\bthen (\d+)\b/g)].map((m) => Number(m[1]));
      assert.equal(status, 0, `exit ${status} ${signal}; stdout: ${out}; stderr: ${run.stderr()}`);
      assert.equal(run.stderr(), '', 'nothing on stderr');
      const lines = out.split('\n');

      // Start-up: three brokers listening, two workers and the client connected, each with its pid.
      for (const name of ['broker-1', 'broker-2', 'broker-3']) assert.ok(lines.some((l) => new RegExp(`^  ${name} +pid \\d+ +listening mesh://[A-Za-z0-9_-]{43}@127\\.0\\.0\\.1:\\d+$`).test(l)), `${name} listening: ${out}`);
      for (const name of ['worker-1', 'worker-2', 'client']) assert.ok(lines.some((l) => new RegExp(`^  ${name} +pid \\d+ +connected$`).test(l)), `${name} connected: ${out}`);

      // One plain line per second: t=1s to t=9s, counts that only grow.
      const plain = lines.filter((l) => l.startsWith('t=') && / req\/s=/.test(l));
      assert.deepEqual(
        plain.map((l) => PLAIN_LINE.exec(l)?.[1]),
        ['1', '2', '3', '4', '5', '6', '7', '8', '9'],
        `one line per second in the plain format:\n${plain.join('\n')}`,
      );
      const sent = plain.map((l) => Number(PLAIN_LINE.exec(l)![3]));
      assert.ok(sent.every((n, i) => i === 0 || n >= sent[i - 1]!) && sent[sent.length - 1]! > 0, `sent grows: ${sent.join(' ')}`);
      assert.ok(plain.some((l) => PLAIN_LINE.exec(l)![8] === 'killed'), `broker-2 shows as killed in some line:\n${plain.join('\n')}`);
      assert.equal(PLAIN_LINE.exec(plain[0]!)![8], 'up', 'broker-2 is up at first');

      // The fault, as event lines.
      assert.match(out, /^t=2\.7s SIGKILL broker-2 \(pid \d+\)$/m);
      assert.match(out, /^t=5\.4s restarting broker-2 on port \d+ \(same key\)$/m);
      assert.match(out, /^t=[\d.]+s broker-2 listening again \(pid \d+\)$/m);

      // The summary.
      const requests = /^ {2}requests {2}sent (\d+), replied (\d+), failed (\d+)(?: \([^)]*\))?, lost (\d+), duplicates (\d+)/m.exec(out);
      assert.ok(requests, `the summary's request line: ${out}`);
      const [total, replied, failed, lost, duplicates] = requests.slice(1).map(Number) as [number, number, number, number, number];
      assert.equal(lost, 0, 'nothing lost');
      assert.ok(replied > 100, `replied ${replied}`);
      assert.equal(total, replied + failed, 'every request sent was replied or failed');
      assert.equal(duplicates, 0, 'no worker ran a request twice');
      assert.match(out, /^ {2}latency {3}p50 [\d.]+ ms, p99 [\d.]+ ms, max [\d.]+ ms$/m);
      assert.match(out, /^ {4}broker-2 +\d+ sent, +\d+ replied from that attempt {2}\(up, pid \d+ then \d+\)$/m);
      const executed = [...out.matchAll(/^ {4}worker-\d +(\d+) executed, +(\d+) replies/gm)];
      assert.equal(executed.length, 2, 'a line per worker');
      assert.equal(
        executed.reduce((n, m) => n + Number(m[2]), 0),
        replied,
        'the replies per worker add up to the replies',
      );
      assert.match(out, /^ {2}cleanup {3}\d+ processes started, none left running; temp dir removed$/m);
      assert.match(out, /^result: nothing lost$/m);
      assertCleanedUp(pids, tempDir);
    } finally {
      killLeftovers(run, pids, tempDir);
    }
  });

  void test('SIGINT during the load: the client stops, a partial JSON summary with nothing lost, exit 0, nothing left behind', { timeout: 90_000 }, async () => {
    let run: DemoRun | undefined;
    let tempDir: string | undefined;
    let pids: number[] = [];
    try {
      run = startDemo(['--duration', '30', '--json']);
      // With --json the live view goes to stderr; stdout is the summary only.
      await run.waitFor('stderr', /keys and registry in \S+\n/, DEMO_TIMEOUT_MS);
      tempDir = tempDirOf(run.stderr());
      await run.waitFor('stderr', /^t=2s req\/s=/m, DEMO_TIMEOUT_MS);
      run.child.kill('SIGINT');
      const { status, signal } = await run.exited(20_000);
      assert.equal(status, 0, `exit ${status} ${signal}; stderr: ${run.stderr()}`);
      const lines = run.stdout().split('\n');
      assert.equal(lines.length, 2, `one JSON line on stdout: ${run.stdout()}`);
      const summary = JSON.parse(lines[0]!) as {
        ok: boolean;
        complete: boolean;
        interruptedBy: string | null;
        requests: { sent: number; replied: number; failed: number; lost: number };
        pids: number[];
        leftRunning: number[];
        tempDir: string;
        tempDirRemoved: boolean;
      };
      pids = summary.pids;
      assert.equal(summary.complete, false);
      assert.equal(summary.interruptedBy, 'SIGINT');
      assert.equal(summary.ok, true);
      assert.equal(summary.requests.lost, 0);
      assert.ok(summary.requests.replied > 0, JSON.stringify(summary.requests));
      assert.equal(summary.requests.sent, summary.requests.replied + summary.requests.failed);
      assert.deepEqual(summary.leftRunning, []);
      assert.equal(summary.tempDir, tempDir);
      assert.equal(summary.tempDirRemoved, true);
      assert.equal(pids.length, 6, `3 brokers, 2 workers, the client: ${JSON.stringify(pids)}`);
      assert.match(run.stderr(), /^t=[\d.]+s SIGINT: stopping$/m);
      assertCleanedUp(pids, tempDir);
    } finally {
      killLeftovers(run, pids, tempDir);
    }
  });

  void test('SIGTERM during start-up, while the processes load: a clean exit, nothing left behind', { timeout: 60_000 }, async () => {
    let run: DemoRun | undefined;
    let tempDir: string | undefined;
    let pids: number[] = [];
    try {
      run = startDemo(['--duration', '30', '--json']);
      await run.waitFor('stderr', /keys and registry in \S+\n/, DEMO_TIMEOUT_MS);
      tempDir = tempDirOf(run.stderr());
      run.child.kill('SIGTERM');
      const { status, signal } = await run.exited(20_000);
      assert.equal(status, 0, `exit ${status} ${signal}; stderr: ${run.stderr()}`);
      const summary = JSON.parse(run.stdout()) as { complete: boolean; interruptedBy: string; requests: { lost: number }; pids: number[]; leftRunning: number[]; tempDirRemoved: boolean };
      pids = summary.pids;
      assert.equal(summary.complete, false);
      assert.equal(summary.interruptedBy, 'SIGTERM');
      assert.equal(summary.requests.lost, 0);
      assert.deepEqual(summary.leftRunning, []);
      assert.equal(summary.tempDirRemoved, true);
      assertCleanedUp(pids, tempDir);
    } finally {
      killLeftovers(run, pids, tempDir);
    }
  });

  void test('bad flags are usage errors (exit 2, nothing started): the child process and in-process', { timeout: 60_000 }, async () => {
    let run: DemoRun | undefined;
    try {
      run = startDemo(['--brokers', '0']);
      const { status } = await run.exited(DEMO_TIMEOUT_MS);
      assert.equal(status, 2, run.stderr());
      assert.equal(run.stdout(), '');
      assert.match(run.stderr(), /^meshd demo: --brokers must be a whole number from 1 to 9, got '0'\nRun 'meshd demo --help' for usage and examples\.\n$/);
    } finally {
      killLeftovers(run, [], undefined);
    }
    const cases: Array<[string[], RegExp]> = [
      [['--duration', '0'], /--duration must be a whole number from 1 to 3600, got '0'/],
      [['--duration', '1.5'], /--duration must be a whole number from 1 to 3600, got '1.5'/],
      [['--duration', 'soon'], /--duration must be a whole number from 1 to 3600, got something that is not a number/],
      [['--workers', '0'], /--workers must be a whole number from 1 to 8, got '0'/],
      [['--brokers', '10'], /--brokers must be a whole number from 1 to 9, got '10'/],
      [['--duration', '2'], /--duration must be at least 3 to kill and restart a broker; give a longer one or --no-fault/],
      [['--fast'], /Unknown argument: fast/],
      [['extra'], /Unknown argument: extra/],
    ];
    for (const [args, message] of cases) {
      let out = '';
      let err = '';
      const io = { stdout: { write: (s: string | Uint8Array) => ((out += String(s)), true) }, stderr: { write: (s: string | Uint8Array) => ((err += String(s)), true) } };
      const code = await main(['demo', ...args], io);
      assert.equal(code, 2, `${args.join(' ')}: ${err}`);
      assert.equal(out, '', args.join(' '));
      assert.match(err, message, args.join(' '));
      assert.match(err, /Run 'meshd demo --help'/);
    }
  });

  void test('demo --help: usage, every flag, examples and the docs link', async () => {
    let out = '';
    const io = { stdout: { write: (s: string | Uint8Array) => ((out += String(s)), true) }, stderr: { write: () => true } };
    assert.equal(await main(['demo', '--help'], io), 0);
    assert.ok(out.startsWith('meshd demo'), out);
    for (const flag of ['duration', 'brokers', 'workers', 'fault', 'json']) assert.match(out, new RegExp(`--${flag}\\b`), flag);
    assert.match(out, /Examples:\n {2}meshd demo/);
    assert.match(out, /docs\/cli\.md#meshd-demo/);
  });
});

void describe('meshd demo bookkeeping', () => {
  void test('percentile: nearest rank', () => {
    assert.equal(percentile([], 50), 0);
    assert.equal(percentile([5], 99), 5);
    const hundred = Array.from({ length: 100 }, (_, i) => i + 1);
    assert.equal(percentile(hundred, 50), 50);
    assert.equal(percentile(hundred, 99), 99);
    assert.equal(percentile(hundred, 100), 100);
  });

  void test('Tally: lost are the requests never settled plus wrong replies; duplicates come from the workers; per-broker and per-worker counts', () => {
    const t = new Tally(['broker-1', 'broker-2'], ['worker-1', 'worker-2']);
    t.addBatch(100, 5, [3, 2], 1, [
      [0, 0, 1.5, 'ok', 'worker-1', 1],
      [1, 1, 2.5, 'ok', 'worker-2', 2],
      [2, 0, 900, 'MESH_ERR_TIMEOUT', '', 0],
      [3, 1, 3, 'wrong', 'worker-1', 1],
    ]);
    // A repeated report of a settled request counts once.
    t.addBatch(200, 5, [3, 2], 1, [[0, 0, 1.5, 'ok', 'worker-1', 1]]);
    t.addExecutions(0, [0, 3]);
    t.addExecutions(1, [1, 1, 2]);
    const c = t.counts();
    assert.equal(c.sent, 5);
    assert.equal(c.replied, 2);
    assert.equal(c.failed, 1);
    assert.deepEqual(c.failedCodes, { MESH_ERR_TIMEOUT: 1 });
    assert.equal(c.wrongReplies, 1);
    assert.equal(c.lost, 2, 'seq 4 never settled, seq 3 got a wrong reply');
    assert.deepEqual(t.unsettled(), [4]);
    assert.equal(c.duplicates, 1);
    assert.equal(c.extraExecutions, 1);
    assert.equal(c.repliedAfterRetry, 1);
    assert.deepEqual(t.perBroker(), [
      { name: 'broker-1', firstAttempts: 2, repliedFromFirstAttempt: 1 },
      { name: 'broker-2', firstAttempts: 2, repliedFromFirstAttempt: 0 },
    ]);
    assert.deepEqual(t.perWorker(), [
      { name: 'worker-1', executions: 2, replies: 1 },
      { name: 'worker-2', executions: 3, replies: 1 },
    ]);
    assert.deepEqual(t.latency(), { p50: 1.5, p99: 2.5, max: 2.5 });
  });

  void test('Tally.rates: over the last second of the client clock', () => {
    const t = new Tally(['broker-1', 'broker-2'], ['worker-1']);
    t.addBatch(0, 0, [0, 0], 0, []);
    t.addBatch(500, 100, [50, 50], 0, []);
    t.addBatch(1000, 300, [200, 100], 0, []);
    t.addBatch(1500, 400, [300, 100], 0, []);
    // From the sample at 500 ms to the one at 1500 ms.
    assert.deepEqual(t.rates().perBroker, [250, 50]);
  });

  void test('the plain line names every broker with its state and rate', () => {
    const frame: Frame = {
      t: 3,
      durationS: 6,
      rate: 412.4,
      sent: 1200,
      replied: 1190,
      failed: 2,
      inFlight: 8,
      p50: 1.234,
      p99: 12.34,
      brokers: [
        { name: 'broker-1', state: 'up', rate: 206.2 },
        { name: 'broker-2', state: 'killed', rate: 0 },
        { name: 'broker-3', state: 'up', rate: 206.2 },
      ],
      workers: [
        { name: 'worker-1', rate: 200 },
        { name: 'worker-2', rate: 212.4 },
      ],
      clientLinks: 2,
      events: [],
    };
    const line = plainLine(frame);
    assert.equal(line, 't=3s req/s=412 sent=1200 replied=1190 failed=2 in-flight=8 p50=1.23ms p99=12.3ms broker-1=up:206/s broker-2=killed:0/s broker-3=up:206/s worker-1=200/s worker-2=212/s');
    assert.match(line, PLAIN_LINE);
  });
});
