// TCP proxies the fault tests control, in the test process:
//
// - TcpProxy forwards bytes to a target port. cut() turns it into a black
//   hole (a partition: open connections stay open but nothing gets through in
//   either direction, new connections are accepted and starved); heal()
//   destroys the starved connections and forwards again.
// - FrameProxy understands the meshd wire framing (an 8-byte plaintext
//   preamble each way, then frames of uint16-BE length + bytes). It delays
//   every frame by a random time (keeping order), and on request duplicates
//   one frame, swaps two, or cuts the connection in the middle of one.
import net from 'node:net';

/** Sockets and counters shared by both proxies. */
abstract class ProxyBase {
  readonly #server: net.Server;
  readonly port: number;
  readonly targetPort: number;
  protected readonly sockets = new Set<net.Socket>();
  accepted = 0;

  protected constructor(server: net.Server, port: number, targetPort: number) {
    this.#server = server;
    this.port = port;
    this.targetPort = targetPort;
  }

  protected static listen(onSocket: (socket: net.Socket) => void): Promise<{ server: net.Server; port: number }> {
    return new Promise((resolve, reject) => {
      const server = net.createServer({ noDelay: true }, onSocket);
      server.once('error', reject);
      server.listen({ host: '127.0.0.1', port: 0 }, () => {
        server.off('error', reject);
        resolve({ server, port: (server.address() as net.AddressInfo).port });
      });
    });
  }

  protected own(socket: net.Socket): void {
    this.sockets.add(socket);
    socket.on('error', () => undefined);
    socket.once('close', () => this.sockets.delete(socket));
  }

  /** Connections open now (both legs counted). */
  get open(): number {
    return this.sockets.size;
  }

  /** Stops listening and destroys every connection (bounded). */
  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await Promise.race([new Promise<void>((resolve) => this.#server.close(() => resolve())), new Promise<void>((resolve) => setTimeout(resolve, 1000).unref())]);
  }
}

/** A byte-forwarding proxy that can be turned into a black hole. */
export class TcpProxy extends ProxyBase {
  #cut = false;
  readonly #starved = new Set<net.Socket>();

  static async start(targetPort: number): Promise<TcpProxy> {
    const holder: { proxy?: TcpProxy } = {};
    const { server, port } = await ProxyBase.listen((socket) => holder.proxy?.accept(socket));
    holder.proxy = new TcpProxy(server, port, targetPort);
    return holder.proxy;
  }

  /** Whether the proxy is a black hole now. */
  get isCut(): boolean {
    return this.#cut;
  }

  private accept(client: net.Socket): void {
    this.accepted++;
    this.own(client);
    client.setNoDelay(true);
    if (this.#cut) {
      this.#starve(client);
      return;
    }
    const upstream = net.connect({ host: '127.0.0.1', port: this.targetPort, noDelay: true });
    this.own(upstream);
    const forward = (from: net.Socket, to: net.Socket): void => {
      from.on('data', (chunk: Buffer) => {
        if (!this.#cut) to.write(chunk);
      });
      from.once('close', () => {
        if (!this.#cut) to.destroy();
      });
    };
    forward(client, upstream);
    forward(upstream, client);
    client.once('close', () => this.#starved.delete(client));
    upstream.once('close', () => this.#starved.delete(upstream));
  }

  #starve(socket: net.Socket): void {
    this.#starved.add(socket);
    socket.on('data', () => undefined); // read and drop
  }

  /** Partition: from now on nothing gets through, in either direction, on old or new connections. */
  cut(): void {
    this.#cut = true;
    for (const s of this.sockets) this.#starve(s);
  }

  /** Ends the partition: the starved connections are destroyed (their streams lost bytes), new ones are forwarded. */
  heal(): void {
    this.#cut = false;
    for (const s of [...this.#starved]) s.destroy();
    this.#starved.clear();
  }
}

/** Which way a frame travels: up = client to server, down = server to client. */
export type Direction = 'up' | 'down';
/** A fault for the next transport frame in one direction. */
export type FrameFault = 'dup' | 'reorder' | 'cut';

/** What the frame proxy did. */
export interface FrameProxyStats {
  connections: number;
  framesUp: number;
  framesDown: number;
  /** Faults applied, in order, as `direction:fault`. */
  applied: string[];
}

const PREAMBLE = 8;
/** Handshake frames before the transport frames: message 1 and 3 up, message 2 down. */
const HANDSHAKE_FRAMES: Record<Direction, number> = { up: 2, down: 1 };

/** One direction of one proxied connection. */
class FramePipe {
  readonly #direction: Direction;
  readonly #to: net.Socket;
  readonly #proxy: FrameProxy;
  readonly #onCut: () => void;
  #buffer: Buffer = Buffer.alloc(0);
  #preambleLeft = PREAMBLE;
  #frames = 0;
  /** Frames waiting for their release time, in order. */
  readonly #queue: Array<{ at: number; bytes: Buffer }> = [];
  #lastRelease = 0;
  #timer: NodeJS.Timeout | undefined;
  #held: { bytes: Buffer; timer: NodeJS.Timeout } | undefined;
  #dead = false;

  constructor(direction: Direction, to: net.Socket, proxy: FrameProxy, onCut: () => void) {
    this.#direction = direction;
    this.#to = to;
    this.#proxy = proxy;
    this.#onCut = onCut;
  }

  stop(): void {
    this.#dead = true;
    if (this.#timer) clearTimeout(this.#timer);
    if (this.#held) clearTimeout(this.#held.timer);
    this.#queue.length = 0;
  }

  push(chunk: Buffer): void {
    if (this.#dead) return;
    this.#buffer = this.#buffer.length === 0 ? chunk : Buffer.concat([this.#buffer, chunk]);
    if (this.#preambleLeft > 0) {
      const n = Math.min(this.#preambleLeft, this.#buffer.length);
      this.#enqueue(this.#buffer.subarray(0, n));
      this.#buffer = this.#buffer.subarray(n);
      this.#preambleLeft -= n;
    }
    // Bounded: each pass takes one whole frame off the buffer.
    for (let i = 0; i < 100_000 && this.#preambleLeft === 0 && this.#buffer.length >= 2; i++) {
      const length = this.#buffer.readUInt16BE(0);
      if (this.#buffer.length < 2 + length) break;
      const frame = Buffer.from(this.#buffer.subarray(0, 2 + length));
      this.#buffer = this.#buffer.subarray(2 + length);
      this.#frame(frame);
      if (this.#dead) return;
    }
  }

  #frame(frame: Buffer): void {
    const index = this.#frames++;
    this.#proxy.countFrame(this.#direction);
    if (this.#held) {
      // A reorder in progress: this frame goes first, then the held one.
      const held = this.#held;
      clearTimeout(held.timer);
      this.#held = undefined;
      this.#enqueue(frame);
      this.#enqueue(held.bytes);
      return;
    }
    const fault = index >= HANDSHAKE_FRAMES[this.#direction] ? this.#proxy.takeFault(this.#direction) : undefined;
    switch (fault) {
      case 'dup':
        this.#proxy.record(`${this.#direction}:dup`);
        this.#enqueue(frame);
        this.#enqueue(frame);
        return;
      case 'reorder':
        this.#proxy.record(`${this.#direction}:reorder`);
        // Bounded: if no next frame comes within 300 ms, the held one goes alone.
        this.#held = {
          bytes: frame,
          timer: setTimeout(() => {
            const held = this.#held;
            this.#held = undefined;
            if (held) {
              this.#proxy.record(`${this.#direction}:reorder-alone`);
              this.#enqueue(held.bytes);
            }
          }, 300),
        };
        return;
      case 'cut':
        this.#proxy.record(`${this.#direction}:cut`);
        // Everything before it, then half of this frame, then both sockets die.
        this.#flushAll();
        this.#to.write(frame.subarray(0, Math.max(1, Math.floor(frame.length / 2))), () => this.#onCut());
        this.#dead = true;
        setTimeout(() => this.#onCut(), 50).unref();
        return;
      default:
        this.#enqueue(frame);
    }
  }

  #enqueue(bytes: Buffer): void {
    const now = performance.now();
    // A random delay, never earlier than the frame before it: order is kept.
    const at = Math.max(now + Math.random() * this.#proxy.maxDelayMs, this.#lastRelease);
    this.#lastRelease = at;
    this.#queue.push({ at, bytes });
    this.#schedule();
  }

  #schedule(): void {
    if (this.#timer || this.#queue.length === 0 || this.#dead) return;
    const wait = Math.max(0, this.#queue[0]!.at - performance.now());
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      const now = performance.now();
      while (this.#queue.length > 0 && this.#queue[0]!.at <= now + 1) this.#to.write(this.#queue.shift()!.bytes);
      this.#schedule();
    }, wait);
  }

  #flushAll(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    for (const item of this.#queue.splice(0)) this.#to.write(item.bytes);
  }
}

/** A proxy that delays, duplicates and reorders meshd frames, and cuts connections mid-frame. */
export class FrameProxy extends ProxyBase {
  /** Upper bound of the random per-frame delay, ms. */
  maxDelayMs = 0;
  readonly stats: FrameProxyStats = { connections: 0, framesUp: 0, framesDown: 0, applied: [] };
  readonly #faults: Record<Direction, FrameFault[]> = { up: [], down: [] };

  static async start(targetPort: number): Promise<FrameProxy> {
    const holder: { proxy?: FrameProxy } = {};
    const { server, port } = await ProxyBase.listen((socket) => holder.proxy?.accept(socket));
    holder.proxy = new FrameProxy(server, port, targetPort);
    return holder.proxy;
  }

  /** Applies `fault` to the next transport frame going `direction` (on whichever connection carries it). */
  inject(direction: Direction, fault: FrameFault): void {
    this.#faults[direction].push(fault);
  }

  /** Faults injected but not applied yet. */
  pending(): number {
    return this.#faults.up.length + this.#faults.down.length;
  }

  /** @internal */
  takeFault(direction: Direction): FrameFault | undefined {
    return this.#faults[direction].shift();
  }

  /** @internal */
  record(what: string): void {
    this.stats.applied.push(what);
  }

  /** @internal */
  countFrame(direction: Direction): void {
    if (direction === 'up') this.stats.framesUp++;
    else this.stats.framesDown++;
  }

  private accept(client: net.Socket): void {
    this.accepted++;
    this.stats.connections++;
    this.own(client);
    client.setNoDelay(true);
    const upstream = net.connect({ host: '127.0.0.1', port: this.targetPort, noDelay: true });
    this.own(upstream);
    let closed = false;
    const kill = (): void => {
      if (closed) return;
      closed = true;
      up.stop();
      down.stop();
      client.destroy();
      upstream.destroy();
    };
    const up = new FramePipe('up', upstream, this, kill);
    const down = new FramePipe('down', client, this, kill);
    client.on('data', (chunk: Buffer) => up.push(chunk));
    upstream.on('data', (chunk: Buffer) => down.push(chunk));
    // A close on either side: let queued frames go first (bounded by the delay), then close the other.
    const later = (): void => void setTimeout(kill, this.maxDelayMs + 20).unref();
    client.once('close', later);
    upstream.once('close', later);
  }
}
