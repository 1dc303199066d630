/**
 * Summarizes a V8 `.cpuprofile` (from `node --cpu-prof`, e.g. the children
 * of `npm run bench -- --cpu-prof`):
 *
 *   node --import tsx bench/lib/cpuprofile-top.ts FILE|DIR [TOP] [--start=MS] [--end=MS]
 *
 * Given a directory, it reads the main thread's profile in it (the one whose
 * name has thread id 0: `CPU.<date>.<time>.<pid>.0.<seq>.cpuprofile`).
 *
 * Prints where the time went: by area (idle, GC, meshd layers, node
 * internals, packages), the top functions by self time, and the top
 * functions by total time (self + callees, each counted once per stack).
 * `--start`/`--end` keep only samples in that window (ms from profile start).
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { PACKAGE_ROOT } from './child.ts';

interface CallFrame {
  readonly functionName: string;
  readonly url: string;
  readonly lineNumber: number;
}

interface ProfileNode {
  readonly id: number;
  readonly callFrame: CallFrame;
  readonly children?: readonly number[];
}

interface CpuProfile {
  readonly nodes: readonly ProfileNode[];
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
  readonly startTime: number;
  readonly endTime: number;
}

/** Where a function lives, for the by-area table. */
function area(frame: CallFrame): string {
  const name = frame.functionName;
  if (frame.url === '') {
    if (name === '(idle)' || name === '(garbage collector)' || name === '(program)' || name === '(root)') return name;
    return '(native)';
  }
  const url = frame.url.startsWith('file://') ? frame.url.slice('file://'.length) : frame.url;
  if (url.startsWith('node:')) return `node:${url.slice(5).split('/')[0] === 'internal' ? `internal/${url.split('/')[1] ?? ''}` : url.slice(5)}`;
  const nm = url.lastIndexOf('/node_modules/');
  if (nm >= 0) {
    const rest = url.slice(nm + '/node_modules/'.length).split('/');
    return `pkg:${rest[0]?.startsWith('@') ? `${rest[0]}/${rest[1] ?? ''}` : (rest[0] ?? '?')}`;
  }
  const rel = path.relative(PACKAGE_ROOT, url);
  if (!rel.startsWith('..')) return path.dirname(rel);
  return url;
}

function label(frame: CallFrame): string {
  const url = frame.url.startsWith('file://') ? frame.url.slice('file://'.length) : frame.url;
  const rel = url === '' ? '' : url.startsWith('node:') ? url : path.relative(PACKAGE_ROOT, url).replace(/^(\.\.\/)+/, '').replace(/^.*node_modules\//, '');
  return `${frame.functionName || '(anonymous)'}${rel ? ` ${rel}:${frame.lineNumber + 1}` : ''}`;
}

/** A file as is; a directory's single main-thread profile. */
function resolveProfile(file: string): string {
  if (!statSync(file).isDirectory()) return file;
  const main = readdirSync(file).filter((n) => /\.\d+\.0\.\d+\.cpuprofile$/.test(n));
  if (main.length !== 1) throw new Error(`${file}: expected one main-thread profile (*.<pid>.0.<seq>.cpuprofile), found ${main.length}`);
  return path.join(file, main[0]!);
}

function main(): void {
  // `… | head` closes the pipe early: that is not an error.
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') process.exit(0);
    throw error;
  });
  const args = process.argv.slice(2);
  const file = args.find((a) => !a.startsWith('--') && !/^\d+$/.test(a));
  if (!file) throw new Error('usage: cpuprofile-top.ts FILE [TOP] [--start=MS] [--end=MS]');
  const top = Number(args.find((a) => /^\d+$/.test(a)) ?? 25);
  const startMs = Number(args.find((a) => a.startsWith('--start='))?.slice(8) ?? 0);
  const endMs = Number(args.find((a) => a.startsWith('--end='))?.slice(6) ?? Infinity);
  const profile = JSON.parse(readFileSync(resolveProfile(file), 'utf8')) as CpuProfile;

  const byId = new Map<number, ProfileNode>();
  const parent = new Map<number, number>();
  for (const n of profile.nodes) byId.set(n.id, n);
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

  // Self time per node, µs (a sample's time is the delta to the next sample).
  const selfUs = new Map<number, number>();
  let t = 0;
  let total = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    t += profile.timeDeltas[i] ?? 0;
    const dt = profile.timeDeltas[i + 1] ?? 0;
    if (t / 1000 < startMs || t / 1000 > endMs) continue;
    const id = profile.samples[i]!;
    selfUs.set(id, (selfUs.get(id) ?? 0) + dt);
    total += dt;
  }

  const areas = new Map<string, number>();
  const self = new Map<string, number>();
  const inclusive = new Map<string, number>();
  for (const [id, us] of selfUs) {
    const node = byId.get(id)!;
    areas.set(area(node.callFrame), (areas.get(area(node.callFrame)) ?? 0) + us);
    self.set(label(node.callFrame), (self.get(label(node.callFrame)) ?? 0) + us);
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const l = label(byId.get(cur)!.callFrame);
      if (seen.has(l)) continue;
      seen.add(l);
      inclusive.set(l, (inclusive.get(l) ?? 0) + us);
    }
  }
  const idle = areas.get('(idle)') ?? 0;
  const busy = total - idle;
  const pct = (us: number, of: number): string => `${((100 * us) / of).toFixed(1).padStart(5)}%`;
  const ms = (us: number): string => `${(us / 1000).toFixed(0).padStart(7)} ms`;
  const table = (title: string, rows: Map<string, number>, n: number, skip: (k: string) => boolean = () => false): void => {
    process.stdout.write(`\n${title}\n`);
    for (const [k, us] of [...rows].filter(([k]) => !skip(k)).sort((a, b) => b[1] - a[1]).slice(0, n)) {
      process.stdout.write(`${ms(us)} ${pct(us, busy)}  ${k}\n`);
    }
  };
  process.stdout.write(`${file}\nwindow ${ms(total)}; idle ${ms(idle)} (${pct(idle, total).trim()}); busy ${ms(busy)}; percentages are of busy time\n`);
  table('by area (self time)', areas, 40, (k) => k === '(idle)');
  table(`top ${top} by self time`, self, top, (k) => k.startsWith('(idle)'));
  table(`top ${top} by total time`, inclusive, top, (k) => k.startsWith('(idle)') || k.startsWith('(root)'));
}

main();
