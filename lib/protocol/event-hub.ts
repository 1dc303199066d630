/**
 * EventHub: the one event style of meshd's public classes (Broker and
 * MeshNode). Each event is an object with a kebab-case `type`; a listener is
 * registered for one type with typed `on()` and removed with `off()`, and
 * receives that one object. Objects can grow fields without breaking
 * listeners, and a listener that throws is isolated from the others.
 *
 * `hold()` queues events instead of delivering them, until `release()`
 * (asynchronously, in order): a class that starts in an async factory
 * (`Broker.start`) holds what happens before its caller could attach
 * listeners.
 */

/** What every event is: an object with a `type`. */
export interface TypedEvent {
  readonly type: string;
}

/** A listener of events of type `K` of the union `E`. */
export type EventListener<E extends TypedEvent, K extends E['type']> = (event: Extract<E, { type: K }>) => void;

/** Registers, removes and delivers typed events. Plain code: no I/O. */
export class EventHub<E extends TypedEvent> {
  readonly #listeners = new Map<string, Set<(event: E) => void>>();
  #held: E[] | undefined;
  /** Called with a listener's exception (default: rethrown asynchronously, as an uncaught error). */
  readonly #onListenerError: (error: unknown) => void;

  constructor(onListenerError: (error: unknown) => void = (error) => queueMicrotask(() => { throw error; })) {
    this.#onListenerError = onListenerError;
  }

  /** Calls `listener` for every event of type `type`. */
  on<K extends E['type']>(type: K, listener: EventListener<E, K>): void {
    let set = this.#listeners.get(type);
    if (!set) this.#listeners.set(type, (set = new Set()));
    set.add(listener as (event: E) => void);
  }

  /** Stops calling `listener` for `type`. */
  off<K extends E['type']>(type: K, listener: EventListener<E, K>): void {
    this.#listeners.get(type)?.delete(listener as (event: E) => void);
  }

  /** How many listeners `type` has. */
  listenerCount(type: E['type']): number {
    return this.#listeners.get(type)?.size ?? 0;
  }

  /** Delivers `event` to its type's listeners (or queues it while held). */
  emit(event: E): void {
    if (this.#held) {
      this.#held.push(event);
      return;
    }
    for (const listener of [...(this.#listeners.get(event.type) ?? [])]) {
      try {
        listener(event);
      } catch (error) {
        this.#onListenerError(error);
      }
    }
  }

  /** Queues events from now on, until {@link release}. */
  hold(): void {
    this.#held ??= [];
  }

  /** Delivers the queued events, in order, on the next turn of the event loop, and stops queueing then. */
  release(): void {
    setImmediate(() => {
      const held = this.#held ?? [];
      this.#held = undefined;
      for (const event of held) this.emit(event);
    });
  }
}

/**
 * The base of meshd's public classes that emit events (Broker, MeshNode):
 * typed `on()` and `off()` for their users, `emit()` for the class itself.
 */
export abstract class EventSource<E extends TypedEvent> {
  readonly #hub = new EventHub<E>();

  /** Calls `listener` with every event of type `type`. Returns `this`. */
  on<K extends E['type']>(type: K, listener: EventListener<E, K>): this {
    this.#hub.on(type, listener);
    return this;
  }

  /** Stops calling `listener` for `type`. Returns `this`. */
  off<K extends E['type']>(type: K, listener: EventListener<E, K>): this {
    this.#hub.off(type, listener);
    return this;
  }

  /** Delivers `event` to its listeners (or queues it while held). */
  protected emit(event: E): void {
    this.#hub.emit(event);
  }

  /** Queues events until {@link releaseEvents} (see EventHub.hold). */
  protected holdEvents(): void {
    this.#hub.hold();
  }

  /** Delivers the queued events on the next turn of the event loop. */
  protected releaseEvents(): void {
    this.#hub.release();
  }
}
