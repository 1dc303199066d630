/**
 * Header CBOR: a strict gate in front of cbor-x.
 *
 * Headers are standard CBOR built from unsigned integers, byte strings, text
 * strings, arrays, maps, false, true and null only (DESIGN §3, docs/protocol.md
 * CDDL). Before cbor-x sees a single byte, {@link checkHeaderCbor} walks the
 * item with bounds checks and rejects everything else: tags (so none of
 * cbor-x's tag extensions or record definitions can run on hostile input),
 * indefinite lengths, floats, negative integers, nesting deeper than
 * {@link MAX_DEPTH}, more than {@link MAX_ITEMS} items, lengths past the end and
 * trailing bytes. Then cbor-x decodes what is known to be plain data.
 */
import './cbor-native-off.ts';
import { Encoder } from 'cbor-x';
import { MeshError } from '../errors.ts';

/** Deepest nesting a header may have (the map itself is depth 1). */
export const MAX_DEPTH = 5;
/** Most data items a header may contain, counting every nested item. */
export const MAX_ITEMS = 4096;

const MAJOR_UINT = 0;
const MAJOR_BYTES = 2;
const MAJOR_TEXT = 3;
const MAJOR_ARRAY = 4;
const MAJOR_MAP = 5;
const MAJOR_SIMPLE = 7;
const SIMPLE_FALSE = 20;
const SIMPLE_TRUE = 21;
const SIMPLE_NULL = 22;

function fail(message: string): never {
  throw new MeshError('MESH_ERR_PROTOCOL', `malformed header CBOR: ${message}`);
}

/** Walks one header item by item; a class so nothing is re-created per call. */
class Scanner {
  pos = 0;
  items = 0;
  readonly bytes: Uint8Array;

  constructor(bytes: Uint8Array) {
    this.bytes = bytes;
  }

  /** Reads the argument of an item whose additional info is `info`. */
  argument(info: number): number {
    if (info < 24) return info;
    const size = info === 24 ? 1 : info === 25 ? 2 : info === 26 ? 4 : info === 27 ? 8 : 0;
    if (size === 0) fail(info === 31 ? 'indefinite length' : `reserved additional info ${info}`);
    const bytes = this.bytes;
    if (this.pos + size > bytes.length) fail('truncated length');
    let value = 0;
    for (let i = 0; i < size; i++) value = value * 256 + bytes[this.pos + i]!;
    if (value > Number.MAX_SAFE_INTEGER) fail('integer too large');
    this.pos += size;
    return value;
  }

  item(depth: number): void {
    if (depth > MAX_DEPTH) fail(`nesting deeper than ${MAX_DEPTH}`);
    if (++this.items > MAX_ITEMS) fail(`more than ${MAX_ITEMS} items`);
    const bytes = this.bytes;
    if (this.pos >= bytes.length) fail('truncated item');
    const initial = bytes[this.pos++]!;
    const major = initial >> 5;
    const info = initial & 0x1f;
    switch (major) {
      case MAJOR_UINT:
        this.argument(info);
        return;
      case MAJOR_BYTES:
      case MAJOR_TEXT: {
        const length = this.argument(info);
        if (this.pos + length > bytes.length) fail('string runs past the end');
        this.pos += length;
        return;
      }
      case MAJOR_ARRAY: {
        const count = this.argument(info);
        if (count > bytes.length - this.pos) fail('array longer than the header');
        for (let i = 0; i < count; i++) this.item(depth + 1);
        return;
      }
      case MAJOR_MAP: {
        const count = this.argument(info);
        if (count * 2 > bytes.length - this.pos) fail('map longer than the header');
        // Keys are small integers in practice: a bitmask catches duplicates below 32.
        let seen = 0;
        let big: Set<number> | undefined;
        for (let i = 0; i < count; i++) {
          if (this.pos >= bytes.length) fail('truncated map');
          if (bytes[this.pos]! >> 5 !== MAJOR_UINT) fail('map keys must be unsigned integers');
          if (++this.items > MAX_ITEMS) fail(`more than ${MAX_ITEMS} items`);
          const key = this.argument(bytes[this.pos++]! & 0x1f);
          if (key < 32) {
            const bit = 1 << key;
            if (seen & bit) fail(`duplicate map key ${key}`);
            seen |= bit;
          } else {
            big ??= new Set<number>();
            if (big.has(key)) fail(`duplicate map key ${key}`);
            big.add(key);
          }
          this.item(depth + 1);
        }
        return;
      }
      case MAJOR_SIMPLE:
        if (info === SIMPLE_FALSE || info === SIMPLE_TRUE || info === SIMPLE_NULL) return;
        fail(info >= 25 && info <= 27 ? 'floats are not allowed' : `simple value ${info} not allowed`);
        break;
      default:
        fail(major === 1 ? 'negative integers are not allowed' : 'tags are not allowed');
    }
  }
}

/**
 * Checks that `bytes` hold exactly one CBOR map in the header subset.
 * Throws MESH_ERR_PROTOCOL naming the first problem.
 */
export function checkHeaderCbor(bytes: Uint8Array): void {
  if (bytes.length === 0) fail('empty header');
  if (bytes[0]! >> 5 !== MAJOR_MAP) fail('header is not a map');
  const scanner = new Scanner(bytes);
  scanner.item(1);
  if (scanner.pos !== bytes.length) fail(`${bytes.length - scanner.pos} trailing bytes after the header map`);
}

/** A value in a header: the CBOR subset as JavaScript values. */
export type HeaderValue = number | boolean | null | string | Uint8Array | HeaderValue[] | Map<number, HeaderValue>;

/**
 * Encodes and decodes header maps with cbor-x configured for plain standard
 * CBOR: no records, no tagged typed arrays, maps as Map (integer keys stay
 * integers). One instance per Connection; it holds cbor-x's scratch buffer.
 */
export class HeaderCodec {
  readonly #cbor = new Encoder({
    useRecords: false,
    mapsAsObjects: false,
    tagUint8Array: false,
    variableMapSize: true,
    pack: false,
    bundleStrings: false,
  });

  /** Encodes a header map. The result is a fresh copy the caller owns. */
  encode(header: Map<number, HeaderValue>): Buffer {
    return Buffer.from(this.encodeView(header));
  }

  /** Encodes a header map into cbor-x's scratch buffer: valid only until the next encode. */
  encodeView(header: Map<number, HeaderValue>): Buffer {
    return this.#cbor.encode(header);
  }

  /** Checks then decodes a header map; throws MESH_ERR_PROTOCOL on anything else. */
  decode(bytes: Uint8Array): Map<number, HeaderValue> {
    checkHeaderCbor(bytes);
    let value: unknown;
    try {
      value = this.#cbor.decode(bytes);
    } catch (cause) {
      throw new MeshError('MESH_ERR_PROTOCOL', 'malformed header CBOR', { cause });
    }
    if (!(value instanceof Map)) throw new MeshError('MESH_ERR_PROTOCOL', 'header is not a map');
    return value as Map<number, HeaderValue>;
  }
}
