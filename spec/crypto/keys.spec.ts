import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { isMeshError } from '../../lib/errors.ts';
import type { ErrorCode } from '../../lib/errors.ts';
import {
  constantTimeEqual,
  decodeKey,
  encodeKey,
  formatKeyFile,
  generateKeyPair,
  readKeyFile,
  readKeyFileSync,
  writeKeyFile,
  writeKeyFileSync,
} from '../../lib/crypto/keys.ts';
import { getSuite } from '../../lib/crypto/suites.ts';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

function assertCode(fn: () => unknown, code: ErrorCode, fragment?: string): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(isMeshError(err, code), `expected ${code}, got ${String(err)}`);
    if (fragment !== undefined) assert.ok(err.message.includes(fragment), `"${err.message}" should mention "${fragment}"`);
    return true;
  });
}

async function assertRejects(p: Promise<unknown>, code: ErrorCode, fragment?: string): Promise<MeshErrorLike> {
  let caught: unknown;
  await assert.rejects(p, (err: unknown) => {
    caught = err;
    assert.ok(isMeshError(err, code), `expected ${code}, got ${String(err)}`);
    if (fragment !== undefined) assert.ok(err.message.includes(fragment), `"${err.message}" should mention "${fragment}"`);
    return true;
  });
  return caught as MeshErrorLike;
}
interface MeshErrorLike {
  message: string;
  cause?: unknown;
}

void describe('key text form', () => {
  void test('encode/decode round trip, 43 base64url characters', () => {
    for (const suite of [getSuite('node'), getSuite('noble')]) {
      const kp = generateKeyPair(suite);
      const text = encodeKey(kp.publicKey);
      assert.equal(text.length, 43);
      assert.match(text, /^[A-Za-z0-9_-]{43}$/);
      assert.equal(hex(decodeKey(text)), hex(kp.publicKey));
    }
    assert.equal(generateKeyPair().publicKey.length, 32);
  });

  void test('encodeKey refuses a key that is not 32 bytes', () => {
    assertCode(() => encodeKey(new Uint8Array(31)), 'MESH_ERR_BAD_KEY', 'got 31 bytes');
  });

  const good = encodeKey(generateKeyPair().publicKey);
  const bad: [string, unknown, string][] = [
    ['empty', '', 'is empty'],
    ['not a string', 42, 'got number'],
    ['too short', good.slice(0, 42), 'got 42 characters'],
    ['too long', `${good}A`, 'got 44 characters'],
    ['padding', `${good}=`, "no '=' padding"],
    ['standard base64', `+${good.slice(1)}`, 'standard base64'],
    ['bad character', `${good.slice(0, 5)}!${good.slice(6)}`, '"!" at position 5'],
    ['whitespace', `${good} `, 'whitespace at position 43'],
    ['non-canonical last character', `${good.slice(0, 42)}${good.endsWith('B') ? 'C' : 'B'}`, 'not canonical'],
    ['all zeros', 'A'.repeat(43), 'all zeros'],
  ];
  for (const [label, text, fragment] of bad) {
    void test(`decodeKey refuses: ${label}`, () => {
      assertCode(() => decodeKey(text as string), 'MESH_ERR_BAD_KEY', fragment);
    });
  }

  void test('decodeKey names the key and never echoes private key characters', () => {
    assertCode(() => decodeKey('abc', 'registry key'), 'MESH_ERR_BAD_KEY', 'registry key must be 43');
    assert.throws(() => decodeKey(`${good.slice(0, 5)}!${good.slice(6)}`, 'private key'), (err: Error) => !err.message.includes('"!"') && err.message.includes('position 5'));
  });

  void test('constantTimeEqual', () => {
    assert.equal(constantTimeEqual(new Uint8Array([1, 2]), new Uint8Array([1, 2])), true);
    assert.equal(constantTimeEqual(new Uint8Array([1, 2]), new Uint8Array([1, 3])), false);
    assert.equal(constantTimeEqual(new Uint8Array([1, 2]), new Uint8Array([1, 2, 3])), false);
    assert.equal(constantTimeEqual(new Uint8Array(0), new Uint8Array(0)), true);
  });
});

void describe('key files', () => {
  let dir = '';
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'meshd-keys-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  let counter = 0;
  const fresh = (): string => join(dir, `key-${++counter}.json`);

  void test('writeKeyFile creates a 0600 file with the documented JSON; readKeyFile reads it back', async () => {
    const kp = generateKeyPair();
    const path = fresh();
    await writeKeyFile(path, kp);
    assert.equal(fs.statSync(path).mode & 0o777, 0o600);
    const text = fs.readFileSync(path, 'utf8');
    assert.ok(text.endsWith('}\n'));
    assert.deepEqual(JSON.parse(text), {
      type: 'meshd-x25519-private-key',
      version: 1,
      privateKey: encodeKey(kp.privateKey),
      publicKey: encodeKey(kp.publicKey),
    });
    const back = await readKeyFile(path);
    assert.equal(hex(back.privateKey), hex(kp.privateKey));
    assert.equal(hex(back.publicKey), hex(kp.publicKey));
    assert.equal(hex(readKeyFileSync(path, { suite: getSuite('noble') }).publicKey), hex(kp.publicKey));
    assert.deepEqual(fs.readdirSync(dir).filter((f) => f.endsWith('.tmp')), [], 'no temporary file left behind');
  });

  void test('0600 even under a permissive umask, and with the sync variant', () => {
    const old = process.umask(0);
    try {
      const path = fresh();
      writeKeyFileSync(path, generateKeyPair());
      assert.equal(fs.statSync(path).mode & 0o777, 0o600);
    } finally {
      process.umask(old);
    }
  });

  void test('refuses to overwrite without { overwrite: true }', async () => {
    const path = fresh();
    const first = generateKeyPair();
    await writeKeyFile(path, first);
    const err = await assertRejects(writeKeyFile(path, generateKeyPair()), 'MESH_ERR_KEY_FILE', 'already exists');
    assert.ok(err.message.includes(path));
    assertCode(() => writeKeyFileSync(path, generateKeyPair()), 'MESH_ERR_KEY_FILE', 'overwrite: true');
    assert.equal(hex((await readKeyFile(path)).privateKey), hex(first.privateKey), 'the original is untouched');
    const second = generateKeyPair();
    await writeKeyFile(path, second, { overwrite: true });
    assert.equal(hex((await readKeyFile(path)).privateKey), hex(second.privateKey));
    assert.equal(fs.statSync(path).mode & 0o777, 0o600);
    assert.deepEqual(fs.readdirSync(dir).filter((f) => f.endsWith('.tmp')), []);
  });

  void test('writeKeyFile refuses an inconsistent key pair and a missing directory', async () => {
    const kp = generateKeyPair();
    await assertRejects(writeKeyFile(fresh(), { privateKey: kp.privateKey, publicKey: generateKeyPair().publicKey }), 'MESH_ERR_KEY_FILE', 'does not match');
    await assertRejects(writeKeyFile(join(dir, 'no-such-dir', 'k.json'), kp), 'MESH_ERR_KEY_FILE', 'directory does not exist');
  });

  for (const mode of [0o640, 0o644, 0o604, 0o660]) {
    void test(`readKeyFile refuses a file with mode ${mode.toString(8)} and says how to fix it`, async () => {
      const path = fresh();
      await writeKeyFile(path, generateKeyPair());
      fs.chmodSync(path, mode);
      const octal = `0${mode.toString(8)}`;
      await assertRejects(readKeyFile(path), 'MESH_ERR_KEY_FILE', `key file ${path} has mode ${octal}`);
      assertCode(() => readKeyFileSync(path), 'MESH_ERR_KEY_FILE', `run \`chmod 600 ${path}\``);
      fs.chmodSync(path, 0o600);
      await readKeyFile(path);
    });
  }

  void test('readKeyFile: missing file, directory', async () => {
    const missing = join(dir, 'missing.json');
    const err = await assertRejects(readKeyFile(missing), 'MESH_ERR_KEY_FILE', `key file ${missing} does not exist`);
    assert.equal((err.cause as NodeJS.ErrnoException).code, 'ENOENT');
    assertCode(() => readKeyFileSync(missing), 'MESH_ERR_KEY_FILE', 'does not exist');
    const sub = join(dir, 'a-dir');
    fs.mkdirSync(sub, { mode: 0o700 });
    await assertRejects(readKeyFile(sub), 'MESH_ERR_KEY_FILE', 'not a regular file');
  });

  const kp = generateKeyPair();
  const other = generateKeyPair();
  const valid = JSON.parse(formatKeyFile(kp)) as Record<string, unknown>;
  const corrupt: [string, string, string][] = [
    ['not JSON', '{"type": "meshd-x25519-private-key", ', 'is not valid JSON'],
    ['empty', '', 'is not valid JSON'],
    ['an array', '[]', 'must hold a JSON object'],
    ['wrong type', JSON.stringify({ ...valid, type: 'ssh-key' }), 'has type "ssh-key"'],
    ['wrong version', JSON.stringify({ ...valid, version: 2 }), 'has version 2'],
    ['missing private key', JSON.stringify({ ...valid, privateKey: undefined }), '"privateKey" must be a string, got undefined'],
    ['short private key', JSON.stringify({ ...valid, privateKey: encodeKey(kp.privateKey).slice(0, 40) }), 'private key must be 43 base64url characters'],
    ['bad public key', JSON.stringify({ ...valid, publicKey: 'x'.repeat(44) }), 'public key must be 43'],
    ['mismatched public key', JSON.stringify({ ...valid, publicKey: encodeKey(other.publicKey) }), 'public key does not match the private key'],
  ];
  for (const [label, content, fragment] of corrupt) {
    void test(`readKeyFile refuses corrupted content: ${label}`, async () => {
      const path = fresh();
      fs.writeFileSync(path, content, { mode: 0o600 });
      const err = await assertRejects(readKeyFile(path), 'MESH_ERR_KEY_FILE', fragment);
      assert.ok(err.message.includes(path), 'the message names the file');
    });
  }

  void test('a key file another tool writes from docs/cli.md#key-files is read: unclamped key, any JSON layout, extra members', async () => {
    // Built with node:crypto and plain JSON only, as a script in another language would:
    // 32 random bytes as the private key (not clamped), X25519 public key, base64url without padding.
    const { createPrivateKey, createPublicKey, randomBytes } = await import('node:crypto');
    const raw = randomBytes(32);
    raw[0]! |= 0x07; // the low bits clamping would clear: the file keeps them, X25519 ignores them
    raw[31]! |= 0x80;
    const pkcs8 = Buffer.concat([Buffer.from('302e020100300506032b656e04220420', 'hex'), raw]);
    const spki = createPublicKey(createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' })).export({ format: 'der', type: 'spki' });
    const publicRaw = spki.subarray(spki.length - 32);
    const path = fresh();
    const text = JSON.stringify({ version: 1, publicKey: publicRaw.toString('base64url'), comment: 'made by hand', privateKey: raw.toString('base64url'), type: 'meshd-x25519-private-key' }, null, 2);
    fs.writeFileSync(path, text, { mode: 0o600 }); // pretty-printed, no trailing newline
    const kp = await readKeyFile(path);
    assert.equal(hex(kp.privateKey), raw.toString('hex'), 'the private key is kept as written, not clamped');
    assert.equal(hex(kp.publicKey), publicRaw.toString('hex'));
    assert.equal(hex(readKeyFileSync(path, { suite: getSuite('noble') }).publicKey), publicRaw.toString('hex'), 'noble derives the same public key');
  });

  void test('what meshd writes is the documented line: the four members in order, 43-character keys, one newline', () => {
    const text = formatKeyFile(generateKeyPair());
    assert.match(text, /^\{"type":"meshd-x25519-private-key","version":1,"privateKey":"[A-Za-z0-9_-]{43}","publicKey":"[A-Za-z0-9_-]{43}"\}\n$/);
  });

  void test('readKeyFile refuses an oversized file without parsing it', async () => {
    const path = fresh();
    fs.writeFileSync(path, ' '.repeat(10_000), { mode: 0o600 });
    await assertRejects(readKeyFile(path), 'MESH_ERR_KEY_FILE', '10000 bytes');
  });
});
