// Child process: a worker MeshNode. Usage:
//   child-worker.ts BROKER_URL SERVICE DELAY_MS [CONCURRENCY]
// with its X25519 private key (base64url) in MESHD_TEST_KEY. Its handler
// prints `started IDHEX attempt=N dup=BOOL` at once, then waits DELAY_MS
// before echoing the payload. Prints `ready` once connected and serving.
// Exits when stdin closes (the test process is gone).
import { MeshNode } from '../../lib/node/mesh-node.ts';
import { decodeKey } from '../../lib/crypto/keys.ts';
import { getSuite } from '../../lib/crypto/suites.ts';

const [broker, service, delayArg, concurrencyArg] = process.argv.slice(2);
const secret = process.env.MESHD_TEST_KEY;
if (!broker || !service || !delayArg || !secret) {
  process.stderr.write('usage: MESHD_TEST_KEY=… child-worker.ts BROKER_URL SERVICE DELAY_MS [CONCURRENCY]\n');
  process.exit(2);
}
const delay = Number(delayArg);
const suite = getSuite('node');
const privateKey = decodeKey(secret, 'private key');
const node = await MeshNode.connect({ brokers: [broker], key: { privateKey, publicKey: suite.publicKey(privateKey) }, name: 'child-worker', suite, timeout: 5000 });
node.serve(
  service,
  async (req) => {
    process.stdout.write(`started ${Buffer.from(req.id).toString('hex')} attempt=${req.attempt} dup=${req.dup}\n`);
    await new Promise((r) => setTimeout(r, delay));
    return req.payload;
  },
  { concurrency: concurrencyArg === undefined ? 16 : Number(concurrencyArg) },
);
process.stdout.write('ready\n');
process.stdin.resume();
process.stdin.on('end', () => process.exit(0));
process.stdin.on('close', () => process.exit(0));
