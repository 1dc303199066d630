/**
 * The heartbeat state machine of one connection
 * (docs/protocol.md#7-heartbeats). Pure: the
 * caller passes the time in and arms one timer for `nextCheck()`.
 *
 * Any received frame counts as a sign of life. While requests are in flight
 * (`active`), a PING goes out after `activeMs` of silence and the peer is dead
 * after `deadMs` of silence; idle, a PING goes out every `idleMs` and the peer
 * is dead after 3 × idleMs. A PING is answered at once with PONG by the
 * other side, so each side's verdict rests on its own pings only.
 *
 * The side that accepted the connection waits `RESPONDER_IDLE_FACTOR` ×
 * idleMs of silence before its own idle PING: the dialling side's PING
 * comes first and counts as a sign of life, so between two live peers only
 * one PING and one PONG cross per idle interval instead of two of each (a
 * broker with 1,000 idle nodes answers 200 pings a second and sends none).
 * The dead timeout is the same for both sides.
 */
import type { HeartbeatSettings } from './hello.ts';

/** Multiple of the idle interval after which an idle peer is dead. */
export const IDLE_DEAD_FACTOR = 3;

/** Multiple of the idle interval of silence after which the accepting side sends its own idle PING. */
export const RESPONDER_IDLE_FACTOR = 1.5;

/** What the connection should do now. */
export type HeartbeatAction = 'none' | 'ping' | 'dead';

/** Heartbeat state for one connection. */
export class Heartbeat {
  readonly settings: HeartbeatSettings;
  #lastReceived: number;
  #lastPing: number;
  #active = false;
  readonly #idlePingMs: number;

  /** `initiator`: this side dialled the connection (default true; the accepting side pings later when idle). */
  constructor(settings: HeartbeatSettings, now: number, initiator = true) {
    this.settings = settings;
    this.#idlePingMs = initiator ? settings.idleMs : RESPONDER_IDLE_FACTOR * settings.idleMs;
    this.#lastReceived = now;
    this.#lastPing = now;
  }

  /** Whether requests are in flight on this connection. */
  get active(): boolean {
    return this.#active;
  }

  /** Switches between the fast (in flight) and slow (idle) rates. */
  setActive(active: boolean, now: number): void {
    if (active && !this.#active) {
      // Silence before now was idle silence: start the fast clock from now.
      this.#lastReceived = Math.max(this.#lastReceived, now - this.settings.activeMs);
    }
    this.#active = active;
  }

  /** A frame arrived. */
  received(now: number): void {
    this.#lastReceived = now;
  }

  /**
   * Moves every deadline forward by `ms`: the process itself was not running
   * (event-loop lag), so the silence it saw says nothing about the peer.
   */
  stretch(ms: number): void {
    this.#lastReceived += ms;
    this.#lastPing += ms;
  }

  /** Silence so far, in ms. */
  silence(now: number): number {
    return now - this.#lastReceived;
  }

  #deadAfter(): number {
    return this.#active ? this.settings.deadMs : IDLE_DEAD_FACTOR * this.settings.idleMs;
  }

  #pingEvery(): number {
    return this.#active ? this.settings.activeMs : this.#idlePingMs;
  }

  /** Decides what to do at `now`; records a ping when it says 'ping'. */
  check(now: number): HeartbeatAction {
    const silence = now - this.#lastReceived;
    if (silence >= this.#deadAfter()) return 'dead';
    const every = this.#pingEvery();
    if (silence >= every && now - this.#lastPing >= every) {
      this.#lastPing = now;
      return 'ping';
    }
    return 'none';
  }

  /** Ms from `now` until `check` may have something new to say. */
  nextCheck(now: number): number {
    const every = this.#pingEvery();
    const dead = this.#lastReceived + this.#deadAfter();
    const ping = Math.max(this.#lastReceived + every, this.#lastPing + every);
    return Math.max(1, Math.min(dead, ping) - now);
  }
}
