/**
 * Choosing a {@link CryptoSuite}: `getSuite('node' | 'noble')` or
 * `defaultSuite()`, which is node:crypto when the runtime offers
 * chacha20-poly1305 and X25519, else @noble.
 */

import { createCipheriv, createPrivateKey, createPublicKey, diffieHellman, getCiphers } from 'node:crypto';
import { MeshError } from '../errors.ts';
import type { CryptoSuite } from './crypto-suite.ts';
import { createNobleSuite } from './noble-suite.ts';
import { createNodeSuite, PKCS8_X25519_PREFIX } from './node-suite.ts';

/** The names accepted by {@link getSuite}. */
export type SuiteName = CryptoSuite['name'];

/** Every suite name, in order of preference. */
export const SUITE_NAMES = ['node', 'noble'] as const satisfies readonly SuiteName[];

/** Whether node:crypto on this runtime can serve the node suite, and if not, why. */
export interface NodeCryptoSupport {
  /** True when chacha20-poly1305 and X25519 both work. */
  readonly available: boolean;
  /** What is missing, when `available` is false. */
  readonly reason?: string;
}

function probeNodeCrypto(): NodeCryptoSupport {
  try {
    if (!getCiphers().includes('chacha20-poly1305')) {
      return { available: false, reason: 'node:crypto lacks chacha20-poly1305' };
    }
    const cipher = createCipheriv('chacha20-poly1305', Buffer.alloc(32), Buffer.alloc(12), { authTagLength: 16 });
    cipher.update(Buffer.alloc(1));
    cipher.final();
    // Fixed keys imported as PKCS#8, not generateKeyPairSync: on Node 20 a generated key can
    // deadlock the process when V8 collects its generation job (see node-suite.ts).
    const a = createPrivateKey({ key: Buffer.concat([PKCS8_X25519_PREFIX, Buffer.alloc(32, 0x41)]), format: 'der', type: 'pkcs8' });
    const b = createPublicKey(createPrivateKey({ key: Buffer.concat([PKCS8_X25519_PREFIX, Buffer.alloc(32, 0x42)]), format: 'der', type: 'pkcs8' }));
    if (diffieHellman({ privateKey: a, publicKey: b }).length !== 32) {
      return { available: false, reason: 'node:crypto X25519 returned a wrong-sized secret' };
    }
    return { available: true };
  } catch (err) {
    return { available: false, reason: `node:crypto lacks chacha20-poly1305 or X25519 (${err instanceof Error ? err.message : String(err)})` };
  }
}

/** Probed once when this module loads; frozen, never changes afterwards. */
const NODE_SUPPORT: NodeCryptoSupport = Object.freeze(probeNodeCrypto());

/** Whether the node suite works on this runtime (probed once at load). */
export function nodeCryptoSupport(): NodeCryptoSupport {
  return NODE_SUPPORT;
}

/**
 * A new instance of the named suite. Throws MESH_ERR_CRYPTO for an unknown
 * name, or for `'node'` when the runtime lacks chacha20-poly1305 or X25519.
 */
export function getSuite(name: SuiteName): CryptoSuite {
  switch (name) {
    case 'node':
      if (!NODE_SUPPORT.available) {
        throw new MeshError('MESH_ERR_CRYPTO', `the node crypto suite is unavailable on this runtime: ${NODE_SUPPORT.reason ?? 'unknown reason'}; use the 'noble' suite`);
      }
      return createNodeSuite();
    case 'noble':
      return createNobleSuite();
    default:
      throw new MeshError('MESH_ERR_CRYPTO', `unknown crypto suite ${JSON.stringify(name)}; expected 'node' or 'noble'`);
  }
}

/** The fastest suite this runtime supports: node:crypto if it can, else @noble. */
export function defaultSuite(): CryptoSuite {
  return NODE_SUPPORT.available ? createNodeSuite() : createNobleSuite();
}

/**
 * The suite a `suite` option names: a name is looked up with
 * {@link getSuite}, a suite object is used as it is, and no value means
 * {@link defaultSuite}.
 */
export function resolveSuite(suite: SuiteName | CryptoSuite | undefined): CryptoSuite {
  if (suite === undefined) return defaultSuite();
  return typeof suite === 'string' ? getSuite(suite) : suite;
}
