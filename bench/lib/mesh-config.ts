/**
 * The configuration the mesh benchmark hands to its broker and worker
 * children: crypto suite, key pairs and registry entries. Each child gets
 * its own JSON file (mode 0600, in a private temporary directory; never argv
 * or the environment, since it holds private keys) with only the keys it
 * needs, and deletes it as soon as it has read it.
 */
import { mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { encodeKey, getSuite, SUITE_NAMES } from '../../lib/internal.ts';
import type { KeyPair, RegistryEntryInit, SuiteName } from '../../lib/internal.ts';

/** One party's identity as stored in the file (base64url). */
export interface PartyConfig {
  readonly name: string;
  readonly publicKey: string;
  readonly privateKey: string;
}

/** What the broker child needs. */
export interface BrokerChildConfig {
  readonly suite: SuiteName;
  readonly broker: PartyConfig;
  readonly registry: readonly RegistryEntryInit[];
}

/** What the worker child needs. */
export interface WorkerChildConfig {
  readonly suite: SuiteName;
  /** The echo service the workers offer. */
  readonly service: string;
  /** Requests each worker runs at once (its credits). */
  readonly workerConcurrency: number;
  readonly workers: readonly PartyConfig[];
}

/** A named key pair in memory. */
export interface Party {
  readonly name: string;
  readonly keyPair: KeyPair;
}

/** A fresh key pair from the given suite. */
export function makeParty(name: string, suite: SuiteName): Party {
  return { name, keyPair: getSuite(suite).generateKeyPair() };
}

/** The stored form of a party. */
export function partyConfig(p: Party): PartyConfig {
  return { name: p.name, publicKey: encodeKey(p.keyPair.publicKey), privateKey: Buffer.from(p.keyPair.privateKey).toString('base64url') };
}

/** The key pair of a stored party. */
export function keyPairOf(p: PartyConfig): KeyPair {
  const publicKey = new Uint8Array(Buffer.from(p.publicKey, 'base64url'));
  const privateKey = new Uint8Array(Buffer.from(p.privateKey, 'base64url'));
  if (publicKey.length !== 32 || privateKey.length !== 32) throw new Error(`bench config: bad key pair for ${p.name}`);
  return { publicKey, privateKey };
}

/** A private temporary directory, removed by `remove()` (idempotent, synchronous). */
export class TempDir {
  readonly path: string;
  #removed = false;

  constructor(prefix: string) {
    this.path = mkdtempSync(path.join(os.tmpdir(), prefix));
  }

  /** Writes a JSON file readable only by this user; returns its path. */
  writeJson(name: string, value: unknown): string {
    const file = path.join(this.path, name);
    writeFileSync(file, `${JSON.stringify(value)}\n`, { mode: 0o600 });
    return file;
  }

  remove(): void {
    if (this.#removed) return;
    this.#removed = true;
    rmSync(this.path, { recursive: true, force: true });
  }
}

/** Reads a config file written by the parent, then deletes it (it holds private keys). */
function takeConfig(file: string | undefined): Record<string, unknown> {
  if (file === undefined) throw new Error('usage: <child script> CONFIG.json [BROKER_ADDRESS]');
  let config: Record<string, unknown>;
  try {
    config = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  } finally {
    unlinkSync(file);
  }
  if (!(SUITE_NAMES as readonly string[]).includes(config.suite as string)) throw new Error(`bench config: unknown suite ${JSON.stringify(config.suite)}`);
  return config;
}

/** Reads, deletes and checks the broker child's config file. */
export function takeBrokerConfig(file: string | undefined): BrokerChildConfig {
  const config = takeConfig(file) as unknown as BrokerChildConfig;
  if (typeof config.broker !== 'object' || !Array.isArray(config.registry)) throw new Error('bench config: malformed broker config');
  return config;
}

/** Reads, deletes and checks the worker child's config file. */
export function takeWorkerConfig(file: string | undefined): WorkerChildConfig {
  const config = takeConfig(file) as unknown as WorkerChildConfig;
  if (typeof config.service !== 'string' || !Array.isArray(config.workers)) throw new Error('bench config: malformed worker config');
  if (!Number.isInteger(config.workerConcurrency) || config.workerConcurrency < 1) throw new Error('bench config: bad workerConcurrency');
  return config;
}
