// Shared pieces of the spec/process suites: a seeded PRNG, a raw Noise peer
// that waits for WELCOME, envelope → plaintext encoding, and request-fate
// bookkeeping. Not a spec file (run-specs picks only *.spec.ts).
import { MeshError } from '../../lib/errors.ts';
import type { CryptoSuite, KeyPair } from '../../lib/crypto/crypto-suite.ts';
import { EnvelopeCodec } from '../../lib/protocol/envelope-codec.ts';
import { packSegments } from '../../lib/protocol/segments.ts';
import type { Message } from '../../lib/protocol/messages.ts';
import { FrameSplitter, noiseClient } from '../helpers/raw-peer.ts';

/** A small seeded PRNG (mulberry32) so fuzz runs reproduce from their seed. */
export class Prng {
  #state: number;
  constructor(seed: number) {
    this.#state = seed >>> 0;
  }
  /** Uniform in [0, 1). */
  next(): number {
    let t = (this.#state = (this.#state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** Integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  /** One element of a non-empty array. */
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }
  /** n pseudo-random bytes. */
  bytes(n: number): Buffer {
    const out = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) out[i] = this.int(256);
    return out;
  }
}

/** Seed from MESHD_FUZZ_SEED (to replay a failure) or a fresh random one. */
export function fuzzSeed(): number {
  const fromEnv = process.env.MESHD_FUZZ_SEED;
  if (fromEnv !== undefined && fromEnv !== '') return Number(fromEnv) >>> 0;
  return Math.floor(Math.random() * 2 ** 32) >>> 0;
}

const codec = new EnvelopeCodec();

/** A message as the Noise plaintexts (segments) a Connection would seal. */
export function plaintextsOf(message: Message): Buffer[] {
  return packSegments([codec.encode(message)]);
}

/** A message as one envelope (header length, CBOR header, payload). */
export function envelopeOf(message: Message): Buffer {
  return codec.encodeToBuffer(message);
}

/**
 * A raw Noise client (noiseClient from raw-peer.ts) that waits, bounded,
 * until the broker's first transport frame (WELCOME, or the ERROR that
 * refuses it) has arrived, and counts transport frames received after that.
 */
export async function welcomedClient(port: number, options: { keyPair: KeyPair; remoteKey: Uint8Array; suite: CryptoSuite }, ms = 3000) {
  const client = await noiseClient(port, options);
  // noiseClient has consumed preamble and message 2; what follows is transport frames.
  const splitter = new FrameSplitter(false);
  let frames = 0;
  let bytes = 0;
  client.socket.on('data', (chunk: Buffer) => {
    bytes += chunk.length;
    frames += splitter.push(chunk).length;
  });
  // raw-peer's `closed` comes from events.once(socket, 'close'), which
  // rejects when the socket emits 'error' first (EPIPE, ECONNRESET): both
  // mean the connection is gone.
  let closed = false;
  const settled = client.closed.then(
    () => void (closed = true),
    () => void (closed = true),
  );
  const deadline = Date.now() + ms;
  for (let round = 0; frames === 0; round++) {
    if (round > 100_000) throw new Error('gave up waiting for WELCOME');
    if (closed) throw new Error('broker closed the connection before WELCOME');
    if (Date.now() > deadline) throw new Error(`no WELCOME within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 2));
  }
  return {
    ...client,
    /** Resolves (never rejects) once the socket is closed. */
    closed: settled,
    /** Transport frames received so far (WELCOME included). */
    frames: () => frames,
    /** Bytes received after the handshake. */
    bytes: () => bytes,
    isClosed: () => closed,
  };
}

/** Resolves true when `p` settles (resolves or rejects) within `ms`, false otherwise. */
export async function within(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const result = await Promise.race([p.then(() => true, () => true), new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), ms)))]);
  clearTimeout(timer);
  return result;
}

/** The fate of one request. */
export type Fate = { state: 'pending' } | { state: 'replied'; ok: boolean; ms: number } | { state: 'failed'; code: string; message: string; ms: number };

/**
 * Tracks every request a test sends: how it ended, and that it ended once.
 * `expected` is what a correct reply must equal.
 */
export class FateBook {
  readonly fates: Array<{ label: string; fate: Fate; settlements: number }> = [];

  /** Records `p` (a request for `expected`) and returns a promise that never rejects. */
  track(label: string, expected: Uint8Array, p: Promise<Buffer>): Promise<void> {
    const entry: { label: string; fate: Fate; settlements: number } = { label, fate: { state: 'pending' }, settlements: 0 };
    this.fates.push(entry);
    const started = performance.now();
    return p.then(
      (reply) => {
        entry.settlements++;
        entry.fate = { state: 'replied', ok: Buffer.from(reply).equals(Buffer.from(expected)), ms: performance.now() - started };
      },
      (error: unknown) => {
        entry.settlements++;
        const code = error instanceof MeshError ? error.code : 'NOT_A_MESH_ERROR';
        entry.fate = { state: 'failed', code, message: error instanceof Error ? error.message : String(error), ms: performance.now() - started };
      },
    );
  }

  get sent(): number {
    return this.fates.length;
  }

  count(pred: (f: Fate) => boolean): number {
    return this.fates.filter((e) => pred(e.fate)).length;
  }

  /** Counts by outcome, and the worst reply latency. */
  summary(): { sent: number; replied: number; wrong: number; failed: number; pending: number; multi: number; maxMs: number; codes: Record<string, number> } {
    const codes: Record<string, number> = {};
    let maxMs = 0;
    for (const { fate } of this.fates) {
      if (fate.state === 'failed') codes[fate.code] = (codes[fate.code] ?? 0) + 1;
      if (fate.state !== 'pending') maxMs = Math.max(maxMs, fate.ms);
    }
    return {
      sent: this.sent,
      replied: this.count((f) => f.state === 'replied' && f.ok),
      wrong: this.count((f) => f.state === 'replied' && !f.ok),
      failed: this.count((f) => f.state === 'failed'),
      pending: this.count((f) => f.state === 'pending'),
      multi: this.fates.filter((e) => e.settlements > 1).length,
      maxMs: Math.round(maxMs),
      codes,
    };
  }

  /** Failures with a code that is not a MeshError code (an unclear error). */
  unclear(): string[] {
    return this.fates.flatMap((e) => (e.fate.state === 'failed' && !/^MESH_ERR_[A-Z_]+$/.test(e.fate.code) ? [`${e.label}: ${e.fate.message}`] : []));
  }
}
