import assert from 'node:assert/strict';
import { createHook } from 'node:async_hooks';
import * as fs from 'node:fs';
import { chmod, mkdir, mkdtemp, readdir, readFile, rename, rm, stat, symlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, describe, test } from 'node:test';
import { isMeshError } from '../../lib/errors.ts';
import type { MeshError } from '../../lib/errors.ts';
import { encodeKey, generateKeyPair } from '../../lib/crypto/keys.ts';
import type { Registry, RegistryDiff } from '../../lib/broker/registry.ts';
import { addRegistryEntry, listRegistry, loadRegistry, loadRegistrySync, RegistryWatcher, removeRegistryEntry, REGISTRY_HEADER } from '../../lib/broker/registry-file.ts';

const newKey = (): string => encodeKey(generateKeyPair().publicKey);
const K1 = newKey();
const K2 = newKey();
const K3 = newKey();
const posix = process.platform !== 'win32';

let root = '';
let counter = 0;
before(async () => {
  root = await mkdtemp(join(tmpdir(), 'meshd-registry-'));
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

/** A fresh empty directory under the suite's temp dir. */
async function freshDir(): Promise<string> {
  const dir = join(root, `t${++counter}`);
  await mkdir(dir);
  return dir;
}

async function assertConfig(p: Promise<unknown>, ...fragments: string[]): Promise<MeshError> {
  let caught: MeshError | undefined;
  await assert.rejects(p, (err: unknown) => {
    assert.ok(isMeshError(err, 'MESH_ERR_CONFIG'), `expected MESH_ERR_CONFIG, got ${String(err)}`);
    for (const f of fragments) assert.ok(err.message.includes(f), `"${err.message}" should mention "${f}"`);
    caught = err;
    return true;
  });
  return caught!;
}

const entryYaml = (key: string, name: string, role: string, extra = ''): string => `- key: ${key}\n  name: ${name}\n  role: ${role}\n${extra}`;

void describe('loadRegistry / loadRegistrySync', () => {
  void test('load a valid file', async () => {
    const dir = await freshDir();
    const file = join(dir, 'registry.yaml');
    await writeFile(file, entryYaml(K1, 'a', 'client', '  call: [x]\n'));
    assert.equal((await loadRegistry(file)).getByKey(K1)?.name, 'a');
    assert.equal(loadRegistrySync(file).getByKey(K1)?.name, 'a');
    assert.equal((await loadRegistry(file)).source, file);
  });

  void test('a missing file is MESH_ERR_CONFIG with the cause attached', async () => {
    const dir = await freshDir();
    const file = join(dir, 'missing.yaml');
    const err = await assertConfig(loadRegistry(file), file, 'does not exist', 'meshd registry add');
    assert.equal((err.cause as NodeJS.ErrnoException).code, 'ENOENT');
    assert.throws(() => loadRegistrySync(file), (e: unknown) => isMeshError(e, 'MESH_ERR_CONFIG') && e.message.includes('does not exist'));
  });

  void test('a directory is MESH_ERR_CONFIG', async () => {
    const dir = await freshDir();
    await assertConfig(loadRegistry(dir), dir);
  });

  void test('an invalid file names the file', async () => {
    const dir = await freshDir();
    const file = join(dir, 'bad.yaml');
    await writeFile(file, entryYaml(K1, 'a', 'wizard'));
    await assertConfig(loadRegistry(file), file, 'entry 1', '`role` must be one of');
  });
});

void describe('registry editing', () => {
  void test('add creates the file with a header comment and mode 0644; list reads it back', async () => {
    const dir = await freshDir();
    const file = join(dir, 'registry.yaml');
    await addRegistryEntry(file, { key: K1, name: 'billing', role: 'worker', serve: ['billing.*', '*'] });
    await addRegistryEntry(file, { key: K2, name: 'web', role: 'client', call: ['*.read'], serve: [] });
    await addRegistryEntry(file, { key: K3, name: 'broker-2', role: 'broker', call: [], serve: [] });
    const text = await readFile(file, 'utf8');
    assert.ok(text.startsWith(`#${REGISTRY_HEADER.split('\n')[0]}`), text);
    assert.match(text, /"\*\.read"/, 'a glob starting with * is quoted');
    if (posix) assert.equal((await stat(file)).mode & 0o777, 0o644);
    const list = await listRegistry(file);
    assert.deepEqual(
      list.map((e) => [e.key, e.name, e.role, [...e.call], [...e.serve]]),
      [
        [K1, 'billing', 'worker', [], ['billing.*', '*']],
        [K2, 'web', 'client', ['*.read'], []],
        [K3, 'broker-2', 'broker', [], []],
      ],
    );
    assert.deepEqual(await readdir(dir), ['registry.yaml'], 'no temporary files left behind');
  });

  void test('add and remove keep comments and the other entries as written', async () => {
    const dir = await freshDir();
    const file = join(dir, 'registry.yaml');
    const original = [
      '# Production registry. Owner: platform team.',
      '',
      '# the web tier',
      entryYaml(K1, 'web', 'client', '  call: [users.*]   # read-only, see ticket 42\n'),
      '# billing workers',
      entryYaml(K2, 'billing', 'worker', '  serve:\n    - billing.*\n'),
    ].join('\n');
    await writeFile(file, original);

    await addRegistryEntry(file, { key: K3, name: 'ops', role: 'node', call: ['*'], serve: ['ops.status'] });
    let text = await readFile(file, 'utf8');
    for (const comment of ['# Production registry. Owner: platform team.', '# the web tier', '# read-only, see ticket 42', '# billing workers']) {
      assert.ok(text.includes(comment), `lost "${comment}" in:\n${text}`);
    }
    assert.ok(text.includes(`- key: ${K2}\n  name: billing\n  role: worker\n  serve:\n    - billing.*\n`), `block list of another entry kept:\n${text}`);
    assert.deepEqual((await listRegistry(file)).map((e) => e.name), ['web', 'billing', 'ops']);

    // Removing the first entry takes its own comment, not the file header.
    assert.equal(await removeRegistryEntry(file, 'web'), true);
    text = await readFile(file, 'utf8');
    assert.ok(text.startsWith('# Production registry. Owner: platform team.'), `header kept:\n${text}`);
    assert.ok(!text.includes('# the web tier'), `the removed entry's comment goes with it:\n${text}`);
    assert.ok(!text.includes(K1));
    assert.ok(text.includes('# billing workers'));

    // Remove by key.
    assert.equal(await removeRegistryEntry(file, K3), true);
    assert.deepEqual((await listRegistry(file)).map((e) => e.name), ['billing']);
    assert.ok((await readFile(file, 'utf8')).startsWith('# Production registry.'));
    assert.deepEqual(await readdir(dir), ['registry.yaml'], 'no temporary files left behind');
  });

  void test('removing the last entry leaves a valid empty registry with the header', async () => {
    const dir = await freshDir();
    const file = join(dir, 'registry.yaml');
    await addRegistryEntry(file, { key: K1, name: 'a', role: 'client' });
    assert.equal(await removeRegistryEntry(file, 'a'), true);
    assert.equal((await loadRegistry(file)).size, 0);
    assert.ok((await readFile(file, 'utf8')).startsWith('#'));
    await addRegistryEntry(file, { key: K1, name: 'a', role: 'client' });
    assert.equal((await loadRegistry(file)).size, 1);
  });

  void test('add to an empty or comment-only file', async () => {
    const dir = await freshDir();
    for (const [i, content] of ['', '# empty for now\n', '[]\n'].entries()) {
      const file = join(dir, `r${i}.yaml`);
      await writeFile(file, content);
      await addRegistryEntry(file, { key: K1, name: 'a', role: 'client', call: ['x'] });
      const text = await readFile(file, 'utf8');
      if (content.startsWith('#')) assert.ok(text.startsWith('# empty for now'), text);
      assert.deepEqual((await listRegistry(file)).map((e) => e.name), ['a'], text);
      assert.match(text, /^- key: /m, `block style:\n${text}`);
    }
  });

  void test('add refuses a duplicate key or name and an invalid entry, leaving the file untouched', async () => {
    const dir = await freshDir();
    const file = join(dir, 'registry.yaml');
    await addRegistryEntry(file, { key: K1, name: 'a', role: 'client', call: ['x'] });
    const before = await readFile(file, 'utf8');
    await assertConfig(addRegistryEntry(file, { key: K1, name: 'b', role: 'client' }), 'already registered as "a"', 'meshd registry remove');
    await assertConfig(addRegistryEntry(file, { key: K2, name: 'a', role: 'client' }), 'name "a" is already used', K1);
    await assertConfig(addRegistryEntry(file, { key: K2, name: 'b', role: 'worker', call: ['x'] }), 'role worker may only serve');
    await assertConfig(addRegistryEntry(file, { key: 'not-a-key', name: 'b', role: 'client' }), '`key`');
    await assertConfig(addRegistryEntry(file, { key: K2, name: 'b', role: 'client', call: ['bad glob'] }), 'contains " "');
    assert.equal(await readFile(file, 'utf8'), before);
    assert.deepEqual(await readdir(dir), ['registry.yaml']);
  });

  void test('add does not create a file for an invalid entry', async () => {
    const dir = await freshDir();
    const file = join(dir, 'registry.yaml');
    await assertConfig(addRegistryEntry(file, { key: K1, name: '', role: 'client' }), '1 to 128 UTF-8 bytes');
    assert.deepEqual(await readdir(dir), []);
  });

  void test('editing refuses an existing file that is not a valid registry', async () => {
    const dir = await freshDir();
    const file = join(dir, 'registry.yaml');
    const broken = `${entryYaml(K1, 'a', 'client')}  colour: blue\n`;
    await writeFile(file, broken);
    await assertConfig(addRegistryEntry(file, { key: K2, name: 'b', role: 'client' }), 'unknown field "colour"', 'fix the registry file');
    await assertConfig(removeRegistryEntry(file, 'a'), 'unknown field "colour"');
    assert.equal(await readFile(file, 'utf8'), broken);
  });

  void test('remove returns false for an unknown key or name and writes nothing', async () => {
    const dir = await freshDir();
    const file = join(dir, 'registry.yaml');
    await addRegistryEntry(file, { key: K1, name: 'a', role: 'client' });
    const before = await stat(file, { bigint: true });
    assert.equal(await removeRegistryEntry(file, 'nobody'), false);
    assert.equal(await removeRegistryEntry(file, K2), false);
    const after = await stat(file, { bigint: true });
    assert.equal(after.ino, before.ino);
    assert.equal(after.mtimeNs, before.mtimeNs);
  });

  void test('remove on a missing file is MESH_ERR_CONFIG and creates nothing', async () => {
    const dir = await freshDir();
    await assertConfig(removeRegistryEntry(join(dir, 'nope.yaml'), 'a'), 'does not exist');
    await assertConfig(listRegistry(join(dir, 'nope.yaml')), 'does not exist');
    assert.deepEqual(await readdir(dir), []);
  });

  void test('an edit keeps the mode of an existing file', { skip: !posix }, async () => {
    const dir = await freshDir();
    const file = join(dir, 'registry.yaml');
    await writeFile(file, '');
    await chmod(file, 0o600);
    await addRegistryEntry(file, { key: K1, name: 'a', role: 'client' });
    assert.equal((await stat(file)).mode & 0o777, 0o600);
  });

  void test('an edit through a symlink rewrites the target and keeps the link', { skip: !posix }, async () => {
    const dir = await freshDir();
    const target = join(dir, 'real.yaml');
    const link = join(dir, 'registry.yaml');
    await writeFile(target, '');
    await symlink(target, link);
    await addRegistryEntry(link, { key: K1, name: 'a', role: 'client' });
    assert.ok((await fs.promises.lstat(link)).isSymbolicLink());
    assert.deepEqual((await listRegistry(target)).map((e) => e.name), ['a']);
  });

  void test('concurrent edits all land (the edit lock): no lost update, no lock or tmp file left', async () => {
    const dir = await freshDir();
    const file = join(dir, 'registry.yaml');
    await addRegistryEntry(file, { key: K1, name: 'first', role: 'client' });
    const keys = Array.from({ length: 4 }, () => newKey());
    const removed = await Promise.all([removeRegistryEntry(file, 'first'), ...keys.map((key, i) => addRegistryEntry(file, { key, name: `n${i}`, role: 'client' }))]);
    assert.equal(removed[0], true);
    const landed = (await listRegistry(file)).map((e) => e.key);
    assert.deepEqual(landed.sort(), [...keys].sort(), 'every concurrent edit landed');
    assert.deepEqual((await readdir(dir)).sort(), ['registry.yaml']);
  });
  void test('a stale lock left by a crashed edit is broken', async () => {
    const dir = await freshDir();
    const file = join(dir, 'registry.yaml');
    const lock = `${file}.lock`;
    await writeFile(lock, '12345\n');
    const old = new Date(Date.now() - 60_000);
    await utimes(lock, old, old);
    await addRegistryEntry(file, { key: K1, name: 'a', role: 'client' });
    assert.deepEqual(await readdir(dir), ['registry.yaml']);
  });
});

// ---------------------------------------------------------------------------
// Watcher

interface Events {
  changes: { registry: Registry; diff: RegistryDiff; at: number }[];
  errors: { err: MeshError; at: number }[];
}

/** Resolves when `predicate` holds, checking every 5 ms; rejects after `timeoutMs`. */
async function waitFor(predicate: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!predicate()) {
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

void describe('RegistryWatcher', () => {
  const watchers: RegistryWatcher[] = [];
  afterEach(() => {
    for (const w of watchers.splice(0)) w.close();
  });

  function watch(path: string, options: { debounceMs?: number; pollMs?: number } = {}): { watcher: RegistryWatcher; events: Events } {
    const events: Events = { changes: [], errors: [] };
    const watcher = new RegistryWatcher(path, {
      ...options,
      onChange: (registry, diff) => events.changes.push({ registry, diff, at: performance.now() }),
      onError: (err) => events.errors.push({ err, at: performance.now() }),
    });
    watchers.push(watcher);
    return { watcher, events };
  }

  async function setup(): Promise<{ dir: string; file: string }> {
    const dir = await freshDir();
    const file = join(dir, 'registry.yaml');
    await writeFile(file, entryYaml(K1, 'a', 'client', '  call: [x]\n') + entryYaml(K2, 'b', 'worker', '  serve: [x]\n'));
    return { dir, file };
  }

  void test('start() loads the registry; start() twice returns the same promise', async () => {
    const { file } = await setup();
    const { watcher } = watch(file);
    const p = watcher.start();
    assert.equal(watcher.start(), p);
    const registry = await p;
    assert.equal(registry.size, 2);
    assert.equal(watcher.registry, registry);
  });

  void test('sees a rewrite by rename (atomic replace) within 1 s and reports the diff', async () => {
    const { dir, file } = await setup();
    const { watcher, events } = watch(file);
    await watcher.start();
    const tmp = join(dir, 'registry.yaml.new');
    await writeFile(tmp, entryYaml(K1, 'a', 'client', '  call: [x, y]\n') + entryYaml(K3, 'c', 'node'));
    const t0 = performance.now();
    await rename(tmp, file);
    await waitFor(() => events.changes.length > 0, 1000, 'onChange after rename');
    const [change] = events.changes;
    assert.ok(change!.at - t0 < 1000, `took ${change!.at - t0} ms`);
    assert.deepEqual(change!.diff, { removed: [K2], changed: [K1], added: [K3] });
    assert.equal(watcher.registry, change!.registry);
    assert.equal(events.errors.length, 0);
  });

  void test('sees an in-place write within 1 s', async () => {
    const { file } = await setup();
    const { watcher, events } = watch(file);
    await watcher.start();
    const t0 = performance.now();
    await writeFile(file, entryYaml(K1, 'a', 'client', '  call: [x]\n'));
    await waitFor(() => events.changes.length > 0, 1000, 'onChange after in-place write');
    assert.ok(events.changes[0]!.at - t0 < 1000);
    assert.deepEqual(events.changes[0]!.diff, { removed: [K2], changed: [], added: [] });
  });

  void test('an edit made through registry add/remove is seen', async () => {
    const { file } = await setup();
    const { watcher, events } = watch(file);
    await watcher.start();
    await removeRegistryEntry(file, 'b');
    await waitFor(() => events.changes.length > 0, 1000, 'onChange after removeRegistryEntry');
    assert.deepEqual(events.changes[0]!.diff.removed, [K2]);
  });

  void test('the stat poll alone sees a change (a symlink whose target lives in another directory)', { skip: !posix }, async () => {
    const realDir = await freshDir();
    const linkDir = await freshDir();
    const target = join(realDir, 'real.yaml');
    const link = join(linkDir, 'registry.yaml');
    await writeFile(target, entryYaml(K1, 'a', 'client'));
    await symlink(target, link);
    const { watcher, events } = watch(link);
    await watcher.start();
    const t0 = performance.now();
    await writeFile(target, entryYaml(K1, 'a', 'client') + entryYaml(K2, 'b', 'client'));
    await waitFor(() => events.changes.length > 0, 1000, 'onChange seen by the poll');
    assert.ok(events.changes[0]!.at - t0 < 1000);
    assert.deepEqual(events.changes[0]!.diff.added, [K2]);
  });

  void test('touching the file without changing its content does not reload', async () => {
    const { file } = await setup();
    const { watcher, events } = watch(file);
    await watcher.start();
    const text = await readFile(file, 'utf8');
    await writeFile(file, text);
    await sleep(800);
    assert.equal(events.changes.length, 0);
    assert.equal(events.errors.length, 0);
  });

  void test('a broken edit keeps the previous registry and reports once; a fix then applies', async () => {
    const { file } = await setup();
    const { watcher, events } = watch(file);
    const first = await watcher.start();
    await writeFile(file, `${entryYaml(K1, 'a', 'client')}  role: twice\n`);
    await waitFor(() => events.errors.length > 0, 1000, 'onError after a broken edit');
    const { err } = events.errors[0]!;
    assert.ok(isMeshError(err, 'MESH_ERR_CONFIG'));
    assert.ok(err.message.includes(file), err.message);
    assert.ok(err.message.includes('keeping the previous registry (2 entries)'), err.message);
    assert.equal(watcher.registry, first, 'the old registry stays in force');
    assert.equal(events.changes.length, 0);
    await sleep(700);
    assert.equal(events.errors.length, 1, 'the same bad content is reported once');

    await writeFile(file, entryYaml(K1, 'a', 'client'));
    await waitFor(() => events.changes.length > 0, 1000, 'onChange after the fix');
    assert.deepEqual(events.changes[0]!.diff.removed, [K2]);
  });

  void test('a deleted file keeps the previous registry; recreating it applies', async () => {
    const { file } = await setup();
    const { watcher, events } = watch(file);
    const first = await watcher.start();
    await rm(file);
    await waitFor(() => events.errors.length > 0, 1000, 'onError after delete');
    assert.ok(events.errors[0]!.err.message.includes('does not exist'), events.errors[0]!.err.message);
    assert.equal(watcher.registry, first);
    await writeFile(file, entryYaml(K3, 'c', 'node'));
    await waitFor(() => events.changes.length > 0, 1000, 'onChange after recreate');
    assert.deepEqual(events.changes[0]!.diff, { removed: [K1, K2], changed: [], added: [K3] });
  });

  void test('reload() re-reads at once, calls onChange even when nothing changed, and reports errors', async () => {
    const { file } = await setup();
    // Long debounce and poll: only reload() can be the reason for what happens here.
    const { watcher, events } = watch(file, { debounceMs: 5000, pollMs: 5000 });
    await watcher.start();
    await watcher.reload();
    assert.equal(events.changes.length, 1);
    assert.deepEqual(events.changes[0]!.diff, { removed: [], changed: [], added: [] });

    await writeFile(file, entryYaml(K1, 'a', 'node'));
    await watcher.reload();
    assert.equal(events.changes.length, 2);
    assert.deepEqual(events.changes[1]!.diff, { removed: [K2], changed: [K1], added: [] });

    await writeFile(file, 'key: [broken\n');
    await watcher.reload();
    await watcher.reload();
    assert.equal(events.errors.length, 1, 'one report per version of the file, however many reloads find it');
    assert.equal(watcher.registry!.size, 1);
  });

  void test('a file put back as it was after a failed edit is reported as in force again (onChange, no difference)', async () => {
    const { file } = await setup();
    const { watcher, events } = watch(file);
    await watcher.start();
    const good = await readFile(file, 'utf8');
    await writeFile(file, 'key: [broken\n');
    await waitFor(() => events.errors.length > 0, 1000, 'onError after a broken edit');
    // The watcher, not a reload, finds the file back as it was.
    await writeFile(file, good);
    await waitFor(() => events.changes.length > 0, 1000, 'onChange after the file was put back');
    assert.deepEqual(events.changes[0]!.diff, { removed: [], changed: [], added: [] });
    assert.equal(events.errors.length, 1);
  });

  void test('an exception in onChange goes to onError; the new registry is in force', async () => {
    const { file } = await setup();
    const errors: MeshError[] = [];
    const watcher = new RegistryWatcher(file, {
      onChange: () => {
        throw new Error('handler bug');
      },
      onError: (err) => errors.push(err),
    });
    watchers.push(watcher);
    await watcher.start();
    await writeFile(file, entryYaml(K1, 'a', 'client'));
    await watcher.reload();
    assert.equal(errors.length, 1);
    assert.ok(errors[0]!.message.includes('handler bug'));
    assert.equal(watcher.registry!.size, 1);
  });

  void test('start() on a missing or invalid file rejects and leaves nothing running', async () => {
    const dir = await freshDir();
    await assertConfig(watch(join(dir, 'none.yaml')).watcher.start(), 'does not exist');
    const bad = join(dir, 'bad.yaml');
    await writeFile(bad, '- 1\n');
    await assertConfig(watch(bad).watcher.start(), 'entry 1');
  });

  void test('bad options are MESH_ERR_CONFIG', () => {
    const noop = { onChange: () => undefined, onError: () => undefined };
    assert.throws(() => new RegistryWatcher('x', { ...noop, debounceMs: -1 }), (e: unknown) => isMeshError(e, 'MESH_ERR_CONFIG'));
    assert.throws(() => new RegistryWatcher('x', { ...noop, pollMs: 0 }), (e: unknown) => isMeshError(e, 'MESH_ERR_CONFIG'));
  });

  void test('close() is idempotent, stops callbacks and leaves no handles', async () => {
    const { file } = await setup();
    // Track the timers and fs watchers created while the watcher runs: close() must destroy them all.
    const live = new Map<number, string>();
    const hook = createHook({
      init: (id, type) => {
        if (type === 'Timeout' || type === 'FSEVENTWRAP' || type === 'STATWATCHER') live.set(id, type);
      },
      destroy: (id) => live.delete(id),
    });
    hook.enable();
    try {
      const { watcher, events } = watch(file, { debounceMs: 10, pollMs: 20 });
      await watcher.start();
      assert.ok([...live.values()].includes('FSEVENTWRAP'), 'the directory watch is running');
      await writeFile(file, entryYaml(K1, 'a', 'client'));
      watcher.close();
      watcher.close();
      await writeFile(file, entryYaml(K3, 'c', 'client'));
      await watcher.reload();
      await new Promise((resolve) => setTimeout(resolve, 200));
      assert.equal(events.changes.length, 0, 'no callback after close');
      assert.equal(events.errors.length, 0, 'no callback after close');
      await new Promise((resolve) => setImmediate(resolve));
      assert.deepEqual([...live.values()], [], 'every timer and fs watcher is gone');
    } finally {
      hook.disable();
    }
    const closed = new RegistryWatcher(file, { onChange: () => undefined, onError: () => undefined });
    closed.close();
    await assert.rejects(closed.start(), (e: unknown) => isMeshError(e, 'MESH_ERR_CLOSED'));
  });

  void test('close() during start() rejects start with MESH_ERR_CLOSED', async () => {
    const { file } = await setup();
    const { watcher } = watch(file);
    const p = watcher.start();
    watcher.close();
    await assert.rejects(p, (e: unknown) => isMeshError(e, 'MESH_ERR_CLOSED'));
    assert.equal(watcher.registry, undefined);
  });
});
