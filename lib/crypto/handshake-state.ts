/**
 * Noise HandshakeState (spec rev 34 §5.3): runs one side of a handshake
 * pattern. A pure state machine: it does no I/O, takes its keys (and, for
 * tests, its ephemeral) as options and draws fresh ephemerals from the
 * suite's secure RNG.
 */

import { MeshError } from '../errors.ts';
import { UnusableCipherState } from './cipher-state.ts';
import type { CipherState } from './cipher-state.ts';
import { assertX25519Key, DH_LEN, MAX_MESSAGE_LEN, TAG_LEN } from './crypto-suite.ts';
import type { CryptoSuite, HashName, KeyPair } from './crypto-suite.ts';
import { formatProtocolName, getHandshakePattern, isOneWayPattern, parseProtocolName } from './handshake-patterns.ts';
import type { HandshakePattern, MessageToken, PatternName } from './handshake-patterns.ts';
import { defaultSuite } from './suites.ts';
import { SymmetricState } from './symmetric-state.ts';

const EMPTY = new Uint8Array(0);

/** Options for {@link HandshakeState.initialize}. Give `protocolName`, or `pattern` and `hash`. */
export interface HandshakeStateOptions {
  /** A full protocol name, e.g. `Noise_XK_25519_ChaChaPoly_SHA256`. */
  readonly protocolName?: string;
  /** The pattern, by name or as data, when `protocolName` is not given. Data must carry a built-in pattern's name (its tokens are used as given). */
  readonly pattern?: PatternName | HandshakePattern;
  /** The hash function, when `protocolName` is not given. Default `SHA256`. */
  readonly hash?: HashName;
  /** True for the initiator, false for the responder. */
  readonly initiator: boolean;
  /** Prologue both sides must agree on. Default empty. */
  readonly prologue?: Uint8Array;
  /** This side's static key pair, when the pattern uses it. Used as given (not copied): do not modify it during the handshake. */
  readonly s?: KeyPair;
  /** This side's ephemeral key pair. Leave unset outside tests: it is generated when needed. */
  readonly e?: KeyPair;
  /** The remote static public key, when the pattern has it as a pre-message (e.g. the responder's key in XK). */
  readonly rs?: Uint8Array;
  /** The remote ephemeral public key, when the pattern has it as a pre-message. */
  readonly re?: Uint8Array;
  /**
   * The primitives to use. Default: a new {@link defaultSuite}(). Pass one long-lived suite
   * for every handshake: the node suite then imports a static key into OpenSSL only once.
   */
  readonly suite?: CryptoSuite;
}

/** The two transport CipherStates of a finished handshake, oriented for this side. */
export interface TransportCiphers {
  /** Encrypts what this side sends (c1 for the initiator, c2 for the responder). */
  readonly send: CipherState;
  /** Decrypts what this side receives. */
  readonly receive: CipherState;
}

type Role = 'initiator' | 'responder';

/** One side of a Noise handshake. Create with {@link HandshakeState.initialize}. */
export class HandshakeState {
  readonly #suite: CryptoSuite;
  readonly #symmetric: SymmetricState;
  readonly #pattern: HandshakePattern;
  readonly #protocolName: string;
  readonly #initiator: boolean;
  #s: KeyPair | null;
  #e: KeyPair | null;
  #rs: Uint8Array | null;
  #re: Uint8Array | null;
  #messageIndex = 0;
  #failed: MeshError | null = null;
  #split = false;

  private constructor(options: HandshakeStateOptions) {
    if (typeof options !== 'object' || options === null) throw handshakeError('HandshakeState.initialize() needs an options object');
    if (typeof options.initiator !== 'boolean') throw handshakeError('HandshakeState.initialize(): `initiator` must be true or false');
    this.#suite = options.suite ?? defaultSuite();
    let hash: HashName;
    if (options.protocolName !== undefined) {
      if (options.pattern !== undefined || options.hash !== undefined) {
        throw handshakeError('HandshakeState.initialize(): give either `protocolName` or `pattern` (and `hash`), not both');
      }
      const parsed = parseProtocolName(options.protocolName);
      this.#pattern = parsed.pattern;
      hash = parsed.hash;
      this.#protocolName = parsed.name;
    } else {
      if (options.pattern === undefined) throw handshakeError('HandshakeState.initialize(): give `protocolName` or `pattern`');
      this.#pattern = typeof options.pattern === 'string' ? getHandshakePattern(options.pattern) : options.pattern;
      hash = options.hash ?? 'SHA256';
      this.#protocolName = formatProtocolName(this.#pattern, hash);
      parseProtocolName(this.#protocolName); // validates the hash name, and refuses a pattern whose name is not built in
    }
    this.#initiator = options.initiator;
    this.#s = options.s === undefined ? null : checkKeyPair(options.s, 'static key pair (s)');
    this.#e = options.e === undefined ? null : checkKeyPair(options.e, 'ephemeral key pair (e)');
    this.#rs = options.rs === undefined ? null : checkPublicKey(options.rs, 'remote static key (rs)');
    this.#re = options.re === undefined ? null : checkPublicKey(options.re, 'remote ephemeral key (re)');
    this.#checkKeysForPattern();

    this.#symmetric = new SymmetricState(this.#suite, hash);
    this.#symmetric.initializeSymmetric(this.#protocolName);
    this.#symmetric.mixHash(options.prologue ?? EMPTY);
    const p = this.#pattern;
    // Pre-messages: the initiator's keys first, then the responder's.
    for (const t of p.initiatorPreMessage) this.#symmetric.mixHash(this.#preMessageKey(t, this.#initiator));
    for (const t of p.responderPreMessage) this.#symmetric.mixHash(this.#preMessageKey(t, !this.#initiator));
  }

  /**
   * Starts one side of a handshake (Noise's Initialize()). Throws
   * MESH_ERR_HANDSHAKE for an unsupported protocol or a key the pattern
   * needs but was not given (or was given but is never used), and
   * MESH_ERR_BAD_KEY for a malformed key.
   */
  static initialize(options: HandshakeStateOptions): HandshakeState {
    return new HandshakeState(options);
  }

  /** The full protocol name, e.g. `Noise_XK_25519_ChaChaPoly_SHA256`. */
  get protocolName(): string {
    return this.#protocolName;
  }

  /** The handshake pattern. */
  get pattern(): HandshakePattern {
    return this.#pattern;
  }

  /** True on the initiator's side. */
  get initiator(): boolean {
    return this.#initiator;
  }

  /** True when every handshake message has been written or read. */
  get isComplete(): boolean {
    return this.#messageIndex >= this.#pattern.messages.length;
  }

  /** True when the next step is {@link HandshakeState.writeMessage} (false when complete or failed). */
  get isMyTurn(): boolean {
    return this.#failed === null && !this.isComplete && this.#senderOf(this.#messageIndex) === this.#role();
  }

  /** True once a write or read has failed; the handshake cannot continue. */
  get hasFailed(): boolean {
    return this.#failed !== null;
  }

  /** The remote party's static public key once known (pre-message or received), else null. */
  get remoteStaticKey(): Uint8Array | null {
    return this.#rs === null ? null : new Uint8Array(this.#rs);
  }

  /** The remote party's ephemeral public key once known, else null. */
  get remoteEphemeralKey(): Uint8Array | null {
    return this.#re === null ? null : new Uint8Array(this.#re);
  }

  /** This side's static public key, if it has one. */
  get localStaticKey(): Uint8Array | null {
    return this.#s === null ? null : new Uint8Array(this.#s.publicKey);
  }

  /** The handshake hash h: a unique id of the session once the handshake is complete (channel binding). */
  getHandshakeHash(): Uint8Array {
    return this.#symmetric.getHandshakeHash();
  }

  /**
   * Writes the next handshake message carrying `payload`. Throws
   * MESH_ERR_HANDSHAKE when it is not this side's turn, the handshake is
   * over or failed, or the message would exceed 65535 bytes;
   * MESH_ERR_BAD_KEY when a DH with the remote key yields all zeros.
   */
  writeMessage(payload: Uint8Array = EMPTY): Uint8Array {
    this.#assertUsable('write');
    if (!(payload instanceof Uint8Array)) throw handshakeError('writeMessage(): payload must be a Uint8Array');
    if (this.#senderOf(this.#messageIndex) !== this.#role()) {
      throw handshakeError(`out of turn: the ${this.#role()} must read handshake message ${this.#messageIndex + 1} before writing`);
    }
    const tokens = this.#pattern.messages[this.#messageIndex] ?? [];
    const [keysLen, encrypted] = this.#layout(tokens);
    const total = keysLen + payload.length + (encrypted ? TAG_LEN : 0);
    if (total > MAX_MESSAGE_LEN) {
      throw handshakeError(`handshake message ${this.#messageIndex + 1} would be ${total} bytes, over the Noise maximum of ${MAX_MESSAGE_LEN}`);
    }
    try {
      const out = new Uint8Array(total);
      let offset = 0;
      for (const t of tokens) {
        if (t === 'e') {
          this.#e ??= this.#suite.generateKeyPair();
          out.set(this.#e.publicKey, offset);
          offset += DH_LEN;
          this.#symmetric.mixHash(this.#e.publicKey);
        } else if (t === 's') {
          const s = this.#requireS();
          const c = this.#symmetric.encryptAndHash(s.publicKey);
          out.set(c, offset);
          offset += c.length;
        } else {
          this.#mixDh(t);
        }
      }
      const c = this.#symmetric.encryptAndHash(payload);
      out.set(c, offset);
      offset += c.length;
      if (offset !== total) throw handshakeError(`internal error: message length ${offset} != ${total}`);
      this.#messageIndex++;
      return out;
    } catch (err) {
      throw this.#fail(err);
    }
  }

  /**
   * Reads the next handshake message and returns its payload. Throws
   * MESH_ERR_HANDSHAKE when out of turn, over or failed, or the message has
   * the wrong length; MESH_ERR_DECRYPT when it fails authentication (tampered,
   * or encrypted to another key); MESH_ERR_BAD_KEY for a low-order key. A
   * failure while processing the message is final (the handshake cannot
   * continue); a call out of turn or with something other than a Uint8Array
   * only throws.
   */
  readMessage(message: Uint8Array): Uint8Array {
    this.#assertUsable('read');
    if (!(message instanceof Uint8Array)) throw handshakeError('readMessage(): message must be a Uint8Array');
    if (this.#senderOf(this.#messageIndex) === this.#role()) {
      throw handshakeError(`out of turn: the ${this.#role()} must write handshake message ${this.#messageIndex + 1} before reading`);
    }
    const n = this.#messageIndex + 1;
    try {
      if (message.length > MAX_MESSAGE_LEN) {
        throw handshakeError(`handshake message ${n} is ${message.length} bytes, over the Noise maximum of ${MAX_MESSAGE_LEN}`);
      }
      const tokens = this.#pattern.messages[this.#messageIndex] ?? [];
      const [keysLen, encrypted] = this.#layout(tokens);
      const minLen = keysLen + (encrypted ? TAG_LEN : 0);
      if (message.length < minLen) {
        throw handshakeError(`handshake message ${n} is too short: ${message.length} bytes, expected at least ${minLen}`);
      }
      let offset = 0;
      for (const t of tokens) {
        if (t === 'e') {
          if (this.#re !== null) throw handshakeError('the remote ephemeral key is already set');
          const re = message.slice(offset, offset + DH_LEN);
          offset += DH_LEN;
          this.#re = re;
          this.#symmetric.mixHash(re);
        } else if (t === 's') {
          if (this.#rs !== null) throw handshakeError('the remote static key is already set');
          const len = DH_LEN + (this.#symmetric.hasKey() ? TAG_LEN : 0);
          const rs = this.#symmetric.decryptAndHash(message.subarray(offset, offset + len));
          offset += len;
          this.#rs = new Uint8Array(rs);
        } else {
          this.#mixDh(t);
        }
      }
      const body = message.subarray(offset);
      const payload = this.#symmetric.decryptAndHash(body);
      this.#messageIndex++;
      // Without a key the "plaintext" is a view of the caller's buffer: copy it.
      return payload === body ? body.slice() : payload;
    } catch (err) {
      throw this.#fail(err);
    }
  }

  /**
   * The transport CipherStates, oriented for this side (Noise's Split()).
   * Only after the last handshake message, and only once: a second call
   * throws MESH_ERR_HANDSHAKE (two copies of a CipherState would reuse
   * nonces). For one-way patterns the direction that does not exist throws
   * on use.
   */
  split(): TransportCiphers {
    if (this.#failed !== null) throw handshakeError(`cannot split: the handshake failed (${this.#failed.message})`);
    if (!this.isComplete) {
      throw handshakeError(`cannot split: the handshake is not complete (${this.#messageIndex} of ${this.#pattern.messages.length} messages done)`);
    }
    if (this.#split) throw handshakeError('split() was already called; its CipherStates must not be duplicated');
    this.#split = true;
    const [c1, c2] = this.#symmetric.split();
    if (isOneWayPattern(this.#pattern)) {
      const name = this.#pattern.name;
      if (this.#initiator) {
        return { send: c1, receive: new UnusableCipherState(this.#suite, `one-way pattern ${name}: the initiator cannot receive`) };
      }
      return { send: new UnusableCipherState(this.#suite, `one-way pattern ${name}: the responder cannot send`), receive: c1 };
    }
    return this.#initiator ? { send: c1, receive: c2 } : { send: c2, receive: c1 };
  }

  #role(): Role {
    return this.#initiator ? 'initiator' : 'responder';
  }

  #senderOf(index: number): Role {
    return index % 2 === 0 ? 'initiator' : 'responder';
  }

  #assertUsable(action: 'write' | 'read'): void {
    if (this.#failed !== null) throw handshakeError(`cannot ${action}: the handshake already failed (${this.#failed.message})`);
    if (this.isComplete) throw handshakeError(`cannot ${action}: the handshake is complete; use split() for transport messages`);
  }

  #fail(err: unknown): MeshError {
    const e = err instanceof MeshError ? err : new MeshError('MESH_ERR_HANDSHAKE', `handshake failed: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    this.#failed = e;
    return e;
  }

  /** Bytes taken by the keys of a message, and whether its payload is encrypted. */
  #layout(tokens: readonly MessageToken[]): [number, boolean] {
    let keyed = this.#symmetric.hasKey();
    let len = 0;
    for (const t of tokens) {
      if (t === 'e') len += DH_LEN;
      else if (t === 's') len += DH_LEN + (keyed ? TAG_LEN : 0);
      else keyed = true;
    }
    return [len, keyed];
  }

  #mixDh(token: 'ee' | 'es' | 'se' | 'ss'): void {
    // The first letter is the initiator's key, the second the responder's.
    const localIsFirst = this.#initiator;
    const localKind = localIsFirst ? token[0] : token[1];
    const remoteKind = localIsFirst ? token[1] : token[0];
    const local = localKind === 'e' ? this.#e : this.#s;
    const remote = remoteKind === 'e' ? this.#re : this.#rs;
    if (local === null || remote === null) {
      throw handshakeError(`token '${token}': the ${this.#role()} lacks ${local === null ? `its ${localKind === 'e' ? 'ephemeral' : 'static'} key` : `the remote ${remoteKind === 'e' ? 'ephemeral' : 'static'} key`}`);
    }
    this.#symmetric.mixKey(this.#suite.dh(local.privateKey, remote));
  }

  #requireS(): KeyPair {
    if (this.#s === null) throw handshakeError(`pattern ${this.#pattern.name} needs the ${this.#role()}'s static key pair (s)`);
    return this.#s;
  }

  /** The public key a pre-message token stands for; `own` = the pre-message is this side's. */
  #preMessageKey(token: 'e' | 's', own: boolean): Uint8Array {
    const key = own ? (token === 'e' ? this.#e?.publicKey : this.#s?.publicKey) : token === 'e' ? this.#re : this.#rs;
    if (key == null) throw handshakeError(`pre-message '${token}' key missing`); // unreachable after #checkKeysForPattern
    return key;
  }

  /** Checks that exactly the keys the pattern uses were given. */
  #checkKeysForPattern(): void {
    const p = this.#pattern;
    const name = p.name;
    const me = this.#role();
    const them: Role = this.#initiator ? 'responder' : 'initiator';
    const myPre = this.#initiator ? p.initiatorPreMessage : p.responderPreMessage;
    const theirPre = this.#initiator ? p.responderPreMessage : p.initiatorPreMessage;
    const sends = (role: Role, token: 'e' | 's'): boolean => p.messages.some((m, i) => this.#senderOf(i) === role && m.includes(token));

    const usesS = myPre.includes('s') || sends(me, 's');
    if (usesS && this.#s === null) throw handshakeError(`pattern ${name} needs the ${me}'s static key pair (s)`);
    if (!usesS && this.#s !== null) throw handshakeError(`pattern ${name} does not use the ${me}'s static key pair (s); do not pass one`);
    if (myPre.includes('e') && this.#e === null) throw handshakeError(`pattern ${name} needs the ${me}'s ephemeral key pair (e) as a pre-message`);

    if (theirPre.includes('s') && this.#rs === null) {
      throw handshakeError(`pattern ${name} needs the ${them}'s static public key (rs) in advance`);
    }
    if (!theirPre.includes('s') && this.#rs !== null) {
      throw handshakeError(sends(them, 's')
        ? `pattern ${name} receives the ${them}'s static key during the handshake; do not pass rs`
        : `pattern ${name} does not use the ${them}'s static key; do not pass rs`);
    }
    if (theirPre.includes('e') && this.#re === null) throw handshakeError(`pattern ${name} needs the ${them}'s ephemeral public key (re) in advance`);
    if (!theirPre.includes('e') && this.#re !== null) throw handshakeError(`pattern ${name} has no ephemeral pre-message; do not pass re`);
  }
}

function handshakeError(message: string): MeshError {
  return new MeshError('MESH_ERR_HANDSHAKE', message);
}

/** Validates a key pair. Keys are used as given, not copied (so a suite can recognise a static key it has seen). */
function checkKeyPair(pair: KeyPair, what: string): KeyPair {
  if (typeof pair !== 'object' || pair === null) throw new MeshError('MESH_ERR_BAD_KEY', `${what} must be { publicKey, privateKey }`);
  assertX25519Key(pair.privateKey, `${what}: private key`);
  assertX25519Key(pair.publicKey, `${what}: public key`);
  return pair;
}

function checkPublicKey(key: Uint8Array, what: string): Uint8Array {
  assertX25519Key(key, what);
  return key;
}
