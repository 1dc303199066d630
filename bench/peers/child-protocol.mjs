// The child side of a benchmark peer, in plain JavaScript (peers run as the
// apps users write: plain `node`, default flags, no TypeScript loader). The
// same line protocol as bench/lib/child.ts: one `{"type":"ready",...}` line
// on stdout once set up, then commands `{"id","cmd","arg"}` on stdin, each
// answered by `{"type":"reply","id","result"}` or `{"type":"reply","id","error"}`.
// `exit` (or stdin's end, or the lifetime bound) closes the peer and exits.
import { createInterface } from 'node:readline';

const CLOSE_MS = 3000;

/**
 * Runs a peer: `setup()` resolves with `{ info, commands, close }`;
 * `commands[name](arg)` may return a promise. Never returns.
 */
export function runPeer(label, lifetimeMs, setup) {
  const write = (line) => process.stdout.write(`${JSON.stringify(line)}\n`);
  const log = (text) => process.stderr.write(`[peer:${label} ${process.pid}] ${text}\n`);
  let peer;
  let exiting = false;
  const exit = (code, why) => {
    if (exiting) return;
    exiting = true;
    if (code !== 0) log(why);
    setTimeout(() => process.exit(code === 0 ? 4 : code), CLOSE_MS).unref();
    Promise.resolve(peer?.close()).then(
      () => process.exit(code),
      (error) => {
        log(`close failed: ${error?.stack ?? error}`);
        process.exit(code === 0 ? 5 : code);
      },
    );
  };
  setTimeout(() => exit(3, `still running after ${lifetimeMs} ms: exiting`), lifetimeMs).unref();
  const lines = createInterface({ input: process.stdin });
  lines.on('close', () => exit(0, 'stdin closed'));
  lines.on('line', (line) => {
    let command;
    try {
      command = JSON.parse(line);
    } catch {
      return;
    }
    const id = typeof command.id === 'number' ? command.id : 0;
    if (command.cmd === 'exit') {
      write({ type: 'reply', id, result: 'exiting' });
      exit(0, 'exit command');
      return;
    }
    const run = peer?.commands?.[command.cmd];
    if (!run) {
      write({ type: 'reply', id, error: `unknown command ${JSON.stringify(command.cmd)}` });
      return;
    }
    Promise.resolve()
      .then(() => run(command.arg))
      .then(
        (result) => write({ type: 'reply', id, result }),
        (error) => write({ type: 'reply', id, error: String(error?.message ?? error) }),
      );
  });
  setup().then(
    (p) => {
      peer = p;
      if (!exiting) write({ type: 'ready', pid: process.pid, ...p.info });
    },
    (error) => exit(1, `setup failed: ${error?.stack ?? error}`),
  );
}

/** The value of `--name VALUE` in argv (every peer takes its settings as flags). */
export function flag(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0 || i + 1 >= process.argv.length) {
    if (fallback !== undefined) return fallback;
    throw new Error(`missing --${name}`);
  }
  return process.argv[i + 1];
}
