// Backpressure (docs/limits.md#connections-every-party): a client that sends requests and never reads its
// socket is disconnected by the broker, not buffered without limit. The
// broker runs in a child process so its RSS can be read from /proc; a
// well-behaved client keeps getting replies during and after the attack.
import { test } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { MeshNode } from '../../lib/node/mesh-node.ts';
import { encodeKey } from '../../lib/crypto/keys.ts';
import { getSuite } from '../../lib/crypto/suites.ts';
import { parseBrokerAddress } from '../../lib/protocol/broker-address.ts';
import { party } from '../helpers/mesh.ts';
import { ChildBroker } from '../helpers/child-harness.ts';
import type { ChildBrokerConfig } from '../helpers/child-harness.ts';
import { FateBook, plaintextsOf, welcomedClient, within } from './tools.ts';

const suite = getSuite('node');
const brokerP = party('broker');
const workerP = party('worker');
const goodP = party('good-client');
const slowP = party('slow-reader');
const registry: ChildBrokerConfig['registry'] = [
  { key: workerP.key, name: workerP.name, role: 'worker', serve: ['echo'] },
  { key: goodP.key, name: goodP.name, role: 'client', call: ['echo'] },
  { key: slowP.key, name: slowP.name, role: 'client', call: ['echo'] },
];
const MiB = 1024 * 1024;

interface AttackResult {
  closedBy: string | undefined;
  sentRequests: number;
  baselineRss: number;
  peakRss: number;
  cutAfterMs: number;
  good: ReturnType<FateBook['summary']>;
  goodDuringAttack: number;
  /** Bytes the slow reader took off its socket after the handshake (WELCOME only). */
  slowReaderRead: number;
}

/**
 * Runs one attack against a fresh child broker with `options`: the slow
 * reader sends up to `maxRequests` REQUESTs of ~60 KiB and never reads.
 */
async function attack(t: TestContext, options: ChildBrokerConfig['options'], maxRequests: number): Promise<AttackResult> {
  const broker = await ChildBroker.start({ privateKey: encodeKey(brokerP.keyPair.privateKey), registry, options });
  const nodes: MeshNode[] = [];
  let slow: Awaited<ReturnType<typeof welcomedClient>> | undefined;
  let sampler: NodeJS.Timeout | undefined;
  try {
    const worker = await MeshNode.connect({ brokers: [broker.address], key: workerP.keyPair, suite, timeout: 5000 });
    nodes.push(worker);
    worker.serve('echo', (req) => req.payload, { concurrency: 16 });
    const good = await MeshNode.connect({ brokers: [broker.address], key: goodP.keyPair, suite, timeout: 5000 });
    nodes.push(good);
    await broker.until((s) => s.sessions === 2 && s.services.some((x) => x.name === 'echo' && x.workers === 1), 5000, 'worker and client connected');

    // Warm up the broker with the same traffic shape, then take the baseline.
    const warm = new FateBook();
    for (let i = 0; i < 4; i++) {
      await Promise.all(Array.from({ length: 16 }, (_, j) => {
        const p = randomBytes(60 * 1024);
        return warm.track(`warm-${i}-${j}`, p, good.request('echo', p, { timeout: 5000 }));
      }));
    }
    assert.equal(warm.summary().replied, 64, JSON.stringify(warm.summary()));
    const baselineRss = broker.handle.rss();
    let peakRss = baselineRss;
    sampler = setInterval(() => {
      try {
        peakRss = Math.max(peakRss, broker.handle.rss());
      } catch {
        // the child is gone; the assertions below notice
      }
    }, 20);

    // The well-behaved client: 4 lanes of 4 KiB echoes, bounded in count and time.
    const book = new FateBook();
    let stop = false;
    let attackOver = false;
    let duringAttack = 0;
    const laneDeadline = Date.now() + 15_000;
    const lane = async (n: number): Promise<void> => {
      for (let i = 0; i < 2000 && !stop && Date.now() < laneDeadline; i++) {
        const p = randomBytes(4096);
        await book.track(`good-${n}-${i}`, p, good.request('echo', p, { timeout: 3000, retries: 2 }));
        if (!attackOver) duringAttack++;
      }
    };
    const lanes = Promise.all([0, 1, 2, 3].map(lane));

    // The slow reader: a real handshake, WELCOME seen, then it stops reading.
    const address = parseBrokerAddress(broker.address);
    slow = await welcomedClient(address.port, { keyPair: slowP.keyPair, remoteKey: address.publicKey, suite });
    slow.socket.pause();
    const attackStart = performance.now();
    let sent = 0;
    const cutEvent = (): boolean => broker.events().some((e) => e.type === 'disconnected' && e.name === slowP.name);
    const sendUntil = Date.now() + 8000;
    while (sent < maxRequests && !cutEvent() && !slow.isClosed() && Date.now() < sendUntil) {
      for (let k = 0; k < 10 && sent < maxRequests; k++, sent++) {
        for (const pt of plaintextsOf({ type: 'REQUEST', id: randomBytes(16), service: 'echo', attempt: 1, dup: false, ttl: 10_000, payload: randomBytes(60 * 1024) })) slow.sendPlaintext(pt);
      }
      // Let the broker read; keep our own unsent bytes bounded.
      for (let w = 0; w < 100 && slow.socket.writableLength > 4 * MiB; w++) await new Promise((r) => setTimeout(r, 5));
      await new Promise((r) => setImmediate(r));
    }
    // The broker must cut it off within a bound (cap, or stall timeout).
    const cutDeadline = Date.now() + 8000;
    for (let i = 0; i < 1000 && !cutEvent() && Date.now() < cutDeadline; i++) await new Promise((r) => setTimeout(r, 10));
    const cutAfterMs = performance.now() - attackStart;
    const cut = broker.events().find((e) => e.type === 'disconnected' && e.name === slowP.name);
    attackOver = true;

    // Our end really is closed by the broker. Still without reading: a paused
    // socket does not see the FIN, but data we send to a closed socket is
    // answered with RST, so a few PINGs make the closure visible (bounded).
    const closeDeadline = Date.now() + 5000;
    for (let i = 0; i < 250 && !slow.isClosed() && Date.now() < closeDeadline; i++) {
      for (const pt of plaintextsOf({ type: 'PING' })) slow.sendPlaintext(pt);
      await new Promise((r) => setTimeout(r, 20));
    }
    const socketClosed = await within(slow.closed, 1000);
    const readBytes = slow.bytes();

    // Keep the good client going a little after the attack, then stop.
    await new Promise((r) => setTimeout(r, 500));
    stop = true;
    await lanes;
    clearInterval(sampler);
    sampler = undefined;

    assert.ok(broker.handle.alive, `broker died: ${JSON.stringify(broker.handle.exit)} ${broker.handle.stderr}`);
    const after = await broker.until((s) => s.sessions === 2 && s.handshakes === 0, 5000, 'broker back to worker + good client');
    assert.equal(after.sessions, 2);
    assert.ok(socketClosed, 'the slow reader socket was closed by the broker');

    const result: AttackResult = { closedBy: cut?.code, sentRequests: sent, baselineRss, peakRss, cutAfterMs: Math.round(cutAfterMs), good: book.summary(), goodDuringAttack: duringAttack, slowReaderRead: readBytes };
    t.diagnostic(JSON.stringify({ ...result, baselineRssMiB: +(baselineRss / MiB).toFixed(1), peakRssMiB: +(peakRss / MiB).toFixed(1), cutMessage: cut?.message }));
    return result;
  } finally {
    if (sampler) clearInterval(sampler);
    slow?.socket.destroy();
    await Promise.all(nodes.map((n) => n.close()));
    await broker.kill();
  }
}

function checkGood(r: AttackResult, minDuringAttack: number): void {
  assert.ok(r.slowReaderRead < 4096, `the slow reader read only its WELCOME (${r.slowReaderRead} bytes)`);
  const g = r.good;
  assert.equal(g.pending, 0, 'no good request left pending');
  assert.equal(g.multi, 0);
  assert.equal(g.wrong, 0, 'every good reply carries its own payload');
  assert.equal(g.failed, 0, `no good request failed: ${JSON.stringify(g.codes)}`);
  assert.equal(g.replied, g.sent);
  assert.ok(r.goodDuringAttack >= minDuringAttack, `the good client kept being served during the attack (${r.goodDuringAttack} replies, want ≥ ${minDuringAttack})`);
  assert.ok(r.good.sent - r.goodDuringAttack >= 10, `the good client kept being served after the attack (${r.good.sent - r.goodDuringAttack} replies)`);
}

test('a client that never reads is cut off at the outbound cap; broker RSS stays bounded; a good client keeps being served', async (t) => {
  const r = await attack(t, { maxOutboundBytes: 1 * MiB, stallTimeout: 1000 }, 400);
  assert.equal(r.closedBy, 'MESH_ERR_BACKPRESSURE', 'closed for backpressure');
  assert.ok(r.peakRss - r.baselineRss < 150 * MiB, `broker RSS grew by ${((r.peakRss - r.baselineRss) / MiB).toFixed(1)} MiB`);
  // The cap trips within a few hundred ms, so "during" is short here.
  checkGood(r, 1);
});

test('a client that never reads, with bytes queued under the cap, is cut off by the stall timeout', async (t) => {
  // Cap far above what 150 replies of 60 KiB can queue: only the stall timer can end it.
  const r = await attack(t, { maxOutboundBytes: 64 * MiB, stallTimeout: 1000 }, 150);
  assert.equal(r.closedBy, 'MESH_ERR_BACKPRESSURE', 'closed for backpressure');
  assert.ok(r.cutAfterMs < 6000, `cut after ${r.cutAfterMs} ms with a 1000 ms stall timeout`);
  assert.ok(r.peakRss - r.baselineRss < 150 * MiB, `broker RSS grew by ${((r.peakRss - r.baselineRss) / MiB).toFixed(1)} MiB`);
  checkGood(r, 20);
});
