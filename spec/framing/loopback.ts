// Test helpers: real TCP on 127.0.0.1, port 0, every socket and server tracked
// so a test's `finally` can close them all.
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import type { MeshError } from '../../lib/errors.ts';
import type { FramedSocketHandlers } from '../../lib/framing/framed-socket.ts';

/** A listening server plus everything it accepted; `close()` tears all down. */
export interface Loopback {
  readonly server: net.Server;
  readonly port: number;
  /** Resolves with the next accepted socket. */
  accept(): Promise<net.Socket>;
  /** Tracks a socket made by the test so close() destroys it too. */
  track<T extends net.Socket>(socket: T): T;
  close(): Promise<void>;
}

export async function loopback(options: net.ServerOpts = {}): Promise<Loopback> {
  const sockets = new Set<net.Socket>();
  const accepted: net.Socket[] = [];
  const waiting: ((s: net.Socket) => void)[] = [];
  const server = net.createServer(options, (socket) => {
    sockets.add(socket);
    const waiter = waiting.shift();
    if (waiter !== undefined) waiter(socket);
    else accepted.push(socket);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  return {
    server,
    port: address.port,
    accept() {
      const ready = accepted.shift();
      if (ready !== undefined) return Promise.resolve(ready);
      return new Promise((resolve) => waiting.push(resolve));
    },
    track(socket) {
      sockets.add(socket);
      return socket;
    },
    async close() {
      for (const s of sockets) {
        s.on('error', () => undefined);
        s.destroy();
      }
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Handlers that record everything, with helpers to wait on them. */
export interface Recorder extends FramedSocketHandlers {
  readonly frames: Buffer[];
  readonly prefixes: Buffer[];
  readonly closes: (MeshError | undefined)[];
  drains: number;
  /** Resolves with the onClose argument. */
  readonly closed: Promise<MeshError | undefined>;
  /** Called for each frame after it is recorded (set by a test). */
  onEachFrame?: (frame: Buffer) => void;
}

export function recorder(): Recorder {
  let resolveClosed!: (e: MeshError | undefined) => void;
  const closed = new Promise<MeshError | undefined>((resolve) => (resolveClosed = resolve));
  const rec: Recorder = {
    frames: [],
    prefixes: [],
    closes: [],
    drains: 0,
    closed,
    onFrame(frame) {
      rec.frames.push(Buffer.from(frame));
      rec.onEachFrame?.(frame);
    },
    onPrefix(prefix) {
      rec.prefixes.push(Buffer.from(prefix));
    },
    onDrain() {
      rec.drains++;
    },
    onClose(error) {
      rec.closes.push(error);
      resolveClosed(error);
    },
  };
  return rec;
}

/** Polls `predicate` every few ms; throws after `ms`. */
export async function waitFor(predicate: () => boolean, ms = 5000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

/** Rejects when `promise` takes longer than `ms`. */
export async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  const ac = new AbortController();
  try {
    return await Promise.race([
      promise,
      sleep(ms, undefined, { signal: ac.signal }).then(() => {
        throw new Error(`timed out after ${ms} ms waiting for ${what}`);
      }),
    ]);
  } finally {
    ac.abort();
  }
}

/** Deterministic test bytes. */
export function bytes(n: number, seed = 1): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = (i * 131 + seed * 7) & 0xff;
  return b;
}
