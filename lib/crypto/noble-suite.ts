/**
 * The portable suite: @noble/curves (X25519), @noble/ciphers
 * (ChaCha20-Poly1305) and @noble/hashes (SHA-256, BLAKE2s, HMAC), pure
 * JavaScript. Slower than node:crypto but runs anywhere; always tested.
 */

import { chacha20poly1305 } from '@noble/ciphers/chacha.js';
import { x25519 } from '@noble/curves/ed25519.js';
import { blake2s } from '@noble/hashes/blake2.js';
import { hmac } from '@noble/hashes/hmac.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { MeshError } from '../errors.ts';
import { assertX25519Key, isAllZero, lowOrderError, TAG_LEN } from './crypto-suite.ts';
import type { CryptoSuite, HashName, KeyPair, NoiseHash } from './crypto-suite.ts';

/** Noise's ChaChaPoly nonce: 4 zero bytes || uint64 LE counter. */
function nonceBytes(n: number): Uint8Array {
  const out = new Uint8Array(12);
  const view = new DataView(out.buffer);
  view.setUint32(4, n >>> 0, true);
  view.setUint32(8, Math.floor(n / 0x1_0000_0000), true);
  return out;
}

function nobleHash(name: HashName): NoiseHash {
  const fn = name === 'SHA256' ? sha256 : blake2s;
  return Object.freeze({
    name,
    hashLen: 32,
    blockLen: 64,
    hash(...parts: Uint8Array[]): Uint8Array {
      const h = fn.create();
      for (const part of parts) h.update(part);
      return h.digest();
    },
    hmac(key: Uint8Array, ...parts: Uint8Array[]): Uint8Array {
      const h = hmac.create(fn, key);
      for (const part of parts) h.update(part);
      return h.digest();
    },
  } as const);
}

/** Creates a @noble suite. It holds no mutable state. */
export function createNobleSuite(): CryptoSuite {
  const hashes = { SHA256: nobleHash('SHA256'), BLAKE2s: nobleHash('BLAKE2s') } as const;

  return Object.freeze({
    name: 'noble',
    generateKeyPair(): KeyPair {
      const privateKey = x25519.utils.randomSecretKey();
      return { privateKey, publicKey: x25519.getPublicKey(privateKey) };
    },
    publicKey(privateKey: Uint8Array): Uint8Array {
      assertX25519Key(privateKey, 'X25519 private key');
      return x25519.getPublicKey(privateKey);
    },
    dh(privateKey: Uint8Array, publicKey: Uint8Array): Uint8Array {
      assertX25519Key(privateKey, 'X25519 private key');
      assertX25519Key(publicKey, 'X25519 public key');
      let shared: Uint8Array;
      try {
        shared = x25519.getSharedSecret(privateKey, publicKey);
      } catch (err) {
        throw lowOrderError(err);
      }
      if (isAllZero(shared)) throw lowOrderError();
      return shared;
    },
    encrypt(key: Uint8Array, n: number, ad: Uint8Array, plaintext: Uint8Array): Uint8Array {
      return chacha20poly1305(key, nonceBytes(n), ad.length > 0 ? ad : undefined).encrypt(plaintext);
    },
    encryptDetached(key: Uint8Array, n: number, ad: Uint8Array, plaintext: Uint8Array): readonly [Uint8Array, Uint8Array] {
      const sealed = chacha20poly1305(key, nonceBytes(n), ad.length > 0 ? ad : undefined).encrypt(plaintext);
      return [sealed.subarray(0, plaintext.length), sealed.subarray(plaintext.length)];
    },
    decrypt(key: Uint8Array, n: number, ad: Uint8Array, ciphertext: Uint8Array): Uint8Array {
      if (ciphertext.length < TAG_LEN) {
        throw new MeshError('MESH_ERR_DECRYPT', `ciphertext of ${ciphertext.length} bytes is shorter than the ${TAG_LEN}-byte tag`);
      }
      try {
        return chacha20poly1305(key, nonceBytes(n), ad.length > 0 ? ad : undefined).decrypt(ciphertext);
      } catch (err) {
        throw new MeshError('MESH_ERR_DECRYPT', 'message failed authentication (tampered, corrupted or wrong key)', { cause: err });
      }
    },
    rekey(key: Uint8Array): Uint8Array {
      const maxNonce = new Uint8Array([0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
      return chacha20poly1305(key, maxNonce).encrypt(new Uint8Array(32)).slice(0, 32);
    },
    hash(name: HashName): NoiseHash {
      const h = hashes[name] as NoiseHash | undefined;
      if (h === undefined) throw new MeshError('MESH_ERR_CRYPTO', `unsupported hash function ${String(name)}`);
      return h;
    },
  } as const);
}
