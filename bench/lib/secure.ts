/**
 * The secure channel under test: a real loopback TCP pair carrying meshd
 * Connections (preamble, Noise XK handshake, segments, envelopes), exposed
 * to the drivers as a {@link Link}, plus the handshake-rate loop.
 */
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { Connection } from '../../lib/protocol/connection.ts';
import type { ConnectionHandlers, ConnectionStats } from '../../lib/protocol/connection.ts';
import { getSuite } from '../../lib/crypto/suites.ts';
import type { SuiteName } from '../../lib/crypto/suites.ts';
import type { CryptoSuite, KeyPair } from '../../lib/crypto/crypto-suite.ts';
import { REQUEST_ID_LENGTH } from '../../lib/protocol/messages.ts';
import type { Message, RequestMessage } from '../../lib/protocol/messages.ts';
import type { MeshError } from '../../lib/errors.ts';
import type { Bounds, Link, LinkHandlers } from './drivers.ts';
import { now, percentiles, round } from './stats.ts';
import type { Percentiles } from './stats.ts';

const HOST = '127.0.0.1';
const SERVICE = 'bench.echo';

/** One side's identity: its own suite instance (it caches imported keys) and static key pair. */
interface Side {
  readonly suite: CryptoSuite;
  readonly keyPair: KeyPair;
}

function makeSide(name: SuiteName): Side {
  const suite = getSuite(name);
  return { suite, keyPair: suite.generateKeyPair() };
}

function ignore(): void {
  // Messages before a phase installs its handler, and late rejections already reported elsewhere.
}

/** A connection's handlers, whose behaviour a phase can swap; reports the close once. */
class Endpoint implements ConnectionHandlers {
  handle: (message: Message, connection: Connection) => void = ignore;
  onFailure: ((error: Error) => void) | undefined;
  /** Resolves with the close reason once the socket is closed. */
  readonly closed: Promise<MeshError | undefined>;
  #resolveClosed: (error: MeshError | undefined) => void = () => {};
  #closing = false;

  constructor() {
    this.closed = new Promise((resolve) => {
      this.#resolveClosed = resolve;
    });
  }

  /** From now on a close is expected and not reported as a failure. */
  expectClose(): void {
    this.#closing = true;
  }

  onMessage(message: Message, connection: Connection): void {
    this.handle(message, connection);
  }

  onClose(error: MeshError | undefined): void {
    this.#resolveClosed(error);
    if (!this.#closing) this.onFailure?.(error ?? new Error('connection closed unexpectedly'));
  }
}

/** A responder connection and its handlers. */
interface Accepted {
  readonly connection: Connection;
  readonly endpoint: Endpoint;
}

/** A TCP listener on 127.0.0.1:0 that runs the responder handshake on every socket. */
class SecureListener {
  readonly #server: net.Server;
  readonly #side: Side;
  readonly #sockets = new Set<net.Socket>();
  readonly #ready: Promise<Accepted>[] = [];
  readonly #waiting: { resolve: (accepted: Accepted) => void; reject: (error: unknown) => void }[] = [];

  private constructor(server: net.Server, side: Side) {
    this.#server = server;
    this.#side = side;
    server.on('connection', (socket) => this.#onSocket(socket));
  }

  static async listen(side: Side): Promise<SecureListener> {
    const server = net.createServer();
    const listener = new SecureListener(server, side);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, HOST, () => {
        server.off('error', reject);
        resolve();
      });
    });
    return listener;
  }

  get port(): number {
    return (this.#server.address() as AddressInfo).port;
  }

  get publicKey(): Uint8Array {
    return this.#side.keyPair.publicKey;
  }

  /** The next connection whose handshake completes (or fails), in accept order. */
  next(): Promise<Accepted> {
    const ready = this.#ready.shift();
    if (ready) return ready;
    return new Promise<Accepted>((resolve, reject) => this.#waiting.push({ resolve, reject }));
  }

  #onSocket(socket: net.Socket): void {
    this.#sockets.add(socket);
    socket.once('close', () => this.#sockets.delete(socket));
    const endpoint = new Endpoint();
    const accepted = Connection.accept(socket, { keyPair: this.#side.keyPair, suite: this.#side.suite, role: 'broker', name: 'bench-server', bootId: new Uint8Array(16).fill(1) }, endpoint).then(
      (connection): Accepted => ({ connection, endpoint }),
    );
    const waiter = this.#waiting.shift();
    if (waiter) {
      accepted.then(waiter.resolve, waiter.reject);
      return;
    }
    // Whoever takes it later handles a rejection; until then it must not count as unhandled.
    accepted.catch(ignore);
    this.#ready.push(accepted);
  }

  /** Stops listening; destroys any socket still open; resolves once the server is closed. */
  close(): Promise<void> {
    for (const socket of this.#sockets) socket.destroy();
    return new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}

function connect(side: Side, listener: SecureListener, endpoint: Endpoint): Promise<Connection> {
  return Connection.connect(
    { host: HOST, port: listener.port, remoteKey: listener.publicKey, keyPair: side.keyPair, suite: side.suite, role: 'client', name: 'bench-client' },
    endpoint,
  );
}

/** Closes both connections cleanly and waits until both sockets are closed. */
async function closePair(a: Connection, aEnd: Endpoint, b: Connection, bEnd: Endpoint): Promise<void> {
  aEnd.expectClose();
  bEnd.expectClose();
  a.close();
  b.close();
  await Promise.all([aEnd.closed, bEnd.closed]);
}

/** Frame and message counters of both ends, for the report. */
export interface SecureLinkStats {
  readonly client: ConnectionStats;
  readonly server: ConnectionStats;
}

/** A client/server Connection pair over loopback TCP, as a {@link Link}. */
export class SecureLink implements Link {
  readonly payloadBytes: number;
  readonly #listener: SecureListener;
  readonly #client: Connection;
  readonly #clientEnd: Endpoint;
  readonly #server: Accepted;
  /** The id bytes of the one request object: the first 4 carry the sequence number. */
  readonly #id = new Uint8Array(REQUEST_ID_LENGTH);
  readonly #idView = new DataView(this.#id.buffer);
  readonly #request: RequestMessage;
  #handlers: LinkHandlers | undefined;

  private constructor(listener: SecureListener, client: Connection, clientEnd: Endpoint, server: Accepted, payloadBytes: number) {
    this.payloadBytes = payloadBytes;
    this.#listener = listener;
    this.#client = client;
    this.#clientEnd = clientEnd;
    this.#server = server;
    const payload = new Uint8Array(payloadBytes).fill(0xa5);
    // One object reused for every send: send() encodes the header (copying the id) at once.
    this.#request = { type: 'REQUEST', id: this.#id, service: SERVICE, attempt: 1, dup: false, ttl: 30_000, payload };
    clientEnd.handle = (message) => this.#onClientMessage(message);
    server.endpoint.handle = (message, connection) => this.#onServerMessage(message, connection);
    const fail = (error: Error): void => this.#handlers?.onFailure(error);
    clientEnd.onFailure = fail;
    server.endpoint.onFailure = fail;
  }

  /** Listens, connects and completes the handshake with a fresh suite instance per side. */
  static async open(suite: SuiteName, payloadBytes: number): Promise<SecureLink> {
    const listener = await SecureListener.listen(makeSide(suite));
    try {
      const clientEnd = new Endpoint();
      const [client, server] = await Promise.all([connect(makeSide(suite), listener, clientEnd), listener.next()]);
      return new SecureLink(listener, client, clientEnd, server, payloadBytes);
    } catch (error) {
      await listener.close();
      throw error;
    }
  }

  get stats(): SecureLinkStats {
    return { client: { ...this.#client.stats }, server: { ...this.#server.connection.stats } };
  }

  send(seq: number): void {
    this.#idView.setUint32(0, seq);
    this.#client.send(this.#request);
  }

  setHandlers(handlers: LinkHandlers): void {
    this.#handlers = handlers;
  }

  #onServerMessage(message: Message, connection: Connection): void {
    const handlers = this.#handlers;
    if (message.type !== 'REQUEST' || handlers === undefined) return;
    if (handlers.mode === 'sink') handlers.onRequest();
    else connection.send({ type: 'REPLY', id: message.id, payload: message.payload });
  }

  #onClientMessage(message: Message): void {
    if (message.type !== 'REPLY') return;
    const id = message.id;
    this.#handlers?.onReply(((id[0]! << 24) | (id[1]! << 16) | (id[2]! << 8) | id[3]!) >>> 0);
  }

  async close(): Promise<void> {
    this.#handlers = undefined;
    try {
      await closePair(this.#client, this.#clientEnd, this.#server.connection, this.#server.endpoint);
    } finally {
      await this.#listener.close();
    }
  }
}

/** Result of the handshake loop. */
export interface HandshakeRateResult {
  readonly handshakes: number;
  /** Wall time of all cycles (connect + handshake + clean close of both ends). */
  readonly elapsedMs: number;
  readonly handshakesPerSec: number;
  /** From TCP connect to both sides established, per handshake, ms. */
  readonly handshakeMs: Percentiles;
}

/**
 * Sequential cycles of TCP connect + XK handshake (both sides, one process)
 * + clean close of both ends, until `maxCount` cycles or `maxMs`.
 */
export async function runHandshakes(suite: SuiteName, bounds: Bounds): Promise<HandshakeRateResult> {
  const listener = await SecureListener.listen(makeSide(suite));
  const client = makeSide(suite);
  const samples = new Float64Array(bounds.maxCount);
  let count = 0;
  try {
    const start = now();
    const deadline = start + bounds.maxMs;
    while (count < bounds.maxCount && now() < deadline) {
      const t0 = now();
      const endpoint = new Endpoint();
      const [connection, accepted] = await Promise.all([connect(client, listener, endpoint), listener.next()]);
      samples[count++] = now() - t0;
      await closePair(connection, endpoint, accepted.connection, accepted.endpoint);
    }
    const elapsedMs = now() - start;
    return {
      handshakes: count,
      elapsedMs: round(elapsedMs),
      handshakesPerSec: round(count / (elapsedMs / 1000), 0),
      handshakeMs: percentiles(samples, count, 1, 3),
    };
  } finally {
    await listener.close();
  }
}
