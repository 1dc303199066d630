// `meshd serve` started before its broker (issue 9): it keeps trying, logs a
// rate-limited `connect-retry` line with the last error, and serves once the
// broker is up; `--connect-timeout` makes it give up with MESH_ERR_TIMEOUT;
// SIGTERM while it waits exits 0. Real child processes on 127.0.0.1.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { encodeKey, formatBrokerAddress, generateKeyPair, writeKeyFileSync } from '../../lib/index.ts';
import { closedPort, freePort } from '../helpers/ports.ts';
import { Children, describeRun, logLines } from './children.ts';

const START_MS = 30_000;


void describe('meshd serve before its broker', { concurrency: true }, () => {
  const children = new Children();
  let dir = '';
  let brokerKey = '';
  const file = (name: string): string => join(dir, name);

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'meshd-serve-start-'));
    const broker = generateKeyPair();
    const worker = generateKeyPair();
    writeKeyFileSync(file('broker.key'), broker);
    writeKeyFileSync(file('worker.key'), worker);
    brokerKey = encodeKey(broker.publicKey);
    await writeFile(
      file('registry.yaml'),
      `- key: ${brokerKey}\n  name: broker\n  role: broker\n- key: ${encodeKey(worker.publicKey)}\n  name: worker\n  role: worker\n  serve: [echo]\n`,
    );
  });

  after(async () => {
    children.killAll();
    await rm(dir, { recursive: true, force: true });
  });

  void test('with no broker yet it keeps trying, logs connect-retry, and serves once the broker listens', async () => {
    const port = await freePort();
    const url = formatBrokerAddress({ key: brokerKey, host: '127.0.0.1', port });
    const worker = children.start(['serve', '--broker', url, '--key', file('worker.key'), 'echo', '--echo']);
    await worker.stderrMatch(/"event":"connect-retry"/, START_MS);
    const retry = logLines(worker.stderr()).find((l) => l.event === 'connect-retry')!;
    assert.equal(retry.level, 'warn');
    assert.equal(retry.code, 'MESH_ERR_CONNECTION');
    assert.match(String(retry.msg), /still trying/);
    const broker = children.start(['broker', '--listen', `127.0.0.1:${port}`, '--key', file('broker.key'), '--registry', file('registry.yaml')]);
    await broker.line(/^listening /, START_MS);
    await worker.line(/^ready$/, START_MS);
    // One line per interval, not one per failed attempt (the links retry every 100-500 ms).
    const retries = logLines(worker.stderr()).filter((l) => l.event === 'connect-retry').length;
    assert.ok(retries >= 1 && retries <= 3, `${retries} connect-retry lines`);
    worker.child.kill('SIGTERM');
    broker.child.kill('SIGTERM');
    const [w, b] = await Promise.all([worker.exited(START_MS), broker.exited(START_MS)]);
    assert.equal(w.status, 0, describeRun({ ...w, stderr: worker.stderr() }));
    assert.equal(b.status, 0, describeRun({ ...b, stderr: broker.stderr() }));
  });

  void test('--connect-timeout gives up with MESH_ERR_TIMEOUT (exit 1) and the last error', async () => {
    const url = formatBrokerAddress({ key: brokerKey, host: '127.0.0.1', port: await closedPort() });
    const r = await children.run(['serve', '--broker', url, '--key', file('worker.key'), 'echo', '--echo', '--connect-timeout', '1500']);
    assert.equal(r.status, 1, describeRun(r));
    assert.match(r.stderr, /^MESH_ERR_TIMEOUT: no broker accepted the worker within --connect-timeout 1500 ms \(last error: MESH_ERR_CONNECTION/m);
  });

  void test('SIGTERM while it waits for a first broker exits 0', async () => {
    const url = formatBrokerAddress({ key: brokerKey, host: '127.0.0.1', port: await closedPort() });
    const worker = children.start(['serve', '--broker', url, '--key', file('worker.key'), 'echo', '--echo']);
    await worker.stderrMatch(/"event":"connect-retry"/, START_MS);
    worker.child.kill('SIGTERM');
    const exit = await worker.exited(START_MS);
    assert.equal(exit.status, 0, describeRun({ ...exit, stderr: worker.stderr() }));
    assert.match(worker.stderr(), /stopped before any broker accepted the worker/);
  });
});
