// Many idle meshd nodes in one process, for `npm run bench:compare -- --scale`:
// an app that embeds one MeshNode per key, as users do (plain `node`, default
// flags, the compiled package). `connect` dials them all, at most `parallel`
// handshakes at a time, and answers how long that took; the nodes then stay
// connected and idle (heartbeats only) until the peer exits.
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { MeshNode } from '../../../dist/lib/index.js';
import { flag, runPeer } from '../child-protocol.mjs';
import { dialAll } from '../dial-all.mjs';

runPeer('meshd-idle-nodes', Number(flag('lifetime-ms', '600000')), async () => {
  const brokers = flag('brokers').split(',');
  const dir = flag('key-dir');
  const keys = readdirSync(dir)
    .filter((f) => f.endsWith('.key'))
    .sort()
    .map((f) => path.join(dir, f));
  const nodes = [];
  let downs = 0;
  const connect = async ({ parallel }) => {
    const { opened, failures, ms } = await dialAll(keys.length, parallel, async (i) => {
      const node = await MeshNode.connect({ brokers, key: keys[i], name: path.basename(keys[i], '.key'), timeout: 60_000 });
      node.on('broker-down', () => downs++);
      return node;
    });
    nodes.push(...opened);
    return { connected: nodes.length, failures, ms };
  };
  return {
    info: { system: 'meshd', keys: keys.length },
    commands: { connect, downs: () => downs },
    close: () => Promise.all(nodes.map((n) => n.close())),
  };
});
