/**
 * `meshd broker`: runs a broker until SIGTERM or SIGINT. Options come from
 * flags, then MESHD_* variables, then the YAML file of `--config`, then
 * defaults. When it listens it prints one stdout line,
 * `listening mesh://KEY@HOST:PORT`; its logs are JSON lines on stderr.
 */

import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { BROKER_EVENT_TYPES, Broker, DEFAULT_DRAIN_TIMEOUT, DEFAULT_FIRST_MESSAGE_TIMEOUT, DEFAULT_MAX_HANDSHAKES, DEFAULT_MAX_HANDSHAKES_PER_SOURCE, DEFAULT_MAX_PAYLOAD, DEFAULT_QUEUE_LIMITS, MeshError } from '../../lib/index.ts';
import type { SuiteName } from '../../lib/index.ts';
import { contextOf, docsEpilogue, println } from '../context.ts';
import type { MeshdCommand } from '../context.ts';
import { LOG_OPTIONS, createLogger, logBrokerEvent } from '../log.ts';
import type { LogArgs, Logger } from '../log.ts';
import { LINGER_MS, brokerList, integerProblem, parseAdminAddress, parseListen, stopSignals } from '../options.ts';
import type { AdminServer } from '../admin/admin-server.ts';

export interface BrokerArgs extends LogArgs {
  readonly listen: string;
  readonly key: string;
  readonly registry: string;
  readonly peer?: readonly string[] | undefined;
  readonly admin?: string | undefined;
  readonly name: string;
  readonly suite?: SuiteName | undefined;
  readonly 'max-payload': number;
  readonly 'queue-max': number;
  readonly 'drain-timeout': number;
  readonly 'gossip-interval': number;
  readonly 'max-handshakes': number;
  readonly 'max-handshakes-per-source': number;
  readonly 'first-message-timeout': number;
  readonly advertise?: string | undefined;
  readonly config?: string | undefined;
}

/** Largest payload a broker may be configured to accept: wire protocol v1 caps the HELLO's max-payload at 64 MiB (MAX_PAYLOAD_LIMIT in lib/protocol/hello.ts); a larger value would make every peer refuse the broker's HELLO. */
const MAX_MAX_PAYLOAD = 64 * 1024 * 1024;

/** The options a `--config` file may set, by type. */
const CONFIG_STRINGS = ['listen', 'key', 'registry', 'admin', 'name', 'suite', 'advertise', 'log-level', 'log-format'] as const;
const CONFIG_NUMBERS = ['max-payload', 'queue-max', 'drain-timeout', 'gossip-interval', 'max-handshakes', 'max-handshakes-per-source', 'first-message-timeout'] as const;
const CONFIG_LISTS = ['peer'] as const;
const CONFIG_KEYS: readonly string[] = [...CONFIG_STRINGS, ...CONFIG_NUMBERS, ...CONFIG_LISTS];

function configError(path: string, message: string, cause?: unknown): MeshError {
  return new MeshError('MESH_ERR_CONFIG', `config file ${path}: ${message}`, cause === undefined ? {} : { cause });
}

/**
 * Reads a `--config` file: a YAML map whose keys are long option names
 * (`listen: 127.0.0.1:4222`, `max-payload: 1048576`, `peer: [URL, ...]`).
 * An unknown key or a value of the wrong kind is MESH_ERR_CONFIG; a key with
 * no value counts as absent. yargs applies the result below flags and MESHD_*
 * variables, above defaults.
 */
export function readBrokerConfig(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw configError(path, code === 'ENOENT' ? 'does not exist' : `cannot be read (${code ?? String(err)})`, err);
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw configError(path, `is not valid YAML: ${(err instanceof Error ? err.message : String(err)).split('\n')[0] ?? ''}`, err);
  }
  if (doc === null || doc === undefined) return {};
  if (typeof doc !== 'object' || Array.isArray(doc)) throw configError(path, 'must be a YAML map of option names to values, e.g. `listen: 127.0.0.1:4222`');
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(doc as Record<string, unknown>)) {
    if (!CONFIG_KEYS.includes(key)) {
      throw configError(path, `unknown key '${key}'; the keys are the long option names of meshd broker: ${CONFIG_KEYS.join(', ')}`);
    }
    if (value === null || value === undefined) continue;
    const scalar = typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean';
    if ((CONFIG_LISTS as readonly string[]).includes(key)) {
      const list = Array.isArray(value) ? (value as unknown[]) : [value];
      if (!list.every((v) => typeof v === 'string')) throw configError(path, `'${key}' must be a string or a list of strings`);
      out[key] = list;
    } else if ((CONFIG_NUMBERS as readonly string[]).includes(key)) {
      const number = typeof value === 'number' ? value : typeof value === 'string' && /^[0-9]+$/.test(value.trim()) ? Number(value) : NaN;
      if (!Number.isSafeInteger(number)) throw configError(path, `'${key}' must be a whole number, got ${JSON.stringify(value)}`);
      out[key] = number;
    } else {
      if (!scalar) throw configError(path, `'${key}' must be a single value, not a list or map`);
      out[key] = String(value);
    }
  }
  return out;
}

export const broker: MeshdCommand<BrokerArgs> = {
  command: 'broker',
  describe: 'Run a broker: print `listening mesh://KEY@HOST:PORT`, log JSON lines on stderr, drain on SIGTERM',
  builder: (y) =>
    y
      .usage(
        '$0 broker --listen HOST:PORT --key FILE --registry FILE [options]\n\n' +
          'Run a broker until SIGTERM or SIGINT. When it listens, it prints one stdout line, `listening mesh://KEY@HOST:PORT`: the address nodes connect to (with the real port when --listen asks for port 0). Logs go to stderr as JSON lines (one per connection, disconnection, registry reload, ...; never a payload).\n\n' +
          'Signals: SIGHUP re-reads the registry (it is also reloaded within a second of a change to the file). SIGTERM or SIGINT drains (no new connections, queued requests handed back, replies in flight delivered, at most --drain-timeout ms) and exits 0; a second SIGTERM or SIGINT exits at once.\n\n' +
          'Each option is taken from its flag, else from its MESHD_* variable (MESHD_LISTEN for --listen, MESHD_MAX_PAYLOAD for --max-payload, ...), else from the --config file, else from its default.',
      )
      .option('listen', {
        type: 'string',
        requiresArg: true,
        demandOption: 'broker needs --listen HOST:PORT (e.g. 127.0.0.1:4222)',
        describe: 'Address to listen on: HOST:PORT or [IPV6]:PORT; port 0 picks a free port. Env: MESHD_LISTEN',
      })
      .option('key', {
        type: 'string',
        requiresArg: true,
        demandOption: 'broker needs --key FILE, its key file (create one with `meshd keygen --out FILE`)',
        describe: "The broker's key file (mode 0600). Env: MESHD_KEY",
      })
      .option('registry', {
        type: 'string',
        requiresArg: true,
        demandOption: 'broker needs --registry FILE, the YAML list of keys it accepts (create it with `meshd registry add`)',
        describe: 'Registry file (YAML): who may connect, call and serve; reloaded on change and on SIGHUP. Env: MESHD_REGISTRY',
      })
      .option('name', {
        type: 'string',
        requiresArg: true,
        default: 'broker',
        describe: "The broker's name in its HELLO and logs. Env: MESHD_NAME",
      })
      .option('suite', {
        type: 'string',
        requiresArg: true,
        choices: ['node', 'noble'] as const,
        describe: 'Crypto suite: node (node:crypto) or noble (pure JS). Default: node where the runtime supports it. Env: MESHD_SUITE',
      })
      .option('max-payload', {
        type: 'number',
        requiresArg: true,
        default: DEFAULT_MAX_PAYLOAD,
        describe: 'Largest request or reply payload accepted, bytes. Env: MESHD_MAX_PAYLOAD',
      })
      .option('queue-max', {
        type: 'number',
        requiresArg: true,
        default: DEFAULT_QUEUE_LIMITS.maxCount,
        describe: 'Most requests waiting per service for a free worker; a request past it gets MESH_ERR_BUSY. Env: MESHD_QUEUE_MAX',
      })
      .option('drain-timeout', {
        type: 'number',
        requiresArg: true,
        default: DEFAULT_DRAIN_TIMEOUT,
        describe: 'On SIGTERM/SIGINT, longest wait for replies to requests in flight, ms. Env: MESHD_DRAIN_TIMEOUT',
      })
      .option('peer', {
        type: 'string',
        array: true,
        requiresArg: true,
        describe: 'Peer broker mesh://KEY@HOST:PORT to join (repeatable); the others are learned from it. Its key must be in the registry with role broker. Env: MESHD_PEER (several: separated by spaces)',
      })
      .option('gossip-interval', {
        type: 'number',
        requiresArg: true,
        default: 1000,
        describe: 'Quorum round interval between brokers, ms. Env: MESHD_GOSSIP_INTERVAL',
      })
      .option('max-handshakes', {
        type: 'number',
        requiresArg: true,
        default: DEFAULT_MAX_HANDSHAKES,
        describe: 'Most connections in their handshake at once; when full, a newcomer takes the place of the one that has made the least progress. Env: MESHD_MAX_HANDSHAKES',
      })
      .option('max-handshakes-per-source', {
        type: 'number',
        requiresArg: true,
        default: DEFAULT_MAX_HANDSHAKES_PER_SOURCE,
        describe: 'Most connections in their handshake from one source address. Env: MESHD_MAX_HANDSHAKES_PER_SOURCE',
      })
      .option('first-message-timeout', {
        type: 'number',
        requiresArg: true,
        default: DEFAULT_FIRST_MESSAGE_TIMEOUT,
        describe: 'Time a new connection has to send its first handshake message, ms; a silent connection is closed. Env: MESHD_FIRST_MESSAGE_TIMEOUT',
      })
      .option('advertise', {
        type: 'string',
        requiresArg: true,
        describe: 'HOST:PORT announced to peer brokers and nodes (default: the listen address, with its real port). Env: MESHD_ADVERTISE',
      })
      .option('admin', {
        type: 'string',
        requiresArg: true,
        describe: 'Serve the admin HTTP endpoint on HOST:PORT (PORT or :PORT alone: 127.0.0.1; port 0: any free port, logged in `admin-listening`): GET /healthz, /readyz, /status (JSON), /metrics (Prometheus). Env: MESHD_ADMIN',
      })
      .options(LOG_OPTIONS)
      .option('config', {
        type: 'string',
        requiresArg: true,
        config: true,
        configParser: readBrokerConfig,
        describe: 'YAML file of options, keys being the long option names (listen: 127.0.0.1:4222). Below flags and MESHD_* variables. Env: MESHD_CONFIG',
      })
      .check((argv) => {
        const listen = parseListen(String(argv.listen));
        if (typeof listen === 'string') return listen;
        const problem =
          integerProblem('max-payload', argv['max-payload'], 1, MAX_MAX_PAYLOAD) ??
          integerProblem('queue-max', argv['queue-max'], 1) ??
          integerProblem('drain-timeout', argv['drain-timeout'], 0) ??
          integerProblem('gossip-interval', argv['gossip-interval'], 50, 60_000) ??
          integerProblem('max-handshakes', argv['max-handshakes'], 1) ??
          integerProblem('max-handshakes-per-source', argv['max-handshakes-per-source'], 1) ??
          integerProblem('first-message-timeout', argv['first-message-timeout'], 10, 60_000);
        if (problem) return problem;
        if (argv.admin !== undefined) {
          const admin = parseAdminAddress(String(argv.admin));
          if (typeof admin === 'string') return admin;
        }
        if (argv.advertise !== undefined) {
          const advertise = parseListen(String(argv.advertise), 'advertise');
          if (typeof advertise === 'string') return advertise;
          if (advertise.port === 0) return '--advertise needs a real port, not 0';
        }
        return problem ?? true;
      })
      .example('$0 broker --listen 127.0.0.1:4222 --key broker.key --registry registry.yaml', 'run a broker on port 4222')
      .example('$0 broker --listen 127.0.0.1:0 --key broker.key --registry registry.yaml', 'any free port: read it from the `listening` line')
      .example('$0 broker --listen [::]:4222 --key broker.key --registry registry.yaml 2>broker.log', 'every interface, logs to a file')
      .example('MESHD_LISTEN=0.0.0.0:4222 $0 broker --config broker.yaml', 'options from a YAML file, one overridden by a variable')
      .example('$0 broker --listen 127.0.0.1:4222 --key broker.key --registry registry.yaml --admin :9090', 'with the admin endpoint on 127.0.0.1:9090 (/healthz, /readyz, /status, /metrics)')
      .example('kill -HUP <pid>', 're-read the registry now')
      .epilogue(docsEpilogue('meshd-broker')),
  handler: async (argv) => {
    const ctx = contextOf(argv);
    const logger = createLogger(ctx.io.stderr, { level: argv['log-level'], format: argv['log-format'] });
    const listen = parseListen(argv.listen);
    if (typeof listen === 'string') throw new Error(`unreachable: check() validates --listen: ${listen}`);
    const peers = brokerList(argv.peer);
    // The admin endpoint listens first: /healthz answers while the broker starts,
    // and an admin address that cannot be bound fails before anything runs.
    const admin = argv.admin === undefined ? undefined : await startAdmin(argv.admin, logger);
    const stop = stopSignals(ctx.host);
    let offHup: (() => void) | undefined;
    try {
      const running = await Broker.start({
        key: argv.key,
        registry: argv.registry,
        host: listen.host,
        port: listen.port,
        name: argv.name,
        suite: argv.suite,
        maxPayload: argv['max-payload'],
        queue: { maxCount: argv['queue-max'] },
        drainTimeout: argv['drain-timeout'],
        peers,
        gossipInterval: argv['gossip-interval'],
        advertise: argv.advertise,
        maxHandshakes: argv['max-handshakes'],
        maxHandshakesPerSource: argv['max-handshakes-per-source'],
        firstMessageTimeout: argv['first-message-timeout'],
      });
      // Every event becomes a log line; those of the start itself come right after it resolves.
      for (const type of BROKER_EVENT_TYPES) running.on(type, (event) => logBrokerEvent(logger, event));
      admin?.attach(running);
      offHup = ctx.host.onSignal('SIGHUP', () => {
        logger.log('info', 'sighup', 'SIGHUP: re-reading the registry');
        void running.reloadRegistry();
      });
      logger.log('info', 'listening', `listening on ${running.address}`, {
        address: running.address,
        name: argv.name,
        registry: argv.registry,
        entries: running.registry.size,
        suite: running.suite,
        maxPayload: argv['max-payload'],
        queueMax: argv['queue-max'],
        drainTimeout: argv['drain-timeout'],
        peers,
        gossipInterval: argv['gossip-interval'],
        admin: admin?.url,
      });
      println(ctx.io.stdout, `listening ${running.address}`);
      const signal = await stop.stopped;
      logger.log('info', 'shutdown', `${signal}: draining (at most ${argv['drain-timeout']} ms); send it again to exit at once`, { signal });
      // The admin endpoint keeps answering while the broker drains (/readyz: 503), and closes with it.
      await running.close();
    } finally {
      offHup?.();
      stop.dispose();
      await admin?.close();
    }
    ctx.host.exitAfter(LINGER_MS, ctx.exitCode);
  },
};

/** Starts the admin endpoint (its module, and prom-client, load only when --admin is given). */
async function startAdmin(text: string, logger: Logger): Promise<AdminServer> {
  const address = parseAdminAddress(text);
  if (typeof address === 'string') throw new Error(`unreachable: check() validates --admin: ${address}`);
  const { AdminServer } = await import('../admin/admin-server.ts');
  const admin = await AdminServer.listen(address.host, address.port, logger);
  logger.log('info', 'admin-listening', `admin endpoint on ${admin.url} (GET /healthz, /readyz, /status, /metrics)`, { address: admin.url });
  return admin;
}
