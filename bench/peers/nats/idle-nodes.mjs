// Many idle NATS connections in one process, for `npm run bench:compare --
// --scale`: `connect` opens `count` client connections, at most `parallel`
// at a time, and answers how long that took; they then stay open and idle
// (the client's own pings only) until the peer exits.
import { connect as natsConnect } from 'nats';
import { flag, runPeer } from '../child-protocol.mjs';
import { dialAll } from '../dial-all.mjs';

runPeer('nats-idle-nodes', Number(flag('lifetime-ms', '600000')), async () => {
  const servers = flag('servers').split(',');
  const count = Number(flag('count'));
  const conns = [];
  let disconnects = 0;
  const connect = async ({ parallel }) => {
    const { opened, failures, ms } = await dialAll(count, parallel, async (i) => {
      const nc = await natsConnect({ servers, name: `idle-${i}`, timeout: 60_000 });
      void (async () => {
        for await (const s of nc.status()) if (s.type === 'disconnect') disconnects++;
      })();
      return nc;
    });
    conns.push(...opened);
    return { connected: conns.length, failures, ms };
  };
  return {
    info: { system: 'nats', count },
    commands: { connect, downs: () => disconnects },
    close: () => Promise.all(conns.map((c) => c.close())),
  };
});
