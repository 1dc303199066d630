/**
 * The primitives Noise needs (X25519, ChaCha20-Poly1305, SHA-256 / BLAKE2s
 * and their HMACs), behind one interface so the node:crypto suite and the
 * portable @noble suite are interchangeable. Implementations:
 * `node-suite.ts`, `noble-suite.ts`; pick one with `suites.ts`.
 */

import { MeshError } from '../errors.ts';

/** Noise hash function names this project supports. */
export type HashName = 'SHA256' | 'BLAKE2s';

/** The Noise hash functions supported, in the order they are tried in docs and tests. */
export const HASH_NAMES = ['SHA256', 'BLAKE2s'] as const satisfies readonly HashName[];

/** A Noise hash function (HASH and HMAC-HASH), with 32-byte output and 64-byte blocks. */
export interface NoiseHash {
  /** The Noise name of the function (`SHA256` or `BLAKE2s`). */
  readonly name: HashName;
  /** Output length in bytes (Noise HASHLEN). */
  readonly hashLen: 32;
  /** Block length in bytes (Noise BLOCKLEN). */
  readonly blockLen: 64;
  /** HASH(parts[0] || parts[1] || ...). */
  hash(...parts: Uint8Array[]): Uint8Array;
  /** HMAC-HASH(key, parts[0] || parts[1] || ...). */
  hmac(key: Uint8Array, ...parts: Uint8Array[]): Uint8Array;
}

/** An X25519 key pair: 32-byte raw private scalar and 32-byte raw public u-coordinate. */
export interface KeyPair {
  /** 32-byte X25519 public key. */
  readonly publicKey: Uint8Array;
  /** 32-byte X25519 private key (unclamped; clamping happens inside X25519). */
  readonly privateKey: Uint8Array;
}

/**
 * The cryptographic primitives behind Noise_*_25519_ChaChaPoly_{SHA256,BLAKE2s}.
 *
 * Outputs are `Uint8Array`s; the node suite returns `Buffer`s (a subclass),
 * which callers must not rely on.
 */
export interface CryptoSuite {
  /** Which implementation this is. */
  readonly name: 'node' | 'noble';
  /** Generates an X25519 key pair from a cryptographically secure RNG. */
  generateKeyPair(): KeyPair;
  /** The X25519 public key of a 32-byte private key. Throws MESH_ERR_BAD_KEY on a malformed key. */
  publicKey(privateKey: Uint8Array): Uint8Array;
  /**
   * X25519(privateKey, publicKey). Throws MESH_ERR_BAD_KEY when either key is
   * not 32 bytes or all zeros, or the public key is of low order (the shared
   * secret would be all zeros).
   */
  dh(privateKey: Uint8Array, publicKey: Uint8Array): Uint8Array;
  /**
   * ChaCha20-Poly1305 (IETF) seal. The 96-bit nonce is 4 zero bytes followed
   * by `nonce` as a little-endian uint64 (Noise's ChaChaPoly nonce). Returns
   * ciphertext || 16-byte tag. `nonce` must be a non-negative safe integer.
   */
  encrypt(key: Uint8Array, nonce: number, ad: Uint8Array, plaintext: Uint8Array): Uint8Array;
  /**
   * The same seal as {@link CryptoSuite.encrypt}, with the ciphertext and the
   * 16-byte tag returned apart (written one after the other, they are
   * `encrypt`'s output), so a sender can write both without joining them.
   */
  encryptDetached(key: Uint8Array, nonce: number, ad: Uint8Array, plaintext: Uint8Array): readonly [ciphertext: Uint8Array, tag: Uint8Array];
  /**
   * ChaCha20-Poly1305 (IETF) open, the inverse of {@link CryptoSuite.encrypt}.
   * Throws MESH_ERR_DECRYPT on authentication failure or input shorter than the tag.
   */
  decrypt(key: Uint8Array, nonce: number, ad: Uint8Array, ciphertext: Uint8Array): Uint8Array;
  /**
   * Noise REKEY(k): the first 32 bytes of ENCRYPT(k, 2^64-1, empty, 32 zero bytes).
   * (Separate from `encrypt` because a `number` nonce cannot express 2^64-1.)
   */
  rekey(key: Uint8Array): Uint8Array;
  /** The Noise hash function of that name. */
  hash(name: HashName): NoiseHash;
}

/** Length in bytes of X25519 keys and shared secrets (Noise DHLEN). */
export const DH_LEN = 32;
/** Length in bytes of a ChaChaPoly key. */
export const KEY_LEN = 32;
/** Length in bytes of the Poly1305 tag appended to every ciphertext. */
export const TAG_LEN = 16;
/** The largest Noise message, handshake or transport, in bytes. */
export const MAX_MESSAGE_LEN = 65535;
/** The largest plaintext that fits one encrypted Noise message. */
export const MAX_PLAINTEXT_LEN = MAX_MESSAGE_LEN - TAG_LEN;

/** True when every byte of `bytes` is zero (runs in time independent of the content). */
export function isAllZero(bytes: Uint8Array): boolean {
  let acc = 0;
  for (let i = 0; i < bytes.length; i++) acc |= bytes[i] ?? 0;
  return acc === 0;
}

/**
 * Checks that `key` is a 32-byte, not all-zero X25519 key; throws
 * MESH_ERR_BAD_KEY naming `what` otherwise.
 */
export function assertX25519Key(key: unknown, what: string): asserts key is Uint8Array {
  if (!(key instanceof Uint8Array)) {
    throw new MeshError('MESH_ERR_BAD_KEY', `${what} must be a Uint8Array of ${DH_LEN} bytes, got ${describe(key)}`);
  }
  if (key.length !== DH_LEN) {
    throw new MeshError('MESH_ERR_BAD_KEY', `${what} must be ${DH_LEN} bytes, got ${key.length}`);
  }
  if (isAllZero(key)) {
    throw new MeshError('MESH_ERR_BAD_KEY', `${what} is all zeros`);
  }
}

/** The error both suites throw when X25519 yields (or would yield) an all-zero secret. */
export function lowOrderError(cause?: unknown): MeshError {
  return new MeshError(
    'MESH_ERR_BAD_KEY',
    'X25519 rejected the public key: it is of low order or invalid (the shared secret would be all zeros)',
    cause === undefined ? {} : { cause },
  );
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value;
}
