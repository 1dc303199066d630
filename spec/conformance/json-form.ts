// The conformance kit's JSON forms (conformance/README.md) read the way
// another implementation would: a message or HELLO object in the kit's form
// to meshd's types and back. Byte strings are lowercase hex; which fields are
// byte strings is fixed by the README, not taken from the generator.
import type { Message } from '../../lib/protocol/messages.ts';
import type { Hello, RoleName } from '../../lib/protocol/hello.ts';

/** A JSON value as JSON.parse returns it. */
export type Json = string | number | boolean | null | Json[] | { [key: string]: Json };

/** Fields that hold byte strings, at any depth (brokers, view and dispatched entries included). */
const BYTE_FIELDS = new Set(['id', 'worker', 'sender', 'to', 'brokerId', 'bootId', 'payload']);

export const unhex = (s: string): Buffer => {
  if (!/^(?:[0-9a-f]{2})*$/.test(s)) throw new Error(`not lowercase hex: ${s.slice(0, 40)}`);
  return Buffer.from(s, 'hex');
};
export const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

function fromJsonValue(v: Json, field?: string): unknown {
  if (field !== undefined && BYTE_FIELDS.has(field)) {
    if (typeof v !== 'string') throw new Error(`field ${field} must be a hex string`);
    return new Uint8Array(unhex(v));
  }
  if (Array.isArray(v)) return v.map((x) => fromJsonValue(x));
  if (v !== null && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, fromJsonValue(x, k)]));
  return v;
}

/** A message in the kit's JSON form as a meshd Message. */
export function messageFromJson(json: Json): Message {
  return fromJsonValue(json) as Message;
}

/** A meshd message (or any value) in the kit's JSON form: bytes as hex, undefined fields left out. */
export function toJson(v: unknown): Json {
  if (v instanceof Uint8Array) return hex(v);
  if (Array.isArray(v)) return v.map(toJson);
  if (v !== null && typeof v === 'object') {
    return Object.fromEntries(Object.entries(v as Record<string, unknown>).filter(([, x]) => x !== undefined).map(([k, x]) => [k, toJson(x)]));
  }
  return v as Json;
}

/** The kit's JSON view of a HELLO's fields. */
export interface HelloJson {
  readonly role: string;
  readonly name?: string;
  readonly bootId?: string;
  readonly version: { readonly major: number; readonly minor: number };
  readonly heartbeat: { readonly idleMs: number; readonly activeMs: number; readonly deadMs: number };
  readonly maxPayload: number;
}

/** A HELLO's JSON view as a meshd Hello. */
export function helloFromJson(j: HelloJson): Hello {
  return {
    role: j.role as RoleName,
    name: j.name,
    bootId: j.bootId === undefined ? undefined : new Uint8Array(unhex(j.bootId)),
    version: { ...j.version },
    heartbeat: { ...j.heartbeat },
    maxPayload: j.maxPayload,
  };
}
