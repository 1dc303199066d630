// Child process of the fault suite: a worker MeshNode serving one service.
// Config (JSON) in FAULT_WORKER_CONFIG: { privateKey (base64url), brokers
// (seed URLs), service, delayMs, concurrency, name }.
//
// stdout, one line each:
//   ready                                  connected and serving
//   healthy KEY,KEY,...                    the brokers it may take work from, on every change
//   exec IDHEX ATTEMPT DUP BROKER PAYLOAD  a handler execution starts (DUP is 0 or 1,
//                                          BROKER the key of the broker it came through)
// The handler waits delayMs, then echoes the payload. Exits when stdin closes
// (the test process is gone) or on SIGTERM (drain first).
import { MeshNode } from '../../lib/node/mesh-node.ts';
import { decodeKey } from '../../lib/crypto/keys.ts';
import { getSuite } from '../../lib/crypto/suites.ts';

interface WorkerConfig {
  readonly privateKey: string;
  readonly brokers: readonly string[];
  readonly service: string;
  readonly delayMs: number;
  readonly concurrency: number;
  readonly name: string;
}

const raw = process.env.FAULT_WORKER_CONFIG;
if (!raw) {
  process.stderr.write('fault-worker: FAULT_WORKER_CONFIG is not set\n');
  process.exit(2);
}
const config = JSON.parse(raw) as WorkerConfig;
const suite = getSuite('node');
const privateKey = decodeKey(config.privateKey, 'private key');

function line(text: string): void {
  // stdout is a pipe: writes are synchronous on Linux, so a line is out before the handler goes on.
  process.stdout.write(`${text}\n`);
}

const keyOf = (url: string): string => /^mesh:\/\/([^@]+)@/.exec(url)?.[1] ?? url;

const node = await MeshNode.connect({
  brokers: config.brokers,
  key: { privateKey, publicKey: suite.publicKey(privateKey) },
  name: config.name,
  suite,
  timeout: 15_000,
});
let lastHealthy = '';
const report = (): void => {
  const healthy = node.healthyBrokers.map(keyOf).sort().join(',');
  if (healthy === lastHealthy) return;
  lastHealthy = healthy;
  line(`healthy ${healthy}`);
};
// 'disconnect' and 'drain' fire before the link's state is updated everywhere: look again a moment later.
const soon = (): void => {
  report();
  setTimeout(report, 20).unref();
};
node.on('broker-up', soon);
node.on('broker-down', soon);
node.on('broker-draining', soon);
node.on('brokers', soon);
node.on('broker-error', (e) => process.stderr.write(`${JSON.stringify({ event: e.type, broker: e.broker, code: e.error.code, error: e.error.message })}\n`));
// A periodic look too, in case a change came without an event.
setInterval(report, 200).unref();

node.serve(
  config.service,
  async (req) => {
    line(`exec ${Buffer.from(req.id).toString('hex')} ${req.attempt} ${req.dup ? 1 : 0} ${req.broker} ${req.payload.toString('latin1').slice(0, 200)}`);
    await new Promise((r) => setTimeout(r, config.delayMs));
    return req.payload;
  },
  { concurrency: config.concurrency },
);
report();
line('ready');

let closing = false;
const stop = (): void => {
  if (closing) return;
  closing = true;
  setTimeout(() => process.exit(0), 3000).unref();
  void node.close().then(() => process.exit(0));
};
process.on('SIGTERM', stop);
process.stdin.resume();
process.stdin.on('end', stop);
process.stdin.on('close', stop);
