#!/usr/bin/env -S node --initial-old-space-size=128
// The meshd command. The package ships this file compiled to
// dist/bin/meshd.js (npm run build), run by plain Node: no loader, no
// transform step at start-up.
//
// --initial-old-space-size=128: a broker under load keeps every request in
// flight alive across many young-generation collections; with V8's small
// default old space that meant a full mark-compact every 30-80 ms. Measured
// with npm run bench (K=64, node suite): broker CPU per request ~90 -> ~35 us,
// throughput ~8k -> ~13k req/s. The flag reserves nothing up front. It cannot
// be set from NODE_OPTIONS or at run time, hence the shebang (env -S).
import { packageVersion } from './version.ts';

// `meshd --version` alone needs neither yargs nor the library: answer it
// before loading them.
if (process.argv.length === 3 && process.argv[2] === '--version') {
  process.stdout.write(`${packageVersion()}\n`);
  process.exit(0);
}

// A reader that goes away (`meshd --help | head -1`) is not worth a stack
// trace: stop writing and exit with main's code.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE' || err.code === 'ERR_STREAM_DESTROYED') return;
    throw err;
  });
}

const { main } = await import('./cli.ts');
process.exitCode = await main(process.argv.slice(2));
