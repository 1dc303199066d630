/**
 * The meshd handshake as two pure state machines (no I/O): the preamble
 * exchange, then `Noise_XK_25519_ChaChaPoly_SHA256` with the initiator's
 * preamble as prologue, HELLO payloads in messages 2 and 3.
 *
 *   I → R   preamble(8)  msg1 = e, es            (empty payload)
 *   R → I   preamble(8)  msg2 = e, ee            (responder HELLO)
 *   I → R                msg3 = s, se            (initiator HELLO)
 *
 * Connection drives these over a FramedSocket; docs/protocol.md's worked
 * example is computed by the same code with fixed keys.
 */
import { MeshError } from '../errors.ts';
import { HandshakeState } from '../crypto/handshake-state.ts';
import type { CipherState } from '../crypto/cipher-state.ts';
import type { CryptoSuite, KeyPair } from '../crypto/crypto-suite.ts';
import { checkVersion, decodePreamble, encodePreamble } from './preamble.ts';
import type { Preamble } from './preamble.ts';
import { decodeHello, encodeHello } from './hello.ts';
import type { Hello } from './hello.ts';

/** The Noise protocol of wire protocol v1. */
export const NOISE_PROTOCOL = 'Noise_XK_25519_ChaChaPoly_SHA256';

/** What a completed handshake yields. */
export interface HandshakeResult {
  /** Seals what this side sends. */
  readonly send: CipherState;
  /** Opens what this side receives. */
  readonly receive: CipherState;
  /** The peer's static public key, authenticated by the handshake. */
  readonly remoteKey: Uint8Array;
  /** The peer's HELLO. */
  readonly remoteHello: Hello;
  /** The Noise handshake hash (channel binding). */
  readonly handshakeHash: Uint8Array;
  /** Whether this side dialled (the Noise initiator). */
  readonly initiator: boolean;
}

/** Options common to both sides. */
export interface HandshakeSideOptions {
  readonly suite: CryptoSuite;
  /** This side's static key pair. */
  readonly keyPair: KeyPair;
  /** This side's HELLO. */
  readonly hello: Hello;
  /** Fixed ephemeral key (tests and the worked example only). */
  readonly ephemeral?: KeyPair | undefined;
}

/** Initiator side: knows the responder's static key before it starts. */
export class InitiatorHandshake {
  readonly #options: HandshakeSideOptions;
  readonly #preamble = encodePreamble();
  readonly #noise: HandshakeState;
  #step: 'start' | 'preamble' | 'msg2' | 'done' = 'start';
  #remotePreamble: Preamble | undefined;
  #remoteHello: Hello | undefined;

  constructor(options: HandshakeSideOptions & { readonly remoteKey: Uint8Array }) {
    this.#options = options;
    this.#noise = HandshakeState.initialize({
      protocolName: NOISE_PROTOCOL,
      initiator: true,
      prologue: this.#preamble,
      s: options.keyPair,
      e: options.ephemeral,
      rs: options.remoteKey,
      suite: options.suite,
    });
  }

  /** The bytes to send first: the preamble followed by message 1 (the caller frames message 1). */
  start(): { preamble: Buffer; message1: Uint8Array } {
    if (this.#step !== 'start') throw new MeshError('MESH_ERR_HANDSHAKE', 'handshake already started');
    this.#step = 'preamble';
    return { preamble: this.#preamble, message1: this.#noise.writeMessage(new Uint8Array(0)) };
  }

  /** Checks the responder's preamble (MESH_ERR_VERSION names both versions). */
  readPreamble(bytes: Uint8Array): void {
    if (this.#step !== 'preamble') throw new MeshError('MESH_ERR_HANDSHAKE', 'unexpected preamble');
    const remote = decodePreamble(bytes);
    checkVersion(remote, 'the responder');
    this.#remotePreamble = remote;
    this.#step = 'msg2';
  }

  /** True after the responder's preamble, while message 2 has not arrived: the responder is reading message 1. */
  get awaitingMessage2(): boolean {
    return this.#step === 'msg2';
  }

  /** Reads message 2 and returns message 3. */
  readMessage2(message: Uint8Array): Uint8Array {
    if (this.#step !== 'msg2') throw new MeshError('MESH_ERR_HANDSHAKE', 'unexpected handshake message');
    this.#remoteHello = checkHelloVersion(decodeHello(this.#noise.readMessage(message)), this.#remotePreamble!, 'responder');
    const message3 = this.#noise.writeMessage(encodeHello(this.#options.hello));
    this.#step = 'done';
    return message3;
  }

  /** The result, once message 3 is written. */
  result(): HandshakeResult {
    if (this.#step !== 'done' || !this.#remoteHello) throw new MeshError('MESH_ERR_HANDSHAKE', 'handshake not complete');
    return finish(this.#noise, this.#remoteHello, true);
  }
}

/** Responder side: learns the initiator's static key from message 3. */
export class ResponderHandshake {
  readonly #options: HandshakeSideOptions;
  #noise: HandshakeState | undefined;
  #step: 'preamble' | 'msg1' | 'msg3' | 'done' = 'preamble';
  #remotePreamble: Preamble | undefined;
  #remoteHello: Hello | undefined;

  constructor(options: HandshakeSideOptions) {
    this.#options = options;
  }

  /**
   * Reads the initiator's preamble and returns this side's preamble to send.
   * On a major version mismatch it returns the preamble together with the
   * MESH_ERR_VERSION error: send the preamble, then close.
   */
  readPreamble(bytes: Uint8Array): { preamble: Buffer; error?: MeshError } {
    if (this.#step !== 'preamble') throw new MeshError('MESH_ERR_HANDSHAKE', 'unexpected preamble');
    const remote = decodePreamble(bytes);
    const preamble = encodePreamble();
    try {
      checkVersion(remote, 'the initiator');
    } catch (error) {
      return { preamble, error: error as MeshError };
    }
    this.#remotePreamble = remote;
    this.#noise = HandshakeState.initialize({
      protocolName: NOISE_PROTOCOL,
      initiator: false,
      prologue: bytes,
      s: this.#options.keyPair,
      e: this.#options.ephemeral,
      suite: this.#options.suite,
    });
    this.#step = 'msg1';
    return { preamble };
  }

  /** Reads message 1 and returns message 2. */
  readMessage1(message: Uint8Array): Uint8Array {
    if (this.#step !== 'msg1' || !this.#noise) throw new MeshError('MESH_ERR_HANDSHAKE', 'unexpected handshake message');
    const payload = this.#noise.readMessage(message);
    if (payload.length !== 0) throw new MeshError('MESH_ERR_HANDSHAKE', `message 1 must carry no payload, got ${payload.length} bytes`);
    this.#step = 'msg3';
    return this.#noise.writeMessage(encodeHello(this.#options.hello));
  }

  /** Reads message 3: the handshake is complete. */
  readMessage3(message: Uint8Array): HandshakeResult {
    if (this.#step !== 'msg3' || !this.#noise) throw new MeshError('MESH_ERR_HANDSHAKE', 'unexpected handshake message');
    this.#remoteHello = checkHelloVersion(decodeHello(this.#noise.readMessage(message)), this.#remotePreamble!, 'initiator');
    this.#step = 'done';
    return finish(this.#noise, this.#remoteHello, false);
  }
}

/** A HELLO's version must be the one its sender put in its preamble (MESH_ERR_HANDSHAKE otherwise). */
function checkHelloVersion(hello: Hello, preamble: Preamble, sender: string): Hello {
  const { major, minor } = hello.version;
  if (major !== preamble.major || minor !== preamble.minor) {
    throw new MeshError('MESH_ERR_HANDSHAKE', `the ${sender}'s HELLO says version ${major}.${minor} but its preamble says ${preamble.major}.${preamble.minor}`);
  }
  return hello;
}

function finish(noise: HandshakeState, remoteHello: Hello, initiator: boolean): HandshakeResult {
  const remoteKey = noise.remoteStaticKey;
  if (!remoteKey) throw new MeshError('MESH_ERR_HANDSHAKE', 'handshake ended without a remote static key');
  const { send, receive } = noise.split();
  return { send, receive, remoteKey, remoteHello, handshakeHash: noise.getHandshakeHash(), initiator };
}
