/**
 * The message types of wire protocol v1 (docs/protocol.md#6-messages) as a
 * tagged union, and their mapping to and from envelope header maps.
 *
 * Pure code: no I/O. Decoding validates every field (type, length, range) and
 * throws MESH_ERR_PROTOCOL naming the message and the field.
 */
import { MeshError } from '../errors.ts';
import type { HeaderValue } from './strict-cbor.ts';

/** Wire numbers of the message types (header key 0). */
export const MessageType = {
  WELCOME: 1,
  READY: 2,
  CANCEL: 3,
  REQUEST: 4,
  DISPATCHED: 5,
  REPLY: 6,
  ERROR: 7,
  REFUSED: 8,
  PING: 9,
  PONG: 10,
  BROKERS: 11,
  DRAIN: 12,
  GOSSIP: 13,
} as const;

/** A message type name, as used on the wire and in code. */
export type MessageTypeName = keyof typeof MessageType;

/**
 * Length of a text in UTF-8 bytes: the unit of every text limit of the
 * protocol (names, ERROR text: CDDL `tstr .size`).
 */
export function utf8Length(text: string): number {
  return Buffer.byteLength(text, 'utf8');
}

/** The longest prefix of `text` that is at most `maxBytes` UTF-8 bytes, never cutting a character in two. */
export function truncateUtf8(text: string, maxBytes: number): string {
  // Every UTF-16 code unit takes one to three UTF-8 bytes.
  if (text.length * 3 <= maxBytes) return text;
  const bytes = Buffer.from(text, 'utf8');
  if (bytes.length <= maxBytes) return text;
  let end = maxBytes;
  // bytes[end] is the first byte left out: while it continues a character, leave that whole character out.
  while (end > 0 && (bytes[end]! & 0xc0) === 0x80) end--;
  return bytes.subarray(0, end).toString('utf8');
}

/** Integer keys of the envelope header map. */
export const HeaderKey = {
  type: 0,
  id: 1,
  service: 2,
  attempt: 3,
  dup: 4,
  ttl: 5,
  worker: 6,
  sender: 7,
  senderName: 8,
  credits: 9,
  code: 10,
  retryable: 11,
  text: 12,
  brokers: 13,
  brokerId: 14,
  bootId: 15,
  dispatched: 16,
  view: 17,
  to: 18,
  incarnation: 19,
  trace: 20,
} as const;

/** Longest trace context (key 20), bytes. */
export const MAX_TRACE_LENGTH = 256;
/** A trace context: printable ASCII without space, e.g. a W3C `traceparent` (docs/protocol.md#header-keys). */
export const TRACE = /^[\x21-\x7e]{1,256}$/;

/** Length of a request id in bytes. */
export const REQUEST_ID_LENGTH = 16;
/** Length of a boot id in bytes. */
export const BOOT_ID_LENGTH = 16;
/** Length of a static public key in bytes. */
export const KEY_LENGTH = 32;
/** Longest service or party name, in UTF-16 code units (all ASCII for services). */
export const MAX_NAME_LENGTH = 128;
/** Longest ERROR text. */
export const MAX_ERROR_TEXT = 1024;
/** Most entries in a DISPATCHED message. */
export const MAX_DISPATCHED = 1024;
/** Most brokers in a BROKERS, WELCOME or GOSSIP list. */
export const MAX_BROKERS = 256;
/** Most addresses per broker. */
export const MAX_ADDRESSES = 8;
/** Highest incarnation number: a rule of wire protocol v1 (`incarnation = uint .le 4294967295`, docs/protocol.md#header-keys); header CBOR itself could carry up to 2^53 - 1. */
export const MAX_INCARNATION = 2 ** 32 - 1;
/** Highest attempt number. */
export const MAX_ATTEMPT = 255;
/** Highest ttl in ms (about 24 days, the range of a Node timer). */
export const MAX_TTL = 2 ** 31 - 1;
/** Most credits in one READY. */
export const MAX_CREDITS = 65535;

/** Service names: a letter or digit, then letters, digits and `._:/-`. */
export const SERVICE_NAME = /^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$/;

/** One broker as announced in WELCOME, BROKERS and GOSSIP. */
export interface BrokerInfo {
  /** The broker's static public key (its id). */
  readonly id: Uint8Array;
  /** `host:port` strings it announces (its advertised address, else its listen address). */
  readonly addresses: readonly string[];
  /** Random per process start. */
  readonly bootId: Uint8Array;
  /** Bumped to refute suspicion. */
  readonly incarnation: number;
}

/** Status of a broker in a GOSSIP view. */
export const BrokerStatus = { alive: 0, suspect: 1, leaving: 2, dead: 3 } as const;
/** A broker status name. */
export type BrokerStatusName = keyof typeof BrokerStatus;

/** One entry of a GOSSIP view. */
export interface ViewEntry extends BrokerInfo {
  readonly status: BrokerStatusName;
  /** Whether the sender can reach this broker now. */
  readonly reachable: boolean;
}

/** One request id and the worker it went to. */
export interface Dispatch {
  readonly id: Uint8Array;
  readonly worker: Uint8Array;
}

/** B→N: accepted; the broker's id, boot id and the current broker list. */
export interface WelcomeMessage { readonly type: 'WELCOME'; readonly brokerId: Uint8Array; readonly bootId: Uint8Array; readonly brokers: readonly BrokerInfo[] }
/** W→B: offer a service and grant credits. */
export interface ReadyMessage { readonly type: 'READY'; readonly service: string; readonly credits: number }
/** W→B: withdraw a service. */
export interface CancelMessage { readonly type: 'CANCEL'; readonly service: string }
/** C→B→W: a request. `sender`/`senderName` are stamped by the broker. */
export interface RequestMessage {
  readonly type: 'REQUEST';
  readonly id: Uint8Array;
  readonly service: string;
  readonly attempt: number;
  readonly dup: boolean;
  readonly ttl: number;
  readonly worker?: Uint8Array | undefined;
  readonly sender?: Uint8Array | undefined;
  readonly senderName?: string | undefined;
  /** Trace context, carried untouched from client to worker (e.g. a W3C `traceparent`). */
  readonly trace?: string | undefined;
  readonly payload: Uint8Array;
}
/** B→C: which request ids went to which worker. */
export interface DispatchedMessage { readonly type: 'DISPATCHED'; readonly dispatched: readonly Dispatch[] }
/** W→B→C: the reply. `to` addresses the client when sent through another broker; `worker` is stamped by the broker. */
export interface ReplyMessage {
  readonly type: 'REPLY';
  readonly id: Uint8Array;
  readonly to?: Uint8Array | undefined;
  readonly worker?: Uint8Array | undefined;
  /** Trace context, carried untouched from worker to client. */
  readonly trace?: string | undefined;
  readonly payload: Uint8Array;
}
/** Any direction: an error, about a request when `id` is set. */
export interface ErrorMessage {
  readonly type: 'ERROR';
  readonly id?: Uint8Array | undefined;
  readonly code: string;
  readonly retryable: boolean;
  readonly text: string;
  readonly to?: Uint8Array | undefined;
}
/** W→B: cannot take this request now; re-dispatch it. B→C: handed back before any worker saw it; resend elsewhere. */
export interface RefusedMessage { readonly type: 'REFUSED'; readonly id: Uint8Array }
/** Liveness probe. */
export interface PingMessage { readonly type: 'PING' }
/** Liveness answer. */
export interface PongMessage { readonly type: 'PONG' }
/** B→N: the agreed list of live brokers. */
export interface BrokersMessage { readonly type: 'BROKERS'; readonly brokers: readonly BrokerInfo[] }
/** B→N: this broker is leaving; send nothing new here. */
export interface DrainMessage { readonly type: 'DRAIN' }
/** B↔B: one quorum round, the sender's view. */
export interface GossipMessage { readonly type: 'GOSSIP'; readonly bootId: Uint8Array; readonly incarnation: number; readonly view: readonly ViewEntry[] }

/** Every message of wire protocol v1. */
export type Message =
  | WelcomeMessage | ReadyMessage | CancelMessage | RequestMessage | DispatchedMessage | ReplyMessage
  | ErrorMessage | RefusedMessage | PingMessage | PongMessage | BrokersMessage | DrainMessage | GossipMessage;

/** Messages that carry a payload after the header. */
export type PayloadMessage = RequestMessage | ReplyMessage;

const EMPTY = new Uint8Array(0);
const TYPE_NAMES = new Map<number, MessageTypeName>(Object.entries(MessageType).map(([name, n]) => [n, name as MessageTypeName]));
const STATUS_NAMES = new Map<number, BrokerStatusName>(Object.entries(BrokerStatus).map(([name, n]) => [n, name as BrokerStatusName]));
const ERROR_CODE = /^MESH_ERR_[A-Z0-9_]{1,54}$/;
/** An announced address: 1 to 262 printable ASCII characters (0x21..0x7e), no `/` or `@` (docs/protocol.md#header-keys). */
const ADDRESS = /^[\x21-\x2e\x30-\x3f\x41-\x7e]{1,262}$/;

// ---------------------------------------------------------------- encoding

function brokerInfoToArray(b: BrokerInfo): HeaderValue[] {
  return [b.id, [...b.addresses], b.bootId, b.incarnation];
}

/** The header map of a message (without payload), keys in ascending order (docs/protocol.md#header-keys). */
export function messageToHeader(msg: Message): Map<number, HeaderValue> {
  const h = new Map<number, HeaderValue>([[HeaderKey.type, MessageType[msg.type]]]);
  switch (msg.type) {
    case 'WELCOME':
      h.set(HeaderKey.brokers, msg.brokers.map(brokerInfoToArray)).set(HeaderKey.brokerId, msg.brokerId).set(HeaderKey.bootId, msg.bootId);
      break;
    case 'READY':
      h.set(HeaderKey.service, msg.service).set(HeaderKey.credits, msg.credits);
      break;
    case 'CANCEL':
      h.set(HeaderKey.service, msg.service);
      break;
    case 'REQUEST':
      h.set(HeaderKey.id, msg.id).set(HeaderKey.service, msg.service).set(HeaderKey.attempt, msg.attempt).set(HeaderKey.dup, msg.dup).set(HeaderKey.ttl, msg.ttl);
      if (msg.worker) h.set(HeaderKey.worker, msg.worker);
      if (msg.sender) h.set(HeaderKey.sender, msg.sender);
      if (msg.senderName !== undefined) h.set(HeaderKey.senderName, msg.senderName);
      if (msg.trace !== undefined) h.set(HeaderKey.trace, msg.trace);
      break;
    case 'DISPATCHED':
      h.set(HeaderKey.dispatched, msg.dispatched.map((d) => [d.id, d.worker]));
      break;
    case 'REPLY':
      h.set(HeaderKey.id, msg.id);
      if (msg.worker) h.set(HeaderKey.worker, msg.worker);
      if (msg.to) h.set(HeaderKey.to, msg.to);
      if (msg.trace !== undefined) h.set(HeaderKey.trace, msg.trace);
      break;
    case 'ERROR':
      if (msg.id) h.set(HeaderKey.id, msg.id);
      h.set(HeaderKey.code, msg.code).set(HeaderKey.retryable, msg.retryable).set(HeaderKey.text, msg.text);
      if (msg.to) h.set(HeaderKey.to, msg.to);
      break;
    case 'REFUSED':
      h.set(HeaderKey.id, msg.id);
      break;
    case 'BROKERS':
      h.set(HeaderKey.brokers, msg.brokers.map(brokerInfoToArray));
      break;
    case 'GOSSIP':
      h.set(HeaderKey.bootId, msg.bootId)
        .set(HeaderKey.view, msg.view.map((v) => [...brokerInfoToArray(v), BrokerStatus[v.status], v.reachable]))
        .set(HeaderKey.incarnation, msg.incarnation);
      break;
    case 'PING':
    case 'PONG':
    case 'DRAIN':
      break;
  }
  return h;
}

/** The payload bytes of a message (empty for messages without one). */
export function messagePayload(msg: Message): Uint8Array {
  return msg.type === 'REQUEST' || msg.type === 'REPLY' ? msg.payload : EMPTY;
}

// ---------------------------------------------------------------- decoding

/** Reads typed fields out of one header map, failing with the message and field name. */
class FieldReader {
  readonly #h: Map<number, HeaderValue>;
  readonly #type: string;
  /** Bit k set: header key k is defined for this message type (all keys are < 32). */
  #allowed = 1 << HeaderKey.type;

  constructor(header: Map<number, HeaderValue>, type: string) {
    this.#h = header;
    this.#type = type;
  }

  fail(field: string, problem: string): never {
    throw new MeshError('MESH_ERR_PROTOCOL', `${this.#type}: field ${field} ${problem}`);
  }

  #get(name: keyof typeof HeaderKey, required: boolean): HeaderValue | undefined {
    const key = HeaderKey[name];
    this.#allowed |= 1 << key;
    const v = this.#h.get(key);
    if (v === undefined && required) this.fail(name, 'is missing');
    return v;
  }

  bytes(name: keyof typeof HeaderKey, length: number): Uint8Array;
  bytes(name: keyof typeof HeaderKey, length: number, optional: true): Uint8Array | undefined;
  bytes(name: keyof typeof HeaderKey, length: number, optional = false): Uint8Array | undefined {
    const v = this.#get(name, !optional);
    if (v === undefined) return undefined;
    return checkBytes(v, length, (p) => this.fail(name, p));
  }

  uint(name: keyof typeof HeaderKey, min: number, max: number): number {
    const v = this.#get(name, true);
    return checkUint(v, min, max, (p) => this.fail(name, p));
  }

  bool(name: keyof typeof HeaderKey): boolean {
    const v = this.#get(name, true);
    if (typeof v !== 'boolean') this.fail(name, 'is not a boolean');
    return v;
  }

  text(name: keyof typeof HeaderKey, max: number, pattern?: RegExp): string;
  text(name: keyof typeof HeaderKey, max: number, pattern: RegExp | undefined, optional: true): string | undefined;
  text(name: keyof typeof HeaderKey, max: number, pattern?: RegExp, optional = false): string | undefined {
    const v = this.#get(name, !optional);
    if (v === undefined) return undefined;
    if (typeof v !== 'string') this.fail(name, 'is not a text string');
    if (v.length > max || (v.length * 3 > max && utf8Length(v) > max)) this.fail(name, `is longer than ${max} UTF-8 bytes`);
    if (pattern && !pattern.test(v)) this.fail(name, `has an invalid value ${JSON.stringify(v.slice(0, 64))}`);
    return v;
  }

  array(name: keyof typeof HeaderKey, max: number): HeaderValue[] {
    const v = this.#get(name, true);
    if (!Array.isArray(v)) this.fail(name, 'is not an array');
    if (v.length > max) this.fail(name, `has more than ${max} entries`);
    return v;
  }

  /** Fails on any key this message type does not define. */
  done(): void {
    for (const key of this.#h.keys()) {
      if (key >= 32 || (this.#allowed & (1 << key)) === 0) throw new MeshError('MESH_ERR_PROTOCOL', `${this.#type}: unexpected header key ${key}`);
    }
  }
}

function checkBytes(v: HeaderValue | undefined, length: number, fail: (problem: string) => never): Uint8Array {
  if (!(v instanceof Uint8Array)) fail('is not a byte string');
  if (v.length !== length) fail(`has ${v.length} bytes, expected ${length}`);
  // Copy: the decoded bytes are a view of the whole decrypted message.
  return new Uint8Array(v);
}

function checkUint(v: HeaderValue | undefined, min: number, max: number, fail: (problem: string) => never): number {
  if (typeof v !== 'number' || !Number.isInteger(v)) fail('is not an unsigned integer');
  if (v < min || v > max) fail(`is ${v}, outside ${min}..${max}`);
  return v;
}

function readBrokerInfo(v: HeaderValue, fail: (problem: string) => never, extra = 0): HeaderValue[] {
  if (!Array.isArray(v) || v.length !== 4 + extra) fail(`entry is not a ${4 + extra}-element array`);
  return v;
}

function toBrokerInfo(a: HeaderValue[], fail: (problem: string) => never): BrokerInfo {
  const addresses = a[1];
  if (!Array.isArray(addresses) || addresses.length === 0 || addresses.length > MAX_ADDRESSES) fail(`entry addresses must be 1..${MAX_ADDRESSES} strings`);
  for (const addr of addresses) {
    if (typeof addr !== 'string' || !ADDRESS.test(addr)) fail('entry has an invalid address');
  }
  return {
    id: checkBytes(a[0], KEY_LENGTH, (p) => fail(`entry id ${p}`)),
    addresses: addresses as string[],
    bootId: checkBytes(a[2], BOOT_ID_LENGTH, (p) => fail(`entry boot id ${p}`)),
    incarnation: checkUint(a[3], 0, MAX_INCARNATION, (p) => fail(`entry incarnation ${p}`)),
  };
}

function readBrokers(r: FieldReader): BrokerInfo[] {
  const fail: (p: string) => never = (p) => r.fail('brokers', p);
  return r.array('brokers', MAX_BROKERS).map((v) => toBrokerInfo(readBrokerInfo(v, fail), fail));
}

/**
 * Builds a validated message from a decoded header map and the payload.
 * Throws MESH_ERR_PROTOCOL for an unknown type, a missing, mistyped,
 * out-of-range or unexpected field, or a payload on a message that has none.
 */
export function headerToMessage(header: Map<number, HeaderValue>, payload: Uint8Array): Message {
  const t = header.get(HeaderKey.type);
  const type = typeof t === 'number' ? TYPE_NAMES.get(t) : undefined;
  if (type === undefined) throw new MeshError('MESH_ERR_PROTOCOL', `unknown message type ${JSON.stringify(t ?? null)}`);
  if (payload.length > 0 && type !== 'REQUEST' && type !== 'REPLY') {
    throw new MeshError('MESH_ERR_PROTOCOL', `${type}: carries a ${payload.length}-byte payload, but has none`);
  }
  const r = new FieldReader(header, type);
  let msg: Message;
  switch (type) {
    case 'WELCOME':
      msg = { type, brokerId: r.bytes('brokerId', KEY_LENGTH), bootId: r.bytes('bootId', BOOT_ID_LENGTH), brokers: readBrokers(r) };
      break;
    case 'READY':
      msg = { type, service: r.text('service', MAX_NAME_LENGTH, SERVICE_NAME), credits: r.uint('credits', 0, MAX_CREDITS) };
      break;
    case 'CANCEL':
      msg = { type, service: r.text('service', MAX_NAME_LENGTH, SERVICE_NAME) };
      break;
    case 'REQUEST':
      msg = {
        type,
        id: r.bytes('id', REQUEST_ID_LENGTH),
        service: r.text('service', MAX_NAME_LENGTH, SERVICE_NAME),
        attempt: r.uint('attempt', 1, MAX_ATTEMPT),
        dup: r.bool('dup'),
        ttl: r.uint('ttl', 0, MAX_TTL),
        worker: r.bytes('worker', KEY_LENGTH, true),
        sender: r.bytes('sender', KEY_LENGTH, true),
        senderName: r.text('senderName', MAX_NAME_LENGTH, undefined, true),
        trace: r.text('trace', MAX_TRACE_LENGTH, TRACE, true),
        payload,
      };
      break;
    case 'DISPATCHED': {
      const fail: (p: string) => never = (p) => r.fail('dispatched', p);
      msg = {
        type,
        dispatched: r.array('dispatched', MAX_DISPATCHED).map((v) => {
          if (!Array.isArray(v) || v.length !== 2) fail('entry is not an [id, worker] pair');
          return { id: checkBytes(v[0], REQUEST_ID_LENGTH, (p) => fail(`entry id ${p}`)), worker: checkBytes(v[1], KEY_LENGTH, (p) => fail(`entry worker ${p}`)) };
        }),
      };
      break;
    }
    case 'REPLY':
      msg = { type, id: r.bytes('id', REQUEST_ID_LENGTH), to: r.bytes('to', KEY_LENGTH, true), worker: r.bytes('worker', KEY_LENGTH, true), trace: r.text('trace', MAX_TRACE_LENGTH, TRACE, true), payload };
      break;
    case 'ERROR':
      msg = {
        type,
        id: r.bytes('id', REQUEST_ID_LENGTH, true),
        code: r.text('code', 64, ERROR_CODE),
        retryable: r.bool('retryable'),
        text: r.text('text', MAX_ERROR_TEXT),
        to: r.bytes('to', KEY_LENGTH, true),
      };
      break;
    case 'REFUSED':
      msg = { type, id: r.bytes('id', REQUEST_ID_LENGTH) };
      break;
    case 'BROKERS':
      msg = { type, brokers: readBrokers(r) };
      break;
    case 'GOSSIP': {
      const fail: (p: string) => never = (p) => r.fail('view', p);
      msg = {
        type,
        bootId: r.bytes('bootId', BOOT_ID_LENGTH),
        incarnation: r.uint('incarnation', 0, MAX_INCARNATION),
        view: r.array('view', MAX_BROKERS).map((v) => {
          const a = readBrokerInfo(v, fail, 2);
          const status = typeof a[4] === 'number' ? STATUS_NAMES.get(a[4]) : undefined;
          if (status === undefined) fail('entry has an unknown status');
          if (typeof a[5] !== 'boolean') fail('entry reachable is not a boolean');
          return { ...toBrokerInfo(a, fail), status, reachable: a[5] };
        }),
      };
      break;
    }
    case 'PING':
    case 'PONG':
    case 'DRAIN':
      msg = { type };
      break;
  }
  r.done();
  return msg;
}
