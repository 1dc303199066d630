/**
 * Logs of the long-running commands (`meshd broker`, `meshd serve`), written
 * with pino: one JSON object per line on stderr, never a payload. Every line
 * has `time` (ISO 8601), `level` (`debug`, `info`, `warn` or `error`),
 * `event` and `msg`; the other fields depend on the event
 * (docs/cli.md#logs-and-signals). `--log-level` drops the lines below a
 * level; `--log-format pretty` (the default when stderr is a terminal)
 * prints one readable line per event instead of JSON.
 */

import pino from 'pino';
import type { BrokerEvent, MeshError } from '../lib/index.ts';
import type { Output } from './context.ts';

/** How bad a log line is. */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

/** The levels `--log-level` takes, least to most severe; `silent` logs nothing. */
export const LOG_LEVELS = ['debug', 'info', 'warn', 'error', 'silent'] as const;

/** What `--log-format` takes: `auto` is `pretty` on a terminal, else `json`. */
export const LOG_FORMATS = ['auto', 'json', 'pretty'] as const;

/** Writes log lines. */
export interface Logger {
  log(level: LogLevel, event: string, msg: string, fields?: Readonly<Record<string, unknown>>): void;
}

/** Options of {@link createLogger}. */
export interface LoggerOptions {
  /** Lines below this level are dropped (default `info`). */
  readonly level?: (typeof LOG_LEVELS)[number] | undefined;
  /** `json` lines, or `pretty` ones for a person; `auto` (default) picks pretty when `out` is a terminal. */
  readonly format?: (typeof LOG_FORMATS)[number] | undefined;
  /** The clock, for tests. */
  readonly now?: (() => Date) | undefined;
}

/** The log options of `meshd broker` and `meshd serve`, for yargs' `.options()`. */
export const LOG_OPTIONS = {
  'log-level': {
    type: 'string' as const,
    choices: LOG_LEVELS,
    default: 'info' as const,
    requiresArg: true,
    describe: 'Drop log lines below this level (silent: none). Env: MESHD_LOG_LEVEL',
  },
  'log-format': {
    type: 'string' as const,
    choices: LOG_FORMATS,
    default: 'auto' as const,
    requiresArg: true,
    describe: 'json: one JSON object per line; pretty: one readable line; auto: pretty when stderr is a terminal, else json. Env: MESHD_LOG_FORMAT',
  },
};

/** The values of {@link LOG_OPTIONS}. */
export interface LogArgs {
  readonly 'log-level': (typeof LOG_LEVELS)[number];
  readonly 'log-format': (typeof LOG_FORMATS)[number];
}

/** A MeshError as log fields: its stable code and its message. */
export function errorFields(error: MeshError | undefined): Record<string, string> {
  return error === undefined ? {} : { code: error.code, error: error.message };
}

/** A logger writing to `out` (stderr in the CLI). */
export function createLogger(out: Output & { readonly isTTY?: boolean }, options: LoggerOptions = {}): Logger {
  const now = options.now ?? ((): Date => new Date());
  const format = options.format === undefined || options.format === 'auto' ? (out.isTTY === true ? 'pretty' : 'json') : options.format;
  const destination = format === 'pretty' ? { write: (line: string) => out.write(prettyLine(line)) } : { write: (line: string) => out.write(line) };
  const log = pino(
    {
      level: options.level ?? 'info',
      base: undefined,
      messageKey: 'msg',
      timestamp: () => `,"time":"${now().toISOString()}"`,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
  return {
    log(level, event, msg, fields = {}) {
      log[level]({ event, ...fields }, msg);
    },
  };
}

/** The logger of the CLI before pino: kept for callers that pass only a clock. */
export function jsonLogger(out: Output, now: () => Date = () => new Date()): Logger {
  return createLogger(out, { format: 'json', now });
}

/** One JSON log line as a person reads it: `time LEVEL event: msg key=value ...`. */
export function prettyLine(line: string): string {
  let record: Record<string, unknown>;
  try {
    record = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line;
  }
  const { time, level, event, msg, ...rest } = record;
  const clock = typeof time === 'string' ? time.slice(11, 23) : '';
  const extra = Object.entries(rest)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(' ');
  return `${clock} ${String(level).toUpperCase().padEnd(5)} ${String(event)}: ${String(msg)}${extra ? `  ${extra}` : ''}\n`;
}

/** The first 8 characters of a base64url key: enough to tell brokers apart in a log line. */
function fingerprint(key: string): string {
  return `${key.slice(0, 8)}…`;
}

/** Logs one broker event (`meshd broker` listens to every type). */
export function logBrokerEvent(logger: Logger, event: BrokerEvent): void {
  switch (event.type) {
    case 'connected':
      logger.log('info', event.type, `${event.name} (${event.role}) connected from ${event.remote}`, { key: event.key, name: event.name, role: event.role, remote: event.remote });
      return;
    case 'disconnected':
      logger.log('info', event.type, `${event.name} disconnected${event.error === undefined ? '' : `: ${event.error.code}`}`, { key: event.key, name: event.name, ...errorFields(event.error) });
      return;
    case 'handshake-failed':
      logger.log('warn', event.type, `handshake with ${event.remote} failed: ${event.error.code}`, { remote: event.remote, ...errorFields(event.error) });
      return;
    case 'handshake-flood':
      logger.log(
        'warn',
        event.type,
        `unwanted connections in the last ${event.windowMs / 1000} s: ${event.failed} more failed handshakes, ${event.evicted} evicted, ${event.refused} closed at accept`,
        { windowMs: event.windowMs, failed: event.failed, evicted: event.evicted, refused: event.refused, sources: event.sources },
      );
      return;
    case 'registry-reloaded':
      logger.log('info', event.type, `registry in force: ${event.entries} entries, ${event.removed} removed`, { entries: event.entries, removed: event.removed });
      return;
    case 'registry-error':
      logger.log('error', event.type, `registry reload failed; the previous registry stays in force: ${event.error.message}`, errorFields(event.error));
      return;
    case 'forbidden':
      logger.log('warn', event.type, `${event.name} may not ${event.what}`, { key: event.key, name: event.name, what: event.what });
      return;
    case 'draining':
      logger.log('info', event.type, 'draining: no new connections; finishing requests in flight');
      return;
    case 'closed':
      logger.log('info', event.type, 'broker closed');
      return;
    case 'brokers':
      logger.log('info', event.type, `live brokers: ${event.live.length}`, { live: event.live });
      return;
    case 'peer-up':
      logger.log('info', event.type, `peer broker ${event.name} (${fingerprint(event.key)}) connected (${event.direction === 'in' ? 'accepted' : 'dialled'})`, { key: event.key, name: event.name, direction: event.direction });
      return;
    case 'peer-down':
      logger.log('info', event.type, `peer broker ${event.name} (${fingerprint(event.key)}) connection lost${event.error === undefined ? '' : `: ${event.error.code}`}`, { key: event.key, name: event.name, direction: event.direction, ...errorFields(event.error) });
      return;
    case 'peer-dial-failed':
      logger.log('warn', event.type, `cannot reach peer broker at ${event.address}: ${event.error.code}`, { key: event.key, address: event.address, ...errorFields(event.error) });
      return;
    case 'peer-not-registered':
      logger.log('warn', event.type, 'a peer broker is not in the registry with role broker: not dialled', { key: event.key });
      return;
    case 'stalled':
      logger.log('warn', event.type, `event loop was stalled for ${event.ms} ms: requests read now are handed back`, { ms: event.ms });
      return;
    default: {
      // An event type added to the lib later is still logged, by its fields.
      const unknown: { type: string } = event;
      logger.log('info', unknown.type, unknown.type, { ...unknown, type: undefined });
    }
  }
}
