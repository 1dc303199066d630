// A meshd echo worker for `npm run bench:compare`, written as an app embeds
// meshd: plain `node`, default flags, the compiled package (dist/).
import { MeshNode } from '../../../dist/lib/index.js';
import { flag, runPeer } from '../child-protocol.mjs';
import { executionLog } from '../executions.mjs';

runPeer('meshd-worker', Number(flag('lifetime-ms', '600000')), async () => {
  const node = await MeshNode.connect({ brokers: flag('brokers').split(','), key: flag('key'), name: flag('name', 'worker'), timeout: 10_000 });
  const log = executionLog();
  node.serve(
    'echo',
    (req) => {
      log.record(req.payload);
      return req.payload;
    },
    { concurrency: Number(flag('concurrency', '64')) },
  );
  return {
    info: { system: 'meshd' },
    commands: { executions: () => log.take() },
    close: () => node.close(),
  };
});
