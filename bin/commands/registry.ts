/**
 * `meshd registry add|remove|list`: edit and show a registry file, through
 * the lib's safe editing (atomic writes, a lock against concurrent edits,
 * comments kept; docs/registry.md).
 */

import type { Argv, CommandModule } from 'yargs';
import { MeshError, addRegistryEntry, encodeKey, listRegistry, readKeyFile, removeRegistryEntry } from '../../lib/index.ts';
import type { RegistryEntry, RoleName } from '../../lib/index.ts';
import { contextOf, docsEpilogue, givenOnCommandLine, println } from '../context.ts';
import type { CliContext, MeshdCommand } from '../context.ts';

const ROLES = ['broker', 'client', 'worker', 'node'] as const;

/** The registry option every subcommand shares. */
function registryOption<T>(y: Argv<T>, what: string) {
  return y.option('registry', {
    type: 'string',
    requiresArg: true,
    demandOption: `registry ${what} needs --registry FILE, the registry file`,
    describe: 'The registry file (YAML). Env: MESHD_REGISTRY',
  });
}

export interface RegistryAddArgs {
  readonly registry: string;
  readonly key?: string | undefined;
  readonly 'key-file'?: string | undefined;
  readonly name?: string | undefined;
  readonly role?: RoleName | undefined;
  readonly call?: readonly string[] | undefined;
  readonly serve?: readonly string[] | undefined;
}

/** The flags that make up a new registry entry. */
type EntryFlag = 'key' | 'key-file' | 'name' | 'role' | 'call' | 'serve';

/**
 * The fields of the new entry are taken from flags only: MESHD_KEY and
 * MESHD_NAME name the broker's or a node's own key file and name, so an
 * exported one must not slip into a registry entry.
 */
function flagValue<T>(ctx: CliContext, name: EntryFlag, value: T | undefined): T | undefined {
  return givenOnCommandLine(ctx, name) ? value : undefined;
}

const add: MeshdCommand<RegistryAddArgs> = {
  command: 'add',
  describe: 'Add an entry: a key, its name, its role and the services it may call and serve',
  builder: (y) =>
    registryOption(y, 'add')
      .usage(
        '$0 registry add --registry FILE (--key KEY | --key-file KEYFILE) --name NAME --role ROLE [--call GLOB]... [--serve GLOB]...\n\n' +
          'Add an entry to the registry FILE, creating the file (with a header comment) if it does not exist. The edit is validated, then written atomically; brokers watching FILE apply it within a second. Refused (nothing written, MESH_ERR_CONFIG): a key or name already in FILE, an invalid key, name or glob, or --call/--serve that ROLE may not have (client: call only; worker: serve only; node: both; broker: neither).\n\n' +
          'The entry is taken from flags only; MESHD_KEY, MESHD_NAME, ... are ignored here.',
      )
      .option('key', {
        type: 'string',
        requiresArg: true,
        describe: "The party's public key (43 base64url characters, as `meshd keygen` prints it). This or --key-file is required",
      })
      .option('key-file', {
        type: 'string',
        requiresArg: true,
        describe: "The party's key file: its public key is added (the file must have mode 0600)",
      })
      .option('name', {
        type: 'string',
        requiresArg: true,
        describe: 'Unique name of the party, 1 to 128 UTF-8 bytes (shown in logs, stamped on its requests). Required',
      })
      .option('role', {
        type: 'string',
        requiresArg: true,
        choices: ROLES,
        describe: 'What the party is. Required',
      })
      .option('call', {
        type: 'string',
        array: true,
        requiresArg: true,
        describe: 'A service glob the party may call, e.g. echo, billing.* or "*" (repeatable; client and node)',
      })
      .option('serve', {
        type: 'string',
        array: true,
        requiresArg: true,
        describe: 'A service glob the party may serve (repeatable; worker and node)',
      })
      .check((argv) => {
        const ctx = contextOf(argv);
        const key = givenOnCommandLine(ctx, 'key');
        const keyFile = givenOnCommandLine(ctx, 'key-file');
        if (key && keyFile) return 'give either --key KEY or --key-file FILE, not both';
        if (!key && !keyFile) return 'registry add needs --key KEY or --key-file FILE (flags only: MESHD_KEY is not read here)';
        const missing = (['name', 'role'] as const).filter((n) => !givenOnCommandLine(ctx, n));
        if (missing.length > 0) return `registry add needs ${missing.map((n) => `--${n}`).join(' and ')} (flags only: MESHD_* variables are not read here)`;
        return true;
      })
      .example('$0 registry add --registry registry.yaml --key-file broker.key --name broker-1 --role broker', 'the broker itself')
      .example('$0 registry add --registry registry.yaml --key-file worker.key --name echo-worker --role worker --serve echo', 'a worker that serves echo')
      .example('$0 registry add --registry registry.yaml --key "$KEY" --name web --role client --call \'billing.*\' --call \'*.read\'', 'a client, by public key')
      .epilogue(docsEpilogue('meshd-registry-add')),
  handler: async (argv) => {
    const ctx = contextOf(argv);
    const keyFile = flagValue(ctx, 'key-file', argv['key-file']);
    const key = keyFile === undefined ? flagValue(ctx, 'key', argv.key) : encodeKey((await readKeyFile(keyFile)).publicKey);
    const name = flagValue(ctx, 'name', argv.name);
    const role = flagValue(ctx, 'role', argv.role);
    if (key === undefined || name === undefined || role === undefined) throw new Error('unreachable: check() requires the key, --name and --role');
    const call = flagValue(ctx, 'call', argv.call)?.map(String);
    const serve = flagValue(ctx, 'serve', argv.serve)?.map(String);
    await addRegistryEntry(argv.registry, { key, name, role, call, serve });
    println(ctx.io.stderr, `added ${JSON.stringify(name)} (${role}, key ${key}) to ${argv.registry}`);
  },
};

export interface RegistryRemoveArgs {
  readonly registry: string;
  readonly entry?: string | undefined;
}

/** The arguments after `--` (where main() puts a key that starts with `-`). */
function afterDashes(ctx: CliContext): readonly string[] {
  const at = ctx.args.indexOf('--');
  return at < 0 ? [] : ctx.args.slice(at + 1);
}

const remove: MeshdCommand<RegistryRemoveArgs> = {
  command: 'remove [entry]',
  describe: 'Remove the entry with this key or name',
  builder: (y) =>
    registryOption(y, 'remove')
      .usage(
        '$0 registry remove --registry FILE KEY_OR_NAME\n\n' +
          "Remove the entry whose key is KEY_OR_NAME or, if no key matches, whose name is. Brokers watching FILE close that party's connections within a second. No such entry, or no such file: MESH_ERR_CONFIG, exit 1, nothing written.",
      )
      .positional('entry', {
        type: 'string',
        describe: 'The public key or the name of the entry (required)',
      })
      .check((argv) => {
        const given = (argv.entry === undefined ? 0 : 1) + afterDashes(contextOf(argv)).length;
        if (given === 0) return 'registry remove needs KEY_OR_NAME, the key or name of the entry to remove';
        return given === 1 ? true : 'registry remove takes one KEY_OR_NAME';
      })
      .example('$0 registry remove --registry registry.yaml web', 'remove the entry named web')
      .example('$0 registry remove --registry registry.yaml "$($0 pubkey web.key)"', 'remove it by key')
      .epilogue(docsEpilogue('meshd-registry-remove')),
  handler: async (argv) => {
    const ctx = contextOf(argv);
    const entry = argv.entry ?? afterDashes(ctx)[0];
    if (entry === undefined) throw new Error('unreachable: check() requires KEY_OR_NAME');
    if (!(await removeRegistryEntry(argv.registry, entry))) {
      throw new MeshError('MESH_ERR_CONFIG', `registry ${argv.registry} has no entry with key or name ${JSON.stringify(entry)} (see \`meshd registry list --registry ${argv.registry}\`)`);
    }
    println(ctx.io.stderr, `removed ${JSON.stringify(entry)} from ${argv.registry}`);
  },
};

export interface RegistryListArgs {
  readonly registry: string;
  readonly json: boolean;
}

/** An entry as `list --json` prints it. */
function entryJson(e: RegistryEntry): { key: string; name: string; role: string; call: string[]; serve: string[] } {
  return { key: e.key, name: e.name, role: e.role, call: [...e.call], serve: [...e.serve] };
}

/** Rows as a table: columns padded to their widest cell, two spaces apart, no trailing spaces. */
export function formatTable(rows: readonly (readonly string[])[]): string[] {
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)));
  return rows.map((row) => row.map((cell, i) => cell.padEnd(widths[i] ?? 0)).join('  ').trimEnd());
}

const list: MeshdCommand<RegistryListArgs> = {
  command: 'list',
  describe: 'Print the entries: name, role, key, call and serve globs',
  builder: (y) =>
    registryOption(y, 'list')
      .usage(
        '$0 registry list --registry FILE [--json]\n\n' +
          'Print the entries of FILE in file order as a table with a header line: NAME, ROLE, KEY, CALL and SERVE (globs separated by commas, - for none). With --json, one line: an array of {"key","name","role","call","serve"} objects.',
      )
      .option('json', {
        type: 'boolean',
        default: false,
        describe: 'Print one JSON line instead of a table. Env: MESHD_JSON',
      })
      .example('$0 registry list --registry registry.yaml', 'a table')
      .example("$0 registry list --registry registry.yaml --json | jq -r '.[].name'", 'the names')
      .epilogue(docsEpilogue('meshd-registry-list')),
  handler: async (argv) => {
    const { io } = contextOf(argv);
    const entries = await listRegistry(argv.registry);
    if (argv.json) {
      println(io.stdout, JSON.stringify(entries.map(entryJson)));
      return;
    }
    const globs = (list: readonly string[]): string => (list.length === 0 ? '-' : list.join(','));
    const rows = [['NAME', 'ROLE', 'KEY', 'CALL', 'SERVE'], ...entries.map((e) => [e.name, e.role, e.key, globs(e.call), globs(e.serve)])];
    for (const line of formatTable(rows)) println(io.stdout, line);
  },
};

/** The registry subcommands, for usage hints. */
export const REGISTRY_SUBCOMMANDS: readonly string[] = ['add', 'remove', 'list'];

export const registry: MeshdCommand = {
  command: 'registry',
  describe: 'Manage a registry file: add, remove or list the keys a broker accepts',
  builder: (y) =>
    y
      .usage('$0 registry <add|remove|list> --registry FILE ...\n\nEdit or show a registry file, the YAML list of the keys a broker accepts and what each may call and serve (docs/registry.md). Edits are atomic and keep comments; brokers watching the file apply them within a second.')
      .command(add as unknown as CommandModule)
      .command(remove as unknown as CommandModule)
      .command(list as unknown as CommandModule)
      .demandCommand(1, 'registry needs a subcommand: add, remove or list')
      .example('$0 registry add --registry registry.yaml --key-file client.key --name client --role client --call echo', 'add a client')
      .example('$0 registry remove --registry registry.yaml client', 'remove it')
      .example('$0 registry list --registry registry.yaml', 'show the entries')
      .epilogue(docsEpilogue('meshd-registry')),
  handler: () => undefined,
};
