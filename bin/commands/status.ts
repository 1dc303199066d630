/**
 * `meshd status URL [--json]`: reads a broker's admin endpoint (`GET
 * /status`, docs/cli.md#meshd-status) and prints it as tables, or the JSON
 * document as served with --json. The HTTP client loads only when the
 * command runs.
 */

import { contextOf, docsEpilogue, println } from '../context.ts';
import type { MeshdCommand } from '../context.ts';
import { integerProblem } from '../options.ts';
import { statusUrl } from '../admin/admin-url.ts';

/** Default deadline of one read of an admin endpoint, ms. */
export const DEFAULT_ADMIN_TIMEOUT = 5000;

export interface StatusArgs {
  readonly url: string;
  readonly json: boolean;
  readonly timeout: number;
}

export const status: MeshdCommand<StatusArgs> = {
  command: 'status <url>',
  describe: "Print a broker's status from its admin endpoint (meshd broker --admin)",
  builder: (y) =>
    y
      .usage(
        '$0 status URL [--json] [--timeout MS]\n\n' +
          "Read GET /status of a broker's admin endpoint (the address `meshd broker --admin` logs as `admin-listening`) and print it: the broker, its state (starting, ready, draining), connections by role, its peer brokers and their states, and per service its workers, credits, queue, requests in flight, replies, failures and latency percentiles. With --json, the JSON document as the endpoint serves it, on one line.\n\n" +
          'URL is http://HOST:PORT (HOST:PORT, or PORT alone for 127.0.0.1, will do). Errors: MESH_ERR_CONNECTION (nothing answers there), MESH_ERR_TIMEOUT (no answer within --timeout), MESH_ERR_PROTOCOL (it is not a meshd admin endpoint).',
      )
      .positional('url', {
        type: 'string',
        demandOption: true,
        describe: 'The admin endpoint, e.g. http://127.0.0.1:9090',
      })
      .option('json', {
        type: 'boolean',
        default: false,
        describe: 'Print the /status JSON document (one line) instead of tables. Env: MESHD_JSON',
      })
      .option('timeout', {
        type: 'number',
        requiresArg: true,
        default: DEFAULT_ADMIN_TIMEOUT,
        describe: 'Longest wait for the answer, ms. Env: MESHD_TIMEOUT',
      })
      .check((argv) => {
        const url = statusUrl(String(argv.url));
        if (typeof url === 'string') return url;
        return integerProblem('timeout', argv.timeout, 1, 600_000) ?? true;
      })
      .example('$0 status http://127.0.0.1:9090', 'the status as tables')
      .example('$0 status :9090 --json | jq .services', 'the JSON document, for scripts')
      .epilogue(docsEpilogue('meshd-status')),
  handler: async (argv) => {
    const { io } = contextOf(argv);
    const url = statusUrl(argv.url);
    if (typeof url === 'string') throw new Error(`unreachable: check() validates URL: ${url}`);
    const { fetchStatus, isRunning } = await import('../admin/admin-client.ts');
    const answer = await fetchStatus(url, argv.timeout);
    if (argv.json) {
      println(io.stdout, JSON.stringify(answer));
      return;
    }
    if (!isRunning(answer)) {
      println(io.stdout, 'STATE  starting (the broker is not listening yet)');
      return;
    }
    const { statusLines } = await import('../admin/status-format.ts');
    for (const line of statusLines(answer)) println(io.stdout, line);
  },
};
