/**
 * Reads a V8 heap snapshot (the JSON a process writes on
 * `--heapsnapshot-signal`) and sums what it holds. A snapshot is taken
 * after a full garbage collection, so its total is the memory the process
 * retains, whatever heap V8 keeps committed besides.
 */
import { readFileSync } from 'node:fs';

/** Bytes and object counts of one snapshot, in all and per kind of object. */
export interface HeapSummary {
  /** Sum of every object's own size, bytes. */
  readonly totalBytes: number;
  readonly objects: number;
  /** `type:name` (constructor name for objects, `type` alone for strings and code) → bytes and count. */
  readonly byKind: ReadonlyMap<string, { bytes: number; count: number }>;
}

interface SnapshotJson {
  snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]] } };
  nodes: number[];
  strings: string[];
}

/** Node types whose `name` is contents, not a kind: grouped under the type alone. */
const NAMELESS = new Set(['string', 'concatenated string', 'sliced string', 'number', 'code', 'hidden', 'array', 'bigint']);

/** Summarises the snapshot in `file`. */
export function summarizeHeapSnapshot(file: string): HeapSummary {
  const json = JSON.parse(readFileSync(file, 'utf8')) as SnapshotJson;
  const fields = json.snapshot.meta.node_fields;
  const types = json.snapshot.meta.node_types[0];
  const width = fields.length;
  const typeAt = fields.indexOf('type');
  const nameAt = fields.indexOf('name');
  const sizeAt = fields.indexOf('self_size');
  if (typeAt < 0 || nameAt < 0 || sizeAt < 0) throw new Error(`${file}: not a V8 heap snapshot (node fields ${fields.join(',')})`);
  const byKind = new Map<string, { bytes: number; count: number }>();
  let totalBytes = 0;
  let objects = 0;
  const { nodes, strings } = json;
  for (let i = 0; i + width <= nodes.length; i += width) {
    const type = types[nodes[i + typeAt]!] ?? '?';
    const size = nodes[i + sizeAt]!;
    const kind = NAMELESS.has(type) ? type : `${type}:${strings[nodes[i + nameAt]!] ?? '?'}`;
    const k = byKind.get(kind);
    if (k) {
      k.bytes += size;
      k.count++;
    } else byKind.set(kind, { bytes: size, count: 1 });
    totalBytes += size;
    objects++;
  }
  return { totalBytes, objects, byKind };
}

/** The `top` kinds that grew most in bytes from `before` to `after`. */
export function heapGrowth(before: HeapSummary, after: HeapSummary, top = 12): Array<{ kind: string; bytes: number; count: number }> {
  const rows: Array<{ kind: string; bytes: number; count: number }> = [];
  for (const [kind, a] of after.byKind) {
    const b = before.byKind.get(kind) ?? { bytes: 0, count: 0 };
    rows.push({ kind, bytes: a.bytes - b.bytes, count: a.count - b.count });
  }
  return rows.sort((x, y) => y.bytes - x.bytes).slice(0, top);
}
