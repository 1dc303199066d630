/**
 * Keys, a registry and `meshd broker` processes for the benchmarks that run
 * meshd as users do (the compiled CLI, one process per broker): one place
 * writes the key files and the registry and builds each broker's flags.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { encodeKey, getSuite, writeKeyFileSync } from '../../lib/internal.ts';
import type { KeyPair } from '../../lib/internal.ts';
import { BrokerHandle, freePorts, urlOf } from '../../spec/faults/harness.ts';

/** A party with a key file. */
export interface KeyedParty {
  readonly name: string;
  /** Path of its key file (mode 0600). */
  readonly file: string;
  /** Its public key, base64url. */
  readonly key: string;
  readonly keyPair: KeyPair;
}

/** A party of the registry besides the brokers: its name, the directory of its key file, and the rest of its registry entry (YAML lines after `name:`). */
export interface PartySpec {
  readonly name: string;
  readonly dir?: string | undefined;
  /** e.g. `  role: worker\n  serve: [echo]\n`. */
  readonly entry: string;
}

/** What startMeshdBrokers started. */
export interface MeshdBrokers {
  readonly handles: BrokerHandle[];
  /** `mesh://KEY@127.0.0.1:PORT` of each broker. */
  readonly urls: string[];
  /** Admin ports, when asked for. */
  readonly adminPorts: number[];
  /** Every other party, by name. */
  readonly parties: Map<string, KeyedParty>;
  readonly registry: string;
}

/** Options of startMeshdBrokers. */
export interface MeshdBrokersOptions {
  /** Directory for keys and the registry. */
  readonly dir: string;
  readonly brokers: number;
  readonly parties: readonly PartySpec[];
  /** Peer every broker with every other (default true). */
  readonly peered?: boolean;
  /** Give each broker an admin endpoint on a free port. */
  readonly admin?: boolean;
  /** Extra flags of broker i. */
  readonly extraArgs?: (i: number) => string[];
  /** Node flags of broker i (e.g. `--cpu-prof`). */
  readonly nodeFlags?: (i: number) => string[];
  /** Longest wait for each broker's `listening` line, ms. */
  readonly readyMs: number;
}

/** Creates a key pair and writes its key file. */
export function keyedParty(name: string, dir: string): KeyedParty {
  const suite = getSuite('node');
  const keyPair = suite.generateKeyPair();
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${name}.key`);
  writeKeyFileSync(file, keyPair, { suite });
  return { name, file, key: encodeKey(keyPair.publicKey), keyPair };
}

/** Writes keys and a registry, and starts `brokers` meshd brokers on free loopback ports (resolves once all listen). */
export async function startMeshdBrokers(o: MeshdBrokersOptions): Promise<MeshdBrokers> {
  const brokers = Array.from({ length: o.brokers }, (_, i) => keyedParty(`broker-${i + 1}`, o.dir));
  const parties = new Map<string, KeyedParty>();
  const lines = brokers.map((b) => `- key: ${b.key}\n  name: ${b.name}\n  role: broker\n`);
  for (const p of o.parties) {
    const keyed = keyedParty(p.name, p.dir ?? o.dir);
    parties.set(p.name, keyed);
    lines.push(`- key: ${keyed.key}\n  name: ${p.name}\n${p.entry}`);
  }
  const registry = path.join(o.dir, 'registry.yaml');
  writeFileSync(registry, lines.join(''));
  const ports = await freePorts(o.brokers * (o.admin ? 2 : 1));
  const handles = brokers.map((b, i) => new BrokerHandle(i, b, ports[i]!, b.file));
  const adminPorts = o.admin ? ports.slice(o.brokers) : [];
  for (const h of handles) {
    const args = ['--listen', `127.0.0.1:${h.port}`, '--key', h.keyFile, '--registry', registry, '--name', h.name, '--log-format', 'json', '--log-level', 'warn'];
    if (o.admin) args.push('--admin', `127.0.0.1:${adminPorts[h.index]!}`);
    if (o.peered !== false) for (const other of handles) if (other !== h) args.push('--peer', other.url);
    args.push(...(o.extraArgs?.(h.index) ?? []));
    h.setArgs(args);
    h.setNodeFlags(o.nodeFlags?.(h.index) ?? []);
  }
  await Promise.all(handles.map((h) => h.start(o.readyMs)));
  return { handles, urls: handles.map((h) => urlOf(h.key, h.port)), adminPorts, parties, registry };
}
