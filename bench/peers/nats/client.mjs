// A NATS client for `npm run bench:compare`: `run` drives the shared load
// loop through the client's request API (inbox reply, one timeout per request).
import { connect } from 'nats';
import { flag, runPeer } from '../child-protocol.mjs';
import { runLoad } from '../load.mjs';

runPeer('nats-client', Number(flag('lifetime-ms', '600000')), async () => {
  const nc = await connect({ servers: flag('servers').split(','), name: 'client' });
  const timeout = Number(flag('timeout', '5000'));
  return {
    info: { system: 'nats' },
    commands: {
      run: (arg) => runLoad(async (payload) => (await nc.request('echo', payload, { timeout })).data, arg),
    },
    close: () => nc.close(),
  };
});
