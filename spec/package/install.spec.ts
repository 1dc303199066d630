// meshd as users get it: `npm pack`, then an empty app installs the tarball
// and uses it with plain `node` (no loader, no tsx) and plain `tsc`.
//
// The tarball is packed from a copy of the sources (with this checkout's
// node_modules linked in), so `npm pack` runs `prepare` (the build) the way a
// publisher's would, without touching this checkout's dist/ that other
// specs are running. The app installs the tarball with npm (its
// dependencies come from the registry), then:
//   - an .mjs app imports MeshNode, Broker and Registry from 'meshd', starts
//     a broker, serves echo and gets the reply;
//   - a .cjs app does the same through `await import('meshd')` and
//     `require('meshd')`;
//   - a TypeScript consumer ("module": "NodeNext", and again with bundler
//     resolution; no allowImportingTsExtensions, no skipLibCheck)
//     type-checks a file that uses MeshNode.connect, request, serve, a
//     MeshError code and meshd/internal's EnvelopeCodec;
//   - the app's own `npm ci` works from the lockfile `npm install` wrote, and
//     `npm ls --omit=dev --all` exits 0;
//   - the installed tree has no tsx, esbuild, TypeScript or other package
//     with native code, no `.node` file and no native executable (ELF,
//     Mach-O, PE magic bytes);
//   - the installed `meshd` bin runs `--version`.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, readSync, closeSync, rmSync, symlinkSync, writeFileSync, lstatSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { root } from '../helpers/meshd-bin.ts';

/** npm commands reach the registry: generous, but bounded. */
const NPM_TIMEOUT_MS = 180_000;
const RUN_TIMEOUT_MS = 60_000;

interface Run {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a command to completion (killed after `timeoutMs`), with no MESHD_* variables in its environment. */
function run(command: string, args: readonly string[], cwd: string, timeoutMs = RUN_TIMEOUT_MS): Promise<Run> {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    // npm sets npm_* for the script it runs (npm test): the app is another project, so only the
    // settings that say where and how to reach the registry carry over.
    const npmSetting = name.startsWith('npm_') && !/^npm_config_(registry|cache|userconfig|globalconfig|proxy|https_proxy|noproxy|strict_ssl|cafile|fetch_.*|@.*:registry)$/i.test(name);
    if (!name.startsWith('MESHD') && name !== 'NODE_TEST_CONTEXT' && !npmSetting) env[name] = value;
  }
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'], timeout: timeoutMs, killSignal: 'SIGKILL' });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    child.on('error', reject);
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

function ok(r: Run, what: string): Run {
  assert.equal(r.status, 0, `${what} failed (exit ${r.status}):\nstdout: ${r.stdout.slice(-3000)}\nstderr: ${r.stderr.slice(-3000)}`);
  return r;
}

/** Every regular file under `dir` (symbolic links are not followed). */
function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...filesUnder(full));
    else if (entry.isFile()) out.push(full);
  }
  return out;
}

/** The kind of native binary a file's first bytes announce, if any. */
function nativeMagic(file: string): string | undefined {
  const head = Buffer.alloc(4);
  const fd = openSync(file, 'r');
  let n: number;
  try {
    n = readSync(fd, head, 0, 4, 0);
  } finally {
    closeSync(fd);
  }
  if (n >= 4 && head.equals(Buffer.from([0x7f, 0x45, 0x4c, 0x46]))) return 'ELF';
  if (n >= 4 && [0xfeedface, 0xfeedfacf, 0xcefaedfe, 0xcffaedfe, 0xcafebabe].includes(head.readUInt32BE(0))) return 'Mach-O';
  if (n >= 2 && head[0] === 0x4d && head[1] === 0x5a) return 'PE';
  return undefined;
}

const APP_SOURCE = `
import { Broker, MeshNode, Registry, generateKeyPair, encodeKey, MeshError, isMeshError } from 'meshd';

const brokerKey = generateKeyPair();
const client = generateKeyPair();
const worker = generateKeyPair();
const registry = Registry.fromEntries([
  { key: encodeKey(client.publicKey), name: 'app-client', role: 'client', call: ['echo'] },
  { key: encodeKey(worker.publicKey), name: 'app-worker', role: 'worker', serve: ['echo'] },
]);
const broker = await Broker.start({ key: brokerKey, registry, host: '127.0.0.1', port: 0 });
const serving = await MeshNode.connect({ brokers: [broker.address], key: worker, role: 'worker' });
serving.serve('echo', (request) => request.payload);
const calling = await MeshNode.connect({ brokers: [broker.address], key: client, role: 'client' });
let reply;
for (let i = 0; i < 50 && reply === undefined; i++) {
  try {
    reply = await calling.request('echo', 'hello from MODE', { timeout: 1000 });
  } catch (error) {
    if (!isMeshError(error, 'MESH_ERR_NO_SERVICE')) throw error;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
let refused = '';
try {
  await calling.request('billing', 'x', { timeout: 1000 });
} catch (error) {
  refused = error instanceof MeshError ? error.code : String(error);
}
await calling.close();
await serving.close();
await broker.close();
console.log(JSON.stringify({ reply: reply?.toString(), refused }));
`;

const ESM_APP = APP_SOURCE.replace('MODE', 'esm');

/** The same app as CommonJS: first through import(), then through require() (Node 20.19+ loads ESM with require). */
const CJS_APP = `
const required = require('meshd');
async function main() {
  const imported = await import('meshd');
  if (imported.MeshNode !== required.MeshNode) throw new Error('require and import gave different modules');
  ${APP_SOURCE.replace('MODE', 'cjs').replace(/^import \{([^}]*)\} from 'meshd';$/m, 'const {$1} = imported;')}
}
main().catch((error) => {
  console.error(error);
  process.exit(1);
});
`;

const TS_CONSUMER = `
import { MeshError, MeshNode, isMeshError } from 'meshd';
import type { ErrorCode, IncomingRequest, MeshNodeOptions, RequestOptions } from 'meshd';
import { EnvelopeCodec } from 'meshd/internal';
import type { Message } from 'meshd/internal';

export function encodePing(): Buffer {
  const ping: Message = { type: 'PING' };
  return new EnvelopeCodec().encodeToBuffer(ping);
}

export async function callEcho(options: MeshNodeOptions): Promise<string> {
  const node: MeshNode = await MeshNode.connect(options);
  const handle = node.serve('echo', (request: IncomingRequest) => request.payload, { concurrency: 4 });
  const requestOptions: RequestOptions = { timeout: 500, retries: 1 };
  try {
    const reply: Buffer = await node.request('echo', 'hi', requestOptions);
    return reply.toString('utf8');
  } catch (error) {
    if (isMeshError(error, 'MESH_ERR_TIMEOUT')) return 'timeout';
    const code: ErrorCode | undefined = error instanceof MeshError ? error.code : undefined;
    if (code === 'MESH_ERR_NO_SERVICE' && error instanceof MeshError && error.retryable) return 'retry later';
    throw error;
  } finally {
    await handle.close();
    await node.close();
  }
}
`;

void describe('the packed package, installed into an empty app', { concurrency: false }, () => {
  let work = '';
  let app = '';
  let tarball = '';

  // npm pack (with the build) and npm install (from the registry) each get NPM_TIMEOUT_MS.
  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'meshd-package-'));
    // A copy of what `npm pack` needs, with this checkout's node_modules linked in.
    const src = join(work, 'src');
    mkdirSync(src);
    for (const item of ['package.json', 'package-lock.json', 'tsconfig.json', 'tsconfig.build.json', 'README.md', 'LICENSE', 'lib', 'bin', 'docs', 'scripts', 'conformance']) {
      cpSync(join(root, item), join(src, item), { recursive: true });
    }
    symlinkSync(join(root, 'node_modules'), join(src, 'node_modules'), 'dir');
    const packed = ok(await run('npm', ['pack', '--json', '--pack-destination', work], src, NPM_TIMEOUT_MS), 'npm pack');
    const info = JSON.parse(packed.stdout.slice(packed.stdout.indexOf('['))) as Array<{ filename: string }>;
    tarball = join(work, info[0]!.filename);
    app = join(work, 'app');
    mkdirSync(app);
    writeFileSync(join(app, 'package.json'), `${JSON.stringify({ name: 'meshd-user-app', version: '1.0.0', private: true }, null, 2)}\n`);
    ok(await run('npm', ['install', '--no-audit', '--no-fund', tarball], app, NPM_TIMEOUT_MS), 'npm install of the tarball');
  }, { timeout: 3 * NPM_TIMEOUT_MS });

  after(() => {
    if (work !== '') rmSync(work, { recursive: true, force: true });
  });

  void test('the tarball holds the compiled package and its docs, no TypeScript sources, specs or build state', () => {
    const installed = join(app, 'node_modules', 'meshd');
    const files = filesUnder(installed).map((f) => relative(installed, f));
    for (const needed of ['package.json', 'README.md', 'LICENSE', 'dist/lib/index.js', 'dist/lib/index.d.ts', 'dist/lib/internal.js', 'dist/lib/internal.d.ts', 'dist/bin/meshd.js', 'docs/api.md', 'conformance/README.md', 'conformance/vectors/messages.json']) {
      assert.ok(files.includes(needed), `${needed} is in the package`);
    }
    const stray = files.filter((f) => (f.endsWith('.ts') && !f.endsWith('.d.ts')) || f.startsWith('spec/') || f.startsWith('lib/') || f.startsWith('bin/') || f.includes('tsbuildinfo'));
    assert.deepEqual(stray, []);
  });

  void test('an .mjs app imports MeshNode, Broker and Registry from meshd and gets a reply with plain node', async () => {
    writeFileSync(join(app, 'app.mjs'), ESM_APP);
    const r = ok(await run(process.execPath, ['app.mjs'], app), 'node app.mjs');
    assert.deepEqual(JSON.parse(r.stdout.trim()), { reply: 'hello from esm', refused: 'MESH_ERR_FORBIDDEN' });
  });

  void test('a .cjs app does the same through import() and require()', async () => {
    writeFileSync(join(app, 'app.cjs'), CJS_APP);
    const r = ok(await run(process.execPath, ['app.cjs'], app), 'node app.cjs');
    assert.deepEqual(JSON.parse(r.stdout.trim().split('\n').pop()!), { reply: 'hello from cjs', refused: 'MESH_ERR_FORBIDDEN' });
  });

  void test('a TypeScript consumer (NodeNext, strict, no skipLibCheck) type-checks against the shipped .d.ts files', async () => {
    const dir = join(app, 'ts');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'consumer.ts'), TS_CONSUMER);
    const tsconfig = {
      compilerOptions: {
        module: 'NodeNext',
        moduleResolution: 'NodeNext',
        target: 'ES2022',
        strict: true,
        noEmit: true,
        skipLibCheck: false,
        types: ['node'],
        // @types/node from this checkout: the app has no dev dependencies of its own.
        typeRoots: [join(root, 'node_modules', '@types')],
      },
      files: ['consumer.ts'],
    };
    writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify(tsconfig, null, 2));
    // The same file as a bundler would resolve it.
    const bundler = { ...tsconfig, compilerOptions: { ...tsconfig.compilerOptions, module: 'ESNext', moduleResolution: 'bundler' } };
    writeFileSync(join(dir, 'tsconfig.bundler.json'), JSON.stringify(bundler, null, 2));
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ type: 'module', private: true }));
    const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
    ok(await run(process.execPath, [tsc, '-p', 'tsconfig.json'], dir), 'tsc --noEmit in the consumer (NodeNext)');
    ok(await run(process.execPath, [tsc, '-p', 'tsconfig.bundler.json'], dir), 'tsc --noEmit in the consumer (bundler)');
  });

  void test("the app's own npm ci works from its lockfile, and npm ls --omit=dev --all is clean", async () => {
    ok(await run('npm', ['ci', '--no-audit', '--no-fund'], app, NPM_TIMEOUT_MS), 'npm ci in the app');
    ok(await run('npm', ['ls', '--omit=dev', '--all'], app, NPM_TIMEOUT_MS), 'npm ls --omit=dev --all');
  });

  void test('the installed production tree has no tsx, esbuild, TypeScript, install script, .node file or native executable', async () => {
    const ls = ok(await run('npm', ['ls', '--omit=dev', '--all', '--json'], app, NPM_TIMEOUT_MS), 'npm ls --json');
    const names = new Set<string>();
    const walk = (deps: Record<string, { dependencies?: Record<string, unknown> }> | undefined): void => {
      for (const [name, dep] of Object.entries(deps ?? {})) {
        names.add(name);
        walk(dep.dependencies as Record<string, { dependencies?: Record<string, unknown> }> | undefined);
      }
    };
    walk((JSON.parse(ls.stdout) as { dependencies?: Record<string, { dependencies?: Record<string, unknown> }> }).dependencies);
    assert.ok(names.has('meshd') && names.has('yaml'), `the tree lists meshd and its dependencies: ${[...names].join(', ')}`);
    const forbidden = [...names].filter((n) => /^(tsx|esbuild|typescript|node-gyp|node-gyp-build|prebuild-install|cbor-extract)$|^@esbuild\//.test(n));
    assert.deepEqual(forbidden, []);

    const modules = join(app, 'node_modules');
    const lock = JSON.parse(readFileSync(join(app, 'package-lock.json'), 'utf8')) as { packages: Record<string, { hasInstallScript?: boolean; os?: unknown; cpu?: unknown }> };
    const scripted = Object.entries(lock.packages).filter(([, p]) => p.hasInstallScript === true || p.os !== undefined || p.cpu !== undefined).map(([path]) => path);
    assert.deepEqual(scripted, [], 'no installed package has an install script or is a platform binary');

    const files = filesUnder(modules);
    assert.ok(files.length > 50, `found only ${files.length} installed files`);
    const addons = files.filter((f) => f.endsWith('.node'));
    const binaries = files.map((f) => [relative(modules, f), nativeMagic(f)] as const).filter(([, magic]) => magic !== undefined);
    assert.deepEqual(addons, []);
    assert.deepEqual(binaries, []);
  });

  void test('the installed meshd bin runs --version with no transform step', async () => {
    const bin = join(app, 'node_modules', '.bin', 'meshd');
    assert.ok(existsSync(bin) && lstatSync(bin).isSymbolicLink(), 'npm linked the bin');
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string };
    const r = ok(await run(bin, ['--version'], app), 'meshd --version');
    assert.equal(r.stdout.trim(), pkg.version);
  });
});
