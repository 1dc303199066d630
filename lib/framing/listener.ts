/**
 * A TCP listener that hands accepted sockets to a callback. Lives in the
 * framing layer because it is the only layer that touches sockets.
 */
import net from 'node:net';
import { MeshError } from '../errors.ts';

/** An accepted, not yet wrapped socket. Wrap it in a FramedSocket at once. */
export type AcceptedSocket = net.Socket;

/** A listening TCP server. */
export interface Listener {
  /** The bound host and port (the real port when 0 was asked for). */
  readonly host: string;
  readonly port: number;
  /** Stops accepting (idempotent); open sockets are not touched. */
  close(): Promise<void>;
}

/**
 * Listens on host:port and calls `onSocket` for each connection. Rejects with
 * MESH_ERR_CONFIG when the address cannot be bound (in use, not local, ...).
 */
export function listen(options: { host: string; port: number; backlog?: number }, onSocket: (socket: AcceptedSocket) => void): Promise<Listener> {
  return new Promise<Listener>((resolve, reject) => {
    const server = net.createServer({ noDelay: true }, (socket) => {
      // Until wrapped, a socket error must not crash the process.
      socket.on('error', ignore);
      onSocket(socket);
    });
    const onError = (err: Error): void => {
      reject(new MeshError('MESH_ERR_CONFIG', `cannot listen on ${options.host}:${options.port}: ${(err as NodeJS.ErrnoException).code ?? err.message}`, { cause: err }));
    };
    server.once('error', onError);
    server.listen({ host: options.host, port: options.port, backlog: options.backlog ?? 511 }, () => {
      server.off('error', onError);
      server.on('error', ignore);
      const address = server.address() as net.AddressInfo;
      let closing: Promise<void> | undefined;
      resolve({
        host: address.address,
        port: address.port,
        close: () => (closing ??= new Promise<void>((done) => server.close(() => done()))),
      });
    });
  });
}

function ignore(): void {
  // Errors on a socket not yet wrapped, or on a server already reported, are not actionable.
}
