/**
 * Option parsing and process plumbing shared by the commands that run a
 * broker or a node: listen addresses, integer options, broker lists, stdin,
 * and the SIGTERM/SIGINT shutdown rule.
 */

import { constants } from 'node:os';
import { checkHostPort } from '../lib/index.ts';
import type { CliHost, HostSignal } from './context.ts';

/** A listen address, from `HOST:PORT` or `[IPV6]:PORT`. */
export interface ListenAddress {
  readonly host: string;
  /** 0 means any free port. */
  readonly port: number;
}

/**
 * Parses `--listen` (or, with `flag`, another address option such as
 * `--advertise`): the address, or a message saying what is wrong. The same
 * HOST:PORT rules as broker addresses (checkHostPort), port 0 allowed.
 */
export function parseListen(text: string, flag = 'listen'): ListenAddress | string {
  const checked = checkHostPort(text, { allowPortZero: true });
  if (typeof checked !== 'string') return checked;
  const hint = flag === 'listen' ? ', 0.0.0.0:4222 or [::1]:4222 (port 0: any free port)' : ' or [::1]:4222';
  return `--${flag} '${text}': ${checked}; expected HOST:PORT or [IPV6]:PORT, e.g. 127.0.0.1:4222${hint}`;
}

/** Host of `--admin` when only a port is given. */
export const DEFAULT_ADMIN_HOST = '127.0.0.1';

/**
 * Parses `--admin`: `HOST:PORT`, `[IPV6]:PORT`, or just `PORT` or `:PORT`
 * for 127.0.0.1; port 0 is any free port. The address, or a message saying
 * what is wrong.
 */
export function parseAdminAddress(text: string): ListenAddress | string {
  const portOnly = /^:?([0-9]{1,5})$/.exec(text.trim());
  const checked = portOnly ? checkHostPort(`${DEFAULT_ADMIN_HOST}:${portOnly[1]}`, { allowPortZero: true }) : checkHostPort(text, { allowPortZero: true });
  if (typeof checked !== 'string') return checked;
  return `--admin '${text}': ${checked}; expected HOST:PORT, [IPV6]:PORT, or PORT alone for ${DEFAULT_ADMIN_HOST}, e.g. 127.0.0.1:9090 or :9090 (port 0: any free port)`;
}

/**
 * Checks an integer option: undefined when `value` is absent or a whole number
 * from `min` to `max`, otherwise the message of a usage error.
 */
export function integerProblem(name: string, value: unknown, min: number, max = Number.MAX_SAFE_INTEGER): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `at least ${min}` : `from ${min} to ${max}`;
    return `--${name} must be a whole number ${range}, got ${typeof value === 'number' && Number.isNaN(value) ? 'something that is not a number' : `'${typeof value === 'number' || typeof value === 'string' ? value : JSON.stringify(value)}'`}`;
  }
  return undefined;
}

/**
 * The broker URLs of repeated `--broker` flags, or of MESHD_BROKER / a config
 * value listing several separated by spaces or commas.
 */
export function brokerList(value: unknown): string[] {
  const values = Array.isArray(value) ? (value as unknown[]) : value === undefined ? [] : [value];
  return values.flatMap((v) => String(v).split(/[\s,]+/)).filter((v) => v.length > 0);
}

/** Reads a stream to its end. */
export async function readAll(input: AsyncIterable<Uint8Array | string>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of input) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
  return Buffer.concat(chunks);
}

/** The exit code of a process killed by `signal`, as shells report it (128 + number). */
export function signalExitCode(signal: HostSignal): number {
  return 128 + constants.signals[signal];
}

/** The shutdown rule of `meshd broker` and `meshd serve`. */
export interface StopSignals {
  /** Resolves with the first SIGTERM or SIGINT. */
  readonly stopped: Promise<HostSignal>;
  /** Stops listening for the signals. */
  dispose(): void;
}

/**
 * Listens for SIGTERM and SIGINT: the first asks for a graceful shutdown
 * (`stopped` resolves); a second exits at once with 128 + its number.
 */
export function stopSignals(host: CliHost): StopSignals {
  let first: HostSignal | undefined;
  let resolve: (signal: HostSignal) => void = () => undefined;
  const stopped = new Promise<HostSignal>((r) => (resolve = r));
  const on = (signal: HostSignal) => () => {
    if (first === undefined) {
      first = signal;
      resolve(signal);
    } else {
      host.exit(signalExitCode(signal));
    }
  };
  const offs = (['SIGTERM', 'SIGINT'] as const).map((signal) => host.onSignal(signal, on(signal)));
  return {
    stopped,
    dispose: () => {
      for (const off of offs) off();
    },
  };
}

/** Default deadline for `meshd request` to reach a first broker, ms (`meshd serve` has none: it keeps trying unless --connect-timeout is given). */
export const DEFAULT_CONNECT_TIMEOUT = 5000;

/** How long a finished broker or worker may linger before it is made to exit. */
export const LINGER_MS = 3000;
