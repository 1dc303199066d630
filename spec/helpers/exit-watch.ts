// Loaded into every test process by scripts/run-specs.js (`--import`). A
// spec file whose process is still alive EXIT_WATCH_MS after its last test
// and its own after-hooks has left something open (a server, a socket, a
// child process, a timer): node:test would wait for it forever, at zero
// CPU, and the run would hang with every test passed. This prints what is
// still open and ends the process with exit code 1, so the file fails by
// name instead.
import { after } from 'node:test';

/** How long a test process may outlive its last test, ms. */
const EXIT_WATCH_MS = 20_000;

/** A short description of one libuv handle that keeps the process alive. */
function describe(handle: unknown): string {
  const h = handle as Record<string, unknown> & { constructor?: { name?: string } };
  const kind = h.constructor?.name ?? typeof handle;
  try {
    if (typeof h.pid === 'number' && Array.isArray(h.spawnargs)) return `${kind} pid ${h.pid}: ${(h.spawnargs as string[]).join(' ').slice(0, 200)}`;
    if (typeof h.address === 'function' && typeof h.listening === 'boolean') return `${kind} listening on ${JSON.stringify((h.address as () => unknown).call(handle))}`;
    if (typeof h.remoteAddress === 'string') return `${kind} ${String(h.localAddress)}:${String(h.localPort)} -> ${h.remoteAddress}:${String(h.remotePort)}`;
    if (typeof h.fd === 'number') return `${kind} fd ${h.fd}`;
  } catch {
    // fall through to the bare kind
  }
  return kind;
}

after(() => {
  const timer = setTimeout(() => {
    const getHandles = (process as unknown as { _getActiveHandles?: () => unknown[] })._getActiveHandles;
    const handles = getHandles ? getHandles.call(process).map(describe) : [];
    process.stderr.write(
      `exit-watch: ${process.argv[1] ?? 'this spec file'} is still running ${EXIT_WATCH_MS / 1000} s after its last test; it left open:\n` +
        `  resources: ${process.getActiveResourcesInfo().join(', ')}\n` +
        handles.map((h) => `  - ${h}\n`).join(''),
    );
    process.exit(1);
  }, EXIT_WATCH_MS);
  // Never what keeps the process alive: a clean file exits at once.
  timer.unref();
});
