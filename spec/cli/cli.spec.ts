// The meshd command line, run as a real child process (the compiled
// dist/bin/meshd.js) the way a user or script runs it: exit codes, stdout vs
// stderr, key files on disk, MESHD_* variables. The tests of the suite run
// concurrently.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, readFileSync, statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { encodeKey, generateKeyPair, readKeyFileSync, writeKeyFileSync } from '../../lib/index.ts';
import { main } from '../../bin/cli.ts';

import { MESHD_NODE_FLAGS, meshdArgs, root } from '../helpers/meshd-bin.ts';

const KEY_TEXT = /^[A-Za-z0-9_-]{43}$/;
/** Generous: a child takes ~0.4 s alone, but the suite starts many at once on possibly busy machines. */
const CHILD_TIMEOUT_MS = 60_000;

/** What went wrong with a run, for assertion messages. */
function describeRun(r: Run): string {
  return `exit ${r.status ?? 'none'}${r.signal === null ? '' : ` (killed by ${r.signal})`}; stderr: ${r.stderr}`;
}

interface Run {
  readonly status: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** The environment of the test run without MESHD_* variables, plus `extra`. */
function childEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (!name.startsWith('MESHD_') && name !== 'NODE_TEST_CONTEXT') env[name] = value;
  }
  return { ...env, ...extra };
}

/** Runs `meshd ...args` from the repository root. */
function meshd(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, meshdArgs(args), { cwd: root, env: childEnv(env), stdio: ['ignore', 'pipe', 'pipe'], timeout: CHILD_TIMEOUT_MS });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (status, signal) => resolve({ status, signal, stdout, stderr }));
  });
}

/** Asserts a usage error: exit 2, nothing on stdout, a message and a --help hint on stderr. */
function assertUsageError(r: Run, fragment: RegExp, hint = /Run 'meshd.*--help'/): void {
  assert.equal(r.status, 2, describeRun(r));
  assert.equal(r.stdout, '');
  assert.match(r.stderr, fragment);
  assert.match(r.stderr, hint);
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
}

/** Asserts a MeshError report: exit 1, nothing on stdout, `CODE: message` on stderr and no stack. */
function assertMeshError(r: Run, code: string, fragment?: RegExp): void {
  assert.equal(r.status, 1, describeRun(r));
  assert.equal(r.stdout, '');
  assert.ok(r.stderr.startsWith(`${code}: `), `stderr should start with "${code}: ": ${r.stderr}`);
  if (fragment !== undefined) assert.match(r.stderr, fragment);
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
}

/** The stdout of a run that must print exactly one line. */
function oneLine(r: Run): string {
  assert.equal(r.status, 0, describeRun(r));
  const lines = r.stdout.split('\n');
  assert.equal(lines.length, 2, `one line and a newline expected on stdout: ${JSON.stringify(r.stdout)}`);
  assert.equal(lines[1], '');
  return lines[0]!;
}

void describe('meshd CLI (child processes)', { concurrency: true }, () => {
  let dir = '';
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'meshd-cli-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  void test('--help lists the commands, global rules and the docs', async () => {
    const r = await meshd(['--help']);
    assert.equal(r.status, 0, describeRun(r));
    for (const name of ['broker', 'serve', 'request', 'status', 'top', 'registry', 'keygen', 'pubkey', 'address']) assert.match(r.stdout, new RegExp(`meshd ${name}\\b`));
    assert.match(r.stdout, /Exit codes: 0 success, 1 error[\s\S]*2[\s\S]*usage[\s\S]*error/);
    assert.match(r.stdout, /MESHD_/);
    assert.match(r.stdout, /docs\/cli\.md/);
    assert.equal(r.stderr, '');
  });

  void test('every subcommand has --help with usage, examples and the docs link', async () => {
    const runs = await Promise.all(['keygen', 'pubkey', 'address'].map(async (name) => ({ name, r: await meshd([name, '--help']) })));
    for (const { name, r } of runs) {
      assert.equal(r.status, 0, `${name}: ${describeRun(r)}`);
      assert.match(r.stdout, new RegExp(`^meshd ${name}`), name);
      assert.match(r.stdout, /Examples:/, name);
      assert.match(r.stdout, new RegExp(`docs/cli\\.md#meshd-${name}`), name);
      assert.equal(r.stderr, '', name);
    }
  });

  void test('--version prints the package.json version', async () => {
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string };
    assert.equal(oneLine(await meshd(['--version'])), pkg.version);
  });

  void test('keygen writes a 0600 key file and prints its public key; pubkey agrees; overwrite needs --force', async () => {
    const file = join(dir, 'node.key');
    const created = await meshd(['keygen', '--out', file]);
    const key = oneLine(created);
    assert.match(key, KEY_TEXT);
    assert.match(created.stderr, /wrote private key to .*node\.key \(mode 0600\)/);
    if (process.platform !== 'win32') assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.equal(encodeKey(readKeyFileSync(file).publicKey), key);

    // A MESHD_* variable for another command's option must not upset pubkey.
    const [shown, refused] = await Promise.all([meshd(['pubkey', file], { MESHD_OUT: join(dir, 'unused.key') }), meshd(['keygen', '--out', file])]);
    assert.equal(oneLine(shown), key);
    assert.equal(shown.stderr, '');
    assertMeshError(refused, 'MESH_ERR_KEY_FILE', /already exists.*--force/);
    assert.equal(encodeKey(readKeyFileSync(file).publicKey), key, 'the refused keygen left the file alone');
    assert.equal(existsSync(join(dir, 'unused.key')), false);

    const forced = await meshd(['keygen', '--out', file, '--force']);
    const newKey = oneLine(forced);
    assert.match(newKey, KEY_TEXT);
    assert.notEqual(newKey, key);
    assert.equal(encodeKey(readKeyFileSync(file).publicKey), newKey);
    if (process.platform !== 'win32') assert.equal(statSync(file).mode & 0o777, 0o600);
  });

  void test('pubkey refuses a key file readable by group or others (MESH_ERR_KEY_FILE, exit 1)', { skip: process.platform === 'win32' }, async () => {
    const file = join(dir, 'open.key');
    writeKeyFileSync(file, generateKeyPair());
    chmodSync(file, 0o644);
    assertMeshError(await meshd(['pubkey', file]), 'MESH_ERR_KEY_FILE', /mode 0644.*chmod 600/);
  });

  void test('keygen without --out is a usage error (exit 2) and prints no key', async () => {
    assertUsageError(await meshd(['keygen']), /--out/, /Run 'meshd keygen --help'/);
  });

  void test('an unknown command is a usage error (exit 2)', async () => {
    assertUsageError(await meshd(['frobnicate']), /unknown command 'frobnicate'/, /Run 'meshd --help'/);
  });

  void test('MESHD_OUT fills --out; a --out flag wins over it', async () => {
    const fromEnv = join(dir, 'env.key');
    const fromFlag = join(dir, 'flag.key');
    const ignored = join(dir, 'ignored.key');
    const [a, b] = await Promise.all([meshd(['keygen'], { MESHD_OUT: fromEnv }), meshd(['keygen', '--out', fromFlag], { MESHD_OUT: ignored })]);
    assert.equal(encodeKey(readKeyFileSync(fromEnv).publicKey), oneLine(a));
    assert.equal(encodeKey(readKeyFileSync(fromFlag).publicKey), oneLine(b));
    assert.equal(existsSync(ignored), false, 'the flag, not MESHD_OUT, names the file');
  });

  void test('variables that name no option (MESHD, MESHD_, MESHDX, MESHD_NOPE) are ignored, and none replaces a positional or a flag', async () => {
    const stray = { MESHD: '', MESHD_: 'x', MESHDOUT: join(dir, 'stray.key'), MESHD_NOPE: '1', MESHD__OUT: join(dir, 'nested.key') };
    const file = join(dir, 'stray-env.key');
    const registry = join(dir, 'stray-registry.yaml');
    const keygen = await meshd(['keygen', '--out', file], stray);
    assert.equal(keygen.status, 0, describeRun(keygen));
    const added = await meshd(['registry', 'add', '--registry', registry, '--key-file', file, '--name', 'stray', '--role', 'client'], stray);
    assert.equal(added.status, 0, describeRun(added));
    const runs = await Promise.all([
      meshd(['--version'], stray),
      meshd(['--help'], stray),
      meshd(['pubkey', file], stray),
      meshd(['address', '--key', file, '--host', '127.0.0.1', '--port', '4222'], stray),
      meshd(['registry', 'list', '--registry', registry], stray),
      meshd(['broker', '--help'], stray),
      meshd(['serve', '--help'], stray),
      meshd(['request', '--help'], stray),
    ]);
    for (const r of runs) {
      assert.equal(r.status, 0, describeRun(r));
      assert.doesNotMatch(r.stderr, /Unknown argument/);
    }
    assert.equal(oneLine(runs[2]), encodeKey(readKeyFileSync(file).publicKey));
    // A variable named after a positional never replaces what was typed.
    const other = join(dir, 'other-positional.key');
    writeKeyFileSync(other, generateKeyPair());
    const positional = await meshd(['pubkey', file], { MESHD_FILE: other });
    assert.equal(oneLine(positional), encodeKey(readKeyFileSync(file).publicKey), describeRun(positional));
    const removeOther = await meshd(['registry', 'remove', '--registry', registry, 'nobody'], { MESHD_ENTRY: 'stray' });
    assert.equal(removeOther.status, 1, describeRun(removeOther));
    assert.match(removeOther.stderr, /no entry with key or name "nobody"/);
    // A camelCase flag counts as given: its variable does not override it.
    const nowhere = `mesh://${encodeKey(readKeyFileSync(file).publicKey)}@127.0.0.1:1`;
    const camelFlag = await meshd(['serve', '--broker', nowhere, '--key', file, 'echo', '--echo', '--connectTimeout', '300'], { MESHD_CONNECT_TIMEOUT: '60000' });
    assert.equal(camelFlag.status, 1, describeRun(camelFlag));
    assert.match(camelFlag.stderr, /MESH_ERR_TIMEOUT: no broker accepted the worker within --connect-timeout 300 ms/);
    assert.equal(existsSync(join(dir, 'stray.key')) || existsSync(join(dir, 'nested.key')), false, 'no stray variable named the key file');
    // A variable that names an option must hold a value of its type.
    assertUsageError(await meshd(['serve', '--broker', 'mesh://x@h:1', '--key', file, 'echo'], { MESHD_ECHO: 'maybe' }), /MESHD_ECHO='maybe' is not a boolean/);
    assertUsageError(await meshd(['serve', '--broker', 'mesh://x@h:1', '--key', file, 'echo', '--echo'], { MESHD_CONCURRENCY: '1.5' }), /MESHD_CONCURRENCY='1.5' is not a whole number/);
  });

  void test('address formats mesh://KEY@HOST:PORT, parses one to JSON, and rejects a bad one with MESH_ERR_BAD_ADDRESS', async () => {
    const file = join(dir, 'broker.key');
    const keyPair = generateKeyPair();
    writeKeyFileSync(file, keyPair);
    const key = encodeKey(keyPair.publicKey);
    const [formatted, parsed, bad] = await Promise.all([
      meshd(['address', '--key', file, '--host', '::1', '--port', '7000']),
      meshd(['address', '--parse', `mesh://${key}@broker.example:7001`]),
      meshd(['address', '--parse', `http://${key}@broker.example:7001`]),
    ]);
    assert.equal(oneLine(formatted), `mesh://${key}@[::1]:7000`);
    assert.deepEqual(JSON.parse(oneLine(parsed)), { url: `mesh://${key}@broker.example:7001`, key, host: 'broker.example', port: 7001 });
    assertMeshError(bad, 'MESH_ERR_BAD_ADDRESS', /scheme/);
  });
});

// main() in-process: output goes through the io object, never to the console.
void describe('main() with captured output', () => {
  function capture(): { io: { stdout: { write(s: string): boolean }; stderr: { write(s: string): boolean } }; out: () => string; err: () => string } {
    let out = '';
    let err = '';
    return {
      io: { stdout: { write: (s) => ((out += s), true) }, stderr: { write: (s) => ((err += s), true) } },
      out: () => out,
      err: () => err,
    };
  }

  void test('help goes to io.stdout, exit 0', async () => {
    const c = capture();
    assert.equal(await main(['pubkey', '--help'], c.io), 0);
    assert.match(c.out(), /^meshd pubkey FILE/);
    assert.equal(c.err(), '');
  });

  void test('a usage error goes to io.stderr, exit 2; a MeshError prints CODE: message, exit 1', async () => {
    const usage = capture();
    assert.equal(await main(['address', '--host', 'h'], usage.io), 2);
    assert.match(usage.err(), /^meshd address: missing --key, --port/);
    assert.equal(usage.out(), '');

    const failed = capture();
    assert.equal(await main(['pubkey', join(tmpdir(), 'meshd-cli-no-such-dir', 'x.key')], failed.io), 1);
    assert.match(failed.err(), /^MESH_ERR_KEY_FILE: key file .* does not exist\n$/);
    assert.equal(failed.out(), '');
  });
});

test('meshd runs node with --initial-old-space-size=128 (shebang of the compiled bin), as bench/mesh.ts assumes', () => {
  const first = readFileSync(new URL('../../dist/bin/meshd.js', import.meta.url), 'utf8').split('\n')[0];
  assert.equal(first, '#!/usr/bin/env -S node --initial-old-space-size=128');
  assert.deepEqual(MESHD_NODE_FLAGS, ['--initial-old-space-size=128']);
  const bench = readFileSync(new URL('../../bench/mesh.ts', import.meta.url), 'utf8');
  assert.match(bench, /MESHD_NODE_FLAGS = \['--initial-old-space-size=128'\]/);
});
