// `meshd broker` options from the --config YAML file, MESHD_* variables and
// flags, in real child processes: a flag beats its variable, which beats the
// config file, which beats the default. The losing `listen` values name ports
// this test holds open, so a broker that used one would fail to start.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { encodeKey, generateKeyPair, writeKeyFileSync } from '../../lib/index.ts';
import { Children, describeRun, logLines } from './children.ts';
import type { Daemon } from './children.ts';

const START_MS = 30_000;

/** A TCP port on 127.0.0.1 held open (so binding it fails) until close(). */
async function busyPort(): Promise<{ port: number; close(): Promise<void> }> {
  const server = net.createServer((s) => s.destroy());
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  return { port: (server.address() as net.AddressInfo).port, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

/** The `listening` log line of a broker. */
function listeningLog(d: Daemon): Record<string, unknown> {
  const line = logLines(d.stderr()).find((l) => l.event === 'listening');
  assert.ok(line, d.stderr());
  return line;
}

void describe('meshd broker: flags > MESHD_* > --config YAML > defaults', () => {
  const children = new Children();
  let dir = '';
  let brokerKey = '';
  const held: Array<{ port: number; close(): Promise<void> }> = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'meshd-config-'));
    const keyPair = generateKeyPair();
    writeKeyFileSync(join(dir, 'broker.key'), keyPair);
    brokerKey = encodeKey(keyPair.publicKey);
    writeFileSync(join(dir, 'registry.yaml'), '[]\n');
    held.push(await busyPort(), await busyPort());
  });

  after(async () => {
    children.killAll();
    await Promise.all(held.map((h) => h.close()));
    if (dir !== '') await rm(dir, { recursive: true, force: true });
  });

  void test('config file < MESHD_LISTEN < --listen; config values fill what neither sets; SIGTERM exits 0', async () => {
    const [configPort, envPort] = held.map((h) => h.port);
    const config = join(dir, 'broker.yaml');
    // Keys are the long option names. Relative paths in it would be resolved against the working directory, like flags.
    writeFileSync(
      config,
      [
        '# meshd broker options',
        `listen: 127.0.0.1:${configPort}`,
        `key: ${join(dir, 'broker.key')}`,
        `registry: ${join(dir, 'registry.yaml')}`,
        'name: from-config',
        'drain-timeout: 1234',
        'queue-max: 77',
        '',
      ].join('\n'),
    );

    // 1. The config file alone: its listen address is used (and is busy).
    const configOnly = children.run(['broker', '--config', config]);
    // 2. MESHD_LISTEN beats the config file; MESHD_NAME beats its name.
    const envWins = children.start(['broker', '--config', config], { env: { MESHD_LISTEN: '127.0.0.1:0', MESHD_NAME: 'from-env' } });
    // 3. Flags beat both (the config file named by MESHD_CONFIG this time).
    const flagWins = children.start(['broker', '--listen', '127.0.0.1:0', '--name', 'from-flag', '--queue-max', '5'], {
      env: { MESHD_CONFIG: config, MESHD_LISTEN: `127.0.0.1:${envPort}`, MESHD_NAME: 'from-env' },
    });

    const failed = await configOnly;
    assert.equal(failed.status, 1, describeRun(failed));
    assert.equal(failed.stdout, '');
    assert.match(failed.stderr, new RegExp(`^MESH_ERR_CONFIG: cannot listen on 127\\.0\\.0\\.1:${configPort}: EADDRINUSE`, 'm'));

    const address = new RegExp(`^listening mesh://${brokerKey}@127\\.0\\.0\\.1:(\\d+)$`);
    for (const d of [envWins, flagWins]) {
      const line = await d.line(address, START_MS);
      const port = Number(address.exec(line)![1]);
      assert.ok(port !== 0 && port !== configPort && port !== envPort, line);
    }
    assert.deepEqual(
      (({ name, drainTimeout, queueMax, maxPayload }) => ({ name, drainTimeout, queueMax, maxPayload }))(listeningLog(envWins)),
      { name: 'from-env', drainTimeout: 1234, queueMax: 77, maxPayload: 1048576 },
      'env beats config; config beats the defaults',
    );
    assert.deepEqual(
      (({ name, drainTimeout, queueMax }) => ({ name, drainTimeout, queueMax }))(listeningLog(flagWins)),
      { name: 'from-flag', drainTimeout: 1234, queueMax: 5 },
      'flags beat env and config',
    );

    const started = Date.now();
    for (const d of [envWins, flagWins]) process.kill(d.pid, 'SIGTERM');
    for (const d of [envWins, flagWins]) assert.deepEqual(await d.exited(10_000), { status: 0, signal: null }, d.stderr());
    assert.ok(Date.now() - started < 5000, `SIGTERM took ${Date.now() - started} ms`);
  });

  void test('an --admin address that cannot be bound is MESH_ERR_CONFIG (exit 1) before the broker starts', async () => {
    const r = await children.run(['broker', '--listen', '127.0.0.1:0', '--key', join(dir, 'broker.key'), '--registry', join(dir, 'registry.yaml'), '--admin', `127.0.0.1:${held[0]!.port}`]);
    assert.equal(r.status, 1, describeRun(r));
    assert.equal(r.stdout, '', 'no listening line: the broker never started');
    assert.match(r.stderr, new RegExp(`^MESH_ERR_CONFIG: cannot listen on 127\\.0\\.0\\.1:${held[0]!.port} for --admin: EADDRINUSE$`, 'm'));
  });

  void test('a --peer not registered as a broker is not dialled, with a warning; MESHD_ADMIN=:0 serves the admin endpoint on 127.0.0.1', async () => {
    const stranger = encodeKey(generateKeyPair().publicKey);
    const d = children.start([
      'broker',
      '--listen',
      '127.0.0.1:0',
      '--key',
      join(dir, 'broker.key'),
      '--registry',
      join(dir, 'registry.yaml'),
      '--peer',
      `mesh://${stranger}@127.0.0.1:1`,
      '--peer',
      `mesh://${brokerKey}@127.0.0.1:2`,
      '--suite',
      'noble',
    ], { env: { MESHD_ADMIN: ':0' } });
    try {
      await d.line(/^listening mesh:\/\//, START_MS);
      const admin = logLines(d.stderr()).filter((l) => l.event === 'admin-listening');
      assert.deepEqual(admin.map((l) => l.level), ['info']);
      assert.match(String(admin[0]?.address), /^http:\/\/127\.0\.0\.1:[1-9][0-9]*$/, 'PORT alone: 127.0.0.1, and the real port');
      const health = await fetch(`${String(admin[0]?.address)}/healthz`);
      assert.deepEqual([health.status, await health.text()], [200, 'ok\n']);
      assert.equal(logLines(d.stderr()).filter((l) => l.event === 'option-ignored').length, 0);
      await d.stderrMatch(/"event":"peer-not-registered"/, 5000);
      const refused = logLines(d.stderr()).filter((l) => l.event === 'peer-not-registered');
      // The stranger only: a --peer naming the broker itself is skipped.
      assert.deepEqual(refused.map((l) => [l.level, l.key]), [['warn', stranger]]);
      assert.equal(logLines(d.stderr()).filter((l) => l.event === 'peer-dial-failed').length, 0, 'never dialled');
      assert.equal(listeningLog(d).suite, 'noble');
      process.kill(d.pid, 'SIGINT');
      assert.deepEqual(await d.exited(10_000), { status: 0, signal: null }, d.stderr());
    } finally {
      children.killAll();
    }
  });
});
