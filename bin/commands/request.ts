/**
 * `meshd request SERVICE [DATA | -]`: one request through the mesh. The reply
 * bytes go to stdout exactly as the worker sent them (no newline added); a
 * failure is `CODE: message` on stderr and exit code 1.
 */

import { DEFAULT_REQUEST_TIMEOUT, DEFAULT_RETRIES, MeshNode } from '../../lib/index.ts';
import { contextOf, docsEpilogue } from '../context.ts';
import type { CliContext, MeshdCommand } from '../context.ts';
import { DEFAULT_CONNECT_TIMEOUT, brokerList, integerProblem, readAll } from '../options.ts';

export interface RequestArgs {
  readonly service: string;
  readonly data?: string | undefined;
  readonly broker: readonly string[];
  readonly key: string;
  readonly timeout: number;
  readonly retries: number;
  readonly name?: string | undefined;
  readonly 'connect-timeout': number;
}

/** The arguments before and after `--`. */
function splitAtDashes(args: readonly string[]): { options: readonly string[]; rest: readonly string[] } {
  const at = args.indexOf('--');
  return at < 0 ? { options: args, rest: [] } : { options: args.slice(0, at), rest: args.slice(at + 1) };
}

/**
 * DATA as typed. yargs turns a lone `-` positional into '' (or true), so a
 * `-` among the options is taken from the command line; and yargs leaves an
 * argument after `--` (DATA starting with `-`: `request echo -- -x`) out of
 * the positionals, so it is taken from there.
 */
function dataArgument(ctx: CliContext, parsed: string | boolean | undefined): string | undefined {
  const { options, rest } = splitAtDashes(ctx.args);
  if (parsed === '-' || ((parsed === '' || parsed === true) && options.includes('-'))) return '-';
  if (parsed === undefined) return rest[0];
  return typeof parsed === 'string' ? parsed : undefined;
}

export const request: MeshdCommand<RequestArgs> = {
  command: 'request <service> [data]',
  describe: 'Send one request to SERVICE and print the reply',
  builder: (y) =>
    y
      .usage(
        '$0 request --broker URL... --key FILE SERVICE [DATA | -] [options]\n\n' +
          'Connect to the brokers as a client, send DATA (its UTF-8 bytes; `-`: all of stdin; nothing: an empty payload) to SERVICE and write the reply to stdout exactly as received, with no newline added. On failure, prints `MESH_ERR_CODE: message` on stderr and exits 1 (MESH_ERR_NO_SERVICE: no worker offers SERVICE; MESH_ERR_UNAUTHORIZED: the key is not in the registry; MESH_ERR_TIMEOUT: no reply within --timeout).\n\n' +
          "The client's key must be in the broker's registry with a role that may call SERVICE (client or node).",
      )
      .positional('service', {
        type: 'string',
        demandOption: true,
        describe: 'Service to call, e.g. echo',
      })
      .positional('data', {
        type: 'string',
        describe: 'Payload, sent as UTF-8; `-` reads it from stdin (binary safe)',
      })
      .option('broker', {
        type: 'string',
        array: true,
        requiresArg: true,
        demandOption: 'request needs --broker URL, the mesh://KEY@HOST:PORT a broker prints when it starts',
        describe: 'Broker address mesh://KEY@HOST:PORT (repeat for several brokers). Env: MESHD_BROKER (several: separated by spaces)',
      })
      .option('key', {
        type: 'string',
        requiresArg: true,
        demandOption: "request needs --key FILE, the client's key file (create one with `meshd keygen --out FILE`)",
        describe: "The client's key file (mode 0600). Env: MESHD_KEY",
      })
      .option('timeout', {
        type: 'number',
        requiresArg: true,
        default: DEFAULT_REQUEST_TIMEOUT,
        describe: 'Deadline of the whole request, retries included, ms (counted once connected). Env: MESHD_TIMEOUT',
      })
      .option('retries', {
        type: 'number',
        requiresArg: true,
        default: DEFAULT_RETRIES,
        describe: 'Extra attempts after a failed one (through another broker when there is one). Env: MESHD_RETRIES',
      })
      .option('name', {
        type: 'string',
        requiresArg: true,
        describe: "Name in the client's HELLO (the broker stamps requests with its registry name). Env: MESHD_NAME",
      })
      .option('connect-timeout', {
        type: 'number',
        requiresArg: true,
        default: DEFAULT_CONNECT_TIMEOUT,
        describe: 'Longest wait for a first broker to accept the client, ms. Env: MESHD_CONNECT_TIMEOUT',
      })
      .check((argv) => {
        const { rest } = splitAtDashes(contextOf(argv).args);
        if (rest.length > (argv.data === undefined ? 1 : 0)) return `one DATA argument at most; got ${JSON.stringify(rest)} after --`;
        if (brokerList(argv.broker).length === 0) return '--broker needs at least one mesh://KEY@HOST:PORT';
        return integerProblem('timeout', argv.timeout, 1) ?? integerProblem('retries', argv.retries, 0, 100) ?? integerProblem('connect-timeout', argv['connect-timeout'], 1) ?? true;
      })
      .example('$0 request --broker "$BROKER" --key client.key echo hello', 'prints hello (no newline)')
      .example('$0 request --broker "$BROKER" --key client.key echo - < photo.jpg > copy.jpg', 'binary payload from stdin, reply to a file')
      .example('$0 request --broker "$B1" --broker "$B2" --key client.key billing.invoice \'{"id":7}\' --timeout 5000', 'two brokers, 5 s deadline')
      .example('$0 request --broker "$BROKER" --key client.key echo hi || echo "failed: $?"', 'exit 1 and MESH_ERR_CODE: message on stderr on failure')
      .epilogue(docsEpilogue('meshd-request')),
  handler: async (argv) => {
    const ctx = contextOf(argv);
    const { io, host } = ctx;
    const data = dataArgument(ctx, argv.data);
    const payload = data === '-' ? await readAll(host.stdin) : Buffer.from(data ?? '', 'utf8');
    const node = await MeshNode.connect({
      brokers: brokerList(argv.broker),
      key: argv.key,
      name: argv.name,
      role: 'client',
      timeout: argv['connect-timeout'],
    });
    try {
      const reply = await node.request(argv.service, payload, { timeout: argv.timeout, retries: argv.retries });
      io.stdout.write(reply);
    } finally {
      await node.close();
    }
  },
};
