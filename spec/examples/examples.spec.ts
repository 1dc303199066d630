// The examples of examples/, run as a user runs them: each is a child process
// of plain `node` on its .mjs file, importing `meshd` by its package name
// (resolved through package.json "exports" to the compiled dist/), against a
// real broker started in this process on 127.0.0.1. The spec checks what each
// example shows on the outside (HTTP responses, replies, stdout lines, exit
// codes) and kills every child by pid in its `after` hook.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { Broker, MeshNode, Registry, encodeKey, generateKeyPair, isMeshError, writeKeyFileSync } from '../../lib/index.ts';
import type { KeyPair, RegistryEntryInit } from '../../lib/index.ts';
import { until } from '../helpers/mesh.ts';
import { Examples, START_MS, getJson, plainEnv, root } from './example-processes.ts';

const EXAMPLES = ['http-front-end', 'async-iterator-worker', 'choose-broker'];

/** A party of a suite: its key pair, written to a key file for the example processes. */
interface Party {
  readonly name: string;
  readonly pair: KeyPair;
  readonly key: string;
  readonly file: string;
}

function parties(dir: string, names: readonly string[]): Record<string, Party> {
  const out: Record<string, Party> = {};
  for (const name of names) {
    const pair = generateKeyPair();
    const file = join(dir, `${name}.key`);
    writeKeyFileSync(file, pair);
    out[name] = { name, pair, key: encodeKey(pair.publicKey), file };
  }
  return out;
}

function registry(entries: Array<[Party, Omit<RegistryEntryInit, 'key' | 'name'>]>): Registry {
  return Registry.fromEntries(entries.map(([p, e]) => ({ key: p.key, name: p.name, ...e })));
}

/** Waits until `broker` has `count` workers for `service`. */
async function workersAt(broker: Broker, service: string, count: number): Promise<void> {
  await until(() => (broker.status().services.find((s) => s.name === service)?.workers ?? 0) === count, 20_000, `${count} workers for ${service} at ${broker.address}`);
}

void describe('the examples are plain JavaScript that imports meshd as a user would', () => {
  void test('each example has a README and .mjs files, imports only `meshd` and node: modules, and has no package.json of its own', () => {
    for (const name of EXAMPLES) {
      const dir = join(root, 'examples', name);
      const files = readdirSync(dir);
      assert.ok(files.includes('README.md'), `${name}/README.md`);
      assert.ok(!files.includes('package.json') && !files.includes('node_modules'), `${name} resolves meshd through the repository's package.json`);
      const scripts = files.filter((f) => f.endsWith('.mjs'));
      assert.ok(scripts.length > 0, `${name} has .mjs files`);
      for (const script of scripts) {
        const source = readFileSync(join(dir, script), 'utf8');
        const imports = [...source.matchAll(/^import .* from '([^']+)';$/gm)].map((m) => m[1]!);
        assert.ok(imports.includes('meshd'), `${name}/${script} imports meshd: ${imports.join(', ')}`);
        for (const spec of imports) assert.ok(spec === 'meshd' || spec.startsWith('node:'), `${name}/${script} imports ${spec}`);
      }
    }
  });

  void test("from examples/, `meshd` resolves to the compiled dist/lib/index.js (the package's exports, self-referenced)", () => {
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', "console.log(import.meta.resolve('meshd'))"], {
      cwd: join(root, 'examples', 'http-front-end'),
      env: plainEnv({}),
      encoding: 'utf8',
      timeout: START_MS,
    });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), pathToFileURL(join(root, 'dist', 'lib', 'index.js')).href);
    assert.ok(existsSync(join(root, 'dist', 'lib', 'index.js')));
  });
});

void describe('examples/http-front-end: node:http in front of a worker pool', () => {
  const examples = new Examples();
  const dir = mkdtempSync(join(tmpdir(), 'meshd-example-http-'));
  const p = parties(dir, ['broker-1', 'w1', 'w2', 'front-end']);
  let broker: Broker | undefined;
  let base = '';
  const workers: ReturnType<Examples['start']>[] = [];
  let server: ReturnType<Examples['start']> | undefined;

  before(async () => {
    broker = await Broker.start({
      key: p['broker-1']!.pair,
      host: '127.0.0.1',
      port: 0,
      registry: registry([
        [p['broker-1']!, { role: 'broker' }],
        [p.w1!, { role: 'worker', serve: ['text.upper'] }],
        [p.w2!, { role: 'worker', serve: ['text.upper'] }],
        [p['front-end']!, { role: 'client', call: ['text.upper'] }],
      ]),
    });
    for (const name of ['w1', 'w2']) {
      const worker = examples.start('http-front-end/worker.mjs', { MESHD_BROKER: broker.address, MESHD_KEY: p[name]!.file, WORKER_NAME: name });
      workers.push(worker);
    }
    await Promise.all(workers.map((w) => w.waitForLine(/^ready$/, START_MS, 'ready')));
    await workersAt(broker, 'text.upper', 2);
    server = examples.start('http-front-end/server.mjs', { MESHD_BROKER: broker.address, MESHD_KEY: p['front-end']!.file, PORT: '0' });
    const { line } = await server.waitForLine(/^listening http:\/\/127\.0\.0\.1:\d+$/, START_MS, 'listening');
    base = line.slice('listening '.length);
  });

  after(async () => {
    await examples.killAll();
    await broker?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  void test('GET /upper?text=... answers 200 with the worker\'s reply', async () => {
    const r = await getJson(`${base}/upper?text=${encodeURIComponent('hello, mesh')}`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.text, 'HELLO, MESH');
    assert.ok(['w1', 'w2'].includes(r.body.worker as string), JSON.stringify(r.body));
  });

  void test('requests are spread over both workers of the pool, in turn and 20 at once', async () => {
    const seen = new Map<string, number>();
    for (let i = 0; i < 10; i++) {
      const r = await getJson(`${base}/upper?text=one-${i}`);
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.equal(r.body.text, `ONE-${i}`);
      seen.set(r.body.worker as string, (seen.get(r.body.worker as string) ?? 0) + 1);
    }
    assert.deepEqual([...seen.keys()].sort(), ['w1', 'w2'], `one after the other: ${JSON.stringify([...seen])}`);
    const many = await Promise.all(Array.from({ length: 20 }, (_, i) => getJson(`${base}/upper?text=many-${i}`)));
    many.forEach((r, i) => {
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.equal(r.body.text, `MANY-${i}`);
    });
  });

  void test('/healthz is 200 while a broker is up; an unknown path is 404', async () => {
    const health = await getJson(`${base}/healthz`);
    assert.deepEqual(health, { status: 200, body: { brokers: 1 } });
    const missing = await getJson(`${base}/nope`);
    assert.equal(missing.status, 404);
  });

  void test('workers stop on SIGTERM (exit 0); the front end then answers 503 MESH_ERR_NO_SERVICE, and stops on SIGTERM', async () => {
    for (const w of workers) process.kill(w.pid, 'SIGTERM');
    const exits = await Promise.all(workers.map((w) => w.exited));
    for (const [i, exit] of exits.entries()) assert.deepEqual(exit, { code: 0, signal: null }, workers[i]!.stderr);
    await workersAt(broker!, 'text.upper', 0);
    const r = await getJson(`${base}/upper?text=x`);
    assert.equal(r.status, 503, JSON.stringify(r.body));
    assert.equal(r.body.error, 'MESH_ERR_NO_SERVICE');
    process.kill(server!.pid, 'SIGTERM');
    assert.deepEqual(await server!.exited, { code: 0, signal: null }, server!.stderr);
  });
});

void describe('examples/async-iterator-worker: a worker as a for await loop', () => {
  const examples = new Examples();
  const dir = mkdtempSync(join(tmpdir(), 'meshd-example-iterator-'));
  const p = parties(dir, ['broker-1', 'reverse-worker', 'client']);
  let broker: Broker | undefined;
  let client: MeshNode | undefined;
  let worker: ReturnType<Examples['start']> | undefined;

  before(async () => {
    broker = await Broker.start({
      key: p['broker-1']!.pair,
      host: '127.0.0.1',
      port: 0,
      registry: registry([
        [p['broker-1']!, { role: 'broker' }],
        [p['reverse-worker']!, { role: 'worker', serve: ['text.reverse'] }],
        [p.client!, { role: 'client', call: ['text.*'] }],
      ]),
    });
    worker = examples.start('async-iterator-worker/worker.mjs', { MESHD_BROKER: broker.address, MESHD_KEY: p['reverse-worker']!.file });
    await worker.waitForLine(/^ready$/, START_MS, 'ready');
    await workersAt(broker, 'text.reverse', 1);
    client = await MeshNode.connect({ brokers: [broker.address], key: p.client!.pair, timeout: 5000 });
  });

  after(async () => {
    await examples.killAll();
    await client?.close();
    await broker?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  void test('each request pulled from the loop is answered with req.reply: the text backwards, by characters', async () => {
    assert.equal(String(await client!.request('text.reverse', 'hello', { timeout: 5000 })), 'olleh');
    assert.equal(String(await client!.request('text.reverse', 'añb😀', { timeout: 5000 })), '😀bña');
  });

  void test('req.fail reaches the client as MESH_ERR_HANDLER with its message, and the loop goes on', async () => {
    await assert.rejects(client!.request('text.reverse', 'x'.repeat(1001), { timeout: 5000 }), (e: unknown) => isMeshError(e, 'MESH_ERR_HANDLER') && /text too long: 1001 characters/.test(e.message));
    assert.equal(String(await client!.request('text.reverse', 'ab', { timeout: 5000 })), 'ba');
  });

  void test('30 requests at once, more than its concurrency of 4, are all answered', async () => {
    const replies = await Promise.all(Array.from({ length: 30 }, (_, i) => client!.request('text.reverse', `n${i}`, { timeout: 10_000 })));
    replies.forEach((r, i) => assert.equal(String(r), [...`n${i}`].reverse().join('')));
  });

  void test('SIGTERM ends the loop: it prints how many it served, withdraws the service and exits 0', async () => {
    process.kill(worker!.pid, 'SIGTERM');
    assert.deepEqual(await worker!.exited, { code: 0, signal: null }, worker!.stderr);
    assert.deepEqual(worker!.lines, ['ready', 'served 33']);
    await workersAt(broker!, 'text.reverse', 0);
    await assert.rejects(client!.request('text.reverse', 'gone', { timeout: 1000 }), (e: unknown) => isMeshError(e, 'MESH_ERR_NO_SERVICE'));
  });
});

void describe('examples/choose-broker: seeds and the broker option', () => {
  const examples = new Examples();
  const dir = mkdtempSync(join(tmpdir(), 'meshd-example-choose-'));
  const p = parties(dir, ['broker-1', 'broker-2', 'worker-a', 'worker-b', 'client']);
  const brokers: Broker[] = [];
  const workers: MeshNode[] = [];

  before(async () => {
    const reg = registry([
      [p['broker-1']!, { role: 'broker' }],
      [p['broker-2']!, { role: 'broker' }],
      [p['worker-a']!, { role: 'worker', serve: ['whoami'] }],
      [p['worker-b']!, { role: 'worker', serve: ['whoami'] }],
      [p.client!, { role: 'client', call: ['whoami'] }],
    ]);
    // Two brokers in one mesh.
    brokers.push(await Broker.start({ key: p['broker-1']!.pair, host: '127.0.0.1', port: 0, registry: reg, gossipInterval: 200 }));
    brokers.push(await Broker.start({ key: p['broker-2']!.pair, host: '127.0.0.1', port: 0, registry: reg, gossipInterval: 200, peers: [brokers[0]!.address] }));
    await until(() => brokers.every((b) => b.status().brokers.length === 2), 20_000, 'both brokers agree on the mesh');
    // One worker pinned to each broker (discover: false), answering with its name:
    // requests never travel between brokers, so the reply tells which broker carried the request.
    for (const [name, broker] of [['worker-a', brokers[0]!], ['worker-b', brokers[1]!]] as const) {
      const node = await MeshNode.connect({ brokers: [broker.address], key: p[name]!.pair, discover: false, timeout: 5000 });
      node.serve('whoami', () => name);
      workers.push(node);
    }
    await Promise.all(brokers.map((b) => workersAt(b, 'whoami', 1)));
  });

  after(async () => {
    await examples.killAll();
    await Promise.all(workers.map((w) => w.close()));
    await Promise.all(brokers.map((b) => b.close()));
    rmSync(dir, { recursive: true, force: true });
  });

  const env = (seeds: readonly Broker[], extra: Record<string, string> = {}): Record<string, string> => ({
    MESHD_BROKER: seeds.map((b) => b.address).join(' '),
    MESHD_KEY: p.client!.file,
    ...extra,
  });

  void test('{ broker } sends a request through the broker it names: one request through each seed', async () => {
    const r = await examples.run('choose-broker/client.mjs', env(brokers), ['whoami']);
    assert.deepEqual(r.exit, { code: 0, signal: null }, r.stderr);
    assert.deepEqual(r.lines, [`via ${brokers[0]!.address}: worker-a`, `via ${brokers[1]!.address}: worker-b`]);
  });

  void test('PREFER names the broker by its key or by its URL', async () => {
    const [byKey, byUrl] = await Promise.all([
      examples.run('choose-broker/client.mjs', env(brokers, { PREFER: brokers[1]!.key }), ['whoami']),
      examples.run('choose-broker/client.mjs', env(brokers, { PREFER: brokers[0]!.address }), ['whoami']),
    ]);
    assert.deepEqual(byKey.exit, { code: 0, signal: null }, byKey.stderr);
    assert.equal(byKey.lines.at(-1), 'preferred: worker-b');
    assert.deepEqual(byUrl.exit, { code: 0, signal: null }, byUrl.stderr);
    assert.equal(byUrl.lines.at(-1), 'preferred: worker-a');
  });

  void test('with discover: false the seeds are all it uses, though the mesh has more brokers', async () => {
    const r = await examples.run('choose-broker/client.mjs', env([brokers[1]!]), ['whoami']);
    assert.deepEqual(r.exit, { code: 0, signal: null }, r.stderr);
    assert.deepEqual(r.lines, [`via ${brokers[1]!.address}: worker-b`]);
  });
});
