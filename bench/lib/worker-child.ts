/**
 * Worker child of the mesh benchmark:
 * `node --import tsx bench/lib/worker-child.ts CONFIG.json mesh://KEY@host:port`.
 *
 * Connects one MeshNode per worker of the config file (deleted once read;
 * role worker, the config's suite) to the broker, each serving the echo service (the reply is the
 * request payload) with the configured concurrency, then prints
 * `{"type":"ready"}` and answers `stats` (CPU time and requests served per
 * worker) and `exit` (see ./child.ts).
 */
import { getSuite, MeshNode } from '../../lib/internal.ts';
import { runChild } from './child.ts';
import { keyPairOf, takeWorkerConfig } from './mesh-config.ts';

/** A worker child never outlives this, whatever happens to its parent. */
const LIFETIME_MS = 180_000;

runChild('workers', LIFETIME_MS, async () => {
  const config = takeWorkerConfig(process.argv[2]);
  const address = process.argv[3];
  if (address === undefined) throw new Error('usage: worker-child.ts CONFIG.json BROKER_ADDRESS');
  const nodes: MeshNode[] = [];
  const served: Record<string, number> = {};
  try {
    for (const w of config.workers) {
      const node = await MeshNode.connect({ brokers: [address], key: keyPairOf(w), name: w.name, role: 'worker', suite: getSuite(config.suite), timeout: 10_000 });
      nodes.push(node);
      served[w.name] = 0;
      node.serve(
        config.service,
        (request) => {
          served[w.name]!++;
          return request.payload;
        },
        { concurrency: config.workerConcurrency },
      );
    }
  } catch (error) {
    await Promise.all(nodes.map((n) => n.close()));
    throw error;
  }
  return {
    info: { workers: config.workers.map((w) => w.name) },
    stats: () => ({ served: { ...served } }),
    close: async () => {
      await Promise.all(nodes.map((n) => n.close()));
    },
  };
});
