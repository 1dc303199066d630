/**
 * Broker child of the mesh benchmark: `node --import tsx bench/lib/broker-child.ts CONFIG.json`.
 *
 * Starts one Broker on 127.0.0.1:0 with the key, registry and crypto suite of
 * the config file (which it deletes once read), prints `{"type":"ready","address":"mesh://…"}` on stdout,
 * then answers `stats` (its CPU time plus Broker.status()) and `exit` (see
 * ./child.ts). Runs alone in its process, so it has a core to itself.
 */
import { Broker, getSuite, Registry } from '../../lib/internal.ts';
import type { BrokerEvent } from '../../lib/internal.ts';
import { runChild } from './child.ts';
import { keyPairOf, takeBrokerConfig } from './mesh-config.ts';

/** A broker child never outlives this, whatever happens to its parent. */
const LIFETIME_MS = 180_000;

runChild('broker', LIFETIME_MS, async () => {
  const config = takeBrokerConfig(process.argv[2]);
  let refused = 0;
  const broker = await Broker.start({
    key: keyPairOf(config.broker),
    registry: Registry.fromEntries(config.registry, 'bench registry'),
    suite: getSuite(config.suite),
    host: '127.0.0.1',
    port: 0,
    name: config.broker.name,
  });
  const onRefused = (event: BrokerEvent): void => {
    refused++;
    process.stderr.write(`[bench:broker] ${event.type}: ${JSON.stringify(event, (_k, v: unknown) => (v instanceof Error ? v.message : v))}\n`);
  };
  broker.on('handshake-failed', onRefused).on('forbidden', onRefused);
  return {
    info: { address: broker.address, suite: config.suite },
    stats: () => ({ broker: broker.status(), refused }),
    close: () => broker.close(),
  };
});
