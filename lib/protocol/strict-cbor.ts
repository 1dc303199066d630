/**
 * Header CBOR: a small, strict codec for the one kind of CBOR meshd speaks.
 *
 * Envelope headers are standard CBOR (RFC 8949) built from unsigned
 * integers, byte strings, text strings, arrays, maps with unsigned integer
 * keys, false, true and null only (docs/protocol.md, "5. Envelope"). This
 * module encodes exactly that subset and decodes it in one bounded pass that
 * refuses everything else: tags, indefinite lengths, floats, negative
 * integers, other simple values, non-integer or duplicate map keys, invalid
 * UTF-8, nesting deeper than {@link MAX_DEPTH}, more than {@link MAX_ITEMS}
 * items, lengths past the end and trailing bytes. No general-purpose CBOR
 * library is involved, so no extension of one can run on hostile input.
 *
 * Pure code: no I/O. The encoder writes the shortest form of every length
 * and integer; the decoder also accepts longer forms.
 */
import { MeshError } from '../errors.ts';

/** Deepest nesting a header may have (the map itself is depth 1). */
export const MAX_DEPTH = 5;
/** Most data items a header may contain, counting every nested item and every map key. */
export const MAX_ITEMS = 4096;

const MAJOR_UINT = 0;
const MAJOR_NEGATIVE = 1;
const MAJOR_BYTES = 2;
const MAJOR_TEXT = 3;
const MAJOR_ARRAY = 4;
const MAJOR_MAP = 5;
const MAJOR_SIMPLE = 7;
const SIMPLE_FALSE = 20;
const SIMPLE_TRUE = 21;
const SIMPLE_NULL = 22;

/** A value in a header: the CBOR subset as JavaScript values. */
export type HeaderValue = number | boolean | null | string | Uint8Array | HeaderValue[] | Map<number, HeaderValue>;

function fail(message: string): never {
  throw new MeshError('MESH_ERR_PROTOCOL', `malformed header CBOR: ${message}`);
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Decodes one header item by item; a class so nothing is re-created per item. */
class Reader {
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

  text(length: number): string {
    const bytes = this.bytes;
    const start = this.pos;
    const end = start + length;
    if (length > 32) return this.utf8(start, end);
    // Short strings (names, codes, addresses) are ASCII: no decoder call for them.
    let ascii = '';
    for (let i = start; i < end; i++) {
      const b = bytes[i]!;
      if (b >= 0x80) return this.utf8(start, end);
      ascii += String.fromCharCode(b);
    }
    return ascii;
  }

  utf8(start: number, end: number): string {
    try {
      return utf8.decode(this.bytes.subarray(start, end));
    } catch {
      return fail('text string is not valid UTF-8');
    }
  }

  item(depth: number): HeaderValue {
    if (depth > MAX_DEPTH) fail(`nesting deeper than ${MAX_DEPTH}`);
    if (++this.items > MAX_ITEMS) fail(`more than ${MAX_ITEMS} items`);
    const bytes = this.bytes;
    if (this.pos >= bytes.length) fail('truncated item');
    const initial = bytes[this.pos++]!;
    const major = initial >> 5;
    const info = initial & 0x1f;
    switch (major) {
      case MAJOR_UINT:
        return this.argument(info);
      case MAJOR_BYTES:
      case MAJOR_TEXT: {
        const length = this.argument(info);
        if (this.pos + length > bytes.length) fail('string runs past the end');
        const start = this.pos;
        // A plain Uint8Array view: subarray() of a Buffer would go through Buffer's species constructor, several times slower.
        const value = major === MAJOR_BYTES ? new Uint8Array(bytes.buffer, bytes.byteOffset + start, length) : this.text(length);
        this.pos = start + length;
        return value;
      }
      case MAJOR_ARRAY: {
        const count = this.argument(info);
        if (count > bytes.length - this.pos) fail('array longer than the header');
        if (count > MAX_ITEMS - this.items) fail(`more than ${MAX_ITEMS} items`);
        const array: HeaderValue[] = new Array<HeaderValue>(count);
        for (let i = 0; i < count; i++) array[i] = this.item(depth + 1);
        return array;
      }
      case MAJOR_MAP:
        return this.map(info, depth);
      case MAJOR_SIMPLE:
        if (info === SIMPLE_FALSE) return false;
        if (info === SIMPLE_TRUE) return true;
        if (info === SIMPLE_NULL) return null;
        return fail(info >= 25 && info <= 27 ? 'floats are not allowed' : `simple value ${info} not allowed`);
      default:
        return fail(major === MAJOR_NEGATIVE ? 'negative integers are not allowed' : 'tags are not allowed');
    }
  }

  map(info: number, depth: number): Map<number, HeaderValue> {
    const bytes = this.bytes;
    const count = this.argument(info);
    if (count * 2 > bytes.length - this.pos) fail('map longer than the header');
    if (count * 2 > MAX_ITEMS - this.items) fail(`more than ${MAX_ITEMS} items`);
    const map = new Map<number, HeaderValue>();
    for (let i = 0; i < count; i++) {
      if (this.pos >= bytes.length) fail('truncated map');
      if (bytes[this.pos]! >> 5 !== MAJOR_UINT) fail('map keys must be unsigned integers');
      if (++this.items > MAX_ITEMS) fail(`more than ${MAX_ITEMS} items`);
      const key = this.argument(bytes[this.pos++]! & 0x1f);
      if (map.has(key)) fail(`duplicate map key ${key}`);
      map.set(key, this.item(depth + 1));
    }
    return map;
  }
}

/**
 * Decodes `bytes` as exactly one header map. Throws MESH_ERR_PROTOCOL
 * naming the first problem. Byte strings in the result are views of `bytes`.
 */
export function decodeHeader(bytes: Uint8Array): Map<number, HeaderValue> {
  if (bytes.length === 0) fail('empty header');
  const initial = bytes[0]!;
  if (initial >> 5 !== MAJOR_MAP) fail('header is not a map');
  const reader = new Reader(bytes);
  reader.pos = 1;
  reader.items = 1;
  const map = reader.map(initial & 0x1f, 1);
  if (reader.pos !== bytes.length) fail(`${bytes.length - reader.pos} trailing bytes after the header map`);
  return map;
}

/**
 * Checks that `bytes` hold exactly one CBOR map in the header subset.
 * Throws MESH_ERR_PROTOCOL naming the first problem.
 */
export function checkHeaderCbor(bytes: Uint8Array): void {
  decodeHeader(bytes);
}

/** Initial size of an encoder's scratch buffer; it doubles as needed. */
const INITIAL_SCRATCH = 1024;
/** Largest scratch buffer kept from one encode to the next. */
const KEEP_SCRATCH = 16 * 1024;

/**
 * Encodes header maps into a scratch buffer that it reuses, so one instance
 * per connection. Throws MESH_ERR_PROTOCOL for a value outside the subset
 * (a negative or fractional number, undefined, an object): that is a bug in
 * the caller, never something a peer can cause.
 */
export class HeaderCodec {
  #buf = Buffer.allocUnsafe(INITIAL_SCRATCH);
  #pos = 0;

  /** Encodes a header map. The result is a fresh copy the caller owns. */
  encode(header: Map<number, HeaderValue>): Buffer {
    return Buffer.from(this.encodeView(header));
  }

  /** Encodes a header map into the scratch buffer: valid only until the next encode. */
  encodeView(header: Map<number, HeaderValue>): Buffer {
    // A rare large header (a long DISPATCHED batch) does not pin a large buffer for the connection's life.
    if (this.#buf.length > KEEP_SCRATCH) this.#buf = Buffer.allocUnsafe(INITIAL_SCRATCH);
    this.#pos = 0;
    this.#map(header);
    return this.#buf.subarray(0, this.#pos);
  }

  /** Checks then decodes a header map; throws MESH_ERR_PROTOCOL on anything else. */
  decode(bytes: Uint8Array): Map<number, HeaderValue> {
    return decodeHeader(bytes);
  }

  #reserve(n: number): void {
    if (this.#pos + n <= this.#buf.length) return;
    let size = this.#buf.length * 2;
    while (size < this.#pos + n) size *= 2;
    const bigger = Buffer.allocUnsafe(size);
    this.#buf.copy(bigger, 0, 0, this.#pos);
    this.#buf = bigger;
  }

  /** Writes an initial byte and its argument in the shortest form. */
  #head(major: number, value: number): void {
    this.#reserve(9);
    const buf = this.#buf;
    const m = major << 5;
    let p = this.#pos;
    if (value < 24) {
      buf[p++] = m | value;
    } else if (value <= 0xff) {
      buf[p++] = m | 24;
      buf[p++] = value;
    } else if (value <= 0xffff) {
      buf[p++] = m | 25;
      buf[p++] = value >>> 8;
      buf[p++] = value & 0xff;
    } else if (value <= 0xffffffff) {
      buf[p++] = m | 26;
      buf.writeUInt32BE(value, p);
      p += 4;
    } else {
      buf[p++] = m | 27;
      buf.writeUInt32BE(Math.floor(value / 0x1_0000_0000), p);
      buf.writeUInt32BE(value >>> 0, p + 4);
      p += 8;
    }
    this.#pos = p;
  }

  #map(map: Map<number, HeaderValue>): void {
    this.#head(MAJOR_MAP, map.size);
    for (const [key, value] of map) {
      this.#uint(key);
      this.#value(value);
    }
  }

  #uint(value: number): void {
    if (!Number.isSafeInteger(value) || value < 0) {
      throw new MeshError('MESH_ERR_PROTOCOL', `cannot encode ${value} in a header: only unsigned integers up to 2^53 - 1`);
    }
    this.#head(MAJOR_UINT, value);
  }

  #text(value: string): void {
    const length = value.length;
    let ascii = true;
    for (let i = 0; i < length; i++) {
      if (value.charCodeAt(i) >= 0x80) {
        ascii = false;
        break;
      }
    }
    if (!ascii) {
      const size = Buffer.byteLength(value, 'utf8');
      this.#head(MAJOR_TEXT, size);
      this.#reserve(size);
      this.#pos += this.#buf.write(value, this.#pos, 'utf8');
      return;
    }
    this.#head(MAJOR_TEXT, length);
    this.#reserve(length);
    const buf = this.#buf;
    let p = this.#pos;
    for (let i = 0; i < length; i++) buf[p++] = value.charCodeAt(i);
    this.#pos = p;
  }

  #value(value: HeaderValue): void {
    if (typeof value === 'number') {
      this.#uint(value);
    } else if (typeof value === 'string') {
      this.#text(value);
    } else if (typeof value === 'boolean') {
      this.#reserve(1);
      this.#buf[this.#pos++] = (MAJOR_SIMPLE << 5) | (value ? SIMPLE_TRUE : SIMPLE_FALSE);
    } else if (value === null) {
      this.#reserve(1);
      this.#buf[this.#pos++] = (MAJOR_SIMPLE << 5) | SIMPLE_NULL;
    } else if (value instanceof Uint8Array) {
      this.#head(MAJOR_BYTES, value.length);
      this.#reserve(value.length);
      this.#buf.set(value, this.#pos);
      this.#pos += value.length;
    } else if (Array.isArray(value)) {
      this.#head(MAJOR_ARRAY, value.length);
      for (const item of value) this.#value(item);
    } else if (value instanceof Map) {
      this.#map(value);
    } else {
      throw new MeshError('MESH_ERR_PROTOCOL', `cannot encode a ${typeof value} in a header`);
    }
  }
}
