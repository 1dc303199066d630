/**
 * Reading a dialled socket into one buffer of its own (net's `onread`
 * option): each read lands in the same 64 KiB, so a busy connection does
 * not allocate a fresh buffer, for the garbage collector to reclaim, on
 * every read. What is read is a view of that buffer until the next read:
 * the FramedSocket copies what it keeps (the handshake, bytes held while
 * paused) and hands the rest to a consumer that is done with each frame when
 * its callback returns (FrameDecoder.transientFrames).
 *
 * net only offers `onread` to `net.connect`, so accepted sockets read the
 * usual way ('data' events).
 */
import type net from 'node:net';

/** Bytes of a relayed socket's read buffer (the size net uses by default). */
export const READ_BUFFER_BYTES = 64 * 1024;

/** Receives each read: a view of the socket's buffer, valid until the next read. */
export type ReadTarget = (chunk: Buffer) => void;

/** The bridge between a socket's `onread` callback and the FramedSocket that takes the socket over. */
export class ReadRelay {
  #target: ReadTarget | undefined;
  /** Reads that came before a target was attached (copies). */
  #early: Buffer[] = [];
  #socket: net.Socket | undefined;
  #held = false;

  /** The `onread` option for `net.connect`. */
  readonly onread = {
    buffer: (): Buffer => Buffer.allocUnsafeSlow(READ_BUFFER_BYTES),
    callback: (nread: number, buffer: Uint8Array): boolean => {
      const chunk = Buffer.from(buffer.buffer, buffer.byteOffset, nread);
      if (this.#target !== undefined) {
        this.#target(chunk);
        return true;
      }
      // Nobody reads yet (the socket is handed over right after connect):
      // keep a copy, and stop reading until someone does.
      this.#early.push(Buffer.from(chunk));
      this.#held = true;
      return false;
    },
  };

  /** Remembers the socket (to resume it when a target attaches after an early read). */
  bind(socket: net.Socket): void {
    this.#socket = socket;
  }

  /** Delivers the early reads to `target`, then every later read. */
  attach(target: ReadTarget): void {
    this.#target = target;
    const early = this.#early;
    this.#early = [];
    for (const chunk of early) target(chunk);
    if (this.#held) {
      this.#held = false;
      this.#socket?.resume();
    }
  }
}

const relays = new WeakMap<net.Socket, ReadRelay>();

/** Records that `socket` reads through `relay` (connectSocket does it). */
export function setReadRelay(socket: net.Socket, relay: ReadRelay): void {
  relay.bind(socket);
  relays.set(socket, relay);
}

/** The relay a socket reads through, if it was dialled by connectSocket. */
export function readRelayOf(socket: net.Socket): ReadRelay | undefined {
  return relays.get(socket);
}
