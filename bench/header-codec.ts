/**
 * Header codec benchmark, `npm run bench:codec`: how long meshd takes to
 * encode and decode the envelope header of the messages on the hot path
 * (REQUEST as the broker forwards it, REPLY, READY, a DISPATCHED batch of 64)
 * and of a GOSSIP round of 3 brokers, through EnvelopeCodec (CBOR header,
 * strict checks, message validation; the 4 KiB payload is never copied).
 *
 * Each case runs ROUNDS rounds of a fixed count, alternating encode and
 * decode; the report gives the median ns per operation over the rounds.
 * Prints one JSON document on stdout. Bounded: a few seconds in all.
 */
import os from 'node:os';
import { EnvelopeCodec } from '../lib/protocol/envelope-codec.ts';
import type { Message } from '../lib/protocol/messages.ts';
import { now, round } from './lib/stats.ts';
import { progressFor, runBench } from './lib/run-bench.ts';

const ROUNDS = 7;
const progress = progressFor('bench:codec');

const bytes = (n: number, fill: number): Uint8Array => new Uint8Array(n).fill(fill);
const payload = bytes(4096, 7);
const broker = (i: number) => ({ id: bytes(32, i), addresses: [`127.0.0.1:${4222 + i}`], bootId: bytes(16, 40 + i), incarnation: i });

/** The messages measured, with the count per round (sized for ~50-150 ms a round). */
const CASES: ReadonlyArray<{ readonly name: string; readonly count: number; readonly message: Message }> = [
  {
    name: 'REQUEST (stamped, hinted)',
    count: 100_000,
    message: { type: 'REQUEST', id: bytes(16, 1), service: 'billing.invoice', attempt: 2, dup: true, ttl: 975, worker: bytes(32, 2), sender: bytes(32, 3), senderName: 'client-1', payload },
  },
  { name: 'REPLY (stamped)', count: 100_000, message: { type: 'REPLY', id: bytes(16, 1), worker: bytes(32, 2), payload } },
  { name: 'READY', count: 100_000, message: { type: 'READY', service: 'echo', credits: 16 } },
  { name: 'DISPATCHED x64', count: 5_000, message: { type: 'DISPATCHED', dispatched: Array.from({ length: 64 }, (_, i) => ({ id: bytes(16, i), worker: bytes(32, 200) })) } },
  { name: 'GOSSIP x3', count: 20_000, message: { type: 'GOSSIP', bootId: bytes(16, 9), incarnation: 3, view: [0, 1, 2].map((i) => ({ ...broker(i), status: 'alive' as const, reachable: true })) } },
];

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

interface CaseResult {
  readonly message: string;
  readonly headerBytes: number;
  readonly encodeNs: number;
  readonly decodeNs: number;
}

function measure(codec: EnvelopeCodec, message: Message, count: number): CaseResult {
  const encoded = codec.encodeToBuffer(message);
  const headerBytes = encoded.readUInt16BE(0);
  const encodeRounds: number[] = [];
  const decodeRounds: number[] = [];
  let sink = 0;
  // One warm-up round each, not counted.
  for (let r = 0; r <= ROUNDS; r++) {
    let t = now();
    for (let i = 0; i < count; i++) sink += codec.encode(message).length;
    const encodeMs = now() - t;
    t = now();
    for (let i = 0; i < count; i++) sink += codec.decode(encoded).type.length;
    const decodeMs = now() - t;
    if (r === 0) continue;
    encodeRounds.push((encodeMs * 1e6) / count);
    decodeRounds.push((decodeMs * 1e6) / count);
  }
  if (sink === 0) throw new Error('nothing measured');
  return { message: '', headerBytes, encodeNs: round(median(encodeRounds)), decodeNs: round(median(decodeRounds)) };
}

async function main(): Promise<void> {
  const codec = new EnvelopeCodec();
  const results: CaseResult[] = [];
  for (const c of CASES) {
    progress(`${c.name}: ${ROUNDS} rounds of ${c.count}`);
    results.push({ ...measure(codec, c.message, c.count), message: c.name });
  }
  const report = {
    bench: 'header-codec',
    node: process.version,
    cpu: os.cpus()[0]?.model ?? 'unknown',
    rounds: ROUNDS,
    unit: 'ns per operation (median of rounds)',
    results,
  };
  process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  await Promise.resolve();
}

runBench(main, progress);
