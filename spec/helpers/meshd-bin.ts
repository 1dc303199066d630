// The meshd command as the package ships it: dist/bin/meshd.js, compiled by
// `npm run build` (scripts/run-specs.js builds before every run, so the
// specs never test a stale build). Spawning process.execPath directly skips
// the file's shebang, so its Node flags are read from the source's shebang
// and passed explicitly: children run exactly as `meshd` would.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root. */
export const root = fileURLToPath(new URL('../..', import.meta.url));

/** The compiled CLI. */
export const MESHD_BIN = join(root, 'dist', 'bin', 'meshd.js');

/** The Node flags of bin/meshd.ts's shebang (`#!/usr/bin/env -S node FLAGS`). */
export const MESHD_NODE_FLAGS: readonly string[] = (() => {
  const first = readFileSync(join(root, 'bin', 'meshd.ts'), 'utf8').split('\n')[0] ?? '';
  const m = /^#!\/usr\/bin\/env -S node((?: --[a-z0-9-]+(?:=\S+)?)*)$/.exec(first);
  if (!m) throw new Error(`bin/meshd.ts does not start with a '#!/usr/bin/env -S node ...' shebang: ${first}`);
  return m[1]!.trim().split(' ').filter((f) => f !== '');
})();

/**
 * The argv (after process.execPath) that runs `meshd ...args`, with extra
 * Node flags after the shebang's (so they win where they set the same
 * option). Throws if the CLI is not built.
 */
export function meshdArgs(args: readonly string[], nodeFlags: readonly string[] = []): string[] {
  if (!existsSync(MESHD_BIN)) throw new Error(`${MESHD_BIN} is missing: run \`npm run build\` (scripts/run-specs.js does it before the specs)`);
  return [...MESHD_NODE_FLAGS, ...nodeFlags, MESHD_BIN, ...args];
}
