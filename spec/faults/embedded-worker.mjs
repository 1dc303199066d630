// A worker app as a user writes one: plain JavaScript run by plain `node`
// (no loader), importing the compiled library. Its only pending work is
// `serve`: nothing else keeps the process alive, so it proves that a
// MeshNode with a service outlives its broker by itself.
//
// node spec/faults/embedded-worker.mjs BROKER_URL KEY_FILE SERVICE
// Prints `ready` once serving; answers every request with its payload.
import { MeshNode } from '../../dist/lib/index.js';

const [broker, keyFile, service] = process.argv.slice(2);
if (broker === undefined || keyFile === undefined || service === undefined) {
  process.stderr.write('usage: embedded-worker.mjs BROKER_URL KEY_FILE SERVICE\n');
  process.exit(2);
}
const node = await MeshNode.connect({ brokers: [broker], key: keyFile, role: 'worker', name: 'embedded-worker' });
node.serve(service, (request) => request.payload);
process.stdout.write('ready\n');
