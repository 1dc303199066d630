/**
 * The registry file: loading, watching (reload on change or on demand) and
 * safe editing (`meshd registry add|remove|list`).
 *
 * Edits go through the yaml library's Document API, so comments and the
 * formatting of the other entries survive, and are written atomically: a
 * temporary file in the same directory, fsynced, renamed over the registry.
 */
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { Document, isSeq, parseDocument } from 'yaml';
import type { YAMLMap, YAMLSeq } from 'yaml';
import { MeshError } from '../errors.ts';
import { Registry } from './registry.ts';
import type { RegistryDiff, RegistryEntry, RegistryEntryInit } from './registry.ts';

/** Mode of a registry file this code creates: registries hold only public keys. */
export const REGISTRY_FILE_MODE = 0o644;

/** The comment at the top of a registry file created by {@link addRegistryEntry}. */
export const REGISTRY_HEADER = [
  ' meshd registry: the parties that may connect to a broker, and what each may do.',
  ' Each entry: key (base64url X25519 public key), name (unique), role (broker,',
  ' client, worker or node), call and serve (lists of service globs; quote a glob',
  ' that starts with *, like "*.read"). Edit with `meshd registry add|remove|list`',
  ' or by hand; brokers reload it on change and on SIGHUP. See docs/registry.md.',
].join('\n');

const DEFAULT_DEBOUNCE_MS = 100;
const DEFAULT_POLL_MS = 500;
const EDIT_ATTEMPTS = 5;
/** How long an edit waits for another edit's lock. */
const LOCK_WAIT_MS = 5000;
/** A lock file older than this is from a crashed edit. */
const LOCK_STALE_MS = 30_000;

function configError(message: string, cause?: unknown): MeshError {
  return new MeshError('MESH_ERR_CONFIG', message, cause === undefined ? {} : { cause });
}

function errno(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | null)?.code;
}

function readError(path: string, err: unknown): MeshError {
  const code = errno(err);
  if (code === 'ENOENT') return configError(`registry file ${path} does not exist (create it with \`meshd registry add --registry ${path} ...\`)`, err);
  if (code === 'EACCES' || code === 'EPERM') return configError(`cannot read registry file ${path}: permission denied`, err);
  if (code === 'EISDIR') return configError(`registry file ${path} is a directory`, err);
  return configError(`cannot read registry file ${path}: ${err instanceof Error ? err.message : String(err)}`, err);
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/** Reads and parses a registry file. MESH_ERR_CONFIG when it is missing, unreadable or invalid. */
export async function loadRegistry(path: string): Promise<Registry> {
  let text: string;
  try {
    text = await fsp.readFile(path, 'utf8');
  } catch (err) {
    throw readError(path, err);
  }
  return Registry.parse(text, path);
}

/** {@link loadRegistry}, synchronously (for CLI start-up). */
export function loadRegistrySync(path: string): Registry {
  let text: string;
  try {
    text = fs.readFileSync(path, 'utf8');
  } catch (err) {
    throw readError(path, err);
  }
  return Registry.parse(text, path);
}

/** Callbacks and timing for a {@link RegistryWatcher}. */
export interface RegistryWatcherOptions {
  /**
   * A new registry is in force: the file's content changed (even if only in
   * comments: then the diff is empty) or {@link RegistryWatcher.reload} was
   * called. `diff` is relative to the previous registry.
   */
  onChange(registry: Registry, diff: RegistryDiff): void;
  /**
   * A reload failed (file missing, unreadable or invalid): the previous
   * registry stays in force. Also receives an exception thrown by onChange.
   * Reported once per distinct bad content, not on every poll.
   */
  onError(err: MeshError): void;
  /** Quiet time after a file event before reading the file. Default 100 ms. */
  readonly debounceMs?: number;
  /** Interval of the stat poll that backs up fs.watch. Default 500 ms. */
  readonly pollMs?: number;
}

/**
 * Keeps a registry in step with its file. Watches the file's directory (an
 * editor or an atomic write replaces the file by rename, which a watch on the
 * file itself would lose) filtered on the file name, plus a stat poll (default
 * every 500 ms) for file systems where fs.watch is unreliable and for
 * symlinked files; so a change is in force within one second. A change whose
 * content hash equals the registry in force is ignored. A reload that fails
 * keeps the previous registry and reports through onError: it never falls
 * back to an empty registry. Timers and watchers do not keep the process alive.
 */
export class RegistryWatcher {
  /** The watched path. */
  readonly path: string;
  readonly #options: RegistryWatcherOptions;
  readonly #debounceMs: number;
  readonly #pollMs: number;
  #registry: Registry | undefined;
  #appliedHash: string | undefined;
  /** Hash (or "read:CODE") of the last failure reported, so it is reported once. */
  #failed: string | undefined;
  #starting: Promise<Registry> | undefined;
  #closed = false;
  #watcher: fs.FSWatcher | undefined;
  #poll: NodeJS.Timeout | undefined;
  #polling = false;
  #statSignature = '';
  #debounce: NodeJS.Timeout | undefined;
  #queue: Promise<void> = Promise.resolve();

  constructor(path: string, options: RegistryWatcherOptions) {
    const { debounceMs = DEFAULT_DEBOUNCE_MS, pollMs = DEFAULT_POLL_MS } = options;
    if (!Number.isFinite(debounceMs) || debounceMs < 0) throw configError(`registry watcher: debounceMs must be a number ≥ 0, got ${debounceMs}`);
    if (!Number.isFinite(pollMs) || pollMs < 10) throw configError(`registry watcher: pollMs must be a number ≥ 10, got ${pollMs}`);
    this.path = path;
    this.#options = options;
    this.#debounceMs = debounceMs;
    this.#pollMs = pollMs;
  }

  /** The registry in force; undefined before {@link start} resolves. */
  get registry(): Registry | undefined {
    return this.#registry;
  }

  /**
   * Loads the registry and starts watching. Rejects with MESH_ERR_CONFIG when
   * the file is missing or invalid (nothing is left running), MESH_ERR_CLOSED
   * after close(). Calling it again returns the same promise.
   */
  start(): Promise<Registry> {
    this.#starting ??= this.#start();
    return this.#starting;
  }

  async #start(): Promise<Registry> {
    if (this.#closed) throw new MeshError('MESH_ERR_CLOSED', `registry watcher for ${this.path} is closed`);
    this.#statSignature = await this.#signature();
    let text: string;
    try {
      text = await fsp.readFile(this.path, 'utf8');
    } catch (err) {
      throw readError(this.path, err);
    }
    const registry = Registry.parse(text, this.path);
    if (this.#closed) throw new MeshError('MESH_ERR_CLOSED', `registry watcher for ${this.path} was closed while starting`);
    this.#registry = registry;
    this.#appliedHash = sha256(text);
    this.#watch();
    this.#poll = setInterval(() => void this.#pollOnce(), this.#pollMs);
    this.#poll.unref();
    return registry;
  }

  /**
   * Re-reads the file now (what SIGHUP does) and, when it is valid, puts it in
   * force and calls onChange even if nothing changed; a failure goes to
   * onError, unless this version of the file was reported already. Never rejects. Does nothing before start() or after close().
   */
  reload(): Promise<void> {
    if (this.#registry === undefined || this.#closed) return Promise.resolve();
    return this.#enqueue(true);
  }

  /** Stops watching. Idempotent; callbacks are not called afterwards. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#watcher?.close();
    this.#watcher = undefined;
    if (this.#poll !== undefined) clearInterval(this.#poll);
    if (this.#debounce !== undefined) clearTimeout(this.#debounce);
    this.#poll = undefined;
    this.#debounce = undefined;
  }

  #watch(): void {
    const name = basename(this.path);
    try {
      const watcher = fs.watch(dirname(this.path), { persistent: false }, (_event, filename) => {
        // Some platforms give no file name: then any event in the directory counts.
        if (filename === null || filename === name) this.#schedule();
      });
      // A watcher error (directory removed, inotify trouble): the poll carries on alone.
      watcher.on('error', () => {
        watcher.close();
        if (this.#watcher === watcher) this.#watcher = undefined;
      });
      this.#watcher = watcher;
    } catch {
      // fs.watch unavailable here (e.g. inotify limit): the poll alone sees changes.
      this.#watcher = undefined;
    }
  }

  /** Identity of the file's current version: inode, size, mtime and ctime in ns, or why stat failed. */
  async #signature(): Promise<string> {
    try {
      const s = await fsp.stat(this.path, { bigint: true });
      return `${s.dev}:${s.ino}:${s.size}:${s.mtimeNs}:${s.ctimeNs}`;
    } catch (err) {
      return `error:${errno(err) ?? 'unknown'}`;
    }
  }

  async #pollOnce(): Promise<void> {
    if (this.#polling || this.#closed) return;
    this.#polling = true;
    try {
      const signature = await this.#signature();
      if (signature !== this.#statSignature && !this.#closed) {
        this.#statSignature = signature;
        this.#schedule();
      }
    } finally {
      this.#polling = false;
    }
  }

  #schedule(): void {
    if (this.#closed) return;
    if (this.#debounce !== undefined) clearTimeout(this.#debounce);
    this.#debounce = setTimeout(() => {
      this.#debounce = undefined;
      void this.#enqueue(false);
    }, this.#debounceMs);
    this.#debounce.unref();
  }

  /** Runs checks one after another; the returned promise never rejects. */
  #enqueue(force: boolean): Promise<void> {
    const run = this.#queue
      .then(() => this.#check(force))
      .catch((err: unknown) => this.#report(err instanceof MeshError ? err : configError(`registry ${this.path}: reload failed: ${err instanceof Error ? err.message : String(err)}`, err)));
    this.#queue = run;
    return run;
  }

  async #check(force: boolean): Promise<void> {
    if (this.#closed) return;
    const previous = this.#registry;
    if (previous === undefined) return;
    const keeping = `keeping the previous registry (${previous.size} entr${previous.size === 1 ? 'y' : 'ies'})`;
    let text: string;
    try {
      text = await fsp.readFile(this.path, 'utf8');
    } catch (err) {
      if (this.#closed) return;
      const failure = `read:${errno(err) ?? 'unknown'}`;
      // One report per failure, whether the watcher or a SIGHUP found it.
      if (failure === this.#failed) return;
      this.#failed = failure;
      const cause = readError(this.path, err);
      this.#report(configError(`${cause.message}; ${keeping}`, cause));
      return;
    }
    if (this.#closed) return;
    const hash = sha256(text);
    if (!force && hash === this.#appliedHash) {
      // The file is back to the registry in force after a failed edit: say so
      // (onChange with no difference), so the last word is not the error.
      const recovered = this.#failed !== undefined;
      this.#failed = undefined;
      if (recovered) this.#changed(previous, previous);
      return;
    }
    // One report per version of the file, whether the watcher or a SIGHUP found it.
    if (hash === this.#failed) return;
    let next: Registry;
    try {
      next = Registry.parse(text, this.path);
    } catch (err) {
      this.#failed = hash;
      const message = err instanceof Error ? err.message : String(err);
      this.#report(configError(`${message}\n(${keeping})`, err));
      return;
    }
    this.#registry = next;
    this.#appliedHash = hash;
    this.#failed = undefined;
    this.#changed(previous, next);
  }

  #changed(previous: Registry, next: Registry): void {
    try {
      this.#options.onChange(next, previous.diff(next));
    } catch (err) {
      this.#report(err instanceof MeshError ? err : configError(`registry ${this.path}: the onChange handler threw: ${err instanceof Error ? err.message : String(err)}`, err));
    }
  }

  /** Calls onError; an exception it throws is dropped (there is nowhere left to report it). */
  #report(err: MeshError): void {
    if (this.#closed) return;
    try {
      this.#options.onError(err);
    } catch {
      // onError itself failed: nothing sensible to do.
    }
  }
}

// ---------------------------------------------------------------------------
// Editing

/** The text and metadata of a registry file about to be edited. */
interface Snapshot {
  /** Null when the file does not exist. */
  readonly text: string | null;
  readonly mode: number;
}

/** The path to write: the symlink's target when the registry path is a symlink (so the link survives). */
async function resolveTarget(path: string): Promise<string> {
  try {
    return await fsp.realpath(path);
  } catch (err) {
    if (errno(err) === 'ENOENT') return path;
    throw readError(path, err);
  }
}

async function snapshot(path: string, target: string): Promise<Snapshot> {
  try {
    const handle = await fsp.open(target, 'r');
    try {
      const stat = await handle.stat();
      if (!stat.isFile()) throw configError(`registry file ${path} is not a regular file`);
      return { text: await handle.readFile('utf8'), mode: stat.mode & 0o7777 };
    } finally {
      await handle.close();
    }
  } catch (err) {
    if (err instanceof MeshError) throw err;
    if (errno(err) === 'ENOENT') return { text: null, mode: REGISTRY_FILE_MODE };
    throw readError(path, err);
  }
}

/**
 * Runs `fn` holding `target.lock`, a file created exclusively, so that two
 * edits (two `meshd registry` commands, or two calls in one process) never
 * lose each other's change. Waits up to {@link LOCK_WAIT_MS} for the lock; a
 * lock file older than {@link LOCK_STALE_MS} is left from a crashed edit and
 * is broken.
 */
async function withLock<T>(path: string, target: string, fn: () => Promise<T>): Promise<T> {
  const lock = `${target}.lock`;
  const deadline = Date.now() + LOCK_WAIT_MS;
  for (;;) {
    try {
      const handle = await fsp.open(lock, 'wx', REGISTRY_FILE_MODE);
      try {
        await handle.writeFile(`${process.pid}\n`, 'utf8');
      } finally {
        await handle.close();
      }
      break;
    } catch (err) {
      if (errno(err) !== 'EEXIST') {
        const why = errno(err) === 'EACCES' || errno(err) === 'EPERM' ? 'permission denied' : err instanceof Error ? err.message : String(err);
        throw configError(`cannot lock registry file ${path} (creating ${lock}): ${why}`, err);
      }
      const age = await fsp.stat(lock).then((st) => Date.now() - st.mtimeMs, () => 0);
      if (age > LOCK_STALE_MS) {
        await fsp.rm(lock, { force: true });
        continue;
      }
      if (Date.now() > deadline) {
        throw configError(`registry file ${path} is locked by another edit (${lock}); if no edit is running, remove that file`, err);
      }
      await new Promise((resolve) => setTimeout(resolve, 5 + Math.floor(Math.random() * 20)));
    }
  }
  try {
    return await fn();
  } finally {
    await fsp.rm(lock, { force: true });
  }
}

/**
 * Writes `text` to `target` atomically: `target.tmp-RANDOM` in the same
 * directory with `mode`, fsynced, renamed over `target`, then the directory
 * fsynced (best effort). The temporary file is removed on failure.
 */
async function writeAtomic(target: string, text: string, mode: number): Promise<void> {
  const tmp = `${target}.tmp-${randomBytes(6).toString('hex')}`;
  try {
    const handle = await fsp.open(tmp, 'wx', mode);
    try {
      await handle.chmod(mode);
      await handle.writeFile(text, 'utf8');
      await handle.sync();
    } finally {
      await handle.close();
    }
    await fsp.rename(tmp, target);
  } catch (err) {
    await fsp.rm(tmp, { force: true });
    const code = errno(err);
    const why = code === 'EACCES' || code === 'EPERM' ? 'permission denied' : code === 'ENOENT' ? 'its directory does not exist' : err instanceof Error ? err.message : String(err);
    throw configError(`cannot write registry file ${target}: ${why}`, err);
  }
  try {
    const dir = await fsp.open(dirname(target), 'r');
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
  } catch {
    // Directory fsync is not supported everywhere (e.g. Windows); the rename is done.
  }
}

/**
 * Reads the registry under the edit lock, lets `edit` change its document,
 * validates the result and writes it atomically. If the file changed
 * between the read and the write (a hand edit: those take no lock), the edit
 * starts over, a few times. Returns what `edit` returned; nothing is written
 * when it returns false.
 */
async function editRegistry(path: string, edit: (doc: Document, registry: Registry, created: boolean) => boolean): Promise<boolean> {
  const target = await resolveTarget(path);
  return withLock(path, target, async () => {
    for (let attempt = 1; ; attempt++) {
      const snap = await snapshot(path, target);
      let doc: Document;
      let registry: Registry;
      if (snap.text === null) {
        doc = new Document([]);
        doc.commentBefore = REGISTRY_HEADER;
        registry = Registry.empty(path);
      } else {
        try {
          registry = Registry.parse(snap.text, path);
        } catch (err) {
          throw configError(`${err instanceof Error ? err.message : String(err)}\n(fix the registry file before editing it)`, err);
        }
        doc = parseDocument(snap.text);
      }
      if (!edit(doc, registry, snap.text === null)) return false;
      const text = doc.toString({ lineWidth: 0 });
      Registry.parse(text, path);
      const now = await snapshot(path, target);
      if (now.text !== snap.text) {
        if (attempt >= EDIT_ATTEMPTS) throw configError(`registry file ${path} keeps changing while being edited; try again`);
        continue;
      }
      await writeAtomic(target, text, snap.mode);
      return true;
    }
  });
}

/** The document's top-level list, created when the document is empty. */
function topList(doc: Document): YAMLSeq {
  if (doc.contents === null) doc.contents = doc.createNode([]);
  const seq = doc.contents;
  if (!isSeq(seq)) throw configError('registry: the top level must be a list of entries');
  return seq;
}

/**
 * Adds an entry, creating the file (mode 0644, with a header comment) when it
 * does not exist. Empty `call` / `serve` lists are left out. Refuses with
 * MESH_ERR_CONFIG an invalid entry, a key or name already in the registry, or
 * an existing file that is not a valid registry. Comments and the other
 * entries are kept as they are (as far as the yaml library reproduces them).
 */
export async function addRegistryEntry(path: string, entry: RegistryEntryInit): Promise<void> {
  const init: RegistryEntryInit = {
    key: entry.key,
    name: entry.name,
    role: entry.role,
    ...(entry.call !== undefined && entry.call.length > 0 ? { call: [...entry.call] } : {}),
    ...(entry.serve !== undefined && entry.serve.length > 0 ? { serve: [...entry.serve] } : {}),
  };
  Registry.fromEntries([init], 'new entry');
  await editRegistry(path, (doc, registry) => {
    const sameKey = registry.getByKey(init.key);
    if (sameKey !== undefined) {
      throw configError(`${path}: key ${init.key} is already registered as "${sameKey.name}" (${sameKey.role}); remove it first with \`meshd registry remove --registry ${path} ${init.key}\``);
    }
    const sameName = registry.getByName(init.name);
    if (sameName !== undefined) {
      throw configError(`${path}: the name "${init.name}" is already used by key ${sameName.key}; names must be unique`);
    }
    const seq = topList(doc);
    if (seq.items.length === 0) seq.flow = false;
    const node = doc.createNode(init) as YAMLMap;
    for (const field of ['call', 'serve'] as const) {
      const list = node.get(field, true);
      if (isSeq(list)) list.flow = true;
    }
    seq.items.push(node);
    return true;
  });
}

/** Splits a YAML comment into paragraphs (separated by blank lines). */
function paragraphs(comment: string): string[] {
  return comment.split(/\n[ \t]*\n/);
}

/**
 * Removes the entry whose key (tried first) or name is `keyOrName`. Returns
 * false, writing nothing, when there is none. The comment directly above the
 * removed entry goes with it; a comment separated from it by a blank line
 * (such as the file's header) stays. MESH_ERR_CONFIG when the file is missing
 * or invalid.
 */
export async function removeRegistryEntry(path: string, keyOrName: string): Promise<boolean> {
  return editRegistry(path, (doc, registry, created) => {
    if (created) throw configError(`registry file ${path} does not exist`);
    const entry = registry.getByKey(keyOrName) ?? registry.getByName(keyOrName);
    if (entry === undefined) return false;
    const index = registry.entries.indexOf(entry);
    const seq = topList(doc);
    const removed = seq.items[index] as { commentBefore?: string | null; spaceBefore?: boolean } | undefined;
    seq.items.splice(index, 1);
    const kept = removed?.commentBefore == null ? [] : paragraphs(removed.commentBefore).slice(0, -1);
    if (kept.length > 0) {
      const text = kept.join('\n\n');
      const following = seq.items[index] as { commentBefore?: string | null; spaceBefore?: boolean } | undefined;
      if (index === 0) {
        doc.commentBefore = doc.commentBefore == null ? text : `${doc.commentBefore}\n\n${text}`;
      } else if (following !== undefined) {
        following.commentBefore = following.commentBefore == null ? `${text}\n` : `${text}\n\n${following.commentBefore}`;
        following.spaceBefore = true;
      } else {
        doc.comment = doc.comment == null ? text : `${text}\n\n${doc.comment}`;
      }
    }
    return true;
  });
}

/** The entries of a registry file, in file order (MESH_ERR_CONFIG when missing or invalid). */
export async function listRegistry(path: string): Promise<RegistryEntry[]> {
  return [...(await loadRegistry(path)).entries];
}
