/**
 * meshd's version, for `--version`: its own module, so that `meshd
 * --version` can answer without loading the CLI or the library.
 */
import { readFileSync } from 'node:fs';

/**
 * meshd's version, from its package.json: one directory up from bin/version.ts
 * in the sources, two up from dist/bin/version.js in the package.
 */
export function packageVersion(): string {
  for (const up of ['../package.json', '../../package.json']) {
    let pkg: { name?: unknown; version?: unknown };
    try {
      pkg = JSON.parse(readFileSync(new URL(up, import.meta.url), 'utf8')) as typeof pkg;
    } catch {
      continue;
    }
    if (pkg.name === 'meshd' && typeof pkg.version === 'string') return pkg.version;
  }
  return 'unknown';
}
