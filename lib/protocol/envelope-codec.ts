/**
 * Envelope = `uint16 BE header length || header (CBOR map) || payload`.
 *
 * The payload is opaque and never copied here: an encoded envelope is a
 * (head, payload) pair that the segment packer copies once into the plaintext
 * the cipher seals; a decoded payload is a view of the decrypted message.
 */
import { MeshError } from '../errors.ts';
import { HeaderCodec } from './strict-cbor.ts';
import { headerToMessage, messagePayload, messageToHeader } from './messages.ts';
import type { Message } from './messages.ts';

/** Largest header a v1 envelope can carry (its length is a uint16). */
export const MAX_HEADER_LENGTH = 65535;
/** Default largest payload: 1 MiB. */
export const DEFAULT_MAX_PAYLOAD = 1024 * 1024;

/** An envelope ready to be packed into segments. */
export interface EncodedEnvelope {
  /** The 2-byte header length followed by the header. */
  readonly head: Buffer;
  /** The payload, not copied. */
  readonly payload: Uint8Array;
  /** head.length + payload.length. */
  readonly length: number;
}

/** Limits applied when decoding envelopes. */
export interface EnvelopeLimits {
  /** Largest payload accepted, in bytes (default 1 MiB). */
  readonly maxPayload: number;
}

/** The largest envelope (in bytes) a payload limit allows. */
export function maxEnvelopeLength(maxPayload: number): number {
  return 2 + MAX_HEADER_LENGTH + maxPayload;
}

/** Encodes and decodes envelopes. Holds the header encoder's scratch buffer, so one per connection. */
export class EnvelopeCodec {
  readonly #headers = new HeaderCodec();
  readonly #maxPayload: number;

  constructor(limits: Partial<EnvelopeLimits> = {}) {
    this.#maxPayload = limits.maxPayload ?? DEFAULT_MAX_PAYLOAD;
  }

  /** Encodes a message. Throws MESH_ERR_ENVELOPE_TOO_LARGE if its payload is over `maxPayload` (the peer's limit). */
  encode(msg: Message, maxPayload = this.#maxPayload): EncodedEnvelope {
    const payload = messagePayload(msg);
    if (payload.length > maxPayload) {
      throw new MeshError('MESH_ERR_ENVELOPE_TOO_LARGE', `${msg.type} payload is ${payload.length} bytes, over the limit of ${maxPayload}`);
    }
    const header = this.#headers.encodeView(messageToHeader(msg)); // copied into head below
    if (header.length > MAX_HEADER_LENGTH) {
      throw new MeshError('MESH_ERR_ENVELOPE_TOO_LARGE', `${msg.type} header is ${header.length} bytes, over ${MAX_HEADER_LENGTH}`);
    }
    const head = Buffer.allocUnsafe(2 + header.length);
    head.writeUInt16BE(header.length, 0);
    header.copy(head, 2);
    return { head, payload, length: head.length + payload.length };
  }

  /** Encodes a message into one contiguous buffer (tests, examples). */
  encodeToBuffer(msg: Message): Buffer {
    const e = this.encode(msg);
    return Buffer.concat([e.head, e.payload]);
  }

  /**
   * Decodes one whole envelope. Throws MESH_ERR_PROTOCOL when the header
   * length lies (runs past the envelope) or the header is malformed, and
   * MESH_ERR_ENVELOPE_TOO_LARGE when the payload is over the limit.
   */
  decode(envelope: Uint8Array): Message {
    if (envelope.length < 2) throw new MeshError('MESH_ERR_PROTOCOL', `envelope of ${envelope.length} bytes is shorter than its header length field`);
    const headerLength = (envelope[0]! << 8) | envelope[1]!;
    if (headerLength === 0) throw new MeshError('MESH_ERR_PROTOCOL', 'envelope header length is 0');
    if (2 + headerLength > envelope.length) {
      throw new MeshError('MESH_ERR_PROTOCOL', `envelope header length ${headerLength} runs past the envelope (${envelope.length - 2} bytes after the length field)`);
    }
    const payload = envelope.subarray(2 + headerLength);
    if (payload.length > this.#maxPayload) {
      throw new MeshError('MESH_ERR_ENVELOPE_TOO_LARGE', `payload of ${payload.length} bytes is over the limit of ${this.#maxPayload}`);
    }
    const header = this.#headers.decode(envelope.subarray(2, 2 + headerLength));
    return headerToMessage(header, payload);
  }
}
