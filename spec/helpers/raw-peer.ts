// Test helpers: a raw TCP peer that speaks (or mis-speaks) the protocol byte
// by byte, a man-in-the-middle proxy that can tamper with frames, and a
// loopback responder server built on the real Connection.
import net from 'node:net';
import { once } from 'node:events';
import { Connection } from '../../lib/protocol/connection.ts';
import type { AcceptOptions, ConnectionHandlers } from '../../lib/protocol/connection.ts';
import type { MeshError } from '../../lib/errors.ts';
import type { Message } from '../../lib/protocol/messages.ts';
import type { CryptoSuite, KeyPair } from '../../lib/crypto/crypto-suite.ts';
import { InitiatorHandshake } from '../../lib/protocol/handshake.ts';
import { DEFAULT_HEARTBEAT } from '../../lib/protocol/hello.ts';
import { encodeFrame } from '../../lib/framing/frame-encoder.ts';

/** Splits a byte stream into [preamble, ...frames] as they arrive. */
export class FrameSplitter {
  #buf = Buffer.alloc(0);
  #prefixDone: boolean;
  constructor(prefix = true) {
    this.#prefixDone = !prefix;
  }
  push(chunk: Buffer): Buffer[] {
    this.#buf = Buffer.concat([this.#buf, chunk]);
    const out: Buffer[] = [];
    if (!this.#prefixDone) {
      if (this.#buf.length < 8) return out;
      out.push(this.#buf.subarray(0, 8));
      this.#buf = this.#buf.subarray(8);
      this.#prefixDone = true;
    }
    while (this.#buf.length >= 2) {
      const len = this.#buf.readUInt16BE(0);
      if (this.#buf.length < 2 + len) break;
      out.push(Buffer.from(this.#buf.subarray(0, 2 + len)));
      this.#buf = this.#buf.subarray(2 + len);
    }
    return out;
  }
}

/** A loopback server that accepts Connections and records what happens. */
export class TestServer {
  readonly server: net.Server;
  readonly accepted: Connection[] = [];
  readonly failures: MeshError[] = [];
  readonly messages: Array<{ message: Message; connection: Connection }> = [];
  readonly closes: Array<{ error: MeshError | undefined; connection: Connection }> = [];
  #waiters: Array<() => void> = [];

  constructor(accept: AcceptOptions, handlers: Partial<ConnectionHandlers> = {}) {
    // A broker's HELLO carries its boot id (docs/protocol.md#hello).
    const options: AcceptOptions = accept.role === 'broker' && !accept.bootId ? { ...accept, bootId: new Uint8Array(16).fill(0xb0) } : accept;
    this.server = net.createServer((socket) => {
      Connection.accept(socket, options, {
        onMessage: (message, connection) => {
          this.messages.push({ message, connection });
          handlers.onMessage?.(message, connection);
          this.#notify();
        },
        onClose: (error, connection) => {
          this.closes.push({ error, connection });
          handlers.onClose?.(error, connection);
          this.#notify();
        },
      }).then(
        (c) => {
          this.accepted.push(c);
          this.#notify();
        },
        (e: MeshError) => {
          this.failures.push(e);
          this.#notify();
        },
      );
    });
  }

  async listen(): Promise<number> {
    this.server.listen(0, '127.0.0.1');
    await once(this.server, 'listening');
    return (this.server.address() as net.AddressInfo).port;
  }

  #notify(): void {
    for (const w of this.#waiters.splice(0)) w();
  }

  /** Resolves when `pred` holds, or rejects after `ms`. */
  async until(pred: () => boolean, ms = 5000, what = 'condition'): Promise<void> {
    const deadline = Date.now() + ms;
    while (!pred()) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(left, 50));
        this.#waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  async close(): Promise<void> {
    for (const c of this.accepted) c.close();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** Waits until `pred` holds, polling, bounded by `ms`. */
export async function waitFor(pred: () => boolean, ms = 5000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Frame rewriting hook: return the bytes to forward (or null to drop). */
export type Tamper = (frame: Buffer, index: number, direction: 'up' | 'down') => Buffer | null;

/**
 * A TCP proxy on 127.0.0.1 that splits each direction into preamble+frames
 * and lets a test rewrite them. Index 0 is the preamble in each direction.
 */
export class TamperProxy {
  readonly server: net.Server;
  readonly sockets = new Set<net.Socket>();
  readonly captured: { up: Buffer[]; down: Buffer[] } = { up: [], down: [] };
  /** Drops every frame from now on (a frozen peer; the Noise nonces then never line up again). */
  frozen = false;
  /** Keeps every frame towards the client back, in order, until {@link TamperProxy.release}. */
  holdingDown = false;
  readonly #held: Array<{ to: net.Socket; frame: Buffer }> = [];

  constructor(targetPort: number, tamper: Tamper = (f) => f) {
    this.server = net.createServer((client) => {
      const upstream = net.connect(targetPort, '127.0.0.1');
      this.sockets.add(client).add(upstream);
      const pipe = (from: net.Socket, to: net.Socket, direction: 'up' | 'down') => {
        const splitter = new FrameSplitter();
        let index = 0;
        from.on('data', (chunk: Buffer) => {
          for (const frame of splitter.push(chunk)) {
            this.captured[direction].push(frame);
            const out = tamper(frame, index++, direction);
            if (!out || this.frozen) continue;
            if (this.holdingDown && direction === 'down') this.#held.push({ to, frame: out });
            else to.write(out);
          }
        });
        from.on('end', () => to.end());
        from.on('error', () => to.destroy());
        from.on('close', () => to.destroy());
      };
      pipe(client, upstream, 'up');
      pipe(upstream, client, 'down');
    });
  }

  /** Stops holding: writes the frames held back, in order, now (each write reaches the kernel before this returns). */
  release(): void {
    this.holdingDown = false;
    for (const { to, frame } of this.#held.splice(0)) to.write(frame);
  }

  async listen(): Promise<number> {
    this.server.listen(0, '127.0.0.1');
    await once(this.server, 'listening');
    return (this.server.address() as net.AddressInfo).port;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** Flips one bit of a frame body (never the 2-byte length). */
export function flipBit(frame: Buffer, at = frame.length - 1): Buffer {
  const copy = Buffer.from(frame);
  copy[at]! ^= 0x01;
  return copy;
}

/** Connects a raw socket to 127.0.0.1:port and collects everything it receives. */
export async function rawSocket(port: number): Promise<{ socket: net.Socket; received: () => Buffer; closed: Promise<void> }> {
  const socket = net.connect(port, '127.0.0.1');
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  socket.on('error', () => {});
  // 'close' always follows an error (EPIPE, ECONNRESET): resolve on it, never reject.
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  await once(socket, 'connect');
  return { socket, received: () => Buffer.concat(chunks), closed };
}

/**
 * A client that completes a real handshake by hand, then can seal any
 * plaintext (valid or not) and send it as a transport frame.
 */
export async function noiseClient(port: number, options: { keyPair: KeyPair; remoteKey: Uint8Array; suite: CryptoSuite }) {
  const hs = new InitiatorHandshake({ suite: options.suite, keyPair: options.keyPair, remoteKey: options.remoteKey, hello: { role: 'node', version: { major: 1, minor: 0 }, heartbeat: DEFAULT_HEARTBEAT, maxPayload: 1 << 20 } });
  const raw = await rawSocket(port);
  const splitter = new FrameSplitter();
  const frames: Buffer[] = [];
  raw.socket.on('data', (c: Buffer) => frames.push(...splitter.push(c)));
  const { preamble, message1 } = hs.start();
  raw.socket.write(Buffer.concat([preamble, encodeFrame(message1)]));
  await waitFor(() => frames.length >= 2, 3000, 'preamble and message 2');
  hs.readPreamble(frames[0]!);
  raw.socket.write(encodeFrame(hs.readMessage2(frames[1]!.subarray(2))));
  const result = hs.result();
  return {
    socket: raw.socket,
    closed: raw.closed,
    /** Transport frames received after the handshake, decrypted. */
    received(): Buffer[] {
      return frames.slice(2).map((f) => Buffer.from(result.receive.decryptWithAd(new Uint8Array(0), f.subarray(2))));
    },
    sendPlaintext(plaintext: Uint8Array): void {
      raw.socket.write(encodeFrame(result.send.encryptWithAd(new Uint8Array(0), plaintext)));
    },
    sendRaw(bytes: Uint8Array): void {
      raw.socket.write(bytes);
    },
  };
}

/** One segment holding one whole envelope. */
export function segment(envelope: Uint8Array, more = false): Buffer {
  const head = Buffer.from([more ? 1 : 0, 0, 0]);
  head.writeUInt16BE(envelope.length, 1);
  return Buffer.concat([head, envelope]);
}
