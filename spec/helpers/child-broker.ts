// Child process: a broker on 127.0.0.1:0. Config (JSON, see ChildBrokerConfig
// in child-harness.ts) comes from the MESHD_TEST_BROKER env var. Prints
// `listening mesh://…` once ready, `event {json}` per broker event, and
// answers `status N` on stdin with `status N {json}` (Broker.status() plus
// rss) and `memory N` with `memory N {json}` (process.memoryUsage() after a
// full garbage collection; the harness starts it with --expose-gc). Exits
// when stdin closes (the test process is gone) or on SIGTERM.
import { createInterface } from 'node:readline';
import { Broker } from '../../lib/broker/broker.ts';
import type { BrokerEvent } from '../../lib/broker/broker.ts';
import { Registry } from '../../lib/broker/registry.ts';
import type { RegistryEntryInit } from '../../lib/broker/registry.ts';
import { decodeKey } from '../../lib/crypto/keys.ts';
import { getSuite } from '../../lib/crypto/suites.ts';
import type { ChildBrokerConfig } from './child-harness.ts';
import { onEveryEvent } from './mesh.ts';

const raw = process.env.MESHD_TEST_BROKER;
if (!raw) {
  process.stderr.write('child-broker: MESHD_TEST_BROKER is not set\n');
  process.exit(2);
}
const config = JSON.parse(raw) as ChildBrokerConfig;
const suite = getSuite('node');
const privateKey = decodeKey(config.privateKey, 'private key');
const keyPair = { privateKey, publicKey: suite.publicKey(privateKey) };

function line(text: string): void {
  process.stdout.write(`${text}\n`);
}

function describeEvent(e: BrokerEvent): Record<string, unknown> {
  switch (e.type) {
    case 'connected':
      return { type: e.type, name: e.name, key: e.key, role: e.role };
    case 'disconnected':
      return { type: e.type, name: e.name, key: e.key, code: e.error?.code, message: e.error?.message };
    case 'handshake-failed':
      return { type: e.type, code: e.error.code, message: e.error.message };
    case 'forbidden':
      return { type: e.type, name: e.name, key: e.key, message: e.what };
    case 'registry-error':
      return { type: e.type, code: e.error.code, message: e.error.message };
    default:
      return { type: e.type };
  }
}

const broker = await Broker.start({
  key: keyPair,
  registry: Registry.fromEntries(config.registry as readonly RegistryEntryInit[]),
  suite,
  host: '127.0.0.1',
  port: 0,
  ...config.options,
});
onEveryEvent(broker, (e) => line(`event ${JSON.stringify(describeEvent(e))}`));

let closing = false;
async function shutdown(code: number): Promise<void> {
  if (closing) return;
  closing = true;
  const timer = setTimeout(() => process.exit(code), 3000);
  timer.unref();
  await broker.close();
  process.exit(code);
}

process.on('SIGTERM', () => void shutdown(0));
const input = createInterface({ input: process.stdin });
input.on('line', (text) => {
  const mem = /^memory (\d+)$/.exec(text.trim());
  if (mem) {
    const gc = (globalThis as { gc?: () => void }).gc;
    if (!gc) throw new Error('child-broker: memory needs node --expose-gc');
    gc();
    line(`memory ${mem[1]} ${JSON.stringify(process.memoryUsage())}`);
    return;
  }
  const m = /^status (\d+)$/.exec(text.trim());
  if (!m) return;
  const { handshakesFailed, handshakesEvicted } = broker.stats();
  line(`status ${m[1]} ${JSON.stringify({ ...broker.status(), rss: process.memoryUsage().rss, handshakesFailed, handshakesEvicted })}`);
});
input.on('close', () => void shutdown(0));

line(`listening ${broker.address}`);
