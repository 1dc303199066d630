// A NATS client for `npm run bench:compare`: `run` drives the shared load
// loop through the client's request API (inbox reply, one timeout per
// request); `timed` is the failover loop. The client connects to the first
// server it is given (no randomizing), so the harness knows which one it uses.
import { connect } from 'nats';
import { flag, runPeer } from '../child-protocol.mjs';
import { runLoad, runTimed } from '../load.mjs';

runPeer('nats-client', Number(flag('lifetime-ms', '600000')), async () => {
  const nc = await connect({ servers: flag('servers').split(','), name: 'client', noRandomize: true, maxReconnectAttempts: -1, reconnectTimeWait: 250 });
  const timeout = Number(flag('timeout', '5000'));
  const send = async (payload) => (await nc.request('echo', payload, { timeout })).data;
  return {
    info: { system: 'nats' },
    commands: {
      run: (arg) => runLoad(send, arg),
      timed: (arg) => runTimed(send, arg),
    },
    close: () => nc.close(),
  };
});
