/**
 * Raw TCP echo server in its own process, the cross-process baseline of the
 * mesh benchmark: `node --import tsx bench/lib/raw-echo-child.ts`.
 *
 * Listens on 127.0.0.1:0 and echoes every `uint32 BE length || body` frame
 * (the framing of ./raw.ts) back on the same socket, writes batched per
 * tick. No crypto, no headers, no broker: what is left is loopback TCP and
 * two event loops. Prints `{"type":"ready","port":N}` (see ./child.ts).
 */
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { runChild } from './child.ts';
import { BatchedWriter, LengthPrefixedReader } from './raw.ts';

/** Largest frame body accepted (seq + payload), bytes. */
const MAX_BODY = 1024 * 1024;
const LIFETIME_MS = 180_000;

runChild('raw-echo', LIFETIME_MS, async () => {
  const sockets = new Set<net.Socket>();
  let frames = 0;
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.setNoDelay(true);
    const reader = new LengthPrefixedReader(MAX_BODY);
    const out = new BatchedWriter(socket);
    const onFrame = (body: Buffer): void => {
      frames++;
      const head = Buffer.allocUnsafe(4);
      head.writeUInt32BE(body.length, 0);
      out.write(head, body);
    };
    socket.on('data', (chunk: Buffer) => {
      try {
        reader.push(chunk, onFrame);
      } catch (error) {
        process.stderr.write(`[bench:raw-echo] ${error instanceof Error ? error.message : String(error)}\n`);
        socket.destroy();
      }
    });
    socket.on('error', () => socket.destroy());
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    info: { port: (server.address() as AddressInfo).port },
    stats: () => ({ frames }),
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
});
