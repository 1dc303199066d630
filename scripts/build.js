#!/usr/bin/env node
// Builds what the package ships: removes dist/ (so no output of a deleted
// source survives), compiles lib/ and bin/ with tsconfig.build.json (ESM
// JavaScript, .d.ts files, source maps) and makes the CLI executable.
// `npm run build`; `npm ci` and `npm pack` run it through `prepare`.
import { spawnSync } from 'node:child_process';
import { chmodSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');

rmSync(join(root, 'dist'), { recursive: true, force: true });
const result = spawnSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.build.json')], { cwd: root, stdio: 'inherit' });
if (result.status !== 0) {
  console.error(`build: tsc failed (${result.error?.message ?? `exit ${result.status ?? result.signal}`})`);
  process.exit(1);
}
chmodSync(join(root, 'dist', 'bin', 'meshd.js'), 0o755);
