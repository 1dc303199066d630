// meshd loads no native addon and depends on no package with native code or
// install scripts. Here, in the repository: a child process that refuses
// every native load imports and uses the library, and the lockfile's
// production tree is checked. spec/package/install.spec.ts checks the same
// where users meet it: in an app that installed the packed tarball.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));

const script = `
const loaded = [];
process.dlopen = (_module, filename) => { loaded.push(filename); throw new Error('native addon load refused: ' + filename); };
// Negative control: the patch catches a native load.
let caught = false;
try { process.dlopen({}, '/nonexistent/addon.node'); } catch { caught = true; }
const mesh = await import('./lib/internal.ts');
const codec = new mesh.EnvelopeCodec();
const id = new Uint8Array(16).fill(7);
const msg = codec.decode(codec.encodeToBuffer({ type: 'REQUEST', id, service: 'echo', attempt: 1, dup: false, ttl: 1000, payload: new Uint8Array([1, 2, 3]) }));
for (const name of ['node', 'noble']) {
  const suite = mesh.getSuite(name);
  const a = suite.generateKeyPair();
  const b = suite.generateKeyPair();
  if (Buffer.compare(Buffer.from(suite.dh(a.privateKey, b.publicKey)), Buffer.from(suite.dh(b.privateKey, a.publicKey))) !== 0) throw new Error('dh mismatch');
}
await import('yaml');
await import('yargs');
console.log(JSON.stringify({ caught, loaded, type: msg.type }));
`;

test('importing and using meshd loads no .node file', () => {
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: root, encoding: 'utf8', timeout: 30_000 });
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout.trim().split('\n').pop()!);
  assert.equal(out.caught, true, 'the dlopen patch must catch loads');
  assert.deepEqual(out.loaded, ['/nonexistent/addon.node'], 'no .node file may be loaded');
  assert.equal(out.type, 'REQUEST');
});

interface LockPackage {
  readonly dev?: boolean;
  readonly hasInstallScript?: boolean;
  readonly os?: readonly string[];
  readonly cpu?: readonly string[];
  readonly gypfile?: boolean;
}

test('the production tree in package-lock.json has no install script, platform binary or build tool', () => {
  const lock = JSON.parse(readFileSync(new URL('../../package-lock.json', import.meta.url), 'utf8')) as { packages: Record<string, LockPackage> };
  const production = Object.entries(lock.packages).filter(([path, p]) => path !== '' && p.dev !== true);
  assert.ok(production.length > 0, 'the lockfile lists production packages');
  const offenders = production
    .filter(([path, p]) => p.hasInstallScript === true || p.gypfile === true || p.os !== undefined || p.cpu !== undefined || /(^|\/)(tsx|esbuild|@esbuild\/[^/]+|typescript|node-gyp)$/.test(path))
    .map(([path]) => path);
  assert.deepEqual(offenders, []);
});

test('package.json: no tsx, TypeScript or esbuild among the dependencies, no overrides', () => {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as Record<string, Record<string, unknown> | undefined>;
  for (const field of ['dependencies', 'optionalDependencies', 'peerDependencies', 'bundleDependencies']) {
    for (const name of ['tsx', 'typescript', 'esbuild']) assert.equal(pkg[field]?.[name], undefined, `${name} in ${field}`);
  }
  // overrides apply only when meshd is the root project, never in a user's install.
  assert.equal(pkg.overrides, undefined);
});
