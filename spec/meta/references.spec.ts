// References resolve: the README, docs/, examples/ and the code cite only documents in
// this repository, and every link to one (a relative Markdown link, or a
// `docs/NAME.md#anchor` in a comment) names a file that exists and a heading
// it has. No file cites the internal design notes the project started from.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { root } from '../helpers/meshd-bin.ts';

function walk(dir: string, ext: RegExp): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules' || name === 'dist' || name.startsWith('.')) continue;
    const full = join(dir, name);
    if (statSync(full).isDirectory()) out.push(...walk(full, ext));
    else if (ext.test(name)) out.push(full);
  }
  return out;
}

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens. */
export function slug(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-');
}

const anchorCache = new Map<string, Set<string>>();
function anchorsOf(file: string): Set<string> {
  let anchors = anchorCache.get(file);
  if (anchors) return anchors;
  anchors = new Set();
  const seen = new Map<string, number>();
  let fenced = false;
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (line.startsWith('```')) fenced = !fenced;
    const m = fenced ? null : /^#{1,6}\s+(.*)$/.exec(line);
    if (!m) continue;
    const base = slug(m[1]!);
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    anchors.add(n === 0 ? base : `${base}-${n}`);
  }
  anchorCache.set(file, anchors);
  return anchors;
}

function check(from: string, target: string, anchor: string | undefined, problems: string[]): void {
  const where = relative(root, from);
  if (!existsSync(target)) {
    problems.push(`${where}: ${relative(root, target)} does not exist`);
    return;
  }
  if (anchor !== undefined && anchor !== '' && target.endsWith('.md') && !anchorsOf(target).has(anchor)) {
    problems.push(`${where}: ${relative(root, target)} has no heading for #${anchor}`);
  }
}

const markdown = [join(root, 'README.md'), ...['docs', 'spec', 'examples'].flatMap((d) => walk(join(root, d), /\.md$/))];
const code = ['lib', 'bin', 'bench', 'spec', 'scripts', 'examples'].flatMap((d) => walk(join(root, d), /\.(ts|js|mjs)$/));

test('the slug of a heading is the anchor GitHub gives it', () => {
  assert.equal(slug('The life of a request across a broker failure'), 'the-life-of-a-request-across-a-broker-failure');
  assert.equal(slug('A frozen broker (SIGSTOP)'), 'a-frozen-broker-sigstop');
  assert.equal(slug('5. Envelope'), '5-envelope');
  assert.equal(slug('Everything `meshd` exports'), 'everything-meshd-exports');
});

test('no file cites the internal design notes or a path outside the repository', () => {
  const offenders: string[] = [];
  const self = resolve(root, 'spec', 'meta', 'references.spec.ts');
  for (const file of [...markdown, ...code]) {
    if (file === self) continue;
    readFileSync(file, 'utf8')
      .split('\n')
      .forEach((line, i) => {
        if (/DESIGN\s*§|DESIGN\.md|\.\.\/shared\b/.test(line)) offenders.push(`${relative(root, file)}:${i + 1}: ${line.trim()}`);
      });
  }
  assert.deepEqual(offenders, []);
});

test('every relative link in the README and docs/ resolves, anchors included', () => {
  const problems: string[] = [];
  for (const file of markdown) {
    const text = readFileSync(file, 'utf8').replace(/```[\s\S]*?```/g, '');
    for (const m of text.matchAll(/\]\(([^)\s]+)\)/g)) {
      const link = m[1]!;
      if (/^[a-z]+:/.test(link)) continue; // https:, mailto:
      const [path, anchor] = link.split('#') as [string, string | undefined];
      check(file, path === '' ? file : resolve(dirname(file), path), anchor, problems);
    }
  }
  assert.deepEqual(problems, []);
});

test('every docs/NAME.md#anchor cited in the code resolves', () => {
  const problems: string[] = [];
  let cited = 0;
  for (const file of code) {
    for (const m of readFileSync(file, 'utf8').matchAll(/\bdocs\/([a-z-]+\.md)(?:#([a-z0-9-]+))?/g)) {
      cited++;
      check(file, join(root, 'docs', m[1]!), m[2], problems);
    }
  }
  assert.ok(cited > 10, `the code cites the docs (${cited} citations found)`);
  assert.deepEqual(problems, []);
});
