// TCP ports on 127.0.0.1 for tests: one to listen on later, and one where
// nothing listens for a test of "nobody there".
import net from 'node:net';

/**
 * A port on 127.0.0.1 that was free a moment ago (bound, then released), for
 * a server the test starts later. Another process may take it meanwhile: a
 * test of "nothing listens here" uses {@link closedPort}.
 */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Whether a connection to 127.0.0.1:`port` is refused (nothing listens). */
function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.setTimeout(1000, () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code === 'ECONNREFUSED'));
  });
}

let closed: Promise<number> | undefined;

/**
 * A port on 127.0.0.1 where connections are refused, and stay refused: one
 * below 1024, which a `listen(0)` never hands out (those come from the
 * ephemeral range), so no server of another test running at the same time
 * can take it, as it could a port from {@link freePort}.
 */
export function closedPort(): Promise<number> {
  closed ??= (async () => {
    for (let port = 1; port < 1024; port++) if (await refused(port)) return port;
    throw new Error('every port below 1024 on 127.0.0.1 accepts connections');
  })();
  return closed;
}
