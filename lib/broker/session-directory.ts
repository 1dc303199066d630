/**
 * The open sessions of a broker, by session id and by static key (a key may
 * have several sessions: a reconnect can overlap the old connection).
 */
import type { Connection } from '../protocol/connection.ts';
import type { RegistryEntry } from './registry.ts';
import { Session } from './session.ts';

/** The open sessions of one broker. */
export class SessionDirectory {
  readonly #byId = new Map<number, Session>();
  readonly #byKey = new Map<string, Set<Session>>();
  #nextId = 1;

  /** How many sessions are open. */
  get size(): number {
    return this.#byId.size;
  }

  /** Opens a session for an established connection, with the next session id. */
  open(connection: Connection, key: string, entry: RegistryEntry): Session {
    const session = new Session(this.#nextId++, connection, key, entry);
    this.#byId.set(session.id, session);
    let set = this.#byKey.get(key);
    if (!set) this.#byKey.set(key, (set = new Set()));
    set.add(session);
    return session;
  }

  /** Removes a closed session; false when it was not open. */
  remove(session: Session): boolean {
    if (!this.#byId.delete(session.id)) return false;
    const set = this.#byKey.get(session.key);
    set?.delete(session);
    if (set?.size === 0) this.#byKey.delete(session.key);
    return true;
  }

  /** The open session with this id. */
  get(id: number): Session | undefined {
    return this.#byId.get(id);
  }

  /** Every open session of this key. */
  withKey(key: string): ReadonlySet<Session> {
    return this.#byKey.get(key) ?? new Set();
  }

  /** Whether any session of this key is open. */
  hasKey(key: string): boolean {
    return this.#byKey.has(key);
  }

  /** Any open session of a node with this key (never a peer broker's). */
  anyNode(key: string): Session | undefined {
    for (const s of this.#byKey.get(key) ?? []) {
      if (s.entry.role !== 'broker') return s;
    }
    return undefined;
  }

  /** Every open session. */
  values(): IterableIterator<Session> {
    return this.#byId.values();
  }
}
