/**
 * `meshd serve SERVICE --echo`: a demo worker. Connects a MeshNode, answers
 * every request for SERVICE with its own payload, prints `ready`, and runs
 * until SIGTERM or SIGINT, then drains and exits 0. With no broker reachable
 * at start it keeps trying (forever, unless --connect-timeout is given); once
 * running it outlives any broker outage, reconnecting by itself.
 */

import { DEFAULT_CONCURRENCY, MeshError, MeshNode, isMeshError, readKeyFile } from '../../lib/index.ts';
import type { KeyPair } from '../../lib/index.ts';
import { contextOf, docsEpilogue, println } from '../context.ts';
import type { CliContext, MeshdCommand } from '../context.ts';
import { LOG_OPTIONS, createLogger, errorFields } from '../log.ts';
import type { LogArgs, Logger } from '../log.ts';
import { LINGER_MS, brokerList, integerProblem, stopSignals } from '../options.ts';

export interface ServeArgs extends LogArgs {
  readonly service: string;
  readonly broker: readonly string[];
  readonly key: string;
  readonly echo: boolean;
  readonly concurrency: number;
  readonly name?: string | undefined;
  readonly 'connect-timeout'?: number | undefined;
}

/**
 * While no broker accepts the worker at start, one `connect-retry` line is
 * logged after the first second, then one every CONNECT_LOG_EVERY_MS, each
 * with the last error: a rate limit, since the links retry every 100-500 ms.
 */
const FIRST_CONNECT_LOG_MS = 1000;
const CONNECT_LOG_EVERY_MS = 10_000;

/** What a wait for the first broker can end with. */
type Connected = { readonly node: MeshNode } | { readonly stopped: true };

/**
 * Connects the worker, retrying until a broker accepts it, `--connect-timeout`
 * (if given) passes, or SIGTERM/SIGINT stops the wait. Connection errors are
 * retried; a verdict (an unknown key, a version mismatch) is thrown at once.
 */
async function connectWorker(argv: ServeArgs, keyPair: KeyPair, logger: Logger, stopped: AbortSignal): Promise<Connected> {
  const start = performance.now();
  const deadline = argv['connect-timeout'] === undefined ? Infinity : start + argv['connect-timeout'];
  let slice = FIRST_CONNECT_LOG_MS;
  for (let attempt = 1; ; attempt++) {
    const left = deadline - performance.now();
    // This attempt runs to the deadline: its timeout is the last (timers may fire a little early).
    const last = left <= slice;
    try {
      const node = await MeshNode.connect({
        brokers: brokerList(argv.broker),
        key: keyPair,
        name: argv.name,
        role: 'worker',
        timeout: Math.max(1, Math.round(Math.min(slice, left))),
        signal: stopped,
      });
      return { node };
    } catch (error) {
      if (isMeshError(error, 'MESH_ERR_ABORTED')) return { stopped: true };
      if (!isMeshError(error, 'MESH_ERR_TIMEOUT')) throw error;
      const waited = Math.round(performance.now() - start);
      const cause = error.cause instanceof MeshError ? error.cause : undefined;
      if (last || performance.now() >= deadline) {
        throw new MeshError('MESH_ERR_TIMEOUT', `no broker accepted the worker within --connect-timeout ${argv['connect-timeout']} ms${cause === undefined ? '' : ` (last error: ${cause.code}: ${cause.message})`}`, { cause });
      }
      logger.log('warn', 'connect-retry', `no broker has accepted the worker after ${waited} ms${cause === undefined ? '' : ` (last error: ${cause.code}: ${cause.message})`}; still trying`, { waitedMs: waited, attempt, ...errorFields(cause) });
      slice = CONNECT_LOG_EVERY_MS;
    }
  }
}

/** Serves SERVICE on the connected node until SIGTERM/SIGINT, then drains it. */
async function runWorker(ctx: CliContext, argv: ServeArgs, node: MeshNode, logger: Logger, stopped: Promise<string>): Promise<void> {
  // The brokers that welcomed the worker before these listeners were attached are logged like the later ones.
  for (const broker of node.healthyBrokers) logger.log('info', 'broker-up', `connected to ${broker}`, { broker });
  node.on('broker-up', (e) => logger.log('info', e.type, `connected to ${e.broker}`, { broker: e.broker }));
  node.on('broker-down', (e) => logger.log('warn', e.type, `lost ${e.broker}${e.error === undefined ? '' : `: ${e.error.code}`}; reconnecting`, { broker: e.broker, ...errorFields(e.error) }));
  node.on('broker-draining', (e) => logger.log('info', e.type, `${e.broker} is draining`, { broker: e.broker }));
  node.on('broker-error', (e) => logger.log('error', e.type, `${e.broker}: ${e.error.code}: ${e.error.message}`, { broker: e.broker, ...errorFields(e.error) }));
  node.on('brokers', (e) => logger.log('info', e.type, `brokers known: ${e.brokers.length}`, { brokers: e.brokers }));
  node.serve(argv.service, (request) => request.payload, { concurrency: argv.concurrency });
  logger.log('info', 'ready', `serving ${argv.service} (echo) through ${node.healthyBrokers.join(', ')}`, { service: argv.service, brokers: node.healthyBrokers, concurrency: argv.concurrency });
  println(ctx.io.stdout, 'ready');
  const signal = await stopped;
  logger.log('info', 'shutdown', `${signal}: finishing requests in flight; send it again to exit at once`, { signal });
  await node.drain();
}


export const serve: MeshdCommand<ServeArgs> = {
  command: 'serve <service>',
  describe: 'Run a demo worker: answer requests for SERVICE with their own payload (--echo)',
  builder: (y) =>
    y
      .usage(
        '$0 serve --broker URL... --key FILE SERVICE --echo [options]\n\n' +
          'Connect to the brokers as a worker and serve SERVICE with the echo handler: every request is answered with its own payload. Prints one stdout line, `ready`, once the service is offered; logs broker connections as JSON lines on stderr. Runs until SIGTERM or SIGINT, then finishes the requests it is running and exits 0; a second signal exits at once.\n\n' +
          "The worker's key must be in the broker's registry with a role that may serve SERVICE (worker or node).",
      )
      .positional('service', {
        type: 'string',
        demandOption: true,
        describe: 'Service name to offer, e.g. echo or billing.invoice',
      })
      .option('broker', {
        type: 'string',
        array: true,
        requiresArg: true,
        demandOption: 'serve needs --broker URL, the mesh://KEY@HOST:PORT a broker prints when it starts',
        describe: 'Broker address mesh://KEY@HOST:PORT (repeat for several brokers). Env: MESHD_BROKER (several: separated by spaces)',
      })
      .option('key', {
        type: 'string',
        requiresArg: true,
        demandOption: "serve needs --key FILE, the worker's key file (create one with `meshd keygen --out FILE`)",
        describe: "The worker's key file (mode 0600). Env: MESHD_KEY",
      })
      .option('echo', {
        type: 'boolean',
        default: false,
        describe: 'Answer each request with its payload (the only handler for now; required)',
      })
      .option('concurrency', {
        type: 'number',
        requiresArg: true,
        default: DEFAULT_CONCURRENCY,
        describe: 'Most requests handled at once. Env: MESHD_CONCURRENCY',
      })
      .option('name', {
        type: 'string',
        requiresArg: true,
        describe: "Name in the worker's HELLO (requests are stamped with its registry name). Env: MESHD_NAME",
      })
      .option('connect-timeout', {
        type: 'number',
        requiresArg: true,
        describe: 'Give up (exit 1) when no broker has accepted the worker this many ms after start. Default: keep trying forever. Env: MESHD_CONNECT_TIMEOUT',
      })
      .options(LOG_OPTIONS)
      .check((argv) => {
        if (!argv.echo) return 'serve needs a handler: --echo (answer each request with its payload) is the only one for now';
        if (brokerList(argv.broker).length === 0) return '--broker needs at least one mesh://KEY@HOST:PORT';
        return integerProblem('concurrency', argv.concurrency, 1) ?? integerProblem('connect-timeout', argv['connect-timeout'], 1) ?? true;
      })
      .example('$0 serve --broker "$BROKER" --key worker.key echo --echo', 'serve `echo` through one broker')
      .example('$0 serve --broker "$B1" --broker "$B2" --key worker.key echo --echo --concurrency 64', 'through two brokers, 64 requests at once')
      .example('MESHD_BROKER="$B1 $B2" MESHD_KEY=worker.key $0 serve echo --echo', 'brokers and key from the environment')
      .epilogue(docsEpilogue('meshd-serve')),
  handler: async (argv) => {
    const ctx = contextOf(argv);
    const logger = createLogger(ctx.io.stderr, { level: argv['log-level'], format: argv['log-format'] });
    const stop = stopSignals(ctx.host);
    const waiting = new AbortController();
    void stop.stopped.then(() => waiting.abort());
    try {
      const keyPair = await readKeyFile(argv.key);
      const connected = await connectWorker(argv, keyPair, logger, waiting.signal);
      if ('stopped' in connected) {
        logger.log('info', 'shutdown', 'stopped before any broker accepted the worker');
      } else {
        try {
          await runWorker(ctx, argv, connected.node, logger, stop.stopped);
        } finally {
          await connected.node.close();
        }
        logger.log('info', 'closed', 'worker closed');
      }
    } finally {
      stop.dispose();
    }
    ctx.host.exitAfter(LINGER_MS, ctx.exitCode);
  },
};
