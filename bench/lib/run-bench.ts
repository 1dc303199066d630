/**
 * Runs a benchmark's main function and makes sure the process ends by
 * itself: if anything still holds it EXIT_GUARD_MS after the report (or the
 * failure), it says what and exits with code 1.
 */

/** Grace after the end before the guard fires, ms. */
export const EXIT_GUARD_MS = 5000;

/** A progress printer for one benchmark: lines on stderr, prefixed with its name. */
export function progressFor(name: string): (text: string) => void {
  return (text) => {
    process.stderr.write(`[${name}] ${text}\n`);
  };
}

/** Runs `main`, reports a failure with exit code 1, and guards against a process that would not exit. */
export function runBench(main: () => Promise<void>, progress: (text: string) => void): void {
  const guard = (what: string): void => {
    setTimeout(() => {
      progress(`still running ${EXIT_GUARD_MS} ms after ${what}; open handles: ${process.getActiveResourcesInfo().join(', ')}`);
      process.exit(1);
    }, EXIT_GUARD_MS).unref();
  };
  main().then(
    () => guard('the report'),
    (error: unknown) => {
      progress(`failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
      process.exitCode = 1;
      guard('failing');
    },
  );
}
