/**
 * Noise handshake patterns as data (spec rev 34 §7), written in the spec's own
 * notation and parsed once at load: the one-way patterns N, K, X, the twelve
 * fundamental interactive patterns and the 23 deferred patterns (NK1, X1K1,
 * ...), exactly the set cacophony's test vectors cover. Also parses and formats protocol names such
 * as `Noise_XK_25519_ChaChaPoly_SHA256`.
 */

import { MeshError } from '../errors.ts';
import { HASH_NAMES } from './crypto-suite.ts';
import type { HashName } from './crypto-suite.ts';

/** A token allowed in a pre-message: a public key known before the handshake. */
export type PreMessageToken = 'e' | 's';

/** A token of a handshake message: send a public key, or mix in a DH result. */
export type MessageToken = 'e' | 's' | 'ee' | 'es' | 'se' | 'ss';

/**
 * A handshake pattern. `messages[i]` is sent by the initiator when i is
 * even and by the responder when i is odd.
 */
export interface HandshakePattern {
  /** The pattern's name, e.g. `XK`. */
  readonly name: string;
  /** Keys of the initiator the responder knows in advance (`-> ...` before `...`). */
  readonly initiatorPreMessage: readonly PreMessageToken[];
  /** Keys of the responder the initiator knows in advance (`<- ...` before `...`). */
  readonly responderPreMessage: readonly PreMessageToken[];
  /** The handshake messages' token lists, alternating from the initiator. */
  readonly messages: readonly (readonly MessageToken[])[];
}

/** The patterns in the spec's notation. The message arrows (after any `...` pre-messages) alternate starting with `->`. */
const PATTERN_NOTATION = {
  // One-way.
  N: '<- s ... -> e, es',
  K: '-> s <- s ... -> e, es, ss',
  X: '<- s ... -> e, es, s, ss',
  // Fundamental interactive.
  NN: '-> e <- e, ee',
  NK: '<- s ... -> e, es <- e, ee',
  NX: '-> e <- e, ee, s, es',
  KN: '-> s ... -> e <- e, ee, se',
  KK: '-> s <- s ... -> e, es, ss <- e, ee, se',
  KX: '-> s ... -> e <- e, ee, se, s, es',
  XN: '-> e <- e, ee -> s, se',
  XK: '<- s ... -> e, es <- e, ee -> s, se',
  XX: '-> e <- e, ee, s, es -> s, se',
  IN: '-> e, s <- e, ee, se',
  IK: '<- s ... -> e, es, s, ss <- e, ee, se',
  IX: '-> e, s <- e, ee, se, s, es',
  // Deferred.
  NK1: '<- s ... -> e <- e, ee, es',
  NX1: '-> e <- e, ee, s -> es',
  X1N: '-> e <- e, ee -> s <- se',
  X1K: '<- s ... -> e, es <- e, ee -> s <- se',
  XK1: '<- s ... -> e <- e, ee, es -> s, se',
  X1K1: '<- s ... -> e <- e, ee, es -> s <- se',
  X1X: '-> e <- e, ee, s, es -> s <- se',
  XX1: '-> e <- e, ee, s -> es, s, se',
  X1X1: '-> e <- e, ee, s -> es, s <- se',
  K1N: '-> s ... -> e <- e, ee -> se',
  K1K: '-> s <- s ... -> e, es <- e, ee -> se',
  KK1: '-> s <- s ... -> e <- e, ee, se, es',
  K1K1: '-> s <- s ... -> e <- e, ee, es -> se',
  K1X: '-> s ... -> e <- e, ee, s, es -> se',
  KX1: '-> s ... -> e <- e, ee, se, s -> es',
  K1X1: '-> s ... -> e <- e, ee, s -> se, es',
  I1N: '-> e, s <- e, ee -> se',
  I1K: '<- s ... -> e, es, s <- e, ee -> se',
  IK1: '<- s ... -> e, s <- e, ee, se, es',
  I1K1: '<- s ... -> e, s <- e, ee, es -> se',
  I1X: '-> e, s <- e, ee, s, es -> se',
  IX1: '-> e, s <- e, ee, se, s -> es',
  I1X1: '-> e, s <- e, ee, s -> se, es',
} as const;

/** The name of a built-in handshake pattern. */
export type PatternName = keyof typeof PATTERN_NOTATION;

const MESSAGE_TOKENS: ReadonlySet<string> = new Set<MessageToken>(['e', 's', 'ee', 'es', 'se', 'ss']);
const PRE_MESSAGE_TOKENS: ReadonlySet<string> = new Set<PreMessageToken>(['e', 's']);

function badPattern(name: string, problem: string): MeshError {
  return new MeshError('MESH_ERR_HANDSHAKE', `invalid handshake pattern ${name}: ${problem}`);
}

/**
 * Parses a pattern written in the Noise spec's notation, e.g.
 * `'<- s ... -> e, es <- e, ee -> s, se'` (line breaks are whitespace), and
 * checks the spec's validity rules: messages alternate starting with the
 * initiator, each party sends each of its keys at most once, and every DH
 * uses keys the party has by then. Throws MESH_ERR_HANDSHAKE when invalid.
 */
export function parseHandshakePattern(name: string, notation: string): HandshakePattern {
  const halves = notation.split('...');
  if (halves.length > 2) throw badPattern(name, "more than one '...'");
  const hasPre = halves.length === 2;
  const pre = splitArrows(name, hasPre ? (halves[0] ?? '') : '');
  const main = splitArrows(name, hasPre ? (halves[1] ?? '') : notation);

  let initiatorPreMessage: PreMessageToken[] = [];
  let responderPreMessage: PreMessageToken[] = [];
  if (hasPre && pre.length === 0) throw badPattern(name, "'...' with no pre-message before it");
  if (pre.length > 2) throw badPattern(name, 'more than two pre-messages');
  for (const [i, [arrow, tokens]] of pre.entries()) {
    for (const t of tokens) if (!PRE_MESSAGE_TOKENS.has(t)) throw badPattern(name, `'${t}' is not allowed in a pre-message`);
    const list = tokens as PreMessageToken[];
    if (arrow === '->') {
      if (i !== 0) throw badPattern(name, 'the initiator pre-message must come first');
      initiatorPreMessage = list;
    } else {
      if (i === 1 && pre[0]?.[0] === '<-') throw badPattern(name, 'two responder pre-messages');
      responderPreMessage = list;
    }
  }

  if (main.length === 0) throw badPattern(name, 'no messages');
  const messages: MessageToken[][] = [];
  for (const [i, [arrow, tokens]] of main.entries()) {
    if (arrow !== (i % 2 === 0 ? '->' : '<-')) throw badPattern(name, `message ${i + 1} goes the wrong way (messages alternate, starting with ->)`);
    for (const t of tokens) if (!MESSAGE_TOKENS.has(t)) throw badPattern(name, `unknown token '${t}'`);
    if (tokens.length === 0) throw badPattern(name, `message ${i + 1} is empty`);
    messages.push(tokens as MessageToken[]);
  }

  const pattern: HandshakePattern = { name, initiatorPreMessage, responderPreMessage, messages };
  checkValidity(pattern);
  return deepFreeze(pattern);
}

function splitArrows(name: string, text: string): [string, string[]][] {
  const out: [string, string[]][] = [];
  const re = /(->|<-)([^<-]*)/gy;
  const trimmed = text.trim();
  if (trimmed === '') return out;
  if (!trimmed.startsWith('->') && !trimmed.startsWith('<-')) throw badPattern(name, `expected '->' or '<-' at '${trimmed.slice(0, 10)}'`);
  let m: RegExpExecArray | null;
  let consumed = 0;
  while ((m = re.exec(trimmed)) !== null) {
    consumed = re.lastIndex;
    const arrow = m[1] ?? '';
    const body = (m[2] ?? '').trim();
    const tokens = body === '' ? [] : body.split(',').map((t) => t.trim());
    if (tokens.some((t) => t === '')) throw badPattern(name, `empty token in '${body}'`);
    out.push([arrow, tokens]);
  }
  if (consumed !== trimmed.length) throw badPattern(name, `cannot parse '${trimmed.slice(consumed, consumed + 10)}'`);
  return out;
}

function checkValidity(p: HandshakePattern): void {
  // has[0] = what the initiator's side has sent/pre-shared, has[1] the responder's.
  const has = [new Set<string>(p.initiatorPreMessage), new Set<string>(p.responderPreMessage)] as const;
  for (const [i, tokens] of p.messages.entries()) {
    const mine = i % 2 === 0 ? has[0] : has[1];
    for (const t of tokens) {
      if (t === 'e' || t === 's') {
        if (mine.has(t)) throw badPattern(p.name, `message ${i + 1} sends '${t}' a second time`);
        mine.add(t);
        continue;
      }
      // A DH token names the initiator's key first, the responder's second.
      const initKey = t[0] ?? '';
      const respKey = t[1] ?? '';
      if (!has[0].has(initKey) || !has[1].has(respKey)) {
        throw badPattern(p.name, `message ${i + 1} uses '${t}' before both keys are known`);
      }
    }
  }
}

function deepFreeze<T extends HandshakePattern>(p: T): T {
  Object.freeze(p.initiatorPreMessage);
  Object.freeze(p.responderPreMessage);
  for (const m of p.messages) Object.freeze(m);
  Object.freeze(p.messages);
  return Object.freeze(p);
}

/** Every built-in handshake pattern by name (frozen). */
export const HANDSHAKE_PATTERNS: Readonly<Record<PatternName, HandshakePattern>> = Object.freeze(
  Object.fromEntries(
    Object.entries(PATTERN_NOTATION).map(([name, notation]) => [name, parseHandshakePattern(name, notation)]),
  ) as Record<PatternName, HandshakePattern>,
);

/** True when `name` is a built-in pattern name. */
export function isPatternName(name: unknown): name is PatternName {
  return typeof name === 'string' && Object.hasOwn(PATTERN_NOTATION, name);
}

/** The built-in pattern called `name`. Throws MESH_ERR_HANDSHAKE for an unknown name. */
export function getHandshakePattern(name: string): HandshakePattern {
  if (!isPatternName(name)) {
    throw new MeshError('MESH_ERR_HANDSHAKE', `unsupported handshake pattern ${JSON.stringify(name)}; supported: ${Object.keys(PATTERN_NOTATION).join(', ')}`);
  }
  return HANDSHAKE_PATTERNS[name];
}

/** True for one-way patterns (a single message, initiator to responder). */
export function isOneWayPattern(pattern: HandshakePattern): boolean {
  return pattern.messages.length === 1;
}

/** A parsed Noise protocol name. */
export interface ProtocolName {
  /** The full name, e.g. `Noise_XK_25519_ChaChaPoly_SHA256`. */
  readonly name: string;
  /** The handshake pattern. */
  readonly pattern: HandshakePattern;
  /** The DH function; only `25519` is supported. */
  readonly dh: '25519';
  /** The cipher; only `ChaChaPoly` is supported. */
  readonly cipher: 'ChaChaPoly';
  /** The hash function. */
  readonly hash: HashName;
}

function unsupported(name: string, problem: string): MeshError {
  return new MeshError('MESH_ERR_HANDSHAKE', `unsupported Noise protocol name ${JSON.stringify(name)}: ${problem}`);
}

/**
 * Parses `Noise_<pattern>_25519_ChaChaPoly_<SHA256|BLAKE2s>`. Throws
 * MESH_ERR_HANDSHAKE naming the unsupported or malformed part (unknown
 * pattern, pattern modifiers such as psk0 or fallback, another DH, cipher or
 * hash).
 */
export function parseProtocolName(name: string): ProtocolName {
  if (typeof name !== 'string') throw unsupported(String(name), `expected a string, got ${typeof name}`);
  const parts = name.split('_');
  if (parts.length !== 5 || parts[0] !== 'Noise') {
    throw unsupported(name, 'expected Noise_<pattern>_<dh>_<cipher>_<hash>, e.g. Noise_XK_25519_ChaChaPoly_SHA256');
  }
  const [, patternPart = '', dh = '', cipher = '', hash = ''] = parts;
  const modifiers = /^([A-Z0-9]+)([a-z].*)$/.exec(patternPart);
  if (modifiers !== null) {
    throw unsupported(name, `pattern modifiers (${modifiers[2] ?? ''}) are not supported`);
  }
  if (!isPatternName(patternPart)) {
    throw unsupported(name, `unknown handshake pattern ${JSON.stringify(patternPart)}`);
  }
  if (dh !== '25519') throw unsupported(name, `DH function ${JSON.stringify(dh)} is not supported (only 25519)`);
  if (cipher !== 'ChaChaPoly') throw unsupported(name, `cipher ${JSON.stringify(cipher)} is not supported (only ChaChaPoly)`);
  if (!(HASH_NAMES as readonly string[]).includes(hash)) {
    throw unsupported(name, `hash ${JSON.stringify(hash)} is not supported (only ${HASH_NAMES.join(' or ')})`);
  }
  return Object.freeze({ name, pattern: HANDSHAKE_PATTERNS[patternPart], dh: '25519', cipher: 'ChaChaPoly', hash: hash as HashName });
}

/** `Noise_<pattern>_25519_ChaChaPoly_<hash>`. */
export function formatProtocolName(pattern: HandshakePattern | PatternName, hash: HashName): string {
  const patternName = typeof pattern === 'string' ? pattern : pattern.name;
  return `Noise_${patternName}_25519_ChaChaPoly_${hash}`;
}
