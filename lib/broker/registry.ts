/**
 * The registry: who may connect to a broker and what each party may do.
 *
 * A registry is a YAML list of entries `{ key, name, role, call, serve }`
 * (docs/registry.md). This module parses and validates that text, looks
 * parties up by public key, answers "may this party call / serve that
 * service?" and computes what changed between two registries. Pure code: no
 * I/O (lib/broker/registry-file.ts reads, watches and edits the file).
 */
import { isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument } from 'yaml';
import type { Document, Node as YamlNode } from 'yaml';
import { MeshError } from '../errors.ts';
import { decodeKey, ENCODED_KEY_LEN } from '../crypto/keys.ts';
import { Role } from '../protocol/hello.ts';
import type { RoleName } from '../protocol/hello.ts';
import { MAX_NAME_LENGTH, SERVICE_NAME, utf8Length } from '../protocol/messages.ts';

/** One party in the registry. */
export interface RegistryEntry {
  /** The party's X25519 public key, base64url (43 characters, canonical). */
  readonly key: string;
  /** The same key, 32 bytes. */
  readonly publicKey: Uint8Array;
  /** The party's name (unique in the registry); used in logs and stamped on requests. */
  readonly name: string;
  /** What the party is: `broker`, `client`, `worker` or `node` (client and worker). */
  readonly role: RoleName;
  /** Service globs the party may call (clients and nodes). */
  readonly call: readonly string[];
  /** Service globs the party may serve (workers and nodes). */
  readonly serve: readonly string[];
}

/** An entry as written by a person or a program, before validation. */
export interface RegistryEntryInit {
  /** Base64url X25519 public key. */
  readonly key: string;
  /** Unique name, 1..128 UTF-8 bytes. */
  readonly name: string;
  /** `broker`, `client`, `worker` or `node`. */
  readonly role: RoleName;
  /** Service globs the party may call; clients and nodes only. */
  readonly call?: readonly string[] | undefined;
  /** Service globs the party may serve; workers and nodes only. */
  readonly serve?: readonly string[] | undefined;
}

/** What changed from one registry to the next, as base64url keys. */
export interface RegistryDiff {
  /** Keys in the old registry and not in the new one: their connections must be closed. */
  readonly removed: string[];
  /** Keys in both whose name, role, call or serve rules changed: re-check their sessions. */
  readonly changed: string[];
  /** Keys only in the new registry. */
  readonly added: string[];
}

/** The fields an entry may have. */
export const REGISTRY_ENTRY_FIELDS = ['key', 'name', 'role', 'call', 'serve'] as const;

/** Characters a service glob may contain: those of service names, plus `*`. */
const GLOB_CHARS = /^[A-Za-z0-9._:/*-]+$/;
/** Roles that may call services. */
const CALLERS: ReadonlySet<RoleName> = new Set<RoleName>(['client', 'node']);
/** Roles that may serve services. */
const SERVERS: ReadonlySet<RoleName> = new Set<RoleName>(['worker', 'node']);

/** What each role may not have, and why (for error messages). */
const ROLE_RULES = {
  broker: { call: 'a broker entry authorizes a peer broker and takes neither `call` nor `serve`', serve: 'a broker entry authorizes a peer broker and takes neither `call` nor `serve`' },
  client: { call: undefined, serve: 'role client may only call services: remove `serve`, or use role node to call and serve' },
  worker: { call: 'role worker may only serve services: remove `call`, or use role node to call and serve', serve: undefined },
  node: { call: undefined, serve: undefined },
} as const satisfies Record<RoleName, { call: string | undefined; serve: string | undefined }>;

function configError(message: string, cause?: unknown): MeshError {
  return new MeshError('MESH_ERR_CONFIG', message, cause === undefined ? {} : { cause });
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a map';
  if (typeof value === 'string') return `the string ${JSON.stringify(value)}`;
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return `${typeof value} ${value}`;
  return typeof value;
}

// ---------------------------------------------------------------------------
// Globs

/** One compiled glob with at least one `*`: literal prefix, literal parts between stars, literal suffix. */
interface WildGlob {
  readonly prefix: string;
  readonly middle: readonly string[];
  readonly suffix: string;
  readonly minLength: number;
}

/** The compiled form of a list of globs. */
interface Matcher {
  /** Some glob is `*` (or only stars): every service matches. */
  readonly all: boolean;
  /** Globs without `*`. */
  readonly exact: ReadonlySet<string>;
  /** Globs with `*`. */
  readonly wild: readonly WildGlob[];
}

/**
 * Compiles globs once. A glob is split at its stars into literal pieces and
 * matched by prefix, suffix and an in-order search for the middle pieces:
 * linear-time per piece, no regular expression, so no backtracking blow-up
 * whatever the glob and nothing in a glob ever acts as a regex.
 */
function compileGlobs(globs: readonly string[]): Matcher {
  let all = false;
  const exact = new Set<string>();
  const wild: WildGlob[] = [];
  for (const glob of globs) {
    if (!glob.includes('*')) {
      exact.add(glob);
      continue;
    }
    const pieces = glob.split('*');
    if (pieces.every((p) => p === '')) {
      all = true;
      continue;
    }
    const prefix = pieces[0] ?? '';
    const suffix = pieces[pieces.length - 1] ?? '';
    const middle = pieces.slice(1, -1).filter((p) => p !== '');
    wild.push({ prefix, middle, suffix, minLength: prefix.length + suffix.length + middle.reduce((n, p) => n + p.length, 0) });
  }
  return { all, exact, wild };
}

function matchWild(g: WildGlob, s: string): boolean {
  if (s.length < g.minLength || !s.startsWith(g.prefix) || !s.endsWith(g.suffix)) return false;
  let pos = g.prefix.length;
  const end = s.length - g.suffix.length;
  for (const piece of g.middle) {
    const at = s.indexOf(piece, pos);
    if (at < 0 || at + piece.length > end) return false;
    pos = at + piece.length;
  }
  return true;
}

function matches(m: Matcher, service: string): boolean {
  if (m.all || m.exact.has(service)) return true;
  for (const g of m.wild) if (matchWild(g, service)) return true;
  return false;
}

/**
 * True when `service` matches `glob`: `*` matches any run of characters
 * (none included, dots included); every other character matches itself.
 * The glob is not validated here.
 */
export function globMatches(glob: string, service: string): boolean {
  return matches(compileGlobs([glob]), service);
}

/** The problem with a glob, or undefined when it is valid. */
function globProblem(glob: unknown): string | undefined {
  if (typeof glob !== 'string') return `must be a string, got ${describe(glob)}`;
  if (glob.length === 0) return 'is empty';
  if (!GLOB_CHARS.test(glob)) {
    const bad = /[^A-Za-z0-9._:/*-]/.exec(glob)?.[0] ?? '?';
    return `${JSON.stringify(glob)} contains ${JSON.stringify(bad)}; a glob has the characters of service names (A-Z a-z 0-9 . _ : / -) and *`;
  }
  if (!/^[A-Za-z0-9*]/.test(glob)) return `${JSON.stringify(glob)} can never match: service names start with a letter or digit`;
  if (glob.replaceAll('*', '').length > MAX_NAME_LENGTH) return `${JSON.stringify(glob)} has more than ${MAX_NAME_LENGTH} characters besides *, so it can match no service name`;
  return undefined;
}

// ---------------------------------------------------------------------------
// Entries

/** A validated entry with its globs compiled. */
class CompiledEntry implements RegistryEntry {
  readonly key: string;
  readonly publicKey: Uint8Array;
  readonly name: string;
  readonly role: RoleName;
  readonly call: readonly string[];
  readonly serve: readonly string[];
  readonly #call: Matcher;
  readonly #serve: Matcher;

  constructor(key: string, publicKey: Uint8Array, name: string, role: RoleName, call: readonly string[], serve: readonly string[]) {
    this.key = key;
    this.publicKey = publicKey;
    this.name = name;
    this.role = role;
    this.call = Object.freeze([...call]);
    this.serve = Object.freeze([...serve]);
    this.#call = compileGlobs(call);
    this.#serve = compileGlobs(serve);
  }

  /** The compiled call globs of any entry (compiled now if it is not one of ours). */
  static callMatcher(entry: RegistryEntry): Matcher {
    return entry instanceof CompiledEntry ? entry.#call : compileGlobs(entry.call);
  }

  /** The compiled serve globs of any entry (compiled now if it is not one of ours). */
  static serveMatcher(entry: RegistryEntry): Matcher {
    return entry instanceof CompiledEntry ? entry.#serve : compileGlobs(entry.serve);
  }
}

/**
 * True when `entry` may call `service`: its role is client or node, the
 * service name is valid, and one of its `call` globs matches.
 */
export function mayCall(entry: RegistryEntry, service: string): boolean {
  return CALLERS.has(entry.role) && SERVICE_NAME.test(service) && matches(CompiledEntry.callMatcher(entry), service);
}

/**
 * True when `entry` may serve `service`: its role is worker or node, the
 * service name is valid, and one of its `serve` globs matches.
 */
export function mayServe(entry: RegistryEntry, service: string): boolean {
  return SERVERS.has(entry.role) && SERVICE_NAME.test(service) && matches(CompiledEntry.serveMatcher(entry), service);
}

/** Names a place in the source for error messages. */
type Where = (field?: string) => string;

/** Validates one raw entry (already plain JS values) and compiles it. */
function validateEntry(raw: Readonly<Record<string, unknown>>, where: Where): CompiledEntry {
  const fields = Object.keys(raw);
  const unknown = fields.filter((f) => !(REGISTRY_ENTRY_FIELDS as readonly string[]).includes(f));
  if (unknown.length > 0) {
    throw configError(`${where(unknown[0])}: unknown field${unknown.length > 1 ? 's' : ''} ${unknown.map((f) => JSON.stringify(f)).join(', ')}; an entry has only ${REGISTRY_ENTRY_FIELDS.join(', ')}`);
  }
  for (const required of ['key', 'name', 'role'] as const) {
    if (!Object.hasOwn(raw, required) || raw[required] === undefined) throw configError(`${where()}: missing \`${required}\``);
  }

  const keyText = raw.key;
  if (typeof keyText !== 'string') throw configError(`${where('key')}: \`key\` must be a ${ENCODED_KEY_LEN}-character base64url public key, got ${describe(keyText)}`);
  let publicKey: Uint8Array;
  try {
    publicKey = decodeKey(keyText, '`key`');
  } catch (err) {
    throw configError(`${where('key')}: ${err instanceof Error ? err.message : String(err)}`, err);
  }

  const name = raw.name;
  if (typeof name !== 'string') {
    throw configError(`${where('name')}: \`name\` must be a string, got ${describe(name)}${typeof name === 'number' || typeof name === 'boolean' ? ` (quote it: "${name}")` : ''}`);
  }
  if (name.length === 0 || utf8Length(name) > MAX_NAME_LENGTH) throw configError(`${where('name')}: \`name\` must have 1 to ${MAX_NAME_LENGTH} UTF-8 bytes, got ${utf8Length(name)}`);
  if (/\p{Cc}/u.test(name)) throw configError(`${where('name')}: \`name\` contains a control character`);
  if (name.trim() !== name) throw configError(`${where('name')}: \`name\` ${JSON.stringify(name)} starts or ends with whitespace`);

  const role = raw.role;
  if (typeof role !== 'string' || !Object.hasOwn(Role, role)) {
    throw configError(`${where('role')}: \`role\` must be one of ${Object.keys(Role).join(', ')}; got ${describe(role)}`);
  }
  const roleName = role as RoleName;

  const lists: Record<'call' | 'serve', string[]> = { call: [], serve: [] };
  for (const field of ['call', 'serve'] as const) {
    if (!Object.hasOwn(raw, field) || raw[field] === undefined) continue;
    const forbidden = ROLE_RULES[roleName][field];
    if (forbidden !== undefined) throw configError(`${where(field)}: \`${field}\` is not allowed here: ${forbidden}`);
    const value = raw[field];
    if (!Array.isArray(value)) {
      throw configError(`${where(field)}: \`${field}\` must be a list of service globs, like [billing.*, "*.read"]; got ${describe(value)}`);
    }
    value.forEach((glob: unknown, i) => {
      const problem = globProblem(glob);
      if (problem !== undefined) throw configError(`${where(field)}: \`${field}\` item ${i + 1} ${problem}`);
    });
    lists[field] = value as string[];
  }
  return new CompiledEntry(keyText, publicKey, name, roleName, lists.call, lists.serve);
}

function sameSet(a: readonly string[], b: readonly string[]): boolean {
  const sa = new Set(a);
  const sb = new Set(b);
  if (sa.size !== sb.size) return false;
  for (const x of sa) if (!sb.has(x)) return false;
  return true;
}

// ---------------------------------------------------------------------------
// YAML

/** A YAML syntax error, with a hint for the most common one: an unquoted glob that starts with `*`. */
function yamlError(source: string, errors: readonly { code: string; message: string }[]): MeshError {
  const first = errors[0];
  const more = errors.length > 1 ? ` (and ${errors.length - 1} more error${errors.length > 2 ? 's' : ''})` : '';
  const hint = first !== undefined && /ALIAS/.test(first.code) ? '\nhint: a glob that starts with * must be quoted, like "*" or "*.read" (a bare * starts a YAML alias)' : '';
  return configError(`${source}: invalid YAML: ${first?.message.trimEnd() ?? 'unknown error'}${more}${hint}`, first);
}

/** Converts a YAML value node to plain JS, resolving aliases. */
function toPlain(node: unknown, doc: Document, where: string): unknown {
  if (node === null || node === undefined) return null;
  try {
    return (node as YamlNode).toJS(doc, { maxAliasCount: 100 });
  } catch (err) {
    const text = err instanceof Error ? err.message : String(err);
    const hint = isAlias(node) || /alias/i.test(text) ? '; a glob that starts with * must be quoted, like "*" or "*.read" (a bare * starts a YAML alias)' : '';
    throw configError(`${where}: ${text}${hint}`, err);
  }
}

// ---------------------------------------------------------------------------
// Registry

/**
 * A parsed, validated registry: immutable. Reloading builds a new Registry;
 * {@link Registry.diff} says which keys lost or changed their rights.
 */
export class Registry {
  /** Where the registry came from (a file path, or "registry"), used in messages. */
  readonly source: string;
  readonly #entries: readonly CompiledEntry[];
  readonly #byKey: ReadonlyMap<string, CompiledEntry>;
  readonly #byName: ReadonlyMap<string, CompiledEntry>;

  private constructor(entries: readonly CompiledEntry[], source: string, lines: readonly (number | undefined)[] = []) {
    const byKey = new Map<string, CompiledEntry>();
    const byName = new Map<string, CompiledEntry>();
    const indexOf = new Map<CompiledEntry, number>();
    const at = (i: number, e: CompiledEntry): string => {
      const line = lines[i];
      return `entry ${i + 1} ("${e.name}")${line === undefined ? '' : ` (line ${line})`}`;
    };
    entries.forEach((e, i) => {
      const sameKey = byKey.get(e.key);
      if (sameKey !== undefined) {
        const j = indexOf.get(sameKey) ?? 0;
        throw configError(`${source}: ${at(i, e)}: duplicate key ${e.key}, already used by ${at(j, sameKey)}; a key may appear once`);
      }
      const sameName = byName.get(e.name);
      if (sameName !== undefined) {
        const j = indexOf.get(sameName) ?? 0;
        throw configError(`${source}: ${at(i, e)}: duplicate name, already used by ${at(j, sameName)}; names identify parties in logs and on requests, so each must be unique`);
      }
      byKey.set(e.key, e);
      byName.set(e.name, e);
      indexOf.set(e, i);
    });
    this.source = source;
    this.#entries = Object.freeze([...entries]);
    this.#byKey = byKey;
    this.#byName = byName;
  }

  /**
   * Parses registry YAML. The top level is a list of entries (an empty file
   * or `[]` is an empty registry). Throws MESH_ERR_CONFIG naming `source`,
   * the entry (1-based) and its line, and the problem.
   */
  static parse(text: string, source = 'registry'): Registry {
    const lineCounter = new LineCounter();
    const doc = parseDocument(text, { lineCounter, prettyErrors: true, uniqueKeys: true });
    if (doc.errors.length > 0) throw yamlError(source, doc.errors);
    const lineOf = (node: unknown): number | undefined => {
      const range = (node as { range?: unknown } | null)?.range;
      return Array.isArray(range) && typeof range[0] === 'number' ? lineCounter.linePos(range[0]).line : undefined;
    };
    const contents = doc.contents;
    if (contents === null || (isScalar(contents) && contents.value === null)) return new Registry([], source);
    if (!isSeq(contents)) {
      const got = isMap(contents) ? 'a map' : isScalar(contents) ? describe(contents.value) : 'something else';
      throw configError(`${source}: the top level must be a list of entries (each starting with "- key: ..."), got ${got}`);
    }
    const entries: CompiledEntry[] = [];
    const lines: (number | undefined)[] = [];
    contents.items.forEach((item, i) => {
      const entryLine = lineOf(item);
      const node = isAlias(item) ? item.resolve(doc) : item;
      const label = `${source}: entry ${i + 1}`;
      if (!isMap(node)) {
        const got = isScalar(node) ? describe(node.value) : isSeq(node) ? 'a list' : 'nothing';
        throw configError(`${label}${entryLine === undefined ? '' : ` (line ${entryLine})`}: an entry must be a map with key, name, role and optionally call, serve; got ${got}`);
      }
      const raw: Record<string, unknown> = {};
      const fieldLines = new Map<string, number | undefined>();
      for (const pair of node.items) {
        const k: unknown = isScalar(pair.key) ? pair.key.value : pair.key;
        const kLine = lineOf(pair.key) ?? entryLine;
        if (typeof k !== 'string') {
          throw configError(`${label}${kLine === undefined ? '' : ` (line ${kLine})`}: field names must be strings; an entry has only ${REGISTRY_ENTRY_FIELDS.join(', ')}`);
        }
        fieldLines.set(k, kLine);
        raw[k] = toPlain(pair.value, doc, `${label}${kLine === undefined ? '' : ` (line ${kLine})`}: \`${k}\``);
      }
      const name = typeof raw.name === 'string' ? ` ("${raw.name}")` : '';
      const where: Where = (field) => {
        const line = (field === undefined ? undefined : fieldLines.get(field)) ?? entryLine;
        return `${label}${name}${line === undefined ? '' : ` (line ${line})`}`;
      };
      entries.push(validateEntry(raw, where));
      lines.push(entryLine);
    });
    return new Registry(entries, source, lines);
  }

  /**
   * Builds a registry from entries given in code, validated exactly as
   * {@link Registry.parse} validates a file (MESH_ERR_CONFIG).
   */
  static fromEntries(entries: Iterable<RegistryEntryInit>, source = 'registry'): Registry {
    const compiled: CompiledEntry[] = [];
    let i = 0;
    for (const init of entries) {
      i++;
      const label = `${source}: entry ${i}`;
      if (typeof init !== 'object' || init === null || Array.isArray(init)) throw configError(`${label}: an entry must be an object, got ${describe(init)}`);
      const raw = init as unknown as Record<string, unknown>;
      const name = typeof raw.name === 'string' ? ` ("${raw.name}")` : '';
      compiled.push(validateEntry(raw, () => `${label}${name}`));
    }
    return new Registry(compiled, source);
  }

  /** A registry with no entries: every key is refused. */
  static empty(source = 'registry'): Registry {
    return new Registry([], source);
  }

  /** The entries in file order. */
  get entries(): readonly RegistryEntry[] {
    return this.#entries;
  }

  /** The number of entries. */
  get size(): number {
    return this.#entries.length;
  }

  /** The entry for a 32-byte public key, or undefined. */
  get(publicKey: Uint8Array): RegistryEntry | undefined {
    if (!(publicKey instanceof Uint8Array) || publicKey.length !== 32) return undefined;
    return this.#byKey.get(Buffer.from(publicKey.buffer, publicKey.byteOffset, publicKey.length).toString('base64url'));
  }

  /** The entry for a base64url key, or undefined. */
  getByKey(key: string): RegistryEntry | undefined {
    return this.#byKey.get(key);
  }

  /** The entry with this name, or undefined. */
  getByName(name: string): RegistryEntry | undefined {
    return this.#byName.get(name);
  }

  /** True when `entry` may call `service` ({@link mayCall}). */
  mayCall(entry: RegistryEntry, service: string): boolean {
    return mayCall(entry, service);
  }

  /** True when `entry` may serve `service` ({@link mayServe}). */
  mayServe(entry: RegistryEntry, service: string): boolean {
    return mayServe(entry, service);
  }

  /**
   * What changes when `next` replaces this registry: keys removed (close
   * their connections), keys whose name, role, call or serve changed
   * (re-check their sessions; glob order and repeats do not count), and keys
   * added. Each list is in file order.
   */
  diff(next: Registry): RegistryDiff {
    const removed: string[] = [];
    const changed: string[] = [];
    const added: string[] = [];
    for (const e of this.#entries) {
      const n = next.#byKey.get(e.key);
      if (n === undefined) removed.push(e.key);
      else if (n.name !== e.name || n.role !== e.role || !sameSet(n.call, e.call) || !sameSet(n.serve, e.serve)) changed.push(e.key);
    }
    for (const n of next.#entries) if (!this.#byKey.has(n.key)) added.push(n.key);
    return { removed, changed, added };
  }
}
