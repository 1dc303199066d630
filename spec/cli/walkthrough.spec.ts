// The README's quickstart and its "More from the command line" steps,
// end to end, with the real compiled `meshd` (dist/bin/meshd.js) processes:
// three keys, a registry written by `meshd registry add`, a broker on
// 127.0.0.1 port 0, an echo worker and requests; then the payload from stdin,
// the failure exits, the registry commands, a registry reload that locks the
// client out, and a graceful SIGTERM. (spec/cli/readme-quickstart.spec.ts
// runs the quickstart's blocks verbatim, from the README's own text.) The tests of the suite share the running mesh and run in
// order.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { encodeKey, generateKeyPair, readKeyFileSync, writeKeyFileSync } from '../../lib/index.ts';
import { Children, describeRun, logLines } from './children.ts';
import type { Daemon, Run } from './children.ts';

const KEY_TEXT = /^[A-Za-z0-9_-]{43}$/;
/** Bound for a daemon to come up (tsx start-up plus listening or connecting). */
const START_MS = 30_000;

/** Asserts a MeshError report: exit 1, nothing on stdout, `CODE: message` on stderr and no stack. */
function assertMeshError(r: Run, code: string): void {
  assert.equal(r.status, 1, describeRun(r));
  assert.equal(r.stdout, '');
  assert.ok(r.stderr.startsWith(`${code}: `), `stderr should start with "${code}: ": ${r.stderr}`);
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
}

void describe('README walkthrough: keygen, registry add, broker, serve, request', () => {
  const children = new Children();
  let dir = '';
  let broker: Daemon | undefined;
  let worker: Daemon | undefined;
  let url = '';
  const keys: Record<string, string> = {};
  const file = (name: string): string => join(dir, name);

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'meshd-walkthrough-'));
    // Terminal 0: keys and the registry.
    const made = await Promise.all(['broker', 'worker', 'client'].map((who) => children.run(['keygen', '--out', file(`${who}.key`)])));
    for (const [i, who] of ['broker', 'worker', 'client'].entries()) {
      const r = made[i]!;
      assert.equal(r.status, 0, describeRun(r));
      keys[who] = r.stdout.trim();
      assert.match(keys[who], KEY_TEXT);
    }
    const registry = file('registry.yaml');
    // Concurrent edits of one file: the lib's lock serializes them.
    const added = await Promise.all([
      children.run(['registry', 'add', '--registry', registry, '--key-file', file('broker.key'), '--name', 'broker-1', '--role', 'broker']),
      children.run(['registry', 'add', '--registry', registry, '--key-file', file('worker.key'), '--name', 'echo-worker', '--role', 'worker', '--serve', 'echo']),
      // The README's client calls echo; `nobody.*` lets the test reach a service no one serves.
      children.run(['registry', 'add', '--registry', registry, '--key', keys.client!, '--name', 'client', '--role', 'client', '--call', 'echo', '--call', 'nobody.*']),
    ]);
    for (const r of added) {
      assert.equal(r.status, 0, describeRun(r));
      assert.equal(r.stdout, '', 'registry add prints nothing on stdout');
      assert.match(r.stderr, /^added "/);
    }
    // Terminal 1: the broker, on any free port.
    broker = children.start(['broker', '--listen', '127.0.0.1:0', '--key', file('broker.key'), '--registry', registry]);
    const listening = await broker.line(/^listening /, START_MS);
    const m = /^listening (mesh:\/\/([A-Za-z0-9_-]{43})@127\.0\.0\.1:(\d+))$/.exec(listening);
    assert.ok(m, `listening line: ${listening}`);
    assert.equal(m[2], keys.broker, 'the address carries the broker key');
    assert.notEqual(Number(m[3]), 0, 'the real port, not 0');
    url = m[1]!;
    // Terminal 2: the echo worker.
    worker = children.start(['serve', '--broker', url, '--key', file('worker.key'), 'echo', '--echo']);
    await worker.line(/^ready$/, START_MS);
  });

  after(async () => {
    children.killAll();
    if (dir !== '') await rm(dir, { recursive: true, force: true });
  });

  void test('request prints exactly the reply: DATA as an argument, and binary DATA from stdin with -', async () => {
    const payload = Buffer.from([0, 1, 2, 10, 13, 0xff, 0xfe, 0x80, ...Buffer.from(' hello\n')]);
    const [hello, binary] = await Promise.all([
      children.run(['request', '--broker', url, '--key', file('client.key'), 'echo', 'hello']),
      children.run(['request', '--broker', url, '--key', file('client.key'), 'echo', '-'], { input: payload }),
    ]);
    assert.equal(hello.status, 0, describeRun(hello));
    assert.equal(hello.stdout, 'hello', 'the reply bytes, no newline added');
    assert.equal(hello.stderr, '');
    assert.equal(binary.status, 0, describeRun(binary));
    assert.deepEqual(binary.stdoutBytes, payload);
  });

  void test('a service the client may not call fails with MESH_ERR_FORBIDDEN; one nobody serves with MESH_ERR_NO_SERVICE; an unregistered key with MESH_ERR_UNAUTHORIZED (exit 1)', async () => {
    const stranger = file('stranger.key');
    writeKeyFileSync(stranger, generateKeyPair());
    const [forbidden, noService, unauthorized] = await Promise.all([
      children.run(['request', '--broker', url, '--key', file('client.key'), 'billing', 'x']),
      children.run(['request', '--broker', url, '--key', file('client.key'), 'nobody.home', 'x', '--timeout', '2000']),
      children.run(['request', '--broker', url, '--key', stranger, 'echo', 'x']),
    ]);
    assertMeshError(forbidden, 'MESH_ERR_FORBIDDEN');
    assert.match(forbidden.stderr, /client may not call billing/);
    assertMeshError(noService, 'MESH_ERR_NO_SERVICE');
    assertMeshError(unauthorized, 'MESH_ERR_UNAUTHORIZED');
    assert.match(unauthorized.stderr, /not in the registry/);
  });

  void test('a wrong broker key in the address fails at once with a sentence that says so; a dead seed, or a dead address of the same broker, beside a live one is no obstacle', async () => {
    const otherKey = encodeKey(generateKeyPair().publicKey);
    const wrongKey = url.replace(/^mesh:\/\/[A-Za-z0-9_-]{43}@/, `mesh://${otherKey}@`);
    // A port nothing listens on: the broker's own, plus one (the run ends before anything could take it).
    const port = Number(/:(\d+)$/.exec(url)![1]);
    const deadPort = `:${port === 65535 ? port - 1 : port + 1}`;
    // Another broker, down; and this broker's key at an address where it is not.
    const dead = wrongKey.replace(/:\d+$/, deadPort);
    const moved = url.replace(/:\d+$/, deadPort);
    const started = performance.now();
    const [wrong, twoSeeds, fromEnv] = await Promise.all([
      children.run(['request', '--broker', wrongKey, '--key', file('client.key'), 'echo', 'x', '--connect-timeout', '30000']),
      children.run(['request', '--broker', dead, '--broker', url, '--key', file('client.key'), 'echo', 'two seeds']),
      children.run(['request', '--key', file('client.key'), 'echo', 'from env'], { env: { MESHD_BROKER: `${moved} ${url}` } }),
    ]);
    const wrongMs = performance.now() - started;
    assertMeshError(wrong, 'MESH_ERR_HANDSHAKE');
    assert.match(wrong.stderr, /did not accept our handshake: the key in the address is probably not this broker's/);
    // It does not wait out --connect-timeout (30 s): the verdict is final.
    assert.ok(wrongMs < 15_000, `the wrong-key request ended after ${Math.round(wrongMs)} ms`);
    assert.equal(twoSeeds.status, 0, describeRun(twoSeeds));
    assert.equal(twoSeeds.stdout, 'two seeds');
    assert.equal(fromEnv.status, 0, describeRun(fromEnv));
    assert.equal(fromEnv.stdout, 'from env');
  });

  void test('registry list prints a table, and --json the entries', async () => {
    const registry = file('registry.yaml');
    const [table, json] = await Promise.all([children.run(['registry', 'list', '--registry', registry]), children.run(['registry', 'list', '--registry', registry, '--json'])]);
    assert.equal(table.status, 0, describeRun(table));
    const lines = table.stdout.split('\n');
    assert.equal(lines.pop(), '', 'ends with a newline');
    assert.equal(lines.length, 4, table.stdout);
    assert.match(lines[0]!, /^NAME\s+ROLE\s+KEY\s+CALL\s+SERVE$/);
    const rows = lines.slice(1).map((l) => l.split(/\s+/));
    const byName = new Map(rows.map((r) => [r[0], r]));
    assert.deepEqual(byName.get('broker-1'), ['broker-1', 'broker', keys.broker, '-', '-']);
    assert.deepEqual(byName.get('echo-worker'), ['echo-worker', 'worker', keys.worker, '-', 'echo']);
    assert.deepEqual(byName.get('client'), ['client', 'client', keys.client, 'echo,nobody.*', '-']);
    // Columns line up: every KEY starts at the same offset.
    const keyColumn = lines[0]!.indexOf('KEY');
    for (const line of lines.slice(1)) assert.match(line.slice(keyColumn, keyColumn + 43), KEY_TEXT);

    assert.equal(json.status, 0, describeRun(json));
    assert.equal(json.stdout.split('\n').length, 2, 'one JSON line');
    const entries = JSON.parse(json.stdout) as Array<{ key: string; name: string; role: string; call: string[]; serve: string[] }>;
    assert.deepEqual(
      [...entries].sort((a, b) => a.name.localeCompare(b.name)),
      [
        { key: keys.broker, name: 'broker-1', role: 'broker', call: [], serve: [] },
        { key: keys.client, name: 'client', role: 'client', call: ['echo', 'nobody.*'], serve: [] },
        { key: keys.worker, name: 'echo-worker', role: 'worker', call: [], serve: ['echo'] },
      ],
    );
  });

  void test('registry remove + SIGHUP: the broker reloads, and the removed client is refused with MESH_ERR_UNAUTHORIZED', async () => {
    const registry = file('registry.yaml');
    const removed = await children.run(['registry', 'remove', '--registry', registry, 'client']);
    assert.equal(removed.status, 0, describeRun(removed));
    assert.match(removed.stderr, /^removed "client"/);
    const missing = await children.run(['registry', 'remove', '--registry', registry, 'client']);
    assertMeshError(missing, 'MESH_ERR_CONFIG');
    assert.match(missing.stderr, /no entry with key or name "client"/);

    process.kill(broker!.pid, 'SIGHUP');
    await broker!.stderrMatch(/"event":"sighup"/, 10_000);
    // The reload that removed the client (the file watcher's or SIGHUP's, whichever came first).
    await broker!.stderrMatch(/"event":"registry-reloaded".*"entries":2,"removed":1/, 10_000);
    const refused = await children.run(['request', '--broker', url, '--key', file('client.key'), 'echo', 'hello']);
    assertMeshError(refused, 'MESH_ERR_UNAUTHORIZED');
    // The worker was not disturbed.
    assert.equal(encodeKey(readKeyFileSync(file('worker.key')).publicKey), keys.worker);
    assert.doesNotMatch(worker!.stderr(), /broker-down/);
  });

  void test('SIGTERM: the worker and the broker drain and exit 0 within a few seconds; logs are JSON lines without payloads', async () => {
    const started = Date.now();
    process.kill(worker!.pid, 'SIGTERM');
    const workerExit = await worker!.exited(10_000);
    assert.deepEqual(workerExit, { status: 0, signal: null }, worker!.stderr());
    process.kill(broker!.pid, 'SIGTERM');
    const brokerExit = await broker!.exited(10_000);
    assert.deepEqual(brokerExit, { status: 0, signal: null }, broker!.stderr());
    assert.ok(Date.now() - started < 8000, `took ${Date.now() - started} ms`);

    assert.equal(broker!.stdout(), `listening ${url}\n`, 'the broker prints exactly one stdout line');
    assert.equal(worker!.stdout(), 'ready\n', 'the worker prints exactly one stdout line');
    const logs = logLines(broker!.stderr());
    assert.equal(logs.length, broker!.stderr().split('\n').filter((l) => l !== '').length, 'every stderr line is JSON');
    for (const line of logs) {
      assert.equal(typeof line.time, 'string');
      assert.ok(['info', 'warn', 'error'].includes(line.level as string), JSON.stringify(line));
      assert.equal(typeof line.event, 'string');
      assert.equal(typeof line.msg, 'string');
    }
    const events = logs.map((l) => l.event);
    for (const e of ['listening', 'connected', 'disconnected', 'handshake-failed', 'sighup', 'registry-reloaded', 'shutdown', 'draining', 'closed']) assert.ok(events.includes(e), `${e} logged: ${events.join(', ')}`);
    assert.doesNotMatch(broker!.stderr(), /hello/, 'no payload in the logs');
    assert.equal(logs.find((l) => l.event === 'listening')?.suite, 'node', 'the listening line names the suite in use');
    const workerLogs = logLines(worker!.stderr());
    const workerEvents = workerLogs.map((l) => l.event);
    for (const e of ['ready', 'shutdown', 'closed']) assert.ok(workerEvents.includes(e), `${e} logged by the worker: ${workerEvents.join(', ')}`);
    // The seed broker, which welcomed the worker before it was ready, is logged like any other.
    assert.ok(workerLogs.some((l) => l.event === 'broker-up' && l.broker === url), `broker-up for the seed: ${workerEvents.join(', ')}`);
    assert.ok(workerEvents.indexOf('broker-up') < workerEvents.indexOf('ready'), 'broker-up comes before ready');
  });
});
