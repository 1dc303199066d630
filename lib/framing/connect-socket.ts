/**
 * Opening a TCP connection with a deadline and an AbortSignal, mapping every
 * failure to a MeshError and leaving no socket behind when it fails.
 */

import net from 'node:net';
import { MeshError } from '../errors.ts';
import { ReadRelay, setReadRelay } from './read-relay.ts';

/** Options for {@link connectSocket}. */
export interface ConnectSocketOptions {
  /** Host name or IP address. */
  host: string;
  /** TCP port, 1..65535. */
  port: number;
  /** Aborts the attempt: rejects with `MESH_ERR_ABORTED`. */
  signal?: AbortSignal;
  /** Deadline in ms for the TCP connect (DNS lookup included); none by default. */
  timeout?: number;
}

function ignore(): void {
  // A failed attempt's socket is dropped; late errors from it are of no interest.
}

function describe(err: unknown): string {
  if (err instanceof Error) return (err as NodeJS.ErrnoException).code ?? err.message;
  return String(err);
}

/**
 * Opens a TCP connection and resolves with the connected socket once the
 * connection is established (nothing is read or written yet; wrap it in a
 * `FramedSocket` right away, as an unhandled socket `'error'` would crash
 * the process).
 *
 * Rejects with `MeshError`:
 * - `MESH_ERR_CONNECTION` (cause: the socket error) when the connection is
 *   refused, unreachable, or the host is unknown;
 * - `MESH_ERR_CONFIG` for invalid options (a bad port or timeout);
 * - `MESH_ERR_TIMEOUT` when `timeout` ms pass first;
 * - `MESH_ERR_ABORTED` (cause: `signal.reason`) when `signal` aborts first or
 *   is already aborted.
 * On every failure the socket is destroyed and all listeners and timers are
 * removed.
 */
export function connectSocket(options: ConnectSocketOptions): Promise<net.Socket> {
  const { host, port, signal, timeout } = options;
  const where = `${host}:${String(port)}`;
  return new Promise<net.Socket>((resolve, reject) => {
    if (signal?.aborted === true) {
      reject(new MeshError('MESH_ERR_ABORTED', `connect to ${where} aborted`, { cause: signal.reason }));
      return;
    }
    if (timeout !== undefined && !(timeout > 0 && Number.isFinite(timeout))) {
      reject(new MeshError('MESH_ERR_CONFIG', `connect to ${where}: timeout must be a positive number of ms, got ${String(timeout)}`));
      return;
    }
    let socket: net.Socket;
    try {
      const relay = new ReadRelay();
      socket = net.connect({ host, port, onread: relay.onread });
      setReadRelay(socket, relay);
    } catch (err) {
      // net.connect throws synchronously only for invalid options (a bad port).
      reject(new MeshError('MESH_ERR_CONFIG', `cannot connect to ${where}: ${describe(err)}`, { cause: err }));
      return;
    }
    let timer: NodeJS.Timeout | undefined;

    const cleanup = (): void => {
      socket.off('connect', onConnect);
      socket.off('error', onError);
      signal?.removeEventListener('abort', onAbort);
      if (timer !== undefined) clearTimeout(timer);
    };
    const fail = (error: MeshError): void => {
      cleanup();
      socket.on('error', ignore);
      socket.destroy();
      reject(error);
    };
    function onConnect(): void {
      cleanup();
      resolve(socket);
    }
    function onError(err: Error): void {
      fail(new MeshError('MESH_ERR_CONNECTION', `cannot connect to ${where}: ${describe(err)}`, { cause: err }));
    }
    function onAbort(): void {
      fail(new MeshError('MESH_ERR_ABORTED', `connect to ${where} aborted`, { cause: signal?.reason }));
    }

    socket.once('connect', onConnect);
    socket.once('error', onError);
    signal?.addEventListener('abort', onAbort, { once: true });
    if (timeout !== undefined) {
      timer = setTimeout(() => {
        timer = undefined;
        fail(new MeshError('MESH_ERR_TIMEOUT', `connect to ${where} timed out after ${String(timeout)} ms`));
      }, timeout);
    }
  });
}
