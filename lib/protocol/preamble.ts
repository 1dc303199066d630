/**
 * The 8-byte plaintext preamble each side sends before the handshake:
 * `"MESH" || major || minor || 0x00 || 0x00`. The initiator's preamble is the
 * Noise prologue, so a tampered preamble fails the handshake.
 */
import { MeshError } from '../errors.ts';

/** Length of the preamble in bytes. */
export const PREAMBLE_LENGTH = 8;
/** The wire protocol version this code speaks. */
export const PROTOCOL_VERSION = { major: 1, minor: 0 } as const;

const MAGIC = [0x4d, 0x45, 0x53, 0x48]; // "MESH"

/** A parsed preamble. */
export interface Preamble {
  readonly major: number;
  readonly minor: number;
}

/** The preamble bytes for a version (default: this code's). */
export function encodePreamble(version: Preamble = PROTOCOL_VERSION): Buffer {
  return Buffer.from([...MAGIC, version.major, version.minor, 0, 0]);
}

/** Parses a preamble; MESH_ERR_PROTOCOL if it is not a meshd preamble. */
export function decodePreamble(bytes: Uint8Array): Preamble {
  if (bytes.length !== PREAMBLE_LENGTH) throw new MeshError('MESH_ERR_PROTOCOL', `preamble must be ${PREAMBLE_LENGTH} bytes, got ${bytes.length}`);
  for (let i = 0; i < MAGIC.length; i++) {
    if (bytes[i] !== MAGIC[i]) throw new MeshError('MESH_ERR_PROTOCOL', `not a meshd peer: preamble starts with 0x${Buffer.from(bytes.subarray(0, 4)).toString('hex')}, expected "MESH"`);
  }
  if (bytes[6] !== 0 || bytes[7] !== 0) throw new MeshError('MESH_ERR_PROTOCOL', 'preamble reserved bytes are not zero');
  return { major: bytes[4]!, minor: bytes[5]! };
}

/**
 * Fails with MESH_ERR_VERSION when the peer's major version differs, naming
 * both, e.g. "the responder speaks wire protocol v2.0, this side speaks v1.0".
 */
export function checkVersion(remote: Preamble, peerName = 'the peer', local: Preamble = PROTOCOL_VERSION): void {
  if (remote.major !== local.major) {
    throw new MeshError('MESH_ERR_VERSION', `${peerName} speaks wire protocol v${remote.major}.${remote.minor}, this side speaks v${local.major}.${local.minor}`);
  }
}
