// The layer order of docs/architecture.md#layers: a file imports only from
// layers listed above its own; broker and node never import each other; only
// lib/framing touches node:net; bin/ uses lib/ only through the public API
// (lib/index.ts), as an app would. This test reads every import under lib/
// and bin/.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

const RANK: Record<string, number> = { errors: 0, framing: 1, crypto: 2, protocol: 3, broker: 4, node: 4, ops: 5, index: 6, bin: 7 };

function layerOf(file: string): string {
  const rel = relative(root, file).split(sep);
  if (rel[0] === 'bin') return 'bin';
  if (rel[0] !== 'lib') throw new Error(`not under lib/ or bin/: ${file}`);
  if (rel.length === 2) {
    const base = rel[1]!.replace(/\.ts$/, '');
    if (base === 'errors' || base === 'index') return base;
    if (base === 'internal') return 'index';
    throw new Error(`unexpected top-level file lib/${rel[1]}: put it in a layer folder`);
  }
  const layer = rel[1]!;
  if (!(layer in RANK)) throw new Error(`unknown layer folder lib/${layer}`);
  return layer;
}

function walk(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const full = join(dir, name);
    if (statSync(full).isDirectory()) out.push(...walk(full));
    else if (name.endsWith('.ts')) out.push(full);
  }
  return out;
}

/** Every module specifier imported or re-exported by a TypeScript source. */
export function importsOf(source: string): string[] {
  const specs: string[] = [];
  const re = /(?:^|[\s;])(?:import|export)\s[^'"`;]*?from\s*['"]([^'"]+)['"]|(?:^|[\s;])import\s*['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/gm;
  for (const m of source.matchAll(re)) specs.push((m[1] ?? m[2] ?? m[3])!);
  return specs;
}

const files = [...walk(join(root, 'lib')), ...walk(join(root, 'bin'))];

test('the import scanner sees static, side-effect, re-export and dynamic imports', () => {
  const src = "import a from './a.ts';\nimport type { B } from '../b.ts';\nimport './c.ts';\nexport { d } from './d.ts';\nconst e = await import('./e.ts');";
  assert.deepEqual(importsOf(src), ['./a.ts', '../b.ts', './c.ts', './d.ts', './e.ts']);
});

test('lib/ and bin/ have files to check', () => {
  assert.ok(files.length > 5, `found only ${files.length} files`);
});

test('no import points up the layer order', () => {
  const violations: string[] = [];
  for (const file of files) {
    const from = layerOf(file);
    for (const spec of importsOf(readFileSync(file, 'utf8'))) {
      if (!spec.startsWith('.')) continue;
      const target = resolve(dirname(file), spec);
      const to = layerOf(target);
      if (to === from) continue;
      const bad = RANK[to]! >= RANK[from]! || (from === 'broker' && to === 'node') || (from === 'node' && to === 'broker');
      if (bad) violations.push(`${relative(root, file)} (${from}) imports ${spec} (${to})`);
    }
  }
  assert.deepEqual(violations, []);
});

test('only lib/framing touches sockets: elsewhere node:net may give only its address helpers', () => {
  const netImport = /import\s+(type\s+)?([^;]*?)\s+from\s+['"](?:node:)?net['"]/g;
  const offenders: string[] = [];
  for (const f of files.filter((x) => layerOf(x) !== 'framing')) {
    for (const m of readFileSync(f, 'utf8').matchAll(netImport)) {
      const names = /^\{([^}]*)\}$/.exec(m[2]!.trim())?.[1]?.split(',').map((n) => n.trim()).filter(Boolean);
      if (!names || names.some((n) => !['isIP', 'isIPv4', 'isIPv6'].includes(n))) offenders.push(`${relative(root, f)}: ${m[0]}`);
    }
  }
  assert.deepEqual(offenders, []);
});

test('bin/ reaches lib/ only through the public API, lib/index.ts', () => {
  const offenders: string[] = [];
  for (const file of files.filter((f) => layerOf(f) === 'bin')) {
    for (const spec of importsOf(readFileSync(file, 'utf8'))) {
      if (!spec.startsWith('.')) continue;
      const target = relative(root, resolve(dirname(file), spec));
      if (target.startsWith(`lib${sep}`) && target !== join('lib', 'index.ts')) offenders.push(`${relative(root, file)} imports ${spec}`);
    }
  }
  assert.deepEqual(offenders, []);
});
