/**
 * Noise CipherState (spec rev 34 §5.1): a key k and a nonce counter n.
 * After the handshake, one CipherState per direction encrypts every
 * transport message; `encryptWithAd` / `decryptWithAd` are the hot path.
 */

import { MeshError } from '../errors.ts';
import { KEY_LEN, MAX_MESSAGE_LEN, MAX_PLAINTEXT_LEN } from './crypto-suite.ts';
import type { CryptoSuite } from './crypto-suite.ts';

/**
 * The largest nonce a CipherState uses: 2^53-1 (Number.MAX_SAFE_INTEGER).
 * A documented limitation: Noise allows up to 2^64-2, but a counter that
 * stays a plain number keeps the hot path free of BigInt. At a million
 * messages per second it takes 285 years to reach.
 */
export const MAX_NONCE = Number.MAX_SAFE_INTEGER;

const EMPTY = new Uint8Array(0);

/** Noise CipherState: encrypts with key k and nonce n, incrementing n after each message. */
export class CipherState {
  #k: Uint8Array | null = null;
  #n = 0;
  readonly #suite: CryptoSuite;

  /** A CipherState using `suite`; with `key`, as if {@link CipherState.initializeKey} were called. */
  constructor(suite: CryptoSuite, key?: Uint8Array | null) {
    this.#suite = suite;
    if (key != null) this.initializeKey(key);
  }

  /** The suite doing the work. */
  get suite(): CryptoSuite {
    return this.#suite;
  }

  /** The nonce the next message will use. */
  get nonce(): number {
    return this.#n;
  }

  /** Sets k = key (copied; `null` means empty) and n = 0. */
  initializeKey(key: Uint8Array | null): void {
    if (key === null) {
      this.#k = null;
    } else {
      if (!(key instanceof Uint8Array) || key.length !== KEY_LEN) {
        throw new MeshError('MESH_ERR_CRYPTO', `a cipher key must be ${KEY_LEN} bytes`);
      }
      this.#k = new Uint8Array(key);
    }
    this.#n = 0;
  }

  /** True when k is non-empty. */
  hasKey(): boolean {
    return this.#k !== null;
  }

  /** Sets n. Throws MESH_ERR_CRYPTO unless `nonce` is an integer in 0..{@link MAX_NONCE}. */
  setNonce(nonce: number): void {
    if (!Number.isSafeInteger(nonce) || nonce < 0) {
      throw new MeshError('MESH_ERR_CRYPTO', `nonce must be an integer from 0 to ${MAX_NONCE}, got ${String(nonce)}`);
    }
    this.#n = nonce;
  }

  /**
   * ENCRYPT(k, n++, ad, plaintext), or `plaintext` itself when k is empty.
   * Throws MESH_ERR_CRYPTO when the nonce is exhausted or the plaintext does
   * not fit one Noise message (65535 bytes with the tag).
   */
  encryptWithAd(ad: Uint8Array, plaintext: Uint8Array): Uint8Array {
    const k = this.#k;
    if (k === null) return plaintext;
    const n = this.#n;
    if (n > MAX_NONCE) throw nonceExhausted();
    if (plaintext.length > MAX_PLAINTEXT_LEN) {
      throw new MeshError('MESH_ERR_CRYPTO', `plaintext of ${plaintext.length} bytes does not fit one Noise message (max ${MAX_PLAINTEXT_LEN})`);
    }
    const out = this.#suite.encrypt(k, n, ad, plaintext);
    this.#n = n + 1;
    return out;
  }

  /**
   * {@link CipherState.encryptWithAd} with the tag returned apart: the
   * ciphertext and the tag, to be written one after the other. With k empty,
   * a copy of `plaintext` and an empty tag (the plaintext may be a scratch
   * buffer the caller reuses).
   */
  encryptWithAdDetached(ad: Uint8Array, plaintext: Uint8Array): readonly [Uint8Array, Uint8Array] {
    const k = this.#k;
    if (k === null) return [new Uint8Array(plaintext), EMPTY];
    const n = this.#n;
    if (n > MAX_NONCE) throw nonceExhausted();
    if (plaintext.length > MAX_PLAINTEXT_LEN) {
      throw new MeshError('MESH_ERR_CRYPTO', `plaintext of ${plaintext.length} bytes does not fit one Noise message (max ${MAX_PLAINTEXT_LEN})`);
    }
    const out = this.#suite.encryptDetached(k, n, ad, plaintext);
    this.#n = n + 1;
    return out;
  }

  /**
   * DECRYPT(k, n++, ad, ciphertext), or `ciphertext` itself when k is empty.
   * Throws MESH_ERR_DECRYPT on authentication failure (n is then unchanged),
   * MESH_ERR_CRYPTO when the nonce is exhausted.
   */
  decryptWithAd(ad: Uint8Array, ciphertext: Uint8Array): Uint8Array {
    const k = this.#k;
    if (k === null) return ciphertext;
    const n = this.#n;
    if (n > MAX_NONCE) throw nonceExhausted();
    if (ciphertext.length > MAX_MESSAGE_LEN) {
      throw new MeshError('MESH_ERR_DECRYPT', `ciphertext of ${ciphertext.length} bytes is over the Noise maximum of ${MAX_MESSAGE_LEN}`);
    }
    const out = this.#suite.decrypt(k, n, ad, ciphertext);
    this.#n = n + 1;
    return out;
  }

  /** `encryptWithAd` with empty associated data: the transport-message fast path. */
  encrypt(plaintext: Uint8Array): Uint8Array {
    return this.encryptWithAd(EMPTY, plaintext);
  }

  /** `decryptWithAd` with empty associated data: the transport-message fast path. */
  decrypt(ciphertext: Uint8Array): Uint8Array {
    return this.decryptWithAd(EMPTY, ciphertext);
  }

  /** k = REKEY(k) (spec §4.2); n is unchanged. Throws MESH_ERR_CRYPTO when k is empty. */
  rekey(): void {
    const k = this.#k;
    if (k === null) throw new MeshError('MESH_ERR_CRYPTO', 'cannot rekey a CipherState that has no key');
    this.#k = this.#suite.rekey(k);
  }
}

/**
 * A CipherState for a direction a one-way pattern (N, K, X) does not allow:
 * the responder never sends and the initiator never receives. Every use
 * throws MESH_ERR_HANDSHAKE.
 */
export class UnusableCipherState extends CipherState {
  readonly #reason: string;

  /** `reason` becomes the message of every error this state throws. */
  constructor(suite: CryptoSuite, reason: string) {
    super(suite);
    this.#reason = reason;
  }

  /** Always false: this state never encrypts. */
  override hasKey(): boolean {
    return false;
  }

  /** Always throws MESH_ERR_HANDSHAKE. */
  override encryptWithAd(_ad: Uint8Array, _plaintext: Uint8Array): Uint8Array {
    throw new MeshError('MESH_ERR_HANDSHAKE', this.#reason);
  }

  /** Always throws MESH_ERR_HANDSHAKE. */
  override decryptWithAd(_ad: Uint8Array, _ciphertext: Uint8Array): Uint8Array {
    throw new MeshError('MESH_ERR_HANDSHAKE', this.#reason);
  }

  /** Always throws MESH_ERR_HANDSHAKE. */
  override initializeKey(_key: Uint8Array | null): void {
    throw new MeshError('MESH_ERR_HANDSHAKE', this.#reason);
  }

  /** Always throws MESH_ERR_HANDSHAKE. */
  override rekey(): void {
    throw new MeshError('MESH_ERR_HANDSHAKE', this.#reason);
  }
}

function nonceExhausted(): MeshError {
  return new MeshError('MESH_ERR_CRYPTO', 'nonce exhausted: this CipherState has used every nonce up to 2^53-1 (Number.MAX_SAFE_INTEGER); start a new session');
}
