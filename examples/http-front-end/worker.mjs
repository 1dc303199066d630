// One worker of the pool behind the HTTP front end: it offers `text.upper`
// and answers with the upper-cased text and its own name, so the front end
// (and you) can see which worker of the pool did the work.
//
//   MESHD_BROKER=mesh://KEY@127.0.0.1:4222 MESHD_KEY=worker.key WORKER_NAME=w1 node worker.mjs
//
// Start several: the broker hands each request to the next worker with a free
// slot. SIGTERM or Ctrl-C withdraws the service, finishes the requests in
// flight, and exits 0.
import { MeshNode } from 'meshd';

const brokers = (process.env.MESHD_BROKER ?? '').split(/[\s,]+/).filter((url) => url !== '');
const name = process.env.WORKER_NAME ?? `upper-${process.pid}`;

const node = await MeshNode.connect({ brokers, key: process.env.MESHD_KEY ?? 'worker.key', name });

node.serve(
  'text.upper',
  (req) => JSON.stringify({ text: req.payload.toString('utf8').toUpperCase(), worker: name }),
  { concurrency: 8 }, // at most 8 handlers at once; the broker never sends more
);
console.log('ready');

const stop = async () => {
  await node.drain(); // withdraw the service everywhere, wait for running handlers
  await node.close();
};
process.once('SIGTERM', () => void stop());
process.once('SIGINT', () => void stop());
