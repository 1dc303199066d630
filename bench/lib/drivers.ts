/**
 * Transport-neutral load drivers: the same one-way stream and request/echo
 * loops run over the secure channel (Connection) and over raw TCP, so their
 * numbers differ only by what the transport does.
 *
 * Every loop is bounded by a message count and by a time budget, and has a
 * watchdog that rejects if the transport stops making progress.
 */
import { MIB, now, percentiles, round } from './stats.ts';
import type { Percentiles } from './stats.ts';

/**
 * One client→server channel. The client sends requests tagged with a
 * sequence number; the server either counts them or echoes each one back.
 */
export interface Link {
  /** Payload bytes per request (and per reply). */
  readonly payloadBytes: number;
  /** Client side: sends request number `seq` (batched per turn by the transport). */
  send(seq: number): void;
  /**
   * Sets what the server does with each request ('sink': count it and call
   * `onRequest`; 'echo': send the same payload back) and where the client's
   * replies and any transport failure are reported.
   */
  setHandlers(handlers: LinkHandlers): void;
  /** Closes both ends; resolves once both sockets are closed. */
  close(): Promise<void>;
}

/** Callbacks a driver installs on a {@link Link}. */
export interface LinkHandlers {
  readonly mode: 'sink' | 'echo';
  /** Server side, in 'sink' mode: one request arrived. */
  onRequest(): void;
  /** Client side, in 'echo' mode: the reply to request `seq` arrived. */
  onReply(seq: number): void;
  /** Either side failed or closed unexpectedly. */
  onFailure(error: Error): void;
}

/** Bounds of one measured loop. */
export interface Bounds {
  /** Stop issuing new work after this many messages / round trips. */
  readonly maxCount: number;
  /** Stop issuing new work after this many ms. */
  readonly maxMs: number;
}

/** Extra time after `maxMs` for in-flight work to land before the loop is declared stuck. */
const WATCHDOG_GRACE_MS = 5000;

/** Result of a one-way stream. */
export interface StreamResult {
  readonly messages: number;
  readonly elapsedMs: number;
  readonly messagesPerSec: number;
  /** Payload throughput (headers and framing not counted). */
  readonly MiBPerSec: number;
  /** Most messages in flight (sent, not yet received) allowed. */
  readonly window: number;
  /** Messages sent per refill once the window has room for that many. */
  readonly burst: number;
}

/**
 * One-way stream: the client keeps at most `window` messages in flight,
 * topping the window up in bursts of `burst` as the server's receive count
 * catches up. Stops sending at `maxCount` messages or `maxMs`, whichever
 * comes first, then waits for every sent message to arrive.
 */
export function runStream(link: Link, bounds: Bounds, window: number, burst: number): Promise<StreamResult> {
  return new Promise<StreamResult>((resolve, reject) => {
    let sent = 0;
    let received = 0;
    let stopped = false;
    let settled = false;
    const start = now();
    const deadline = start + bounds.maxMs;

    const finish = (error?: Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(watchdog);
      if (error) {
        reject(error);
        return;
      }
      const elapsedMs = now() - start;
      const seconds = elapsedMs / 1000;
      resolve({
        messages: received,
        elapsedMs: round(elapsedMs),
        messagesPerSec: round(received / seconds, 0),
        MiBPerSec: round((received * link.payloadBytes) / MIB / seconds, 1),
        window,
        burst,
      });
    };
    const watchdog = setTimeout(() => {
      finish(new Error(`stream stuck: ${received} of ${sent} messages arrived ${WATCHDOG_GRACE_MS} ms after the deadline`));
    }, bounds.maxMs + WATCHDOG_GRACE_MS);

    /** Sends up to `limit` messages, within the window and the bounds. */
    const pump = (limit: number): void => {
      if (stopped) return;
      if (sent >= bounds.maxCount || now() >= deadline) {
        stopped = true;
        if (received === sent) finish();
        return;
      }
      const n = Math.min(limit, window - (sent - received), bounds.maxCount - sent);
      for (let i = 0; i < n; i++) link.send(sent++);
    };

    link.setHandlers({
      mode: 'sink',
      onRequest: () => {
        received++;
        if (stopped) {
          if (received === sent) finish();
        } else if (window - (sent - received) >= burst) {
          pump(burst);
        }
      },
      onReply: () => finish(new Error('stream: unexpected reply')),
      onFailure: (error) => finish(error),
    });
    pump(window);
  });
}

/** Result of a request/echo loop. */
export interface EchoResult {
  /** Requests in flight at once. */
  readonly inFlight: number;
  readonly roundTrips: number;
  readonly elapsedMs: number;
  readonly roundTripsPerSec: number;
  /** Round-trip latency of each request, µs. */
  readonly latencyUs: Percentiles;
}

/**
 * Request/echo: keeps `inFlight` requests outstanding; each reply sends the
 * next request until `maxCount` requests were sent or `maxMs` passed, then
 * waits for the outstanding replies.
 */
export function runEcho(link: Link, bounds: Bounds, inFlight: number): Promise<EchoResult> {
  return new Promise<EchoResult>((resolve, reject) => {
    const started = new Float64Array(bounds.maxCount);
    const latency = new Float64Array(bounds.maxCount);
    let sent = 0;
    let done = 0;
    let stopped = false;
    let settled = false;
    const start = now();
    const deadline = start + bounds.maxMs;

    const finish = (error?: Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(watchdog);
      if (error) {
        reject(error);
        return;
      }
      const elapsedMs = now() - start;
      resolve({
        inFlight,
        roundTrips: done,
        elapsedMs: round(elapsedMs),
        roundTripsPerSec: round(done / (elapsedMs / 1000), 0),
        latencyUs: percentiles(latency, done, 1000, 0),
      });
    };
    const watchdog = setTimeout(() => {
      finish(new Error(`echo stuck: ${done} of ${sent} replies arrived ${WATCHDOG_GRACE_MS} ms after the deadline`));
    }, bounds.maxMs + WATCHDOG_GRACE_MS);

    const sendNext = (t: number): void => {
      if (stopped) return;
      if (sent >= bounds.maxCount || t >= deadline) {
        stopped = true;
        return;
      }
      started[sent] = t;
      link.send(sent++);
    };

    link.setHandlers({
      mode: 'echo',
      onRequest: () => finish(new Error('echo: server counted a request in echo mode')),
      onReply: (seq) => {
        const t = now();
        if (seq >= sent || done >= sent) {
          finish(new Error(`echo: unexpected reply to request ${seq}`));
          return;
        }
        latency[done++] = t - started[seq]!;
        sendNext(t);
        if (stopped && done === sent) finish();
      },
      onFailure: (error) => finish(error),
    });
    const t0 = now();
    for (let i = 0; i < inFlight; i++) sendNext(t0);
    if (sent === 0) finish();
  });
}
