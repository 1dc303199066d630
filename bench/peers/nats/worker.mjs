// A NATS echo worker for `npm run bench:compare`: one connection, a queue
// group subscription on `echo`, each message answered with its own data.
import { connect } from 'nats';
import { flag, runPeer } from '../child-protocol.mjs';
import { executionLog } from '../executions.mjs';

runPeer('nats-worker', Number(flag('lifetime-ms', '600000')), async () => {
  const nc = await connect({ servers: flag('servers').split(','), name: flag('name', 'worker'), maxReconnectAttempts: -1, reconnectTimeWait: 250 });
  const log = executionLog();
  nc.subscribe('echo', {
    queue: 'workers',
    callback: (error, msg) => {
      if (error) return;
      log.record(msg.data);
      msg.respond(msg.data);
    },
  });
  await nc.flush();
  return {
    info: { system: 'nats' },
    commands: { executions: () => log.take() },
    close: () => nc.close(),
  };
});
