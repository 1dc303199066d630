#!/usr/bin/env node
// Runs every spec/**/*.spec.ts through node:test with tsx. Node 20 does not
// discover .ts test files on its own, and `node --test` with no files passes
// with zero tests, so this script lists them and fails when it finds none.
//
// First it builds dist/ (scripts/build.js): the CLI specs and the fault
// suite run the compiled `meshd`, as users do, and must never run a stale
// build.
//
// Two runs, one after the other: first every spec outside spec/faults/, then
// the fault suite (spec/faults/: real broker and worker processes, timing
// assertions) with --test-concurrency=1, so its files run one at a time and
// no other spec file competes with them for the CPUs. The script fails if
// either run fails. `node scripts/run-specs.js PATTERN...` runs only the spec
// files whose path contains one of the patterns.
//
// A run that goes quiet has a hung file: the script describes every process
// of the run (stall-report.js), kills the hung files' processes and lets the
// run go on. Those files then run once more on their own; the run passes
// only if its sole failures were hung files and each passes the second
// time. Every hang is printed with its diagnosis either way.
import { mkdirSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative, resolve, sep } from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { tmpdir } from 'node:os';
import { fileProcesses, reportOptions, stallReport } from './stall-report.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const specDir = join(root, 'spec');
const faultsDir = `${join('spec', 'faults')}${sep}`;

function walk(dir) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const full = join(dir, name);
    if (statSync(full).isDirectory()) out.push(...walk(full));
    else if (name.endsWith('.spec.ts')) out.push(full);
  }
  return out;
}

const filter = process.argv.slice(2);
let files = walk(specDir).map((f) => relative(root, f));
if (filter.length > 0) files = files.filter((f) => filter.some((p) => f.includes(p)));
if (files.length === 0) {
  console.error(`run-specs: no spec files found under ${specDir}${filter.length ? ` matching ${filter.join(' ')}` : ''}`);
  process.exit(1);
}

const build = spawnSync(process.execPath, [join(root, 'scripts', 'build.js')], { cwd: root, stdio: 'inherit' });
if (build.status !== 0) {
  console.error('run-specs: the build failed; no spec was run');
  process.exit(1);
}

const faults = files.filter((f) => f.startsWith(faultsDir));
const others = files.filter((f) => !f.startsWith(faultsDir));

/** No single test may take longer than this, ms: a hung test fails with its name instead of stalling the run. */
const TEST_TIMEOUT_MS = 180_000;
/** No run may take longer than this, ms (each normally takes under 2 minutes): a hung file (e.g. stuck before its first test) is killed with its run. */
const RUN_TIMEOUT_MS = 15 * 60_000;
/**
 * A run that prints nothing for this long has a hung file (every test ends
 * within TEST_TIMEOUT_MS, and each ending is a line): its processes are
 * described, each test process writes a diagnostic report (stall-report.js),
 * and the hung files' processes are killed. SPEC_QUIET_MS overrides it (to
 * try the diagnosis).
 */
const QUIET_MS = Number(process.env.SPEC_QUIET_MS) || 5 * 60_000;
/** Most hung files a run may have and still pass by running them again. */
const MAX_RERUNS = 2;
/** Loaded into every test process: see spec/helpers/exit-watch.ts. */
const EXIT_WATCH = join(root, 'spec', 'helpers', 'exit-watch.ts');
/** Where the test processes write their diagnostic reports when asked, and the runs their lists of failed files. */
const REPORT_DIR = join(tmpdir(), `meshd-spec-reports-${process.pid}`);
/** Writes the failed files of a run (see failed-files-reporter.js). */
const FAILED_FILES_REPORTER = join(root, 'scripts', 'failed-files-reporter.js');

/**
 * Runs `node --import tsx --test ...extra files` in its own process group.
 * Resolves with its exit code (1 when killed or timed out), the files it
 * killed for hanging, and the files that had a failure (the hung ones
 * included), as paths relative to the root.
 */
function run(label, extra, list) {
  return new Promise((settle) => {
    const failedList = join(REPORT_DIR, `failed-${label.replace(/\W+/g, '-')}-${Date.now()}.txt`);
    // exit-watch.ts fails a file that stays alive after its last test (a
    // handle left open), naming what is open, instead of hanging the run.
    const args = [
      '--import',
      'tsx',
      '--import',
      EXIT_WATCH,
      '--test',
      '--test-reporter=spec',
      '--test-reporter-destination=stdout',
      `--test-reporter=${FAILED_FILES_REPORTER}`,
      `--test-reporter-destination=${failedList}`,
      `--test-timeout=${TEST_TIMEOUT_MS}`,
      ...extra,
      ...list,
    ];
    const hung = [];
    const env = { ...process.env, NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} ${reportOptions(REPORT_DIR)}`.trim() };
    const child = spawn(process.execPath, args, { cwd: root, env, stdio: ['inherit', 'pipe', 'pipe'], detached: true });
    // The output passes through here, so a run that goes quiet is seen.
    let lastOutput = Date.now();
    child.stdout.on('data', (chunk) => {
      lastOutput = Date.now();
      process.stdout.write(chunk);
    });
    child.stderr.on('data', (chunk) => {
      lastOutput = Date.now();
      process.stderr.write(chunk);
    });
    const killGroup = () => {
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    };
    // Ctrl-C or a CI cancel ends the test files too, not only this script.
    const onSignal = (signal) => {
      killGroup();
      process.exit(signal === 'SIGINT' ? 130 : 143);
    };
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    const watchdog = setTimeout(() => {
      console.error(`run-specs: the ${label} run is still going after ${RUN_TIMEOUT_MS / 60_000} minutes: a test file hangs; killing the run`);
      killGroup();
    }, RUN_TIMEOUT_MS);
    let diagnosing = false;
    // The hung files' processes (and what they started) are killed; the
    // runner reports each as failed and goes on. A run with no file process
    // left is itself what hangs: it is killed.
    const killHungFiles = () => {
      const files = fileProcesses(child.pid);
      if (files.length === 0) {
        console.error(`run-specs: the ${label} run hangs with no test file running; killing it`);
        killGroup();
        return;
      }
      for (const f of files) {
        const file = relative(root, resolve(root, f.file));
        console.error(`run-specs: ${file} hangs (pid ${f.pid}); killing its processes (${f.pids.join(' ')})`);
        hung.push(file);
        for (const pid of f.pids) {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            // gone meanwhile
          }
        }
      }
      lastOutput = Date.now();
      diagnosing = false;
    };
    const quiet = setInterval(
      () => {
        const quietFor = Date.now() - lastOutput;
        if (quietFor < QUIET_MS || diagnosing) return;
        diagnosing = true;
        stallReport(child.pid, quietFor, REPORT_DIR).then(
          (lines) => {
            console.error(lines.join('\n'));
            killHungFiles();
          },
          (error) => {
            console.error(`run-specs: could not describe the hung run: ${error.stack ?? error}`);
            killHungFiles();
          },
        );
      },
      Math.min(5000, QUIET_MS / 4),
    );
    const done = (code) => {
      clearTimeout(watchdog);
      clearInterval(quiet);
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      let failedFiles = [];
      try {
        failedFiles = readFileSync(failedList, 'utf8').split('\n').filter(Boolean).map((f) => relative(root, resolve(root, f)));
      } catch {
        // no failure list: no file is known to have failed
      }
      settle({ code, hung, failedFiles });
    };
    child.on('error', (err) => {
      console.error(`run-specs: cannot start the ${label} run: ${err.message}`);
      done(1);
    });
    child.on('exit', (code, signal) => {
      // Whatever the runner left behind (a hung test file) goes with it.
      killGroup();
      if (signal) {
        console.error(`run-specs: ${label} test runner killed by ${signal}`);
        done(1);
        return;
      }
      done(code ?? 1);
    });
  });
}

/**
 * Runs `list`; when the only failures were files killed for hanging (at most
 * MAX_RERUNS), runs those once more on their own. Resolves true when it passed.
 */
async function runOnce(label, extra, list) {
  const first = await run(label, extra, list);
  if (first.code === 0) return true;
  if (first.hung.length === 0) return false;
  const others = first.failedFiles.filter((f) => !first.hung.includes(f));
  if (others.length > 0 || first.failedFiles.length === 0 || first.hung.length > MAX_RERUNS) {
    console.error(`run-specs: ${first.hung.join(', ')} hung; not run again, since the ${label} run failed otherwise too`);
    return false;
  }
  console.error(`run-specs: the ${label} run failed only because ${first.hung.join(' and ')} hung (see the diagnosis above); running ${first.hung.length === 1 ? 'it' : 'them'} again`);
  const second = await run(`${label} again`, extra, first.hung);
  if (second.code !== 0) {
    console.error(`run-specs: ${first.hung.join(', ')} failed again`);
    return false;
  }
  console.error(`run-specs: HUNG ONCE, PASSED WHEN RUN AGAIN: ${first.hung.join(', ')} (the diagnosis is above)`);
  return true;
}

mkdirSync(REPORT_DIR, { recursive: true });
const failed = [];
if (others.length > 0 && !(await runOnce('spec', [], others))) failed.push('specs');
if (faults.length > 0) {
  console.error(`run-specs: fault suite, ${faults.length} file${faults.length === 1 ? '' : 's'}, one at a time`);
  if (!(await runOnce('fault suite', ['--test-concurrency=1'], faults))) failed.push('fault suite');
}
if (failed.length > 0) {
  console.error(`run-specs: failed: ${failed.join(' and ')}`);
  process.exit(1);
}
