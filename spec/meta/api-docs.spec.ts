// The public API and its documentation stay in step: every name lib/index.ts
// exports (values and types) is in docs/api.md's table "Everything `meshd`
// exports", and the table names nothing else. meshd/internal re-exports the
// whole root.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';

const read = (path: string): string => readFileSync(new URL(`../../${path}`, import.meta.url), 'utf8');

/** Names in `export { a, b } from` and `export type { C } from` statements, split into values and types. */
export function exportedNames(source: string): { values: string[]; types: string[] } {
  const values: string[] = [];
  const types: string[] = [];
  for (const m of source.matchAll(/export\s+(type\s+)?\{([^}]*)\}\s*from/g)) {
    const names = m[2]!
      .split(',')
      .map((n) => n.trim().replace(/^type\s+/, ''))
      .filter((n) => n !== '')
      .map((n) => n.split(/\s+as\s+/).pop()!);
    (m[1] === undefined ? values : types).push(...names);
  }
  return { values, types };
}

/** Backticked identifiers in the first column of the table under `heading`. */
function tableNames(markdown: string, heading: string): string[] {
  const start = markdown.indexOf(`\n${heading}\n`);
  assert.ok(start >= 0, `docs/api.md has a section "${heading}"`);
  const rest = markdown.slice(start + heading.length + 2);
  const end = rest.search(/\n## /);
  const section = end < 0 ? rest : rest.slice(0, end);
  const names: string[] = [];
  for (const line of section.split('\n')) {
    if (!line.startsWith('| `')) continue;
    const first = line.split('|')[1] ?? '';
    for (const m of first.matchAll(/`([A-Za-z_][A-Za-z0-9_]*)`/g)) names.push(m[1]!);
  }
  return names;
}

test('the export scanner reads value and type exports, with renames', () => {
  const { values, types } = exportedNames("export { A, b as C } from './x.ts';\nexport type { D, E } from './y.ts';\nexport {\n  f,\n  g,\n} from './z.ts';");
  assert.deepEqual(values, ['A', 'C', 'f', 'g']);
  assert.deepEqual(types, ['D', 'E']);
});

test('docs/api.md lists every export of the package root, and nothing else', () => {
  const { values, types } = exportedNames(read('lib/index.ts'));
  const exported = [...values, ...types].sort();
  assert.equal(new Set(exported).size, exported.length, 'no name is exported twice');
  const documented = tableNames(read('docs/api.md'), '## Everything `meshd` exports').sort();
  assert.deepEqual(
    { missingFromDocs: exported.filter((n) => !documented.includes(n)), notExported: documented.filter((n) => !exported.includes(n)) },
    { missingFromDocs: [], notExported: [] },
  );
});

test('the root module exports at run time exactly the values lib/index.ts lists', async () => {
  const { values } = exportedNames(read('lib/index.ts'));
  const mod = (await import('../../lib/index.ts')) as Record<string, unknown>;
  assert.deepEqual(Object.keys(mod).sort(), [...values].sort());
  for (const name of values) assert.notEqual(mod[name], undefined, name);
});

test('meshd/internal re-exports the whole root and adds the wire-level pieces', async () => {
  assert.match(read('lib/internal.ts'), /^export \* from '\.\/index\.ts';$/m);
  const root = (await import('../../lib/index.ts')) as Record<string, unknown>;
  const internal = (await import('../../lib/internal.ts')) as Record<string, unknown>;
  for (const name of Object.keys(root)) assert.equal(internal[name], root[name], name);
  for (const name of ['Connection', 'EnvelopeCodec', 'Membership', 'getSuite', 'MessageType']) {
    assert.notEqual(internal[name], undefined, `${name} is in meshd/internal`);
    assert.equal(root[name], undefined, `${name} is not in the root API`);
  }
});

test('package.json exports both entry points with types first', () => {
  const pkg = JSON.parse(read('package.json')) as { exports: Record<string, unknown> };
  assert.deepEqual(pkg.exports['.'], { types: './dist/lib/index.d.ts', default: './dist/lib/index.js' });
  assert.deepEqual(pkg.exports['./internal'], { types: './dist/lib/internal.d.ts', default: './dist/lib/internal.js' });
});
