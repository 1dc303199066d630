/**
 * A broker process of `meshd demo` (run by the demo with plain node, from
 * the package: dist/bin/demo/demo-broker.js): the `meshd broker` command
 * itself, the same code as dist/bin/meshd.js runs, started before its
 * options are known. It loads meshd at once and waits for a `run` message
 * with the options (the port of the first broker, the peers), so the
 * brokers start loading together, and a restarted broker is ready to listen
 * the moment the demo restarts it. Its stdout (`listening mesh://...`) and
 * stderr (JSON logs) are those of `meshd broker`. Like every demo child, it
 * exits as soon as the demo is gone.
 */

import { main } from '../cli.ts';
import { childChannel } from './ipc.ts';
import type { ChildConfig } from './ipc.ts';

// As in bin/meshd.ts: a reader that went away is no reason for a stack trace.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE' || err.code === 'ERR_STREAM_DESTROYED') return;
    throw err;
  });
}

const { onMessage } = childChannel<ChildConfig>();
let started = false;
onMessage((message) => {
  if (message.type !== 'run' || started) return;
  started = true;
  void main(['broker', ...message.args]).then((code) => process.exit(code));
});
