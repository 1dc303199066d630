/**
 * X25519 static keys: generation, the text form (base64url, 43 characters,
 * no padding; a party's public key is its id) and private key files (JSON,
 * mode 0600, refused when any group or other permission bit is set).
 */

import { randomBytes, timingSafeEqual } from 'node:crypto';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import { MeshError } from '../errors.ts';
import { DH_LEN, isAllZero } from './crypto-suite.ts';
import type { CryptoSuite, KeyPair } from './crypto-suite.ts';
import { defaultSuite } from './suites.ts';

/** Length of an encoded key: 32 bytes in base64url without padding. */
export const ENCODED_KEY_LEN = 43;
/** The `type` field of a key file. */
export const KEY_FILE_TYPE = 'meshd-x25519-private-key';
/** The `version` field of a key file this code writes and reads. */
export const KEY_FILE_VERSION = 1;
/** Key files larger than this are refused without parsing. */
export const MAX_KEY_FILE_SIZE = 4096;

const BASE64URL_CHAR = /[^A-Za-z0-9_-]/;

/** Generates a fresh X25519 static key pair with the suite's secure RNG. */
export function generateKeyPair(suite: CryptoSuite = defaultSuite()): KeyPair {
  return suite.generateKeyPair();
}

/** The 43-character base64url (no padding) text of a 32-byte key. Throws MESH_ERR_BAD_KEY for another length. */
export function encodeKey(key: Uint8Array): string {
  if (!(key instanceof Uint8Array) || key.length !== DH_LEN) {
    throw new MeshError('MESH_ERR_BAD_KEY', `a key must be ${DH_LEN} bytes to encode, got ${key instanceof Uint8Array ? `${key.length} bytes` : typeof key}`);
  }
  return Buffer.from(key.buffer, key.byteOffset, key.length).toString('base64url');
}

/**
 * Decodes a 43-character base64url key. Throws MESH_ERR_BAD_KEY saying what
 * is wrong: not a string, empty, whitespace, a character outside base64url
 * (e.g. standard base64's `+`, `/`, `=`), the wrong length, a non-canonical
 * last character, or all zeros. `what` names the key in messages; characters
 * of a key whose `what` mentions "private" are never echoed.
 */
export function decodeKey(text: string, what = 'public key'): Uint8Array {
  const bad = (problem: string): MeshError => new MeshError('MESH_ERR_BAD_KEY', `${what} ${problem}`);
  if (typeof text !== 'string') throw bad(`must be a string of ${ENCODED_KEY_LEN} base64url characters, got ${text === null ? 'null' : typeof text}`);
  if (text.length === 0) throw bad(`is empty; expected ${ENCODED_KEY_LEN} base64url characters`);
  const secret = /private/i.test(what);
  const ws = /\s/.exec(text);
  if (ws !== null) throw bad(`contains whitespace at position ${ws.index}`);
  const badChar = BASE64URL_CHAR.exec(text);
  if (badChar !== null) {
    const ch = badChar[0];
    const shown = secret ? 'a character' : JSON.stringify(ch);
    const hint = ch === '=' ? " (base64url keys have no '=' padding)" : ch === '+' || ch === '/' ? " (that is standard base64; keys use base64url, with '-' and '_')" : '';
    throw bad(`contains ${shown} at position ${badChar.index} that is not base64url (A-Z a-z 0-9 - _)${hint}`);
  }
  if (text.length !== ENCODED_KEY_LEN) {
    throw bad(`must be ${ENCODED_KEY_LEN} base64url characters (${DH_LEN} bytes), got ${text.length} characters`);
  }
  const bytes = Buffer.from(text, 'base64url');
  if (bytes.length !== DH_LEN || bytes.toString('base64url') !== text) {
    throw bad('is not canonical base64url (its last character has unused bits set)');
  }
  if (isAllZero(bytes)) throw bad('is all zeros');
  return new Uint8Array(bytes);
}

/** True when `a` and `b` have equal length and content; the content comparison takes constant time. */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  return timingSafeEqual(a, b);
}

/** Options for {@link writeKeyFile}. */
export interface WriteKeyFileOptions {
  /** Replace an existing file. Default false: an existing file is an error. */
  readonly overwrite?: boolean;
  /** Suite used to check the public key matches the private key. Default {@link defaultSuite}(). */
  readonly suite?: CryptoSuite;
}

/** Options for {@link readKeyFile}. */
export interface ReadKeyFileOptions {
  /** Suite used to check the public key matches the private key. Default {@link defaultSuite}(). */
  readonly suite?: CryptoSuite;
}

function keyFileError(message: string, cause?: unknown): MeshError {
  return new MeshError('MESH_ERR_KEY_FILE', message, cause === undefined ? {} : { cause });
}

/** Checks a key pair is well formed and consistent. */
function checkKeyPair(keyPair: KeyPair, suite: CryptoSuite, where: string): void {
  if (!(keyPair.privateKey instanceof Uint8Array) || keyPair.privateKey.length !== DH_LEN || isAllZero(keyPair.privateKey)) {
    throw keyFileError(`${where}: the private key must be ${DH_LEN} bytes, not all zeros`);
  }
  if (!(keyPair.publicKey instanceof Uint8Array) || keyPair.publicKey.length !== DH_LEN) {
    throw keyFileError(`${where}: the public key must be ${DH_LEN} bytes`);
  }
  if (!constantTimeEqual(suite.publicKey(keyPair.privateKey), keyPair.publicKey)) {
    throw keyFileError(`${where}: the public key does not match the private key`);
  }
}

/** The text of a key file for `keyPair`: one JSON line and a newline. */
export function formatKeyFile(keyPair: KeyPair): string {
  return `${JSON.stringify({
    type: KEY_FILE_TYPE,
    version: KEY_FILE_VERSION,
    privateKey: encodeKey(keyPair.privateKey),
    publicKey: encodeKey(keyPair.publicKey),
  })}\n`;
}

/**
 * Parses the text of a key file. Throws MESH_ERR_KEY_FILE (naming `path`, if given)
 * when it is not JSON, has the wrong type or version, a malformed key, or a
 * public key that does not match the private key.
 */
export function parseKeyFile(text: string, path?: string, options: ReadKeyFileOptions = {}): KeyPair {
  const where = path === undefined ? 'key file' : `key file ${path}`;
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw keyFileError(`${where} is not valid JSON; expected {"type":"${KEY_FILE_TYPE}","version":${KEY_FILE_VERSION},...}`, err);
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    throw keyFileError(`${where} must hold a JSON object`);
  }
  const obj = data as Record<string, unknown>;
  if (obj.type !== KEY_FILE_TYPE) {
    throw keyFileError(`${where} has type ${JSON.stringify(obj.type) ?? 'undefined'}; expected "${KEY_FILE_TYPE}"`);
  }
  if (obj.version !== KEY_FILE_VERSION) {
    throw keyFileError(`${where} has version ${JSON.stringify(obj.version) ?? 'undefined'}; this meshd reads version ${KEY_FILE_VERSION}`);
  }
  const decode = (field: 'privateKey' | 'publicKey', what: string): Uint8Array => {
    const value = obj[field];
    if (typeof value !== 'string') throw keyFileError(`${where}: "${field}" must be a string, got ${value === null ? 'null' : typeof value}`);
    try {
      return decodeKey(value, what);
    } catch (err) {
      throw keyFileError(`${where}: ${err instanceof Error ? err.message : String(err)}`, err);
    }
  };
  const keyPair = { privateKey: decode('privateKey', 'private key'), publicKey: decode('publicKey', 'public key') };
  checkKeyPair(keyPair, options.suite ?? defaultSuite(), where);
  return keyPair;
}

/** Throws MESH_ERR_KEY_FILE when the file's mode lets group or others in. */
function checkMode(path: string, stat: fs.Stats): void {
  if (!stat.isFile()) throw keyFileError(`key file ${path} is not a regular file`);
  if (process.platform === 'win32') return;
  if ((stat.mode & 0o077) !== 0) {
    const mode = (stat.mode & 0o7777).toString(8).padStart(4, '0');
    throw keyFileError(`key file ${path} has mode ${mode}, so group or others can access it; a private key must be readable by its owner only: run \`chmod 600 ${path}\``);
  }
  if (stat.size > MAX_KEY_FILE_SIZE) throw keyFileError(`key file ${path} is ${stat.size} bytes; a key file is under ${MAX_KEY_FILE_SIZE}`);
}

function readError(path: string, err: unknown): MeshError {
  if (err instanceof MeshError) return err;
  const code = (err as NodeJS.ErrnoException | null)?.code;
  if (code === 'ENOENT') return keyFileError(`key file ${path} does not exist`, err);
  if (code === 'EACCES' || code === 'EPERM') return keyFileError(`cannot read key file ${path}: permission denied`, err);
  return keyFileError(`cannot read key file ${path}: ${err instanceof Error ? err.message : String(err)}`, err);
}

function writeError(path: string, err: unknown): MeshError {
  if (err instanceof MeshError) return err;
  const code = (err as NodeJS.ErrnoException | null)?.code;
  if (code === 'EEXIST') return keyFileError(`key file ${path} already exists; refusing to overwrite it (pass { overwrite: true } to replace it)`, err);
  if (code === 'ENOENT') return keyFileError(`cannot write key file ${path}: its directory does not exist`, err);
  if (code === 'EACCES' || code === 'EPERM') return keyFileError(`cannot write key file ${path}: permission denied`, err);
  return keyFileError(`cannot write key file ${path}: ${err instanceof Error ? err.message : String(err)}`, err);
}

/** Errors from link() that mean "this file system has no hard links": fall back to a direct exclusive create. */
const NO_LINK = new Set(['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS', 'EXDEV']);

function tempPath(path: string): string {
  return `${path}.${randomBytes(6).toString('hex')}.tmp`;
}

/**
 * Reads a private key file. Refuses (MESH_ERR_KEY_FILE) a file whose mode has
 * any group/other bit, naming the file, its mode and the `chmod 600` fix; a
 * missing or unreadable file; malformed content; or a public key that does
 * not match the private key.
 */
export async function readKeyFile(path: string, options: ReadKeyFileOptions = {}): Promise<KeyPair> {
  let text: string;
  try {
    const handle = await fsp.open(path, 'r');
    try {
      checkMode(path, await handle.stat());
      text = await handle.readFile('utf8');
    } finally {
      await handle.close();
    }
  } catch (err) {
    throw readError(path, err);
  }
  return parseKeyFile(text, path, options);
}

/** {@link readKeyFile}, synchronously (for CLI start-up). */
export function readKeyFileSync(path: string, options: ReadKeyFileOptions = {}): KeyPair {
  let text: string;
  try {
    const fd = fs.openSync(path, 'r');
    try {
      checkMode(path, fs.fstatSync(fd));
      text = fs.readFileSync(fd, 'utf8');
    } finally {
      fs.closeSync(fd);
    }
  } catch (err) {
    throw readError(path, err);
  }
  return parseKeyFile(text, path, options);
}

/**
 * Writes a private key file with mode 0600. The content goes to a temporary
 * file (created exclusively, mode 0600, fsynced) that is then hard-linked to
 * `path`, which fails if `path` exists, or renamed over it with
 * `{ overwrite: true }`; so readers never see a partial file. Where hard
 * links are unsupported the file is created directly with `wx`.
 * Throws MESH_ERR_KEY_FILE (file exists, directory missing, permission
 * denied) or MESH_ERR_BAD_KEY / MESH_ERR_KEY_FILE for an invalid key pair.
 */
export async function writeKeyFile(path: string, keyPair: KeyPair, options: WriteKeyFileOptions = {}): Promise<void> {
  checkKeyPair(keyPair, options.suite ?? defaultSuite(), `key pair for ${path}`);
  const content = formatKeyFile(keyPair);
  const tmp = tempPath(path);
  try {
    await writeNewFile(tmp, content);
    try {
      if (options.overwrite === true) {
        await fsp.rename(tmp, path);
      } else {
        try {
          await fsp.link(tmp, path);
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code ?? '';
          if (!NO_LINK.has(code)) throw err;
          await writeNewFile(path, content);
        }
      }
    } finally {
      await fsp.rm(tmp, { force: true });
    }
  } catch (err) {
    throw writeError(path, err);
  }
}

/** {@link writeKeyFile}, synchronously (for CLI commands). */
export function writeKeyFileSync(path: string, keyPair: KeyPair, options: WriteKeyFileOptions = {}): void {
  checkKeyPair(keyPair, options.suite ?? defaultSuite(), `key pair for ${path}`);
  const content = formatKeyFile(keyPair);
  const tmp = tempPath(path);
  try {
    writeNewFileSync(tmp, content);
    try {
      if (options.overwrite === true) {
        fs.renameSync(tmp, path);
      } else {
        try {
          fs.linkSync(tmp, path);
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code ?? '';
          if (!NO_LINK.has(code)) throw err;
          writeNewFileSync(path, content);
        }
      }
    } finally {
      fs.rmSync(tmp, { force: true });
    }
  } catch (err) {
    throw writeError(path, err);
  }
}

/** Creates `path` exclusively with mode 0600 (whatever the umask), writes `content` and fsyncs. */
async function writeNewFile(path: string, content: string): Promise<void> {
  const handle = await fsp.open(path, 'wx', 0o600);
  try {
    await handle.chmod(0o600);
    await handle.writeFile(content, 'utf8');
    await handle.sync();
  } finally {
    await handle.close();
  }
}

function writeNewFileSync(path: string, content: string): void {
  const fd = fs.openSync(path, 'wx', 0o600);
  try {
    fs.fchmodSync(fd, 0o600);
    fs.writeFileSync(fd, content, 'utf8');
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}
