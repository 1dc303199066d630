/**
 * The meshd command line: assembles the commands of bin/commands/ into one
 * yargs parser and maps outcomes to exit codes. Thin by design (docs/architecture.md#layers):
 * commands parse flags and call lib/index.ts.
 *
 * Exit codes: 0 success, 1 a MeshError (printed as `CODE: message`) or other
 * failure, 2 a usage error (unknown command or flag, missing or bad flag).
 * Option values come from flags, then MESHD_* environment variables, then
 * (for `meshd broker`) the YAML file of --config, then defaults.
 */

import yargs from 'yargs';
import type { Argv, CommandModule } from 'yargs';
import { MeshError } from '../lib/index.ts';
import { address } from './commands/address.ts';
import { broker } from './commands/broker.ts';
import { demo } from './commands/demo.ts';
import { keygen } from './commands/keygen.ts';
import { pubkey } from './commands/pubkey.ts';
import { REGISTRY_SUBCOMMANDS, registry } from './commands/registry.ts';
import { request } from './commands/request.ts';
import { serve } from './commands/serve.ts';
import { status } from './commands/status.ts';
import { top } from './commands/top.ts';
import { packageVersion } from './version.ts';
import { CONTEXT_KEY, docsEpilogue, givenOnCommandLine, println } from './context.ts';
import type { CliContext, CliHost, CliIO, MeshdCommand } from './context.ts';

/** Exit codes of meshd. */
export const ExitCode = { OK: 0, FAILURE: 1, USAGE: 2 } as const;

/** MESHD_OUT fills --out, MESHD_KEY fills --key, and so on. */
export const ENV_PREFIX = 'MESHD';

/**
 * A command with its argument type erased. Each module's argument type
 * matters only inside the module; a list of modules with different ones has
 * no common yargs type, and yargs does not look at it.
 */
function untyped<Args>(command: MeshdCommand<Args>): CommandModule {
  return command as unknown as CommandModule;
}

/** The commands, in the order `meshd --help` lists them. A new command is added here only. */
const COMMANDS: readonly CommandModule[] = [
  untyped(demo),
  untyped(broker),
  untyped(serve),
  untyped(request),
  untyped(status),
  untyped(top),
  untyped(registry),
  untyped(keygen),
  untyped(pubkey),
  untyped(address),
];

/** The command names, for error hints. */
const COMMAND_NAMES: readonly string[] = COMMANDS.map((c) => String(c.command).split(' ')[0] ?? '');

/** Commands with subcommands, for error hints (`meshd registry add: ...`). */
const SUBCOMMANDS: Readonly<Record<string, readonly string[]>> = { registry: REGISTRY_SUBCOMMANDS };

/** The process as the commands see it. */
export const processHost: CliHost = {
  stdin: process.stdin,
  onSignal(signal, listener) {
    process.on(signal, listener);
    return () => {
      process.off(signal, listener);
    };
  },
  exit(code) {
    process.exit(code);
  },
  exitAfter(ms, code) {
    setTimeout(() => process.exit(code), ms).unref();
  },
};

/** A command-line mistake: reported with a hint and exit code 2. */
class UsageError extends Error {
  override readonly name = 'UsageError';
}

function camel(name: string): string {
  return name.replace(/-([a-z0-9])/g, (_m, c: string) => c.toUpperCase());
}

/** The variable of an option: MESHD_ + its long name in upper case, `-` as `_` (`--key-file`: MESHD_KEY_FILE). */
export function envVariable(option: string): string {
  return `${ENV_PREFIX}_${option.toUpperCase().replace(/-/g, '_')}`;
}

/** The part of yargs' instance API that @types/yargs does not declare. */
interface OptionsView {
  getGroups(): Record<string, string[] | undefined>;
  getOptions(): {
    key: Record<string, unknown>;
    number: string[];
    boolean: string[];
    array: string[];
    config: Record<string, (path: string) => Record<string, unknown>>;
  };
}

function hasOptionsView(y: unknown): y is OptionsView {
  return typeof (y as Partial<OptionsView>).getOptions === 'function' && typeof (y as Partial<OptionsView>).getGroups === 'function';
}

/** Options every command has, never read from the environment. */
const NOT_FROM_ENV = new Set(['help', 'version']);

/** A variable's text as the option's type wants it. */
function fromEnv(variable: string, text: string, kind: 'number' | 'boolean' | 'array' | 'string'): unknown {
  switch (kind) {
    case 'number':
      // Every number option is a whole number (ms, bytes, counts).
      if (/^\s*[0-9]{1,15}\s*$/.test(text)) return Number(text);
      throw new UsageError(`${variable}='${text}' is not a whole number`);
    case 'boolean':
      if (/^(true|1|yes)$/i.test(text)) return true;
      if (/^(false|0|no|)$/i.test(text)) return false;
      throw new UsageError(`${variable}='${text}' is not a boolean: use true or false`);
    case 'array':
      return [text];
    case 'string':
      return text;
  }
}

/**
 * A middleware (run before validation) that fills options from the
 * environment: for each option of the running command that is not on the
 * command line, MESHD_<OPTION> if set, else (for `meshd broker`) the value of
 * the --config file named by MESHD_CONFIG. Only variables named after an
 * option are read; any other variable, MESHD or MESHD_ alone included, is
 * ignored, so no variable can ever become an argument.
 */
function applyEnv(y: Argv, ctx: CliContext, env: NodeJS.ProcessEnv) {
  return (argv: Record<string, unknown>): void => {
    if (!hasOptionsView(y)) return;
    const options = y.getOptions();
    const set = (name: string, value: unknown): void => {
      argv[name] = value;
      argv[camel(name)] = value;
    };
    const kindOf = (name: string): 'number' | 'boolean' | 'array' | 'string' =>
      options.number.includes(name) ? 'number' : options.boolean.includes(name) ? 'boolean' : options.array.includes(name) ? 'array' : 'string';
    // Positionals (`serve SERVICE`, `registry remove ENTRY`) come from the command line only: a
    // variable must never replace what was typed. yargs files them under this group (locale 'en').
    const positionals = new Set(y.getGroups()['Positionals:'] ?? []);
    const onCommandLine = (name: string): boolean => givenOnCommandLine(ctx, name) || givenOnCommandLine(ctx, camel(name));
    const names = Object.keys(options.key).filter((name) => !NOT_FROM_ENV.has(name) && !positionals.has(name) && !onCommandLine(name));
    // A config file named by MESHD_CONFIG (one named by --config, yargs has read already).
    let config: Record<string, unknown> = {};
    for (const [name, parse] of Object.entries(options.config)) {
      const path = env[envVariable(name)];
      if (path === undefined || path === '' || onCommandLine(name)) continue;
      set(name, path);
      config = parse(path);
    }
    for (const name of names) {
      const variable = envVariable(name);
      const text = env[variable];
      if (text !== undefined && !(name in options.config)) set(name, fromEnv(variable, text, kindOf(name)));
      else if (name in config) set(name, config[name]);
    }
  };
}

/** The parser for one run; its handlers reach `ctx` through the parse context. */
function buildParser(ctx: CliContext): Argv {
  const y = yargs()
    .scriptName('meshd')
    .usage('$0 <command> [options]\n\nmeshd: a brokered request-reply mesh with Noise-encrypted, authenticated connections. Results go to stdout, notes and errors to stderr.')
    .demandCommand(1, 'no command given')
    .strict()
    .recommendCommands()
    .help()
    .version(packageVersion())
    .locale('en')
    .exitProcess(false)
    .fail((msg: string | null | undefined, err: Error | null | undefined) => {
      if (err instanceof MeshError) throw err;
      throw new UsageError(msg ?? err?.message ?? 'invalid command line');
    })
    .example('$0 keygen --out broker.key', 'create a key pair, print the public key')
    .example('$0 registry add --registry registry.yaml --key-file broker.key --name broker-1 --role broker', 'let a key in')
    .example('$0 broker --listen 127.0.0.1:4222 --key broker.key --registry registry.yaml', 'run a broker')
    .example('$0 serve --broker "$BROKER" --key worker.key echo --echo', 'run a demo echo worker')
    .example('$0 request --broker "$BROKER" --key client.key echo hello', 'send a request, print the reply')
    .example('$0 status http://127.0.0.1:9090', "print a broker's status from its admin endpoint")
    .example('$0 address --key broker.key --host 10.0.0.5 --port 7000', 'print the broker address')
    .epilogue(
      `Options: a flag wins over its MESHD_* variable (MESHD_OUT for --out, MESHD_LISTEN for --listen, ...), which wins over the broker's --config file.\n` +
        `Exit codes: 0 success, 1 error (printed as MESH_ERR_CODE: message), 2 usage error.\n` +
        docsEpilogue(),
    );
  for (const command of COMMANDS) y.command(command);
  return y.middleware(applyEnv(y, ctx, process.env), true);
}

/** The command (and subcommand) named on the command line, if any (for the usage hint). */
function commandIn(args: readonly string[]): string | undefined {
  const at = args.findIndex((a) => COMMAND_NAMES.includes(a));
  const command = args[at];
  if (command === undefined) return undefined;
  const subs = SUBCOMMANDS[command] ?? [];
  const sub = args.slice(at + 1).find((a) => subs.includes(a));
  return sub === undefined ? command : `${command} ${sub}`;
}

function report(err: unknown, ctx: CliContext): number {
  const { stderr } = ctx.io;
  if (err instanceof UsageError) {
    const command = commandIn(ctx.args);
    const full = command === undefined ? 'meshd' : `meshd ${command}`;
    let message = err.message;
    const first = ctx.args.find((a) => !a.startsWith('-'));
    if (command === undefined && first !== undefined && (message.startsWith('Did you mean') || message === `Unknown argument: ${first}`)) {
      message = `unknown command '${first}'${message.startsWith('Did you mean') ? `. ${message}` : ''}`;
    }
    // `meshd registry frob`: yargs calls frob an unknown argument.
    const subs = command === undefined ? undefined : SUBCOMMANDS[command];
    const unknown = /^Unknown arguments?: (\S+)/.exec(message)?.[1];
    if (command !== undefined && subs !== undefined && unknown !== undefined && ctx.args[ctx.args.indexOf(command) + 1] === unknown) {
      message = `unknown subcommand '${unknown}'; the subcommands are ${subs.join(', ')}`;
    }
    println(stderr, `${full}: ${message}`);
    println(stderr, `Run '${full} --help' for usage and examples.`);
    return ExitCode.USAGE;
  }
  if (err instanceof MeshError) {
    println(stderr, err.toString());
    return ExitCode.FAILURE;
  }
  // Not a MeshError: a bug, so the stack helps.
  const text = err instanceof Error ? (err.stack ?? err.message) : String(err);
  println(stderr, `meshd: unexpected error: ${text}`);
  return ExitCode.FAILURE;
}

/** A public key that starts with `-` (one in 64 do): yargs would read it as short flags. */
const DASH_KEY = /^-[A-Za-z0-9_-]{42}$/;

/**
 * The arguments with every public key that starts with `-` made safe for
 * yargs: the value of a long option is joined to it (`--key -AB..` becomes
 * `--key=-AB..`), and a positional one is moved after `--`, where the
 * commands that take a key as a positional (`registry remove`) look for it.
 * No meshd flag has the shape of a key, so nothing else changes.
 */
export function protectDashKeys(args: readonly string[]): string[] {
  const end = args.indexOf('--');
  const options = end < 0 ? args : args.slice(0, end);
  const rest = end < 0 ? [] : args.slice(end + 1);
  const out: string[] = [];
  const moved: string[] = [];
  for (const arg of options) {
    const previous = out[out.length - 1];
    if (!DASH_KEY.test(arg)) out.push(arg);
    else if (previous !== undefined && /^--[a-z][a-z-]*$/.test(previous)) out[out.length - 1] = `${previous}=${arg}`;
    else moved.push(arg);
  }
  return moved.length === 0 && end < 0 ? out : [...out, '--', ...moved, ...rest];
}

/**
 * Runs the meshd command line `argv` (without node and the script) and
 * resolves to the exit code; it never rejects. All output goes to `io`;
 * stdin, signals and exiting go through `host` (the process by default).
 */
export async function main(argv: string[], io: CliIO = { stdout: process.stdout, stderr: process.stderr }, host: CliHost = processHost): Promise<number> {
  const args = protectDashKeys(argv);
  const ctx: CliContext = { io, host, args, exitCode: ExitCode.OK };
  let output = '';
  try {
    // With a callback, yargs hands --help and --version text over instead of printing it.
    await buildParser(ctx).parseAsync(args, { [CONTEXT_KEY]: ctx }, (_err, _argv, text) => {
      output = text;
    });
  } catch (err) {
    return report(err, ctx);
  }
  if (output.length > 0) println(io.stdout, output);
  return ctx.exitCode;
}
