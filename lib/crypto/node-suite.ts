/**
 * The node:crypto suite: OpenSSL's ChaCha20-Poly1305, X25519, SHA-256 and
 * BLAKE2s, all part of the Node.js runtime (no native addon). The default
 * wherever the runtime offers chacha20-poly1305 and X25519 (see `suites.ts`).
 */

import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createHmac,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  randomBytes,
  timingSafeEqual,
} from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { MeshError } from '../errors.ts';
import { assertX25519Key, isAllZero, lowOrderError, TAG_LEN } from './crypto-suite.ts';
import type { CryptoSuite, HashName, KeyPair, NoiseHash } from './crypto-suite.ts';

const CIPHER = 'chacha20-poly1305';
const CIPHER_OPTIONS = { authTagLength: TAG_LEN } as const;
const NODE_HASH_NAMES = { SHA256: 'sha256', BLAKE2s: 'blake2s256' } as const satisfies Record<HashName, string>;

/**
 * Raw keys are wrapped as JWK, not DER: on OpenSSL 3 a DER import runs the
 * generic decoder chain and costs ~10x more (about 360 µs vs 38 µs for a
 * private key, 74 µs vs 9 µs for a public key, measured on Node 20).
 *
 * For an OKP private key Node requires `x` to be a string but builds the key
 * from `d` alone, deriving the public half itself, so a placeholder is passed
 * (the known-answer tests catch any change in that behaviour). Should a
 * runtime refuse the placeholder, the PKCS#8 DER path is used instead.
 */
const PLACEHOLDER_X = 'A'.repeat(43);
/** DER prefix of a PKCS#8 X25519 private key; the 32 raw bytes follow (fallback path). */
export const PKCS8_X25519_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex');

/**
 * Node 20's generateKeyPairSync can deadlock the whole process: the key
 * generation job it leaves behind shares a mutex with the keys it made, and
 * when V8 collects that job while one of those keys is being exported (the
 * export allocates, the allocation runs GC, the job's destructor takes the
 * mutex the export holds), the main thread waits on itself forever, at zero
 * CPU. Seen as a test file hanging at random; reproduced in 2 of 3 runs of
 * 20,000 generate-and-export rounds with a 1 MiB young generation; gone on
 * Node 22 and 24. So on Node 20 a key pair is made without a generation job:
 * 32 random bytes imported as a private key, whose public half OpenSSL
 * derives (about as fast: ~58 µs against ~52 µs). Newer runtimes keep
 * generateKeyPairSync, which they fixed, and which they need, since they no
 * longer accept the placeholder `x` that makes the import fast.
 */
const GENERATE_BY_IMPORT = Number(process.versions.node.split('.')[0]) < 22;

function b64url(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('base64url');
}

/** Wraps a raw X25519 private key into a KeyObject. */
function privateKeyObject(raw: Uint8Array): KeyObject {
  assertX25519Key(raw, 'X25519 private key');
  try {
    return createPrivateKey({ key: { kty: 'OKP', crv: 'X25519', d: b64url(raw), x: PLACEHOLDER_X }, format: 'jwk' });
  } catch {
    const der = Buffer.alloc(PKCS8_X25519_PREFIX.length + raw.length);
    PKCS8_X25519_PREFIX.copy(der, 0);
    der.set(raw, PKCS8_X25519_PREFIX.length);
    try {
      return createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
    } finally {
      der.fill(0);
    }
  }
}

/** Wraps a raw X25519 public key into a KeyObject. */
function publicKeyObject(raw: Uint8Array): KeyObject {
  assertX25519Key(raw, 'X25519 public key');
  try {
    return createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: b64url(raw) }, format: 'jwk' });
  } catch (err) {
    throw new MeshError('MESH_ERR_BAD_KEY', 'node:crypto refused the X25519 public key', { cause: err });
  }
}

/** Decodes a JWK coordinate into 32 raw bytes. */
function fromJwk(value: string | undefined, what: 'public' | 'private'): Uint8Array {
  const raw = typeof value === 'string' ? Buffer.from(value, 'base64url') : undefined;
  if (raw?.length !== 32) throw new MeshError('MESH_ERR_CRYPTO', `node:crypto did not export a 32-byte X25519 ${what} key`);
  return new Uint8Array(raw);
}

/** The raw 32-byte public key of a private X25519 KeyObject. */
function rawPublicKey(privateKey: KeyObject): Uint8Array {
  return fromJwk(createPublicKey(privateKey).export({ format: 'jwk' }).x, 'public');
}

/** Writes Noise's ChaChaPoly nonce (4 zero bytes || uint64 LE counter) into bytes 4..11 of `buf`. */
function writeNonce(buf: Buffer, n: number): void {
  buf.writeUInt32LE(n >>> 0, 4);
  buf.writeUInt32LE(Math.floor(n / 0x1_0000_0000), 8);
}

function nodeHash(name: HashName): NoiseHash {
  const algorithm = NODE_HASH_NAMES[name];
  return Object.freeze({
    name,
    hashLen: 32,
    blockLen: 64,
    hash(...parts: Uint8Array[]): Uint8Array {
      const h = createHash(algorithm);
      for (const part of parts) h.update(part);
      return h.digest();
    },
    hmac(key: Uint8Array, ...parts: Uint8Array[]): Uint8Array {
      const h = createHmac(algorithm, key);
      for (const part of parts) h.update(part);
      return h.digest();
    },
  } as const);
}

/** A KeyObject remembered for a key array, with a copy of the bytes it was made from. */
interface CachedKey {
  readonly raw: Uint8Array;
  readonly key: KeyObject;
}

/**
 * Creates a node:crypto suite. Create one and reuse it: besides one 12-byte
 * nonce scratch buffer (reused by every encrypt/decrypt: node:crypto copies
 * the IV when a cipher is created and the calls are synchronous), each suite
 * remembers, per key array it is given (a WeakMap, so nothing outlives the
 * arrays), the KeyObject made from it. Importing a raw X25519 private key
 * costs as much as the DH itself (OpenSSL derives the public key), so a
 * static key used for many handshakes is imported once, and an ephemeral
 * from generateKeyPair() is never re-imported. The bytes are compared on
 * every hit, so an array modified in place is imported afresh.
 */
export function createNodeSuite(): CryptoSuite {
  const nonce = Buffer.alloc(12);
  const hashes = { SHA256: nodeHash('SHA256'), BLAKE2s: nodeHash('BLAKE2s') } as const;
  const privateKeys = new WeakMap<Uint8Array, CachedKey>();
  const publicKeys = new WeakMap<Uint8Array, CachedKey>();

  function cached(cache: WeakMap<Uint8Array, CachedKey>, raw: Uint8Array, make: (raw: Uint8Array) => KeyObject): KeyObject {
    const hit = cache.get(raw);
    if (hit !== undefined && hit.raw.length === raw.length && timingSafeEqual(hit.raw, raw)) return hit.key;
    const key = make(raw);
    cache.set(raw, { raw: new Uint8Array(raw), key });
    return key;
  }

  function encryptDetached(key: Uint8Array, n: number, ad: Uint8Array, plaintext: Uint8Array): readonly [Uint8Array, Uint8Array] {
    writeNonce(nonce, n);
    const cipher = createCipheriv(CIPHER, key, nonce, CIPHER_OPTIONS);
    if (ad.length > 0) cipher.setAAD(ad, { plaintextLength: plaintext.length });
    const body = cipher.update(plaintext);
    cipher.final();
    return [body, cipher.getAuthTag()];
  }

  function encrypt(key: Uint8Array, n: number, ad: Uint8Array, plaintext: Uint8Array): Uint8Array {
    const [body, tag] = encryptDetached(key, n, ad, plaintext);
    const out = Buffer.allocUnsafe(body.length + TAG_LEN);
    out.set(body, 0);
    out.set(tag, body.length);
    return out;
  }

  function decrypt(key: Uint8Array, n: number, ad: Uint8Array, ciphertext: Uint8Array): Uint8Array {
    const bodyLen = ciphertext.length - TAG_LEN;
    if (bodyLen < 0) {
      throw new MeshError('MESH_ERR_DECRYPT', `ciphertext of ${ciphertext.length} bytes is shorter than the ${TAG_LEN}-byte tag`);
    }
    writeNonce(nonce, n);
    const decipher = createDecipheriv(CIPHER, key, nonce, CIPHER_OPTIONS);
    decipher.setAuthTag(ciphertext.subarray(bodyLen));
    if (ad.length > 0) decipher.setAAD(ad, { plaintextLength: bodyLen });
    const plaintext = decipher.update(ciphertext.subarray(0, bodyLen));
    try {
      decipher.final();
    } catch (err) {
      throw new MeshError('MESH_ERR_DECRYPT', 'message failed authentication (tampered, corrupted or wrong key)', { cause: err });
    }
    return plaintext;
  }

  /** A key pair from random bytes (see GENERATE_BY_IMPORT). */
  function importedKeyPair(): KeyPair {
    const privateKey = new Uint8Array(randomBytes(32));
    // Clamped as OpenSSL's own generator does (X25519 clamps anyway; this keeps the stored bytes alike).
    privateKey[0]! &= 248;
    privateKey[31]! &= 127;
    privateKey[31]! |= 64;
    const priv = privateKeyObject(privateKey);
    // Cached before the export below: every key object sharing this key's lock stays reachable through it.
    privateKeys.set(privateKey, { raw: new Uint8Array(privateKey), key: priv });
    const pub = createPublicKey(priv);
    const publicKey = fromJwk(pub.export({ format: 'jwk' }).x, 'public');
    publicKeys.set(publicKey, { raw: new Uint8Array(publicKey), key: pub });
    return { privateKey, publicKey };
  }

  return Object.freeze({
    name: 'node',
    generateKeyPair(): KeyPair {
      if (GENERATE_BY_IMPORT) return importedKeyPair();
      const pair = generateKeyPairSync('x25519');
      const { d, x } = pair.privateKey.export({ format: 'jwk' });
      const privateKey = fromJwk(d, 'private');
      const publicKey = fromJwk(x, 'public');
      privateKeys.set(privateKey, { raw: new Uint8Array(privateKey), key: pair.privateKey });
      publicKeys.set(publicKey, { raw: new Uint8Array(publicKey), key: pair.publicKey });
      return { privateKey, publicKey };
    },
    publicKey(privateKey: Uint8Array): Uint8Array {
      return rawPublicKey(cached(privateKeys, privateKey, privateKeyObject));
    },
    dh(privateKey: Uint8Array, publicKey: Uint8Array): Uint8Array {
      const priv = cached(privateKeys, privateKey, privateKeyObject);
      const pub = cached(publicKeys, publicKey, publicKeyObject);
      let shared: Buffer;
      try {
        shared = diffieHellman({ privateKey: priv, publicKey: pub });
      } catch (err) {
        throw lowOrderError(err);
      }
      if (isAllZero(shared)) throw lowOrderError();
      return shared;
    },
    encrypt,
    encryptDetached,
    decrypt,
    rekey(key: Uint8Array): Uint8Array {
      const maxNonce = Buffer.from('00000000ffffffffffffffff', 'hex');
      const cipher = createCipheriv(CIPHER, key, maxNonce, CIPHER_OPTIONS);
      const out = cipher.update(new Uint8Array(32));
      cipher.final();
      return new Uint8Array(out);
    },
    hash(name: HashName): NoiseHash {
      const h = hashes[name] as NoiseHash | undefined;
      if (h === undefined) throw new MeshError('MESH_ERR_CRYPTO', `unsupported hash function ${String(name)}`);
      return h;
    },
  } as const);
}
