/**
 * `meshd address`: broker addresses for scripts. `--key FILE --host H --port P`
 * prints `mesh://KEY@H:P`; `--parse URL` checks an address and prints its
 * parts as one JSON line.
 */

import { MeshError, formatBrokerAddress, parseBrokerAddress, readKeyFile } from '../../lib/index.ts';
import { contextOf, docsEpilogue, givenOnCommandLine, println } from '../context.ts';
import type { MeshdCommand } from '../context.ts';

export interface AddressArgs {
  readonly key?: string | undefined;
  readonly host?: string | undefined;
  readonly port?: string | undefined;
  readonly parse?: string | undefined;
}

const FORMAT_FLAGS = ['key', 'host', 'port'] as const;

/** The TCP port from its command-line text; the lib checks the range. */
function portOf(text: string): number {
  if (!/^[0-9]+$/.test(text)) {
    throw new MeshError('MESH_ERR_BAD_ADDRESS', `--port '${text}' is not an integer from 1 to 65535`);
  }
  return Number(text);
}

export const address: MeshdCommand<AddressArgs> = {
  command: 'address',
  describe: 'Print a broker address mesh://KEY@HOST:PORT, or check one and print its parts',
  builder: (y) =>
    y
      .usage('$0 address --key FILE --host HOST --port PORT\n$0 address --parse URL\n\nA broker address names the broker\'s public key, so it is all a node needs to connect and authenticate the broker. The first form prints the address of the broker whose key file is FILE. The second form validates URL and prints {"url","key","host","port"} as one JSON line, url being the canonical form.')
      .option('key', {
        type: 'string',
        requiresArg: true,
        describe: "The broker's key file (its public key goes into the address). Env: MESHD_KEY",
      })
      .option('host', {
        type: 'string',
        requiresArg: true,
        describe: 'Host name, IPv4 or IPv6 address (brackets optional) nodes use to reach the broker. Env: MESHD_HOST',
      })
      .option('port', {
        type: 'string',
        requiresArg: true,
        describe: 'TCP port of the broker, 1 to 65535. Env: MESHD_PORT',
      })
      .option('parse', {
        type: 'string',
        requiresArg: true,
        describe: 'Validate this address and print its parts as JSON instead. Env: MESHD_PARSE',
      })
      .check((argv) => {
        if (argv.parse !== undefined) {
          // Values from MESHD_KEY/HOST/PORT do not count: they may be set for another command.
          const ctx = contextOf(argv);
          const clash = FORMAT_FLAGS.filter((name) => givenOnCommandLine(ctx, name));
          return clash.length === 0 ? true : `--parse cannot be combined with ${clash.map((n) => `--${n}`).join(', ')}`;
        }
        const missing = FORMAT_FLAGS.filter((name) => argv[name] === undefined);
        if (missing.length === FORMAT_FLAGS.length) return 'give either --key FILE --host HOST --port PORT, or --parse URL';
        return missing.length === 0 ? true : `missing ${missing.map((n) => `--${n}`).join(', ')} (an address needs --key, --host and --port)`;
      })
      .example('$0 address --key broker.key --host 10.0.0.5 --port 7000', 'print mesh://<key>@10.0.0.5:7000')
      .example('$0 address --key broker.key --host ::1 --port 7000', 'IPv6: print mesh://<key>@[::1]:7000')
      .example('$0 address --parse "$ADDR" | jq -r .host', 'check an address and take its host')
      .epilogue(docsEpilogue('meshd-address')),
  handler: async (argv) => {
    const { io } = contextOf(argv);
    if (argv.parse !== undefined) {
      const parsed = parseBrokerAddress(argv.parse);
      println(io.stdout, JSON.stringify({ url: parsed.url, key: parsed.key, host: parsed.host, port: parsed.port }));
      return;
    }
    const { key, host, port } = argv;
    if (key === undefined || host === undefined || port === undefined) throw new Error('unreachable: check() requires --key, --host and --port');
    const portNumber = portOf(port);
    const keyPair = await readKeyFile(key);
    println(io.stdout, formatBrokerAddress({ publicKey: keyPair.publicKey, host, port: portNumber }));
  },
};
