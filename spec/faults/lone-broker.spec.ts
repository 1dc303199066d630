// A mesh of one broker that goes away and comes back (issue 9): a worker must
// outlive its only broker, however long it is gone, and serve again as soon
// as it is back. One broker (a real `meshd broker`), two workers that see no
// other: `meshd serve --echo` and a plain-JavaScript app whose only pending
// work is `MeshNode.serve` (embedded-worker.mjs); one client MeshNode in this
// process, seeded with that broker only.
//
// 1. SIGKILL the broker, leave it down 10 s: both workers stay up, spending
//    under 2 % of a core (no busy loop); start it again on the same port and
//    key: both services answer within 1 s of it listening, and the client,
//    whose only broker it is, resumes.
// 2. SIGTERM (drain) the broker: it exits 0; the workers stay up; started
//    again, both services answer within 1 s.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { encodeKey, writeKeyFileSync } from '../../lib/crypto/keys.ts';
import { getSuite } from '../../lib/crypto/suites.ts';
import { isMeshError } from '../../lib/errors.ts';
import { sleep, withCluster } from './harness.ts';
import type { Cluster } from './harness.ts';
import { FaultProcess, meshdArgs, root } from './processes.ts';

const suite = getSuite('node');
const SERVE_SERVICE = 'echo';
const EMBEDDED_SERVICE = 'embedded';
/** How long the broker stays down in step 1, ms. */
const OUTAGE_MS = 10_000;
/** Most CPU the workers may use while their broker is down, as a share of one core. */
const MAX_IDLE_CPU_SHARE = 0.02;
/** Longest time from the broker listening again to a reply from a worker, ms. */
const BACK_WITHIN_MS = 1000;

/** CPU time a process has used so far (user + system), ms; undefined where /proc is not available. */
function cpuMs(pid: number): number | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // Fields after the command name (which may contain spaces) start after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]); // utime, stime
  return (ticks * 1000) / clockTicks();
}

let ticksPerSecond: number | undefined;
function clockTicks(): number {
  ticksPerSecond ??= Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  return ticksPerSecond;
}

/** Adds a worker or node entry to the cluster's registry file (before the broker starts). */
function register(c: Cluster, name: string, service: string): string {
  const keyPair = suite.generateKeyPair();
  const keyFile = join(c.dir, `${name}.key`);
  writeKeyFileSync(keyFile, keyPair, { suite });
  const entry = `- key: ${encodeKey(keyPair.publicKey)}\n  name: ${name}\n  role: worker\n  serve: [${service}]\n`;
  const registry = readFileSync(c.registryFile, 'utf8');
  // The client may call both services.
  const withCalls = registry.replace(/call: \[echo\]/, `call: [${SERVE_SERVICE}, ${EMBEDDED_SERVICE}]`);
  writeFileSync(c.registryFile, withCalls + entry);
  return keyFile;
}

/** Polls `service` with short requests until one is answered with its payload; ms from `since` to that reply. */
async function answeredAfter(c: Cluster, service: string, since: number, ms: number): Promise<number> {
  const deadline = performance.now() + ms;
  let last = 'no attempt';
  for (let i = 0; performance.now() < deadline; i++) {
    const payload = `${service}-${i}`;
    try {
      const reply = await c.client!.request(service, payload, { timeout: 250, retries: 0 });
      assert.equal(reply.toString(), payload);
      return performance.now() - since;
    } catch (error) {
      if (!isMeshError(error)) throw error;
      last = `${error.code}: ${error.message}`;
      await sleep(10);
    }
  }
  throw new Error(`${service} gave no reply within ${ms} ms; last error ${last}`);
}

test('a worker outlives its only broker: SIGKILL, 10 s down, restart; SIGTERM drain, restart', { timeout: 120_000 }, async (t) => {
  let serveKey = '';
  let embeddedKey = '';
  await withCluster(
    {
      name: 'lone-broker',
      brokers: 1,
      workers: 0,
      prepare: async (c) => {
        serveKey = register(c, 'serve-worker', SERVE_SERVICE);
        embeddedKey = register(c, 'embedded-worker', EMBEDDED_SERVICE);
        await Promise.resolve();
      },
    },
    async (c) => {
      const broker = c.brokers[0]!;
      const serve = new FaultProcess('meshd-serve', meshdArgs(['serve', '--broker', broker.url, '--key', serveKey, SERVE_SERVICE, '--echo']));
      const embedded = new FaultProcess('embedded-worker', [join(root, 'spec', 'faults', 'embedded-worker.mjs'), broker.url, embeddedKey, EMBEDDED_SERVICE]);
      c.onClose(async () => {
        await Promise.all([serve.kill(), embedded.kill()]);
      });
      await Promise.all([serve.line(/^ready$/, 30_000), embedded.line(/^ready$/, 30_000)]);
      for (const service of [SERVE_SERVICE, EMBEDDED_SERVICE]) await answeredAfter(c, service, performance.now(), 5000);

      // 1. SIGKILL, 10 s without a broker.
      await broker.kill();
      const cpuBefore = [cpuMs(serve.pid), cpuMs(embedded.pid)];
      const downAt = performance.now();
      await sleep(OUTAGE_MS);
      const downMs = performance.now() - downAt;
      const cpuAfter = [cpuMs(serve.pid), cpuMs(embedded.pid)];
      assert.ok(serve.alive, `meshd serve exited while its broker was down: ${JSON.stringify(serve.exit)}; stderr:\n${serve.stderrTail.slice(-2000)}`);
      assert.ok(embedded.alive, `the embedded worker exited while its broker was down: ${JSON.stringify(embedded.exit)}; stderr:\n${embedded.stderrTail.slice(-2000)}`);
      const shares = cpuBefore.map((before, i) => (before === undefined || cpuAfter[i] === undefined ? undefined : (cpuAfter[i] - before) / downMs));
      if (shares.includes(undefined)) t.diagnostic('no /proc/PID/stat here: the CPU share of the idle workers is not checked');
      for (const [i, share] of shares.entries()) {
        if (share !== undefined) assert.ok(share < MAX_IDLE_CPU_SHARE, `${i === 0 ? 'meshd serve' : 'embedded worker'} used ${(share * 100).toFixed(2)} % of a core with no broker (limit ${MAX_IDLE_CPU_SHARE * 100} %)`);
      }
      assert.ok(serve.logs.some((l) => l.fields.event === 'broker-down'), 'meshd serve logged broker-down');

      await broker.start();
      const listeningAt = performance.now();
      // Both polled at once: each figure is that worker's own.
      const [serveBack, embeddedBack] = await Promise.all([answeredAfter(c, SERVE_SERVICE, listeningAt, 10_000), answeredAfter(c, EMBEDDED_SERVICE, listeningAt, 10_000)]);
      t.diagnostic(`after SIGKILL and ${Math.round(downMs)} ms down: idle CPU ${shares.map((s) => (s === undefined ? 'n/a' : `${(s * 100).toFixed(2)} %`)).join(', ')}; answered ${Math.round(serveBack)} ms (serve) and ${Math.round(embeddedBack)} ms (embedded) after the restart`);
      assert.ok(serveBack < BACK_WITHIN_MS, `meshd serve answered ${Math.round(serveBack)} ms after the broker listened again (limit ${BACK_WITHIN_MS} ms)`);
      assert.ok(embeddedBack < BACK_WITHIN_MS, `the embedded worker answered ${Math.round(embeddedBack)} ms after the broker listened again (limit ${BACK_WITHIN_MS} ms)`);
      assert.ok(serve.logs.some((l) => l.fields.event === 'broker-up'), 'meshd serve logged broker-up');

      // 2. SIGTERM: the broker drains and exits 0; the workers wait for it.
      const exit = await broker.terminate(15_000);
      assert.equal(exit?.code, 0, `the broker exits 0 after SIGTERM: ${JSON.stringify(exit)}`);
      await sleep(2000);
      assert.ok(serve.alive && embedded.alive, 'both workers outlive a drained broker');
      await broker.start();
      const drainedAt = performance.now();
      const [serveAgain, embeddedAgain] = await Promise.all([answeredAfter(c, SERVE_SERVICE, drainedAt, 10_000), answeredAfter(c, EMBEDDED_SERVICE, drainedAt, 10_000)]);
      t.diagnostic(`after SIGTERM: answered ${Math.round(serveAgain)} ms (serve) and ${Math.round(embeddedAgain)} ms (embedded) after the restart`);
      assert.ok(serveAgain < BACK_WITHIN_MS && embeddedAgain < BACK_WITHIN_MS, `answered ${Math.round(serveAgain)} and ${Math.round(embeddedAgain)} ms after the restart (limit ${BACK_WITHIN_MS} ms)`);

      // Both still stop cleanly.
      assert.ok(serve.signal('SIGTERM'));
      assert.equal((await serve.waitExit(10_000))?.code, 0, 'meshd serve exits 0 on SIGTERM');
    },
  );
});
