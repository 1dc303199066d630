// Test fixtures for broker + node tests: keys, an in-memory registry, and a
// broker started on 127.0.0.1 with everything torn down by `close()`.
import { BROKER_EVENT_TYPES, Broker } from '../../lib/broker/broker.ts';
import type { BrokerEvent, BrokerOptions } from '../../lib/broker/broker.ts';
import { Registry } from '../../lib/broker/registry.ts';
import type { RegistryEntryInit } from '../../lib/broker/registry.ts';
import { MeshNode } from '../../lib/node/mesh-node.ts';
import type { MeshNodeOptions } from '../../lib/node/mesh-node.ts';
import { getSuite } from '../../lib/crypto/suites.ts';
import { encodeKey } from '../../lib/crypto/keys.ts';
import type { KeyPair } from '../../lib/crypto/crypto-suite.ts';

const suite = getSuite('node');

export interface Party {
  readonly name: string;
  readonly keyPair: KeyPair;
  readonly key: string;
}

export function party(name: string): Party {
  const keyPair = suite.generateKeyPair();
  return { name, keyPair, key: encodeKey(keyPair.publicKey) };
}

export function registryOf(entries: Array<[Party, Omit<RegistryEntryInit, 'key' | 'name'>]>): Registry {
  return Registry.fromEntries(entries.map(([p, e]) => ({ key: p.key, name: p.name, ...e })));
}

/** A running broker plus helpers to make nodes; `close()` tears all down. */
export class MeshFixture {
  readonly broker: Broker;
  readonly nodes: MeshNode[] = [];
  constructor(broker: Broker) {
    this.broker = broker;
  }

  static async start(registry: Registry, options: Partial<BrokerOptions> = {}): Promise<MeshFixture> {
    const brokerParty = party('broker-1');
    const broker = await Broker.start({ key: brokerParty.keyPair, registry, suite, ...options });
    return new MeshFixture(broker);
  }

  async node(p: Party, options: Partial<MeshNodeOptions> = {}): Promise<MeshNode> {
    const node = await MeshNode.connect({ brokers: [this.broker.address], key: p.keyPair, name: p.name, suite, timeout: 5000, ...options });
    this.nodes.push(node);
    return node;
  }

  async close(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.close()));
    await this.broker.close();
  }
}

/** Calls `listener` with every event of `broker` (listeners attached right after start see the start's events too). */
export function onEveryEvent(broker: Broker, listener: (event: BrokerEvent) => void): void {
  for (const type of BROKER_EVENT_TYPES) broker.on(type, listener);
}

/** Waits until pred() holds (bounded). */
export async function until(pred: () => boolean, ms = 5000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
