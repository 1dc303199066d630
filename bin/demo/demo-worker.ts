/**
 * A worker process of `meshd demo` (run by the demo with plain node, from
 * the package: dist/bin/demo/demo-worker.js). A MeshNode with every broker
 * as a seed serves the demo's echo service: each reply carries the worker's
 * name, the attempt that reached it and the request payload. It reports to
 * the demo, over IPC, the seq of every request it starts executing (the
 * demo counts executions per request: a request executed twice is a
 * duplicate) and the brokers it may take work from.
 */

import { MeshNode } from '../../lib/index.ts';
import { DEMO_SERVICE, brokerIndexes, childChannel, seqOfPayload } from './ipc.ts';
import type { ChildConfig, DemoReply } from './ipc.ts';

/** How often executions are reported, ms. */
const REPORT_EVERY_MS = 200;
/** Longest wait for the node to close when stopped, ms. */
const CLOSE_MS = 1000;

const { config, brokers, send, onMessage } = childChannel<ChildConfig>();
const urls = await brokers;

let node: MeshNode;
try {
  node = await MeshNode.connect({ brokers: urls, key: config.keyFile, name: config.name, role: 'worker', timeout: 15_000 });
} catch (error) {
  send({ type: 'failed', message: error instanceof Error ? error.message : String(error) });
  process.exit(1);
}

let executed: number[] = [];
const report = (): void => {
  if (executed.length === 0) return;
  send({ type: 'execs', seqs: executed });
  executed = [];
};
setInterval(report, REPORT_EVERY_MS).unref();

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

node.serve(
  DEMO_SERVICE,
  (req) => {
    const payload = req.payload.toString('utf8');
    const seq = seqOfPayload(payload);
    if (seq !== undefined) executed.push(seq);
    const reply: DemoReply = { worker: config.name, attempt: req.attempt, payload };
    return JSON.stringify(reply);
  },
  { concurrency: 16 },
);
send({ type: 'ready' });
links();

onMessage((message) => {
  if (message.type !== 'stop') return;
  report();
  send({ type: 'stopped' });
  setTimeout(() => process.exit(0), CLOSE_MS).unref();
  void node.close().then(() => process.exit(0));
});
