import { main } from './cli.ts';

// A reader that goes away (`meshd --help | head -1`) is not worth a stack
// trace: stop writing and exit with main's code.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE' || err.code === 'ERR_STREAM_DESTROYED') return;
    throw err;
  });
}

process.exitCode = await main(process.argv.slice(2));
