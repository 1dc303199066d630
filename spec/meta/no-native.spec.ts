// meshd loads no native addon: cbor-x runs with its native acceleration off
// and the crypto suites use node:crypto or pure-JS noble. A child process
// makes every native load throw, then imports and uses the package.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));

const script = `
const loaded = [];
process.dlopen = (_module, filename) => { loaded.push(filename); throw new Error('native addon load refused: ' + filename); };
// Negative control: the patch catches a native load.
let caught = false;
try { process.dlopen({}, '/nonexistent/addon.node'); } catch { caught = true; }
const mesh = await import('./lib/index.ts');
const cbor = await import('cbor-x');
const codec = new mesh.EnvelopeCodec();
const id = new Uint8Array(16).fill(7);
const msg = codec.decode(codec.encodeToBuffer({ type: 'REQUEST', id, service: 'echo', attempt: 1, dup: false, ttl: 1000, payload: new Uint8Array([1, 2, 3]) }));
for (const name of ['node', 'noble']) {
  const suite = mesh.getSuite(name);
  const a = suite.generateKeyPair();
  const b = suite.generateKeyPair();
  if (Buffer.compare(Buffer.from(suite.dh(a.privateKey, b.publicKey)), Buffer.from(suite.dh(b.privateKey, a.publicKey))) !== 0) throw new Error('dh mismatch');
}
console.log(JSON.stringify({ caught, loaded, native: cbor.isNativeAccelerationEnabled, type: msg.type, env: process.env.CBOR_NATIVE_ACCELERATION_DISABLED }));
`;

test('importing and using meshd loads no .node file and cbor-x runs without native acceleration', () => {
  const env = { ...process.env };
  delete env.CBOR_NATIVE_ACCELERATION_DISABLED;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: root, env, encoding: 'utf8', timeout: 30_000 });
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout.trim().split('\n').pop()!);
  assert.equal(out.caught, true, 'the dlopen patch must catch loads');
  assert.deepEqual(out.loaded, ['/nonexistent/addon.node'], 'no .node file may be loaded');
  assert.equal(out.native, false);
  assert.equal(out.env, 'true', 'lib sets CBOR_NATIVE_ACCELERATION_DISABLED itself');
  assert.equal(out.type, 'REQUEST');
});

test('package.json denies the install scripts of cbor-extract and esbuild', () => {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { allowScripts: Record<string, boolean> };
  assert.equal(pkg.allowScripts['cbor-extract'], false);
  assert.equal(pkg.allowScripts.esbuild, false);
});

test('no .node file is installed at all: cbor-extract is replaced by a stand-in that only throws', () => {
  const found: string[] = [];
  const walk = (dir: string, depth: number): void => {
    if (depth > 12) return;
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const full = join(dir, entry.name);
      if (entry.isDirectory()) walk(full, depth + 1);
      else if (entry.name.endsWith('.node')) found.push(full);
    }
  };
  walk(join(root, 'node_modules'), 0);
  assert.deepEqual(found, []);
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { overrides: Record<string, string>; dependencies: Record<string, string> };
  assert.equal(pkg.overrides['cbor-extract'], '$cbor-extract');
  assert.equal(pkg.dependencies['cbor-extract'], 'file:vendor/cbor-extract-disabled');
});
