/**
 * HELLO: the CBOR maps carried as handshake payloads. Message 2 carries the
 * responder's HELLO, message 3 the initiator's (message 1's payload is empty).
 *
 *   hello = { 1: role, ? 2: name, ? 3: boot-id, 4: [major, minor],
 *             5: [idle-ms, active-ms, dead-ms], 6: [max-payload] }
 *
 * Pure code: no I/O.
 */
import { MeshError } from '../errors.ts';
import { HeaderCodec } from './strict-cbor.ts';
import type { HeaderValue } from './strict-cbor.ts';
import { BOOT_ID_LENGTH, MAX_NAME_LENGTH, utf8Length } from './messages.ts';

/** Roles a party can have. */
export const Role = { broker: 'broker', client: 'client', worker: 'worker', node: 'node' } as const;
/** A role name. */
export type RoleName = keyof typeof Role;

/** Integer keys of the HELLO map. */
export const HelloKey = { role: 1, name: 2, bootId: 3, version: 4, heartbeat: 5, limits: 6 } as const;

/** Heartbeat timers a side proposes, in ms (docs/protocol.md#7-heartbeats). */
export interface HeartbeatSettings {
  /** Ping interval on an idle connection (default 5000). */
  readonly idleMs: number;
  /** Ping after this much silence while requests are in flight (default 200). */
  readonly activeMs: number;
  /** Dead after this much silence while requests are in flight (default 600). */
  readonly deadMs: number;
}

/** Default heartbeat timers for node↔broker connections. */
export const DEFAULT_HEARTBEAT: HeartbeatSettings = { idleMs: 5000, activeMs: 200, deadMs: 600 };

/** A HELLO payload. */
export interface Hello {
  readonly role: RoleName;
  /** Human name of the party (the registry's name wins on a broker). */
  readonly name?: string | undefined;
  /** Random per process start; brokers send it (not checked on receipt, nor used yet). */
  readonly bootId?: Uint8Array | undefined;
  readonly version: { readonly major: number; readonly minor: number };
  readonly heartbeat: HeartbeatSettings;
  /** Largest payload this side accepts. */
  readonly maxPayload: number;
}

const MAX_TIMER_MS = 3_600_000;
const MAX_PAYLOAD_LIMIT = 64 * 1024 * 1024;

function fail(problem: string): never {
  throw new MeshError('MESH_ERR_HANDSHAKE', `malformed HELLO: ${problem}`);
}

function uint(v: HeaderValue | undefined, field: string, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) fail(`${field} must be an integer in ${min}..${max}`);
  return v;
}

/** Encodes a HELLO map. */
export function encodeHello(hello: Hello, codec = new HeaderCodec()): Buffer {
  const m = new Map<number, HeaderValue>([[HelloKey.role, hello.role]]);
  if (hello.name !== undefined) m.set(HelloKey.name, hello.name);
  if (hello.bootId !== undefined) m.set(HelloKey.bootId, hello.bootId);
  m.set(HelloKey.version, [hello.version.major, hello.version.minor]);
  m.set(HelloKey.heartbeat, [hello.heartbeat.idleMs, hello.heartbeat.activeMs, hello.heartbeat.deadMs]);
  m.set(HelloKey.limits, [hello.maxPayload]);
  return codec.encode(m);
}

/** Decodes and validates a HELLO; MESH_ERR_HANDSHAKE on anything malformed. */
export function decodeHello(bytes: Uint8Array, codec = new HeaderCodec()): Hello {
  let m: Map<number, HeaderValue>;
  try {
    m = codec.decode(bytes);
  } catch (cause) {
    throw new MeshError('MESH_ERR_HANDSHAKE', 'malformed HELLO: not a valid CBOR map', { cause });
  }
  for (const key of m.keys()) if (!Object.values(HelloKey).includes(key as never)) fail(`unknown key ${key}`);
  const role = m.get(HelloKey.role);
  if (typeof role !== 'string' || !Object.hasOwn(Role, role)) fail('role must be broker, client, worker or node');
  const name = m.get(HelloKey.name);
  if (name !== undefined && (typeof name !== 'string' || name.length === 0 || utf8Length(name) > MAX_NAME_LENGTH)) fail(`name must be a string of 1..${MAX_NAME_LENGTH} UTF-8 bytes`);
  const bootId = m.get(HelloKey.bootId);
  if (bootId !== undefined && (!(bootId instanceof Uint8Array) || bootId.length !== BOOT_ID_LENGTH)) fail(`boot id must be ${BOOT_ID_LENGTH} bytes`);
  // docs/protocol.md#hello: a broker says which process start it is; nodes have no boot id.
  if (role === 'broker' && bootId === undefined) fail('a broker HELLO must carry its boot id (key 3)');
  if (role !== 'broker' && bootId !== undefined) fail(`a ${role} HELLO must not carry a boot id (key 3): only brokers send one`);
  const version = m.get(HelloKey.version);
  if (!Array.isArray(version) || version.length !== 2) fail('version must be [major, minor]');
  const hb = m.get(HelloKey.heartbeat);
  if (!Array.isArray(hb) || hb.length !== 3) fail('heartbeat must be [idle, active, dead]');
  const limits = m.get(HelloKey.limits);
  if (!Array.isArray(limits) || limits.length !== 1) fail('limits must be [max-payload]');
  const heartbeat = {
    idleMs: uint(hb[0], 'heartbeat idle', 10, MAX_TIMER_MS),
    activeMs: uint(hb[1], 'heartbeat active', 10, MAX_TIMER_MS),
    deadMs: uint(hb[2], 'heartbeat dead', 10, MAX_TIMER_MS),
  };
  if (heartbeat.deadMs <= heartbeat.activeMs) fail('heartbeat dead must be longer than active');
  return {
    role: role as RoleName,
    name: name,
    bootId: bootId === undefined ? undefined : Uint8Array.prototype.slice.call(bootId),
    version: { major: uint(version[0], 'version major', 0, 255), minor: uint(version[1], 'version minor', 0, 255) },
    heartbeat,
    maxPayload: uint(limits[0], 'max payload', 0, MAX_PAYLOAD_LIMIT),
  };
}

/**
 * The heartbeat both sides run by: the faster ping intervals and the longer
 * dead timeout of the two proposals, with dead ≥ 2 × active.
 */
export function negotiateHeartbeat(a: HeartbeatSettings, b: HeartbeatSettings): HeartbeatSettings {
  const activeMs = Math.min(a.activeMs, b.activeMs);
  return { idleMs: Math.min(a.idleMs, b.idleMs), activeMs, deadMs: Math.max(a.deadMs, b.deadMs, 2 * activeMs) };
}
