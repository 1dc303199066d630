/**
 * The baseline: plain TCP sockets over loopback carrying length-prefixed
 * frames (`uint32 BE length || uint32 BE seq || payload`), no crypto, no
 * headers. Writes are corked and released on the next tick, so frames sent
 * in the same tick leave in one writev (as the secure channel batches per
 * event-loop turn).
 */
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import type { Link, LinkHandlers } from './drivers.ts';

const HOST = '127.0.0.1';
const LENGTH_BYTES = 4;
const SEQ_BYTES = 4;

/**
 * Incremental decoder of `uint32 BE length || body` frames. A frame inside
 * one chunk is delivered as a view of it; a frame spanning chunks is copied
 * into one buffer of its exact length.
 */
export class LengthPrefixedReader {
  readonly #maxBody: number;
  readonly #header = Buffer.alloc(LENGTH_BYTES);
  #headerHave = 0;
  #body: Buffer | undefined;
  #bodyHave = 0;

  constructor(maxBody: number) {
    this.#maxBody = maxBody;
  }

  #bodyLength(length: number): number {
    if (length === 0 || length > this.#maxBody) throw new Error(`raw frame length ${length} outside 1..${this.#maxBody}`);
    return length;
  }

  push(chunk: Buffer, onFrame: (body: Buffer) => void): void {
    let pos = 0;
    while (pos < chunk.length) {
      const body = this.#body;
      if (body !== undefined) {
        const n = Math.min(body.length - this.#bodyHave, chunk.length - pos);
        chunk.copy(body, this.#bodyHave, pos, pos + n);
        this.#bodyHave += n;
        pos += n;
        if (this.#bodyHave === body.length) {
          this.#body = undefined;
          onFrame(body);
        }
        continue;
      }
      if (this.#headerHave === 0 && chunk.length - pos >= LENGTH_BYTES) {
        const length = this.#bodyLength(chunk.readUInt32BE(pos));
        pos += LENGTH_BYTES;
        if (chunk.length - pos >= length) {
          onFrame(chunk.subarray(pos, pos + length));
          pos += length;
        } else {
          this.#body = Buffer.allocUnsafe(length);
          this.#bodyHave = 0;
        }
        continue;
      }
      const n = Math.min(LENGTH_BYTES - this.#headerHave, chunk.length - pos);
      chunk.copy(this.#header, this.#headerHave, pos, pos + n);
      this.#headerHave += n;
      pos += n;
      if (this.#headerHave === LENGTH_BYTES) {
        this.#headerHave = 0;
        this.#body = Buffer.allocUnsafe(this.#bodyLength(this.#header.readUInt32BE(0)));
        this.#bodyHave = 0;
      }
    }
  }
}

/** Corks a socket on its first write of a tick and uncorks it on the next tick. */
export class BatchedWriter {
  readonly #socket: net.Socket;
  #corked = false;

  constructor(socket: net.Socket) {
    this.#socket = socket;
  }

  write(a: Uint8Array, b: Uint8Array): void {
    if (!this.#corked) {
      this.#corked = true;
      this.#socket.cork();
      process.nextTick(this.#uncork);
    }
    this.#socket.write(a);
    this.#socket.write(b);
  }

  readonly #uncork = (): void => {
    this.#corked = false;
    this.#socket.uncork();
  };
}

function socketClosed(socket: net.Socket): Promise<void> {
  if (socket.destroyed && socket.closed) return Promise.resolve();
  return new Promise<void>((resolve) => socket.once('close', () => resolve()));
}

/** A raw client/server socket pair over loopback TCP, as a {@link Link}. */
export class RawLink implements Link {
  readonly payloadBytes: number;
  readonly #server: net.Server;
  readonly #client: net.Socket;
  readonly #peer: net.Socket;
  readonly #clientOut: BatchedWriter;
  readonly #peerOut: BatchedWriter;
  readonly #payload: Buffer;
  #handlers: LinkHandlers | undefined;
  #closing = false;

  private constructor(server: net.Server, client: net.Socket, peer: net.Socket, payloadBytes: number) {
    this.payloadBytes = payloadBytes;
    this.#server = server;
    this.#client = client;
    this.#peer = peer;
    this.#clientOut = new BatchedWriter(client);
    this.#peerOut = new BatchedWriter(peer);
    this.#payload = Buffer.alloc(payloadBytes, 0xa5);
    const maxBody = SEQ_BYTES + payloadBytes;
    const clientReader = new LengthPrefixedReader(maxBody);
    const peerReader = new LengthPrefixedReader(maxBody);
    for (const socket of [client, peer]) {
      socket.setNoDelay(true);
      socket.on('error', (error) => this.#fail(error));
      socket.on('close', () => this.#fail(new Error('raw socket closed unexpectedly')));
    }
    client.on('data', (chunk: Buffer) => this.#guard(() => clientReader.push(chunk, this.#onReply)));
    peer.on('data', (chunk: Buffer) => this.#guard(() => peerReader.push(chunk, this.#onRequest)));
  }

  /** Listens on 127.0.0.1:0 and connects one client. */
  static async open(payloadBytes: number): Promise<RawLink> {
    const server = net.createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, HOST, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const accepted = new Promise<net.Socket>((resolve) => server.once('connection', resolve));
    const { port } = server.address() as AddressInfo;
    const client = net.connect({ host: HOST, port });
    try {
      await new Promise<void>((resolve, reject) => {
        client.once('connect', resolve);
        client.once('error', reject);
      });
    } catch (error) {
      client.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      throw error;
    }
    return new RawLink(server, client, await accepted, payloadBytes);
  }

  send(seq: number): void {
    const head = Buffer.allocUnsafe(LENGTH_BYTES + SEQ_BYTES);
    head.writeUInt32BE(SEQ_BYTES + this.payloadBytes, 0);
    head.writeUInt32BE(seq, LENGTH_BYTES);
    this.#clientOut.write(head, this.#payload);
  }

  setHandlers(handlers: LinkHandlers): void {
    this.#handlers = handlers;
  }

  readonly #onRequest = (body: Buffer): void => {
    const handlers = this.#handlers;
    if (handlers === undefined) return;
    if (handlers.mode === 'sink') {
      handlers.onRequest();
      return;
    }
    const head = Buffer.allocUnsafe(LENGTH_BYTES);
    head.writeUInt32BE(body.length, 0);
    this.#peerOut.write(head, body);
  };

  readonly #onReply = (body: Buffer): void => {
    this.#handlers?.onReply(body.readUInt32BE(0));
  };

  #guard(work: () => void): void {
    try {
      work();
    } catch (error) {
      this.#fail(error instanceof Error ? error : new Error(String(error)));
      this.#client.destroy();
      this.#peer.destroy();
    }
  }

  #fail(error: Error): void {
    if (!this.#closing) this.#handlers?.onFailure(error);
  }

  /** Ends both sockets, waits until both are closed, then closes the server. */
  async close(): Promise<void> {
    this.#closing = true;
    this.#handlers = undefined;
    const closed = Promise.all([socketClosed(this.#client), socketClosed(this.#peer)]);
    this.#client.end();
    this.#peer.end();
    const timer = setTimeout(() => {
      this.#client.destroy();
      this.#peer.destroy();
    }, 1000);
    try {
      await closed;
    } finally {
      clearTimeout(timer);
    }
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}
