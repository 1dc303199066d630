/**
 * Writes a generated block into README.md between
 * `<!-- bench:NAME:begin -->` and `<!-- bench:NAME:end -->` (the benchmarks'
 * `--readme` flag), replacing what was there.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { PACKAGE_ROOT } from './child.ts';

/** The begin and end markers of block `name`. */
export function readmeMarkers(name: string): { begin: string; end: string } {
  return { begin: `<!-- bench:${name}:begin -->`, end: `<!-- bench:${name}:end -->` };
}

/**
 * Replaces the content of block `name` in README.md with `content`. Returns
 * false (and writes nothing) when README.md has no such block; with
 * `required`, throws instead.
 */
export function writeReadmeBlock(name: string, content: string, options: { required?: boolean } = {}): boolean {
  const file = path.join(PACKAGE_ROOT, 'README.md');
  const { begin, end } = readmeMarkers(name);
  const text = readFileSync(file, 'utf8');
  const a = text.indexOf(begin);
  const b = text.indexOf(end);
  if (a < 0 || b < a) {
    if (options.required === true) throw new Error(`README.md has no ${begin} … ${end} block to write the table into`);
    return false;
  }
  writeFileSync(file, `${text.slice(0, a + begin.length)}\n${content}${text.slice(b)}`);
  return true;
}
