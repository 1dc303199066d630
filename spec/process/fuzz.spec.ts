// Fuzz (bad input never crashes a broker: docs/protocol.md#6-messages):
// while a real client runs a steady request loop through a broker (a child
// process) to a real echo worker, 70+ connections throw at the broker
//   (a) random bytes,
//   (b) a valid preamble followed by random frames,
//   (c) mutated copies of a captured real handshake (+ transport frames),
//   (d) after a real handshake, random and mutated plaintexts.
// The broker must never die, close every fuzz connection, answer every real
// request, and end with only the real parties' sessions. The seed is printed;
// MESHD_FUZZ_SEED=N replays a run.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { MeshNode } from '../../lib/node/mesh-node.ts';
import { encodeKey } from '../../lib/crypto/keys.ts';
import { getSuite } from '../../lib/crypto/suites.ts';
import { formatBrokerAddress, parseBrokerAddress } from '../../lib/protocol/broker-address.ts';
import { encodeFrame } from '../../lib/framing/frame-encoder.ts';
import { encodePreamble } from '../../lib/protocol/preamble.ts';
import type { Message } from '../../lib/protocol/messages.ts';
import { party } from '../helpers/mesh.ts';
import { TamperProxy, rawSocket, segment } from '../helpers/raw-peer.ts';
import { ChildBroker } from '../helpers/child-harness.ts';
import type { ChildBrokerConfig } from '../helpers/child-harness.ts';
import { FateBook, Prng, envelopeOf, fuzzSeed, plaintextsOf, welcomedClient, within } from './tools.ts';

const suite = getSuite('node');
const brokerP = party('broker');
const workerP = party('worker');
const clientP = party('client');
const captureP = party('capture');
const fuzzP = party('fuzzer');
const registry: ChildBrokerConfig['registry'] = [
  { key: workerP.key, name: workerP.name, role: 'worker', serve: ['echo'] },
  { key: clientP.key, name: clientP.name, role: 'client', call: ['echo'] },
  { key: captureP.key, name: captureP.name, role: 'client', call: ['echo'] },
  // The fuzzer may call fuzz.* only (nobody serves it) and serve nothing,
  // so a mutated READY or REQUEST cannot steal or take real traffic.
  { key: fuzzP.key, name: fuzzP.name, role: 'client', call: ['fuzz.*'] },
];

const HANDSHAKE_TIMEOUT = 1000;
// MESHD_FUZZ_CASES=N runs N cases per kind (a longer hunt); 30 by default.
const CASES_PER_KIND = Math.max(13, Math.min(5000, Number(process.env.MESHD_FUZZ_CASES ?? 30) || 30));
const PARALLEL = 8;
const LOAD_LANES = 16;
const LOAD_MIN_MS = 3000;

type Kind = 'a' | 'b' | 'c' | 'd';
interface CaseResult {
  readonly label: string;
  readonly kind: Kind;
  /** The broker closed the connection within the bound. */
  readonly closed: boolean;
  /** (d) only: closed by the fuzz input itself, not by the final undecryptable frame. */
  readonly byFuzz: boolean;
  readonly ms: number;
}

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

/** Writes chunks to a raw socket, then waits (bounded) for the broker to close it. */
async function throwBytes(port: number, chunks: readonly Buffer[], r: Prng): Promise<{ closed: boolean; ms: number }> {
  const started = performance.now();
  const raw = await rawSocket(port);
  let closed = false;
  // raw-peer's `closed` rejects when 'error' (EPIPE, ECONNRESET) comes before 'close': closed either way.
  const settled = raw.closed.then(
    () => void (closed = true),
    () => void (closed = true),
  );
  for (const chunk of chunks) {
    if (closed) break;
    raw.socket.write(chunk);
    if (r.int(3) === 0) await new Promise((res) => setTimeout(res, r.int(20)));
    else await tick();
  }
  const ok = await within(settled, HANDSHAKE_TIMEOUT + 3000);
  if (!ok) raw.socket.destroy();
  return { closed: ok, ms: Math.round(performance.now() - started) };
}

/** Splits bytes into 1..4 chunks at random points. */
function chunked(bytes: Buffer, r: Prng): Buffer[] {
  const cuts = [...new Set(Array.from({ length: r.int(4) }, () => r.int(bytes.length + 1)))].sort((x, y) => x - y);
  const out: Buffer[] = [];
  let at = 0;
  for (const c of [...cuts, bytes.length]) {
    if (c > at) out.push(bytes.subarray(at, c));
    at = c;
  }
  return out.length > 0 ? out : [bytes];
}

/** (a) random bytes, sometimes starting like a preamble. */
function randomStream(r: Prng): Buffer {
  const body = r.bytes(1 + r.int(4096));
  switch (r.int(4)) {
    case 0:
      return Buffer.concat([Buffer.from('MESH'), body]);
    case 1:
      return Buffer.concat([Buffer.from([0x4d, 0x45, 0x53, 0x48, r.int(256), r.int(256), r.int(256), r.int(256)]), body]);
    default:
      return body;
  }
}

/** (b) a valid preamble, then random frames (plausible and absurd lengths, some lying). */
function preambleAndFrames(r: Prng): Buffer {
  const parts: Buffer[] = [encodePreamble()];
  const n = 1 + r.int(5);
  for (let i = 0; i < n; i++) {
    const kind = r.int(6);
    if (kind === 0) {
      parts.push(encodeFrame(r.bytes(48))); // message 1's size, random content
    } else if (kind === 1) {
      const declared = 2049 + r.int(65535 - 2049); // over the handshake frame limit
      const head = Buffer.alloc(2);
      head.writeUInt16BE(declared, 0);
      parts.push(head, r.bytes(r.int(64)));
    } else if (kind === 2) {
      const head = Buffer.alloc(2);
      head.writeUInt16BE(100 + r.int(1900), 0); // declares more than follows
      parts.push(head, r.bytes(r.int(100)));
    } else if (kind === 3) {
      parts.push(encodeFrame(Buffer.alloc(0)));
    } else {
      parts.push(encodeFrame(r.bytes(r.int(2049))));
    }
  }
  return Buffer.concat(parts);
}

/** (c) a mutated copy of a captured client stream: [preamble, msg1, msg3, transport frames...]. */
function mutatedCapture(captured: readonly Buffer[], r: Prng): Buffer {
  let frames: Buffer[] = captured.map((f) => Buffer.from(f));
  const mutations = r.int(8) === 0 ? 0 : 1 + r.int(4); // 0: a verbatim replay
  for (let m = 0; m < mutations; m++) {
    const i = r.int(frames.length);
    const f = frames[i]!;
    switch (r.int(8)) {
      case 0:
        if (f.length > 0) f[r.int(f.length)]! ^= 1 << r.int(8);
        break;
      case 1:
        if (f.length > 0) f[r.int(f.length)] = r.int(256);
        break;
      case 2:
        frames = frames.slice(0, 1 + r.int(frames.length)); // cut the stream short
        break;
      case 3:
        frames.splice(i, 0, Buffer.from(f)); // duplicate a frame
        break;
      case 4:
        if (frames.length > 1) frames.splice(i, 1); // drop a frame
        break;
      case 5: {
        const j = r.int(frames.length);
        [frames[i], frames[j]] = [frames[j]!, frames[i]!];
        break;
      }
      case 6:
        frames.splice(i, 0, encodeFrame(r.bytes(r.int(200))));
        break;
      default:
        if (f.length > 2) frames[i] = f.subarray(0, 1 + r.int(f.length - 1)); // truncate one frame
        break;
    }
  }
  return Buffer.concat(frames);
}

/** Real messages of every type, with random fields, as templates for (d). */
function templateMessage(r: Prng, keys: { client: Uint8Array; worker: Uint8Array }): Message {
  const id = (): Uint8Array => r.bytes(16);
  const key = (): Uint8Array => (r.int(2) === 0 ? r.pick([keys.client, keys.worker]) : r.bytes(32));
  const info = () => ({ id: key(), addresses: [`127.0.0.1:${1 + r.int(65535)}`], bootId: r.bytes(16), incarnation: r.int(1000) });
  switch (r.int(13)) {
    case 0:
      return { type: 'REQUEST', id: id(), service: r.pick(['echo', 'fuzz.a', 'nobody']), attempt: 1 + r.int(3), dup: r.int(2) === 0, ttl: r.int(5000), worker: r.int(2) === 0 ? key() : undefined, sender: r.int(3) === 0 ? key() : undefined, payload: r.bytes(r.int(200)) };
    case 1:
      return { type: 'READY', service: r.pick(['echo', 'fuzz.a']), credits: r.int(65536) };
    case 2:
      return { type: 'CANCEL', service: r.pick(['echo', 'fuzz.a']) };
    case 3:
      return { type: 'REPLY', id: id(), to: r.int(2) === 0 ? key() : undefined, payload: r.bytes(r.int(200)) };
    case 4:
      return { type: 'ERROR', id: r.int(2) === 0 ? id() : undefined, code: r.pick(['MESH_ERR_BUSY', 'MESH_ERR_HANDLER', 'MESH_ERR_PROTOCOL', 'MESH_ERR_NOT_A_CODE']), retryable: r.int(2) === 0, text: 'fuzz', to: r.int(2) === 0 ? key() : undefined };
    case 5:
      return { type: 'REFUSED', id: id() };
    case 6:
      return { type: 'PING' };
    case 7:
      return { type: 'PONG' };
    case 8:
      return { type: 'WELCOME', brokerId: key(), bootId: r.bytes(16), brokers: [info()] };
    case 9:
      return { type: 'DISPATCHED', dispatched: [{ id: id(), worker: key() }] };
    case 10:
      return { type: 'BROKERS', brokers: [info(), info()] };
    case 11:
      return { type: 'DRAIN' };
    default:
      return { type: 'GOSSIP', bootId: r.bytes(16), incarnation: r.int(100), view: [{ ...info(), status: 'alive', reachable: true }] };
  }
}

/** One (d) input: either Noise plaintexts to seal, or raw bytes to write. */
type PostInput = { plaintexts: Buffer[] } | { raw: Buffer };

function postHandshakeInput(r: Prng, keys: { client: Uint8Array; worker: Uint8Array }, capturedTransport: readonly Buffer[]): PostInput {
  switch (r.int(9)) {
    case 0:
      return { plaintexts: [r.bytes(r.int(300))] }; // random plaintext (0 bytes: an empty message)
    case 1:
      return { plaintexts: [segment(r.bytes(1 + r.int(300)))] }; // valid segment, random envelope
    case 2:
    case 3: {
      // a real envelope with a few bytes of its length/header changed
      const env = envelopeOf(templateMessage(r, keys));
      const headerEnd = Math.min(env.length, 2 + env.readUInt16BE(0));
      for (let k = 1 + r.int(3); k > 0; k--) env[r.int(headerEnd)] = r.int(256);
      return { plaintexts: [segment(env)] };
    }
    case 4:
      return { plaintexts: plaintextsOf(templateMessage(r, keys)) }; // a valid message of any type
    case 5: {
      // a segment with reserved flags, zero length, or a length running past the end
      const env = envelopeOf(templateMessage(r, keys));
      const seg = segment(env);
      const which = r.int(3);
      if (which === 0) seg[0] = 2 + r.int(254);
      else if (which === 1) seg.writeUInt16BE(0, 1);
      else seg.writeUInt16BE(Math.min(65535, env.length + 1 + r.int(100)), 1);
      return { plaintexts: [seg] };
    }
    case 6: {
      // an envelope split across segments with MORE, one part corrupted or missing
      const env = envelopeOf(templateMessage(r, keys));
      const cut = 1 + r.int(Math.max(1, env.length - 1));
      const parts = [segment(env.subarray(0, cut), true), segment(env.subarray(cut).length > 0 ? env.subarray(cut) : r.bytes(3))];
      if (r.int(2) === 0) parts.pop();
      else parts[1]![3 + r.int(parts[1]!.length - 3)] = r.int(256);
      return { plaintexts: [Buffer.concat(parts)] };
    }
    case 7: {
      // reassembly past the envelope bound: MORE segments adding up to > 1 MiB + 64 KiB
      const chunk = 60_000;
      const n = Math.ceil((1024 * 1024 + 65_537 + 2) / chunk) + 1;
      return { plaintexts: Array.from({ length: n }, () => segment(r.bytes(chunk), true)) };
    }
    default:
      // a transport frame from another session: cannot decrypt here
      return { raw: capturedTransport.length > 0 ? Buffer.from(r.pick(capturedTransport)) : encodeFrame(r.bytes(64)) };
  }
}

test('fuzz: random, malformed and mutated input on 70+ connections never kills the broker nor costs a real request', async (t) => {
  const seed = fuzzSeed();
  t.diagnostic(`fuzz seed ${seed} (replay: MESHD_FUZZ_SEED=${seed})`);
  const rng = new Prng(seed);
  const broker = await ChildBroker.start({ privateKey: encodeKey(brokerP.keyPair.privateKey), registry, options: { handshakeTimeout: HANDSHAKE_TIMEOUT } });
  const nodes: MeshNode[] = [];
  let proxy: TamperProxy | undefined;
  try {
    const address = parseBrokerAddress(broker.address);
    const worker = await MeshNode.connect({ brokers: [broker.address], key: workerP.keyPair, suite, timeout: 5000 });
    nodes.push(worker);
    worker.serve('echo', (req) => req.payload, { concurrency: 32 });
    const client = await MeshNode.connect({ brokers: [broker.address], key: clientP.keyPair, suite, timeout: 5000 });
    nodes.push(client);
    await broker.until((s) => s.sessions === 2 && s.services.some((x) => x.name === 'echo' && x.workers === 1), 5000, 'worker and client connected');

    // Capture a real client session (handshake + READY-less requests) through a proxy.
    proxy = new TamperProxy(address.port);
    const proxyPort = await proxy.listen();
    const capture = await MeshNode.connect({ brokers: [formatBrokerAddress({ publicKey: address.publicKey, host: '127.0.0.1', port: proxyPort })], key: captureP.keyPair, suite, timeout: 5000 });
    for (let i = 0; i < 3; i++) assert.equal((await capture.request('echo', `capture-${i}`, { timeout: 3000 })).toString(), `capture-${i}`);
    await capture.close();
    await proxy.close();
    const captured = proxy.captured.up.map((f) => Buffer.from(f));
    proxy = undefined;
    assert.ok(captured.length >= 4 && captured[0]!.length === 8, `captured preamble, msg1, msg3 and transport frames (${captured.length})`);
    const capturedTransport = captured.slice(3);
    await broker.until((s) => s.sessions === 2, 3000, 'capture session gone');

    // The real load: LOAD_LANES requests in flight, bounded in count and time.
    const book = new FateBook();
    let stopLoad = false;
    const loadStarted = Date.now();
    const loadHardStop = loadStarted + (CASES_PER_KIND > 30 ? 600_000 : 15_000);
    const lane = async (n: number): Promise<void> => {
      for (let i = 0; i < 5000 && !stopLoad && Date.now() < loadHardStop; i++) {
        const p = randomBytes(r8k());
        await book.track(`load-${n}-${i}`, p, client.request('echo', p, { timeout: 3000, retries: 2 }));
      }
    };
    const r8k = (): number => Math.floor(Math.random() * 8192);
    const lanes = Promise.all(Array.from({ length: LOAD_LANES }, (_, n) => lane(n)));

    // The fuzz cases, each with its own sub-seed, PARALLEL at a time.
    const keys = { client: clientP.keyPair.publicKey, worker: workerP.keyPair.publicKey };
    const kinds: Kind[] = ['a', 'b', 'c', 'd'];
    const cases = Array.from({ length: CASES_PER_KIND * kinds.length }, (_, i) => ({ kind: kinds[i % kinds.length]!, seed: rng.int(2 ** 32), index: i }));
    const results: CaseResult[] = [];
    const runCase = async (c: (typeof cases)[number]): Promise<CaseResult> => {
      const r = new Prng(c.seed);
      const label = `${c.kind}#${c.index} (case seed ${c.seed}, run seed ${seed})`;
      if (c.kind === 'a') return { label, kind: c.kind, byFuzz: true, ...(await throwBytes(address.port, chunked(randomStream(r), r), r)) };
      if (c.kind === 'b') return { label, kind: c.kind, byFuzz: true, ...(await throwBytes(address.port, chunked(preambleAndFrames(r), r), r)) };
      if (c.kind === 'c') return { label, kind: c.kind, byFuzz: true, ...(await throwBytes(address.port, chunked(mutatedCapture(captured, r), r), r)) };
      const started = performance.now();
      const peer = await welcomedClient(address.port, { keyPair: fuzzP.keyPair, remoteKey: address.publicKey, suite });
      const inputs = 1 + r.int(6);
      for (let k = 0; k < inputs && !peer.isClosed(); k++) {
        const input = postHandshakeInput(r, keys, capturedTransport);
        if ('raw' in input) peer.sendRaw(input.raw);
        else for (const pt of input.plaintexts) peer.sendPlaintext(pt);
        await tick();
      }
      const byFuzz = await within(peer.closed, 300);
      let closed = byFuzz;
      if (!closed) {
        // Still open (the input was valid, or harmless): one undecryptable frame must end it.
        peer.sendRaw(encodeFrame(r.bytes(40)));
        closed = await within(peer.closed, 3000);
      }
      if (!closed) peer.socket.destroy();
      return { label, kind: c.kind, closed, byFuzz, ms: Math.round(performance.now() - started) };
    };
    let next = 0;
    const fuzzDeadline = Date.now() + (CASES_PER_KIND > 30 ? 600_000 : 12_000);
    await Promise.all(
      Array.from({ length: PARALLEL }, async () => {
        while (next < cases.length && Date.now() < fuzzDeadline) {
          const c = cases[next++]!;
          try {
            results.push(await runCase(c));
          } catch (error) {
            results.push({ label: `${c.kind}#${c.index} (case seed ${c.seed}, run seed ${seed}) threw ${String(error)}`, kind: c.kind, closed: false, byFuzz: false, ms: 0 });
          }
        }
      }),
    );

    // Let the load run at least LOAD_MIN_MS in all, then stop it and account for every request.
    for (let i = 0; i < 1000 && Date.now() - loadStarted < LOAD_MIN_MS; i++) await new Promise((r) => setTimeout(r, 20));
    stopLoad = true;
    await lanes;
    const loadMs = Date.now() - loadStarted;

    const s = book.summary();
    const byKind = Object.fromEntries(kinds.map((k) => [k, results.filter((x) => x.kind === k).length]));
    const dClosedByFuzz = results.filter((x) => x.kind === 'd' && x.byFuzz).length;
    t.diagnostic(JSON.stringify({ seed, fuzzCases: results.length, byKind, dClosedByFuzz, slowestCaseMs: Math.max(...results.map((x) => x.ms)), loadMs, load: s }));

    assert.ok(broker.handle.alive, `broker died (seed ${seed}): ${JSON.stringify(broker.handle.exit)}\n${broker.handle.stderr}`);
    assert.equal(results.length, cases.length, `all ${cases.length} fuzz cases ran within the time bound (seed ${seed})`);
    const open = results.filter((x) => !x.closed).map((x) => x.label);
    assert.deepEqual(open, [], 'every fuzz connection was closed by the broker');
    // Every real request: replied with its own payload, once. None lost, none failed.
    assert.equal(s.pending, 0, `no request lost (seed ${seed})`);
    assert.equal(s.multi, 0);
    assert.equal(s.wrong, 0, `every reply carries its own payload (seed ${seed})`);
    assert.deepEqual(book.unclear(), [], 'every failure is a MeshError');
    assert.equal(s.failed, 0, `no real request failed (seed ${seed}): ${JSON.stringify(s.codes)}`);
    assert.ok(s.replied >= 200, `the load kept flowing (${s.replied} replies)`);
    // Only the real parties remain; no handshake is left half-open.
    const after = await broker.until((x) => x.sessions === 2 && x.handshakes === 0, 5000, 'broker back to worker + client only');
    assert.equal(after.pending, 0);
    // And it still serves.
    assert.equal((await client.request('echo', 'after-fuzz', { timeout: 3000 })).toString(), 'after-fuzz');
    assert.equal(broker.handle.stderr, '', 'broker wrote nothing to stderr');
  } finally {
    await proxy?.close();
    await Promise.all(nodes.map((n) => n.close()));
    await broker.kill();
  }
});
