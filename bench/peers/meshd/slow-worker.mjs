// A meshd worker for a slow service, for `npm run bench:compare -- --scale`:
// serves `slow` with `--concurrency` handlers that wait behind a gate until
// the `open` command, so the broker's queue fills up behind them; once open,
// each request is answered with its own payload at once.
import { MeshNode } from '../../../dist/lib/index.js';
import { flag, runPeer } from '../child-protocol.mjs';

runPeer('meshd-slow-worker', Number(flag('lifetime-ms', '600000')), async () => {
  const node = await MeshNode.connect({ brokers: flag('brokers').split(','), key: flag('key'), name: flag('name', 'slow-worker'), timeout: 10_000 });
  let open;
  const gate = new Promise((resolve) => (open = resolve));
  let handled = 0;
  node.serve(
    'slow',
    async (req) => {
      await gate;
      handled++;
      return req.payload;
    },
    { concurrency: Number(flag('concurrency', '16')) },
  );
  return {
    info: { system: 'meshd' },
    commands: {
      open: () => {
        open();
        return true;
      },
      handled: () => handled,
    },
    close: () => node.close(),
  };
});
