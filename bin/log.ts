/**
 * Logs of the long-running commands (`meshd broker`, `meshd serve`): one JSON
 * object per line on stderr, never a payload. Every line has `time` (ISO
 * 8601), `level` (`info`, `warn` or `error`), `event` and `msg`; the other
 * fields depend on the event (docs/cli.md#logs-and-signals).
 */

import type { BrokerEvent, MeshError } from '../lib/index.ts';
import type { Output } from './context.ts';

/** How bad a log line is. */
export type LogLevel = 'info' | 'warn' | 'error';

/** Writes JSON log lines. */
export interface Logger {
  log(level: LogLevel, event: string, msg: string, fields?: Readonly<Record<string, unknown>>): void;
}

/** A MeshError as log fields: its stable code and its message. */
export function errorFields(error: MeshError | undefined): Record<string, string> {
  return error === undefined ? {} : { code: error.code, error: error.message };
}

/** A logger writing to `out`; `now` is for tests. */
export function jsonLogger(out: Output, now: () => Date = () => new Date()): Logger {
  return {
    log(level, event, msg, fields = {}) {
      out.write(`${JSON.stringify({ time: now().toISOString(), level, event, msg, ...fields })}\n`);
    },
  };
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
      logger.log('info', event.type, `peer broker connected (${event.direction === 'in' ? 'accepted' : 'dialled'})`, { key: event.key, direction: event.direction });
      return;
    case 'peer-down':
      logger.log('info', event.type, `peer broker connection lost${event.error === undefined ? '' : `: ${event.error.code}`}`, { key: event.key, direction: event.direction, ...errorFields(event.error) });
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
