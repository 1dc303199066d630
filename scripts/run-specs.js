#!/usr/bin/env node
// Runs every spec/**/*.spec.ts through node:test with tsx. Node 20 does not
// discover .ts test files on its own, and `node --test` with no files passes
// with zero tests, so this script lists them and fails when it finds none.
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const specDir = join(root, 'spec');

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

const args = ['--import', 'tsx', '--test', '--test-reporter=spec', ...files];
const child = spawn(process.execPath, args, { cwd: root, stdio: 'inherit' });
child.on('exit', (code, signal) => {
  if (signal) {
    console.error(`run-specs: test runner killed by ${signal}`);
    process.exit(1);
  }
  process.exit(code ?? 1);
});
