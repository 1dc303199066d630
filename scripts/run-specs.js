#!/usr/bin/env node
// Runs every spec/**/*.spec.ts through node:test with tsx. Node 20 does not
// discover .ts test files on its own, and `node --test` with no files passes
// with zero tests, so this script lists them and fails when it finds none.
//
// Two runs, one after the other: first every spec outside spec/faults/, then
// the fault suite (spec/faults/: real broker and worker processes, timing
// assertions) with --test-concurrency=1, so its files run one at a time and
// no other spec file competes with them for the CPUs. The script fails if
// either run fails. `node scripts/run-specs.js PATTERN...` runs only the spec
// files whose path contains one of the patterns.
import { readdirSync, statSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

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

const faults = files.filter((f) => f.startsWith(faultsDir));
const others = files.filter((f) => !f.startsWith(faultsDir));

/** Runs `node --import tsx --test ...extra files`; resolves with its exit code (1 when killed by a signal). */
function run(label, extra, list) {
  return new Promise((resolve) => {
    const args = ['--import', 'tsx', '--test', '--test-reporter=spec', ...extra, ...list];
    const child = spawn(process.execPath, args, { cwd: root, stdio: 'inherit' });
    child.on('error', (err) => {
      console.error(`run-specs: cannot start the ${label} run: ${err.message}`);
      resolve(1);
    });
    child.on('exit', (code, signal) => {
      if (signal) {
        console.error(`run-specs: ${label} test runner killed by ${signal}`);
        resolve(1);
        return;
      }
      resolve(code ?? 1);
    });
  });
}

const failed = [];
if (others.length > 0 && (await run('spec', [], others)) !== 0) failed.push('specs');
if (faults.length > 0) {
  console.error(`run-specs: fault suite, ${faults.length} file${faults.length === 1 ? '' : 's'}, one at a time`);
  if ((await run('fault suite', ['--test-concurrency=1'], faults)) !== 0) failed.push('fault suite');
}
if (failed.length > 0) {
  console.error(`run-specs: failed: ${failed.join(' and ')}`);
  process.exit(1);
}
