// A worker written as a loop: `node.requests(service)` is an async iterator
// of requests, each answered with `req.reply(...)` or `req.fail(error)`.
// It offers `text.reverse`: the reply is the text backwards.
//
//   MESHD_BROKER=mesh://KEY@127.0.0.1:4222 MESHD_KEY=worker.key node worker.mjs
//
// Prints `ready`, then `served N` when it stops. SIGTERM or Ctrl-C aborts
// the loop's signal: the loop ends, the service is withdrawn, and requests
// that had arrived but were not pulled yet go back to the broker, which
// sends them to another worker (they never ran).
import { MeshNode } from 'meshd';

const brokers = (process.env.MESHD_BROKER ?? '').split(/[\s,]+/).filter((url) => url !== '');
const node = await MeshNode.connect({ brokers, key: process.env.MESHD_KEY ?? 'worker.key', name: 'reverse-worker' });

const stop = new AbortController();
process.once('SIGTERM', () => stop.abort());
process.once('SIGINT', () => stop.abort());

const MAX_CHARACTERS = 1000;
let served = 0;

// `concurrency` is how many requests the brokers may deliver ahead of the
// loop. The body below answers one request at a time; to work on several at
// once, start each one's work without awaiting it.
const requests = node.requests('text.reverse', { concurrency: 4, signal: stop.signal });
console.log('ready');
for await (const req of requests) {
  const characters = [...req.payload.toString('utf8')];
  if (characters.length > MAX_CHARACTERS) {
    // The client gets MESH_ERR_HANDLER with this message; the loop goes on.
    req.fail(new Error(`text too long: ${characters.length} characters, at most ${MAX_CHARACTERS}`));
    continue;
  }
  req.reply(characters.reverse().join(''));
  served++;
}

console.log(`served ${served}`);
await node.close();
