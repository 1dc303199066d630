/**
 * What every meshd command shares: where output goes, how a command reaches
 * it, and small helpers for the help text. A command is a yargs
 * CommandModule in bin/commands/<name>.ts; bin/cli.ts assembles them.
 *
 * Commands write only through `contextOf(argv).io`, never to process.stdout
 * or console, and reach stdin, signals and exit only through
 * `contextOf(argv).host`, so `main()` can run in-process with captured
 * output and a test's signals.
 */

import type { CommandModule } from 'yargs';

/** Anything text (or raw bytes, for `meshd request` replies) can be written to: a stream or a test's collector. */
export interface Output {
  write(chunk: string | Uint8Array): unknown;
}

/** The two output channels: results on stdout, notes and errors on stderr. */
export interface CliIO {
  readonly stdout: Output;
  readonly stderr: Output;
}

/** A signal a long-running command (broker, serve) reacts to. */
export type HostSignal = 'SIGTERM' | 'SIGINT' | 'SIGHUP';

/**
 * What a command needs from the process besides output: stdin, signals and
 * exiting. main() uses the real process; a test may pass its own.
 */
export interface CliHost {
  /** The bytes of `meshd request SERVICE -`. */
  readonly stdin: AsyncIterable<Uint8Array | string>;
  /** Calls `listener` on each `signal`; returns a function that stops it. */
  onSignal(signal: HostSignal, listener: () => void): () => void;
  /** Ends the process at once with `code` (a second SIGTERM/SIGINT). */
  exit(code: number): void;
  /**
   * Ends the process with `code` after `ms` unless it has ended by itself by
   * then (the timer does not keep it alive): a safety net for long-running
   * commands whose shutdown left a handle open.
   */
  exitAfter(ms: number, code: number): void;
}

/** Per-run state handed to command handlers through the yargs parse context. */
export interface CliContext {
  readonly io: CliIO;
  readonly host: CliHost;
  /** The command-line arguments main() parsed (without node and the script). */
  readonly args: readonly string[];
  /** The exit code main() returns when the handler finishes without throwing. Default 0. */
  exitCode: number;
}

/**
 * The key of the context in yargs' parse context (and so in every handler's
 * argv). It cannot collide with an option: option names never start with `$`.
 */
export const CONTEXT_KEY = '$meshd';

/** A meshd command: a yargs CommandModule whose handler finds its context with {@link contextOf}. */
export type MeshdCommand<Args = object> = CommandModule<object, Args>;

function isContext(value: unknown): value is CliContext {
  return typeof value === 'object' && value !== null && 'io' in value && 'args' in value && 'exitCode' in value;
}

/** The context of the current run, from a handler's argv. Throws if the command was not run by main(). */
export function contextOf(argv: Readonly<Record<string, unknown>>): CliContext {
  const ctx = argv[CONTEXT_KEY];
  if (!isContext(ctx)) throw new Error(`meshd command run without a context (${CONTEXT_KEY}); run it through main() in bin/cli.ts`);
  return ctx;
}

/**
 * True when the long option `--name` (or `--name=V`, `--no-name`) is on the
 * command line itself, as opposed to filled in from a MESHD_* variable.
 * Arguments after `--` do not count.
 */
export function givenOnCommandLine(ctx: CliContext, name: string): boolean {
  for (const arg of ctx.args) {
    if (arg === '--') return false;
    if (arg === `--${name}` || arg.startsWith(`--${name}=`) || arg === `--no-${name}`) return true;
  }
  return false;
}

/** Writes one line (a newline is added). */
export function println(out: Output, line: string): void {
  out.write(`${line}\n`);
}

/** The epilogue of a command's --help: where its full reference is. */
export function docsEpilogue(anchor?: string): string {
  const where = anchor === undefined ? 'docs/cli.md' : `docs/cli.md#${anchor}`;
  return `Full reference: ${where} in the meshd package.`;
}
