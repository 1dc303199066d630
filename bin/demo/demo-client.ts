/**
 * The client process of `meshd demo` (run by the demo with plain node, from
 * the package: dist/bin/demo/demo-client.js). A MeshNode with every broker
 * as a seed; on `start` it runs `inFlight` request loops (each: send one
 * request, wait for its fate, at most one send per `pacingMs`) until `stop`.
 * Every request has a unique payload; its reply must echo it. The first
 * attempt of each request goes through the next healthy broker in turn
 * (the `broker` option of request()), so the demo can count requests per
 * broker; which broker carried a retry the API does not say.
 *
 * It reports to the demo over IPC, every 100 ms, the requests started so
 * far and the fate of each request settled since the last report; after
 * `stop`, once every loop has ended, `done` with the requests that never
 * settled.
 */

import { MeshNode, isMeshError } from '../../lib/index.ts';
import { DEMO_SERVICE, brokerIndexes, childChannel, keyOfUrl, parseReply, requestPayload } from './ipc.ts';
import type { ClientConfig, ResultTuple } from './ipc.ts';
import { randomBytes } from 'node:crypto';

/** How often results are reported, ms. */
const REPORT_EVERY_MS = 100;
/** After `stop`, how long past its deadline a request may take to settle before it counts as unsettled, ms. */
const SETTLE_GRACE_MS = 1000;

const { config, brokers, send, onMessage } = childChannel<ClientConfig>();
const urls = await brokers;

let node: MeshNode;
try {
  node = await MeshNode.connect({ brokers: urls, key: config.keyFile, name: config.name, role: 'client', timeout: 15_000 });
} catch (error) {
  send({ type: 'failed', message: error instanceof Error ? error.message : String(error) });
  process.exit(1);
}

const keys = urls.map(keyOfUrl);
let sent = 0;
/** First attempts sent through each broker. */
const sentPerBroker = urls.map(() => 0);
const inFlight = new Set<number>();
let results: ResultTuple[] = [];
let stopping = false;
/** When the load started (performance.now()). */
let startedAt = 0;

const report = (): void => {
  send({ type: 'batch', at: Math.round(performance.now() - startedAt), sent, perBroker: sentPerBroker, inFlight: inFlight.size, results });
  results = [];
};

let lastLinks = '';
const links = (): void => {
  const healthy = brokerIndexes(urls, node.healthyBrokers);
  const text = healthy.join(',');
  if (text === lastLinks) return;
  lastLinks = text;
  send({ type: 'links', healthy });
};
for (const type of ['broker-up', 'broker-down', 'broker-draining', 'brokers'] as const) node.on(type, () => setImmediate(links));
setInterval(links, 250).unref();

/** The index of each broker URL the node reports (they are the seeds, so the same URLs). */
const indexOfUrl = new Map(urls.map((url, i) => [url, i]));

/** The next healthy broker in turn, as an index into the broker list (-1: none is healthy). */
let cursor = 0;
function nextBroker(): number {
  const healthyUrls = node.healthyBrokers;
  const healthy = healthyUrls.every((url) => indexOfUrl.has(url)) ? healthyUrls.map((url) => indexOfUrl.get(url)!).sort((a, b) => a - b) : brokerIndexes(urls, healthyUrls);
  if (healthy.length === 0) return -1;
  cursor = (cursor + 1) % healthy.length;
  return healthy[cursor]!;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Sends one request and records its fate; never rejects. */
async function one(): Promise<void> {
  const seq = sent++;
  const payload = requestPayload(seq, randomBytes(6).toString('hex'));
  const broker = nextBroker();
  if (broker >= 0) sentPerBroker[broker]!++;
  inFlight.add(seq);
  const start = performance.now();
  let result: ResultTuple;
  try {
    const reply = await node.request(DEMO_SERVICE, payload, { timeout: config.timeoutMs, retries: config.retries, broker: broker < 0 ? undefined : keys[broker] });
    const ms = performance.now() - start;
    const parsed = parseReply(reply.toString('utf8'));
    result = parsed !== undefined && parsed.payload === payload ? [seq, broker, ms, 'ok', parsed.worker, parsed.attempt] : [seq, broker, ms, 'wrong', parsed?.worker ?? '', parsed?.attempt ?? 0];
  } catch (error) {
    result = [seq, broker, performance.now() - start, isMeshError(error) ? error.code : 'NOT_A_MESH_ERROR', '', 0];
  }
  inFlight.delete(seq);
  result[2] = Math.round(result[2] * 100) / 100;
  results.push(result);
}

/** One request loop: until stopped, send, wait, and keep to the pacing. */
async function loop(): Promise<void> {
  while (!stopping) {
    const start = performance.now();
    await one();
    const wait = config.pacingMs - (performance.now() - start);
    if (wait > 0 && !stopping) await sleep(wait);
  }
}

let loops: Promise<void> | undefined;
let reporter: NodeJS.Timeout | undefined;

async function stop(): Promise<void> {
  stopping = true;
  // Every request settles by its deadline (the node's own timer); the grace is a bound, not a wait.
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([loops, new Promise<void>((resolve) => (timer = setTimeout(resolve, config.timeoutMs + SETTLE_GRACE_MS)))]);
  clearTimeout(timer);
  clearInterval(reporter);
  report();
  send({ type: 'done', unsettled: [...inFlight].sort((a, b) => a - b) });
  setTimeout(() => process.exit(0), 1000).unref();
  await node.close();
  process.exit(0);
}

onMessage((message) => {
  if (message.type === 'start' && loops === undefined && !stopping) {
    startedAt = performance.now();
    reporter = setInterval(report, REPORT_EVERY_MS);
    loops = Promise.all(Array.from({ length: config.inFlight }, loop)).then(() => undefined);
  } else if (message.type === 'stop' && !stopping) {
    void stop();
  }
});
send({ type: 'ready' });
links();
