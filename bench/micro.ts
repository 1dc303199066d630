/**
 * Micro benchmark of the secure channel (docs/architecture.md#performance),
 * `npm run bench:micro`.
 *
 * Over real loopback TCP pairs (127.0.0.1, port 0), client and server in
 * this one process (so each figure pays for both ends' CPU):
 *   1. per crypto suite (node, noble): one-way streaming of 4 KiB REQUESTs
 *      under a bounded window; request/echo (REQUEST → REPLY) with 1 and 64
 *      in flight;
 *   2. per suite: sequential connect + XK handshake + close cycles;
 *   3. the same stream and echo loops over raw TCP (length-prefixed frames,
 *      no crypto) as a same-run baseline, and ratios, since the machine is
 *      shared and absolute numbers drift between runs.
 * Prints one JSON document on stdout; progress goes to stderr. Every loop is
 * bounded by a count and a time budget; the whole run takes about 20 s.
 */
import os from 'node:os';
import { SUITE_NAMES } from '../lib/crypto/suites.ts';
import type { SuiteName } from '../lib/crypto/suites.ts';
import { runEcho, runStream } from './lib/drivers.ts';
import type { Bounds, EchoResult, Link, StreamResult } from './lib/drivers.ts';
import { RawLink } from './lib/raw.ts';
import { runHandshakes, SecureLink } from './lib/secure.ts';
import type { HandshakeRateResult, SecureLinkStats } from './lib/secure.ts';
import { now, ratio, round } from './lib/stats.ts';
import { progressFor, runBench } from './lib/run-bench.ts';

const PAYLOAD_BYTES = 4096;

const CONFIG = {
  payloadBytes: PAYLOAD_BYTES,
  // Counts are set so that a phase typically runs into its time budget on
  // noble and stays above ~0.3 s on raw TCP; either bound ends it.
  stream: { maxCount: 100_000, maxMs: 2000, window: 256, burst: 32 },
  echoK1: { maxCount: 20_000, maxMs: 1500, inFlight: 1 },
  echoK64: { maxCount: 100_000, maxMs: 2000, inFlight: 64 },
  handshakes: { maxCount: 1000, maxMs: 2000 },
  warmup: {
    stream: { maxCount: 2000, maxMs: 300 },
    echo: { maxCount: 1000, maxMs: 200 },
    handshakes: { maxCount: 20, maxMs: 500 },
  },
} as const;

const progress = progressFor('bench:micro');

/** Messages per Noise frame in each direction over one phase (secure links only). */
interface Batching {
  readonly clientToServer: number;
  readonly serverToClient: number;
}

function batching(before: SecureLinkStats, after: SecureLinkStats): Batching {
  const per = (messages: number, frames: number): number => (frames > 0 ? round(messages / frames, 2) : 0);
  return {
    clientToServer: per(after.client.messagesSent - before.client.messagesSent, after.client.framesSent - before.client.framesSent),
    serverToClient: per(after.server.messagesSent - before.server.messagesSent, after.server.framesSent - before.server.framesSent),
  };
}

/** Results of the stream and echo loops over one link. */
interface ChannelResults {
  readonly stream: StreamResult & { readonly batching?: Batching };
  readonly echoK1: EchoResult & { readonly batching?: Batching };
  readonly echoK64: EchoResult & { readonly batching?: Batching };
}

/** Runs the warm-up and the measured stream and echo loops on an open link, then closes it. */
async function measureLink(label: string, link: Link, stats?: () => SecureLinkStats): Promise<ChannelResults> {
  const withBatching = async <T extends object>(run: () => Promise<T>): Promise<T & { batching?: Batching }> => {
    const before = stats?.();
    const result = await run();
    return before && stats ? { ...result, batching: batching(before, stats()) } : result;
  };
  try {
    const { stream, echoK1, echoK64, warmup } = CONFIG;
    progress(`${label}: warm-up`);
    await runStream(link, warmup.stream, stream.window, stream.burst);
    await runEcho(link, warmup.echo, echoK64.inFlight);
    await runEcho(link, warmup.echo, echoK1.inFlight);
    progress(`${label}: one-way stream`);
    const streamResult = await withBatching(() => runStream(link, stream, stream.window, stream.burst));
    progress(`${label}: echo K=1`);
    const k1 = await withBatching(() => runEcho(link, echoK1, echoK1.inFlight));
    progress(`${label}: echo K=64`);
    const k64 = await withBatching(() => runEcho(link, echoK64, echoK64.inFlight));
    return { stream: streamResult, echoK1: k1, echoK64: k64 };
  } finally {
    await link.close();
  }
}

interface SuiteResults extends ChannelResults {
  readonly handshake: HandshakeRateResult;
}

async function measureSuite(suite: SuiteName): Promise<SuiteResults> {
  const link = await SecureLink.open(suite, PAYLOAD_BYTES);
  const channel = await measureLink(suite, link, () => link.stats);
  progress(`${suite}: handshakes`);
  await runHandshakes(suite, CONFIG.warmup.handshakes);
  const handshake = await runHandshakes(suite, CONFIG.handshakes);
  return { ...channel, handshake };
}

function bounds(b: Bounds): Bounds {
  return { maxCount: b.maxCount, maxMs: b.maxMs };
}

async function main(): Promise<void> {
  const started = now();
  const cpus = os.cpus();
  const meta = {
    benchmark: 'meshd bench/micro.ts',
    date: new Date().toISOString(),
    node: process.version,
    v8: process.versions.v8,
    openssl: process.versions.openssl,
    platform: `${process.platform} ${os.release()} ${process.arch}`,
    cpu: cpus[0]?.model ?? 'unknown',
    cpuCount: cpus.length,
    loadAverage1mAtStart: round(os.loadavg()[0] ?? NaN, 2),
    topology: 'client and server in one process and thread over loopback TCP: every figure pays for both ends',
    payloadBytes: PAYLOAD_BYTES,
  };

  progress('raw TCP baseline');
  const raw = await measureLink('raw', await RawLink.open(PAYLOAD_BYTES));

  const secure: Partial<Record<SuiteName, SuiteResults>> = {};
  for (const suite of SUITE_NAMES) secure[suite] = await measureSuite(suite);
  const node = secure.node;
  const noble = secure.noble;

  const report = {
    meta: {
      ...meta,
      totalMs: round(now() - started, 0),
      bounds: {
        stream: { ...bounds(CONFIG.stream), window: CONFIG.stream.window, burst: CONFIG.stream.burst },
        echoK1: bounds(CONFIG.echoK1),
        echoK64: bounds(CONFIG.echoK64),
        handshakes: bounds(CONFIG.handshakes),
        warmup: CONFIG.warmup,
      },
    },
    secure,
    raw,
    ratios: {
      nodeOverRaw: {
        streamMiBPerSec: ratio(node?.stream.MiBPerSec ?? NaN, raw.stream.MiBPerSec),
        echoK1RoundTripsPerSec: ratio(node?.echoK1.roundTripsPerSec ?? NaN, raw.echoK1.roundTripsPerSec),
        echoK1P50Latency: ratio(node?.echoK1.latencyUs.p50 ?? NaN, raw.echoK1.latencyUs.p50),
        echoK64RoundTripsPerSec: ratio(node?.echoK64.roundTripsPerSec ?? NaN, raw.echoK64.roundTripsPerSec),
      },
      nodeOverNoble: {
        streamMiBPerSec: ratio(node?.stream.MiBPerSec ?? NaN, noble?.stream.MiBPerSec ?? NaN),
        echoK1RoundTripsPerSec: ratio(node?.echoK1.roundTripsPerSec ?? NaN, noble?.echoK1.roundTripsPerSec ?? NaN),
        echoK64RoundTripsPerSec: ratio(node?.echoK64.roundTripsPerSec ?? NaN, noble?.echoK64.roundTripsPerSec ?? NaN),
        handshakesPerSec: ratio(node?.handshake.handshakesPerSec ?? NaN, noble?.handshake.handshakesPerSec ?? NaN),
      },
    },
  };
  process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  progress(`done in ${round((now() - started) / 1000, 1)} s`);
}

runBench(main, progress);
