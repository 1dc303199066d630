// A meshd client for `npm run bench:compare`, written as an app embeds
// meshd: plain `node`, default flags, the compiled package (dist/). `run`
// drives the shared load loop; `timed` is the failover loop.
import { MeshNode } from '../../../dist/lib/index.js';
import { flag, runPeer } from '../child-protocol.mjs';
import { runLoad, runTimed } from '../load.mjs';

runPeer('meshd-client', Number(flag('lifetime-ms', '600000')), async () => {
  const node = await MeshNode.connect({ brokers: flag('brokers').split(','), key: flag('key'), name: 'client', timeout: 10_000 });
  const timeout = Number(flag('timeout', '5000'));
  const send = (payload) => node.request('echo', payload, { timeout });
  return {
    info: { system: 'meshd' },
    commands: {
      run: (arg) => runLoad(send, arg),
      timed: (arg) => runTimed(send, arg),
    },
    close: () => node.close(),
  };
});
