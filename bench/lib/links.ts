/**
 * The two {@link Link}s of the mesh benchmark, so it runs the very echo loop
 * of ./drivers.ts (same clock, same percentiles) as bench/micro.ts:
 *
 * - MeshLink: `client.request(service, payload)` through a broker to the
 *   workers; a reply is the echoed payload.
 * - RemoteRawLink: the client end of a raw TCP connection to an echo server
 *   in another process (./raw-echo-child.ts).
 *
 * Neither supports 'sink' mode (one-way streams are bench/micro.ts's).
 */
import net from 'node:net';
import type { MeshNode, RequestOptions } from '../../lib/index.ts';
import type { Link, LinkHandlers } from './drivers.ts';
import { BatchedWriter, LengthPrefixedReader } from './raw.ts';

/** Requests through a MeshNode client, as a {@link Link}. */
export class MeshLink implements Link {
  readonly payloadBytes: number;
  readonly #node: MeshNode;
  readonly #service: string;
  readonly #payload: Uint8Array;
  readonly #options: RequestOptions;
  #handlers: LinkHandlers | undefined;
  /** Requests that failed (each one also ends the running loop through onFailure). */
  errors = 0;

  constructor(node: MeshNode, service: string, payloadBytes: number, options: RequestOptions) {
    this.payloadBytes = payloadBytes;
    this.#node = node;
    this.#service = service;
    this.#payload = new Uint8Array(payloadBytes).fill(0xa5);
    this.#options = options;
  }

  send(seq: number): void {
    const handlers = this.#handlers;
    this.#node.request(this.#service, this.#payload, this.#options).then(
      (reply) => {
        if (reply.length !== this.payloadBytes) {
          this.errors++;
          handlers?.onFailure(new Error(`reply to request ${seq} has ${reply.length} bytes, expected ${this.payloadBytes}`));
          return;
        }
        handlers?.onReply(seq);
      },
      (error: unknown) => {
        this.errors++;
        handlers?.onFailure(error instanceof Error ? error : new Error(String(error)));
      },
    );
  }

  setHandlers(handlers: LinkHandlers): void {
    if (handlers.mode !== 'echo') throw new Error('MeshLink supports echo mode only');
    this.#handlers = handlers;
  }

  async close(): Promise<void> {
    this.#handlers = undefined;
    await this.#node.close();
  }
}

/** The client end of a raw TCP echo connection to another process, as a {@link Link}. */
export class RemoteRawLink implements Link {
  readonly payloadBytes: number;
  readonly #socket: net.Socket;
  readonly #out: BatchedWriter;
  readonly #payload: Buffer;
  #handlers: LinkHandlers | undefined;
  #closing = false;

  private constructor(socket: net.Socket, payloadBytes: number) {
    this.payloadBytes = payloadBytes;
    this.#socket = socket;
    this.#out = new BatchedWriter(socket);
    this.#payload = Buffer.alloc(payloadBytes, 0xa5);
    const reader = new LengthPrefixedReader(4 + payloadBytes);
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => {
      try {
        reader.push(chunk, (body) => this.#handlers?.onReply(body.readUInt32BE(0)));
      } catch (error) {
        this.#fail(error instanceof Error ? error : new Error(String(error)));
        socket.destroy();
      }
    });
    socket.on('error', (error) => this.#fail(error));
    socket.on('close', () => this.#fail(new Error('raw echo connection closed unexpectedly')));
  }

  /** Connects to an echo server on 127.0.0.1:port. */
  static async open(port: number, payloadBytes: number): Promise<RemoteRawLink> {
    const socket = net.connect({ host: '127.0.0.1', port });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    return new RemoteRawLink(socket, payloadBytes);
  }

  send(seq: number): void {
    const head = Buffer.allocUnsafe(8);
    head.writeUInt32BE(4 + this.payloadBytes, 0);
    head.writeUInt32BE(seq, 4);
    this.#out.write(head, this.#payload);
  }

  setHandlers(handlers: LinkHandlers): void {
    if (handlers.mode !== 'echo') throw new Error('RemoteRawLink supports echo mode only');
    this.#handlers = handlers;
  }

  #fail(error: Error): void {
    if (!this.#closing) this.#handlers?.onFailure(error);
  }

  async close(): Promise<void> {
    this.#closing = true;
    this.#handlers = undefined;
    if (this.#socket.closed) return;
    const closed = new Promise<void>((resolve) => this.#socket.once('close', () => resolve()));
    this.#socket.end();
    const timer = setTimeout(() => this.#socket.destroy(), 1000);
    try {
      await closed;
    } finally {
      clearTimeout(timer);
    }
  }
}
