// A client that chooses its brokers, in two ways:
//
// 1. Seeds: MESHD_BROKER lists the brokers to connect to. With
//    `discover: false` the node uses exactly these and learns no others from
//    the brokers' lists (the default, `discover: true`, connects to every
//    live broker of the mesh).
// 2. Per request: the `broker` option (a broker's mesh:// URL or its key)
//    picks the broker of the first attempt. If the node has no healthy link
//    to it, the first attempt goes round-robin; resends after a failure go
//    to any healthy broker.
//
//   MESHD_BROKER="mesh://K1@10.0.0.1:4222 mesh://K2@10.0.0.2:4222" MESHD_KEY=client.key \
//     PREFER=K2 node client.mjs SERVICE [PAYLOAD]
//
// Prints one line per request: `via URL: REPLY` for one request through each
// seed, then, when PREFER is set, `preferred: REPLY` for one request through it.
import { MeshNode } from 'meshd';

const seeds = (process.env.MESHD_BROKER ?? '').split(/[\s,]+/).filter((url) => url !== '');
const [service = 'echo', payload = 'hello'] = process.argv.slice(2);

const node = await MeshNode.connect({ brokers: seeds, key: process.env.MESHD_KEY ?? 'client.key', discover: false });

/** connect() resolves once one broker has welcomed the node: wait (at most `ms`) for the others. */
function allHealthy(count, ms) {
  return new Promise((resolve, reject) => {
    const check = () => {
      if (node.healthyBrokers.length < count) return;
      done();
      resolve();
    };
    const timer = setTimeout(() => {
      done();
      reject(new Error(`only ${node.healthyBrokers.length} of ${count} brokers up after ${ms} ms`));
    }, ms);
    const done = () => {
      clearTimeout(timer);
      node.off('broker-up', check);
    };
    node.on('broker-up', check);
    check();
  });
}

try {
  await allHealthy(seeds.length, 5000);
  for (const broker of node.brokers) {
    const reply = await node.request(service, payload, { broker });
    console.log(`via ${broker}: ${reply.toString('utf8')}`);
  }
  if (process.env.PREFER) {
    const reply = await node.request(service, payload, { broker: process.env.PREFER });
    console.log(`preferred: ${reply.toString('utf8')}`);
  }
} finally {
  await node.close();
}
