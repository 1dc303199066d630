/**
 * Noise SymmetricState (spec rev 34 §5.2): the chaining key ck, the
 * handshake hash h and a CipherState, and the HKDF that ties them together.
 */

import { MeshError } from '../errors.ts';
import { CipherState } from './cipher-state.ts';
import type { CryptoSuite, HashName, NoiseHash } from './crypto-suite.ts';

const EMPTY = new Uint8Array(0);
const BYTE_1 = new Uint8Array([1]);
const BYTE_2 = new Uint8Array([2]);
const BYTE_3 = new Uint8Array([3]);

/** Noise HKDF(chainingKey, inputKeyMaterial, 2): two 32-byte outputs. */
function hkdf2(hash: NoiseHash, chainingKey: Uint8Array, ikm: Uint8Array): [Uint8Array, Uint8Array] {
  const temp = hash.hmac(chainingKey, ikm);
  const out1 = hash.hmac(temp, BYTE_1);
  const out2 = hash.hmac(temp, out1, BYTE_2);
  return [out1, out2];
}

/** Noise HKDF(chainingKey, inputKeyMaterial, 3): three 32-byte outputs. */
function hkdf3(hash: NoiseHash, chainingKey: Uint8Array, ikm: Uint8Array): [Uint8Array, Uint8Array, Uint8Array] {
  const temp = hash.hmac(chainingKey, ikm);
  const out1 = hash.hmac(temp, BYTE_1);
  const out2 = hash.hmac(temp, out1, BYTE_2);
  const out3 = hash.hmac(temp, out2, BYTE_3);
  return [out1, out2, out3];
}

/** Noise SymmetricState. Create it, then call {@link SymmetricState.initializeSymmetric} once. */
export class SymmetricState {
  readonly #suite: CryptoSuite;
  readonly #hash: NoiseHash;
  readonly #cipher: CipherState;
  #ck: Uint8Array = EMPTY;
  #h: Uint8Array = EMPTY;
  #initialized = false;

  /** A SymmetricState hashing with `hash`, encrypting with `suite`. */
  constructor(suite: CryptoSuite, hash: HashName) {
    this.#suite = suite;
    this.#hash = suite.hash(hash);
    this.#cipher = new CipherState(suite);
  }

  /** The hash function in use. */
  get hash(): NoiseHash {
    return this.#hash;
  }

  /**
   * h = protocol name padded with zeros to HASHLEN (or its HASH when longer),
   * ck = h, and an empty cipher key.
   */
  initializeSymmetric(protocolName: string | Uint8Array): void {
    const name = typeof protocolName === 'string' ? new TextEncoder().encode(protocolName) : protocolName;
    if (name.length <= this.#hash.hashLen) {
      const h = new Uint8Array(this.#hash.hashLen);
      h.set(name);
      this.#h = h;
    } else {
      this.#h = this.#hash.hash(name);
    }
    this.#ck = this.#h;
    this.#cipher.initializeKey(null);
    this.#initialized = true;
  }

  /** ck, k = HKDF(ck, inputKeyMaterial, 2); the cipher key becomes k. */
  mixKey(inputKeyMaterial: Uint8Array): void {
    this.#assertInitialized();
    const [ck, k] = hkdf2(this.#hash, this.#ck, inputKeyMaterial);
    this.#ck = ck;
    this.#cipher.initializeKey(k.subarray(0, 32));
  }

  /** h = HASH(h || data). */
  mixHash(data: Uint8Array): void {
    this.#assertInitialized();
    this.#h = this.#hash.hash(this.#h, data);
  }

  /** ck, temp_h, k = HKDF(ck, inputKeyMaterial, 3); MixHash(temp_h); the cipher key becomes k. (For PSKs.) */
  mixKeyAndHash(inputKeyMaterial: Uint8Array): void {
    this.#assertInitialized();
    const [ck, tempH, k] = hkdf3(this.#hash, this.#ck, inputKeyMaterial);
    this.#ck = ck;
    this.mixHash(tempH);
    this.#cipher.initializeKey(k.subarray(0, 32));
  }

  /** A copy of h, the handshake hash (channel binding once the handshake is done). */
  getHandshakeHash(): Uint8Array {
    return new Uint8Array(this.#h);
  }

  /** True when the cipher has a key (some DH has been mixed in). */
  hasKey(): boolean {
    return this.#cipher.hasKey();
  }

  /** ciphertext = EncryptWithAd(h, plaintext); MixHash(ciphertext). */
  encryptAndHash(plaintext: Uint8Array): Uint8Array {
    this.#assertInitialized();
    const ciphertext = this.#cipher.encryptWithAd(this.#h, plaintext);
    this.mixHash(ciphertext);
    return ciphertext;
  }

  /** plaintext = DecryptWithAd(h, ciphertext); MixHash(ciphertext). Throws MESH_ERR_DECRYPT on failure. */
  decryptAndHash(ciphertext: Uint8Array): Uint8Array {
    this.#assertInitialized();
    const plaintext = this.#cipher.decryptWithAd(this.#h, ciphertext);
    this.mixHash(ciphertext);
    return plaintext;
  }

  /**
   * k1, k2 = HKDF(ck, empty, 2): two CipherStates, c1 for initiator→responder
   * and c2 for responder→initiator.
   */
  split(): [CipherState, CipherState] {
    this.#assertInitialized();
    const [k1, k2] = hkdf2(this.#hash, this.#ck, EMPTY);
    return [new CipherState(this.#suite, k1.subarray(0, 32)), new CipherState(this.#suite, k2.subarray(0, 32))];
  }

  #assertInitialized(): void {
    if (!this.#initialized) throw new MeshError('MESH_ERR_HANDSHAKE', 'SymmetricState used before initializeSymmetric()');
  }
}
