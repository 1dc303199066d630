/**
 * Membership: the quorum rounds (docs/architecture.md#quorum-rounds) as a
 * pure state machine. No I/O:
 * the broker tells it what it hears (GOSSIP), which peers it can reach, and
 * what time it is; it answers with the GOSSIP to send and the agreed list of
 * live brokers.
 *
 * Views merge entry by entry with {@link mergeEntry}: the entry with the
 * higher (boot id, incarnation, status) wins, so merging is commutative,
 * associative and idempotent: brokers that have merged the same entries
 * hold the same view (a broker new to a view enters only first-hand or from
 * a sender that reaches it, so this holds from the next round on). Boot ids start with the boot time, so a
 * restarted broker outranks its old self; a broker refutes a suspect, dead
 * or leaving entry about itself by bumping its incarnation.
 *
 * A round decides only when it is quorate: more than half of the live
 * brokers (self included) answered within the last two and a half rounds. Then a broker
 * more than half of those who answered report as unreachable is dead. So a
 * broker cut off from the others never declares them dead by itself.
 */
import { encodeKey } from '../crypto/keys.ts';
import { BOOT_ID_LENGTH, MAX_BROKERS, MAX_INCARNATION } from '../protocol/messages.ts';
import type { BrokerInfo, BrokerStatusName, GossipMessage, ViewEntry } from '../protocol/messages.ts';

/** One broker as a view holds it. */
export interface MemberEntry extends BrokerInfo {
  readonly status: BrokerStatusName;
}

/** Ranks of the statuses: at the same (boot id, incarnation) the higher wins. */
const STATUS_RANK: Readonly<Record<BrokerStatusName, number>> = { alive: 0, suspect: 1, leaving: 2, dead: 3 };

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    if (a[i] !== b[i]) return a[i]! - b[i]!;
  }
  return a.length - b.length;
}

/**
 * Total order of two entries about the same broker: boot id, then
 * incarnation, then status rank, then addresses (so that any two distinct
 * entries are ordered and merging does not depend on arrival order).
 */
export function compareEntries(a: MemberEntry, b: MemberEntry): number {
  return (
    compareBytes(a.bootId, b.bootId) ||
    a.incarnation - b.incarnation ||
    STATUS_RANK[a.status] - STATUS_RANK[b.status] ||
    compareAddresses(a.addresses, b.addresses)
  );
}

function compareAddresses(a: readonly string[], b: readonly string[]): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    if (a[i] !== b[i]) return a[i]! < b[i]! ? -1 : 1;
  }
  return a.length - b.length;
}

/** The winner of two entries about the same broker. */
export function mergeEntry(a: MemberEntry | undefined, b: MemberEntry): MemberEntry {
  return a === undefined || compareEntries(b, a) > 0 ? b : a;
}

/** Merges views (maps from base64url key to entry): pure, a semilattice join. */
export function mergeViews(a: ReadonlyMap<string, MemberEntry>, b: Iterable<MemberEntry>): Map<string, MemberEntry> {
  const out = new Map(a);
  for (const e of b) {
    const key = encodeKey(e.id);
    out.set(key, mergeEntry(out.get(key), e));
  }
  return out;
}

/**
 * A boot id: 6 bytes of wall-clock milliseconds (big-endian) then 10 random
 * bytes, so a restart outranks the previous boot of the same broker.
 */
export function makeBootId(wallClockMs: number, random: Uint8Array): Uint8Array {
  const id = new Uint8Array(BOOT_ID_LENGTH);
  let t = Math.max(0, Math.floor(wallClockMs));
  for (let i = 5; i >= 0; i--) {
    id[i] = t % 256;
    t = Math.floor(t / 256);
  }
  id.set(random.subarray(0, BOOT_ID_LENGTH - 6), 6);
  return id;
}

/** Settings of a {@link Membership}. */
export interface MembershipOptions {
  /** This broker: key, addresses, boot id (incarnation starts at 0). */
  readonly self: Omit<BrokerInfo, 'incarnation'>;
  /** Round interval, ms (default 1000). */
  readonly roundMs?: number | undefined;
  /** How long dead and leaving entries are kept, ms (default 30 000). */
  readonly tombstoneMs?: number | undefined;
  /** How long a peer may be unconnected before this broker reports it unreachable, ms (default 1500). */
  readonly unreachableAfterMs?: number | undefined;
  /** Whether a broker may enter the view at all (e.g. the registry lists it with role broker); default: all. */
  readonly admit?: ((key: string) => boolean) | undefined;
}

/** Default round interval, ms. */
export const DEFAULT_ROUND_MS = 1000;
/** Default tombstone lifetime, ms. */
export const DEFAULT_TOMBSTONE_MS = 30_000;
/** Default grace before an unconnected peer counts as unreachable, ms. */
export const DEFAULT_UNREACHABLE_AFTER_MS = 1500;

interface Report {
  /** When the reporter's GOSSIP arrived. */
  readonly at: number;
  /** What the reporter said it can reach. */
  readonly reachable: ReadonlyMap<string, boolean>;
}

interface Local {
  /** Since when this broker has had no connection to it (undefined: connected). */
  downSince: number | undefined;
  /** When a dead or leaving entry was first seen (for the tombstone). */
  endedAt: number | undefined;
}

/** A broker's view of the mesh. */
export class Membership {
  readonly selfKey: string;
  readonly #self: Omit<BrokerInfo, 'incarnation'>;
  readonly #roundMs: number;
  readonly #tombstoneMs: number;
  readonly #unreachableAfter: number;
  readonly #admit: (key: string) => boolean;
  #incarnation = 0;
  #leaving = false;
  #view = new Map<string, MemberEntry>();
  readonly #local = new Map<string, Local>();
  readonly #reports = new Map<string, Report>();
  #live: BrokerInfo[] = [];
  #liveSignature = '';

  constructor(options: MembershipOptions) {
    this.#self = options.self;
    this.selfKey = encodeKey(options.self.id);
    this.#roundMs = options.roundMs ?? DEFAULT_ROUND_MS;
    this.#tombstoneMs = options.tombstoneMs ?? DEFAULT_TOMBSTONE_MS;
    this.#unreachableAfter = options.unreachableAfterMs ?? DEFAULT_UNREACHABLE_AFTER_MS;
    this.#admit = options.admit ?? (() => true);
    this.#view.set(this.selfKey, this.#selfEntry());
    this.#recomputeLive();
  }

  /** This broker's incarnation. */
  get incarnation(): number {
    return this.#incarnation;
  }

  /** The whole view, self included (a copy). */
  get view(): ReadonlyMap<string, MemberEntry> {
    return new Map(this.#view);
  }

  /** The agreed live brokers (alive or suspect), self first. */
  get live(): readonly BrokerInfo[] {
    return this.#live;
  }

  /** The keys of the live brokers, sorted. */
  liveKeys(): string[] {
    return this.#live.map((b) => encodeKey(b.id)).sort();
  }

  /** Brokers to keep a connection to: every entry but self and leaving ones, with their addresses. */
  peers(): MemberEntry[] {
    return [...this.#view.entries()].filter(([k, e]) => k !== this.selfKey && e.status !== 'leaving').map(([, e]) => e);
  }

  /** Status of a broker in this view. */
  statusOf(key: string): BrokerStatusName | undefined {
    return this.#view.get(key)?.status;
  }

  /** Adds a broker known from configuration (a --peer) without any status claim. */
  addSeed(info: Omit<BrokerInfo, 'bootId' | 'incarnation'>, now: number): void {
    const key = encodeKey(info.id);
    if (key === this.selfKey || this.#view.has(key)) return;
    // Boot id all zeros: any real entry about it outranks this one.
    this.#view.set(key, { id: info.id, addresses: info.addresses, bootId: new Uint8Array(BOOT_ID_LENGTH), incarnation: 0, status: 'alive' });
    this.#local.set(key, { downSince: now, endedAt: undefined });
  }

  /** The connection to a peer came up or went down. */
  setConnected(key: string, connected: boolean, now: number): void {
    const local = this.#localOf(key, now);
    if (connected) local.downSince = undefined;
    else local.downSince ??= now;
  }

  /** Whether this broker reports the peer as reachable: connected, or not yet past the grace. */
  reachable(key: string, now: number): boolean {
    if (key === this.selfKey) return true;
    const local = this.#local.get(key);
    return local === undefined || local.downSince === undefined || now - local.downSince < this.#unreachableAfter;
  }

  /** Marks this broker as leaving (drain): announced in the next GOSSIP. */
  leave(): void {
    this.#leaving = true;
    this.#view.set(this.selfKey, this.#selfEntry());
    this.#recomputeLive();
  }

  /**
   * Takes in one GOSSIP from the peer with key `from`. Returns true when the
   * list of live brokers changed.
   */
  onGossip(from: string, gossip: GossipMessage, now: number): boolean {
    const reachable = new Map<string, boolean>();
    for (const e of gossip.view) {
      const key = encodeKey(e.id);
      reachable.set(key, e.reachable);
      if (key === this.selfKey) {
        this.#refute(e);
        continue;
      }
      // A broker new to this view enters only first-hand (the sender itself)
      // or when the sender can reach it now: an unreachable name passed on
      // from view to view (or a ghost) never enters.
      if (!this.#view.has(key) && ((key !== from && !e.reachable) || !this.#admit(key))) continue;
      this.#take(key, e, now);
    }
    this.#reports.set(from, { at: now, reachable });
    return this.#recomputeLive();
  }

  /**
   * Ends a round: decides who is dead (when quorate), drops old tombstones,
   * and returns the GOSSIP to send to every peer plus whether the live list
   * changed.
   */
  round(now: number): { gossip: GossipMessage; changed: boolean } {
    this.#decide(now);
    this.#expire(now);
    const changed = this.#recomputeLive();
    return { gossip: this.gossip(now), changed };
  }

  /** The GOSSIP this broker would send now. */
  gossip(now: number): GossipMessage {
    const view: ViewEntry[] = [];
    for (const [key, e] of this.#view) {
      if (view.length >= MAX_BROKERS) break;
      view.push({ ...e, reachable: this.reachable(key, now) });
    }
    return { type: 'GOSSIP', bootId: this.#self.bootId, incarnation: this.#incarnation, view };
  }

  // ------------------------------------------------------------ internals

  #selfEntry(): MemberEntry {
    return { ...this.#self, incarnation: this.#incarnation, status: this.#leaving ? 'leaving' : 'alive' };
  }

  #localOf(key: string, now: number): Local {
    let local = this.#local.get(key);
    if (!local) this.#local.set(key, (local = { downSince: now, endedAt: undefined }));
    return local;
  }

  #refute(e: ViewEntry): void {
    if (this.#leaving) return;
    const sameBoot = compareBytes(e.bootId, this.#self.bootId) === 0;
    if (sameBoot && e.status !== 'alive' && e.incarnation >= this.#incarnation && e.incarnation < MAX_INCARNATION) {
      this.#incarnation = e.incarnation + 1;
      this.#view.set(this.selfKey, this.#selfEntry());
    }
  }

  #take(key: string, e: MemberEntry, now: number): void {
    if (this.#view.size >= MAX_BROKERS && !this.#view.has(key)) return;
    const before = this.#view.get(key);
    const entry: MemberEntry = { id: e.id, addresses: e.addresses, bootId: e.bootId, incarnation: e.incarnation, status: e.status };
    const after = mergeEntry(before, entry);
    if (after === before) return;
    this.#view.set(key, after);
    const local = this.#localOf(key, now);
    local.endedAt = after.status === 'dead' || after.status === 'leaving' ? (local.endedAt ?? now) : undefined;
  }

  #decide(now: number): void {
    const live = [...this.#view.entries()].filter(([, e]) => e.status === 'alive' || e.status === 'suspect');
    const liveKeys = new Set(live.map(([k]) => k));
    const fresh = (k: string): boolean => {
      const r = this.#reports.get(k);
      return r !== undefined && now - r.at <= 2 * this.#roundMs + this.#roundMs / 2;
    };
    const answered = [this.selfKey, ...[...liveKeys].filter((k) => k !== this.selfKey && fresh(k))];
    const quorate = answered.length * 2 > liveKeys.size;
    for (const [key, e] of live) {
      if (key === this.selfKey) continue;
      const selfReaches = this.reachable(key, now);
      if (quorate) {
        let votes = selfReaches ? 0 : 1;
        for (const r of answered) {
          if (r === this.selfKey || r === key) continue;
          if (this.#reports.get(r)!.reachable.get(key) === false) votes++;
        }
        if (votes * 2 > answered.length) {
          this.#view.set(key, { ...e, status: 'dead' });
          this.#localOf(key, now).endedAt = now;
          continue;
        }
      }
      if (!selfReaches && e.status === 'alive') this.#view.set(key, { ...e, status: 'suspect' });
    }
  }

  #expire(now: number): void {
    for (const [key, local] of this.#local) {
      if (local.endedAt !== undefined && now - local.endedAt >= this.#tombstoneMs) {
        this.#view.delete(key);
        this.#local.delete(key);
        this.#reports.delete(key);
      }
    }
    for (const [key, r] of this.#reports) {
      if (!this.#view.has(key) || now - r.at > this.#tombstoneMs) this.#reports.delete(key);
    }
  }

  #recomputeLive(): boolean {
    const live: BrokerInfo[] = [];
    for (const [key, e] of this.#view) {
      if (e.status !== 'alive' && e.status !== 'suspect') continue;
      // A seed nobody has vouched for yet (zero boot id) is not announced.
      if (key !== this.selfKey && e.bootId.every((b) => b === 0)) continue;
      const info = { id: e.id, addresses: e.addresses, bootId: e.bootId, incarnation: e.incarnation };
      if (key === this.selfKey) live.unshift(info);
      else live.push(info);
    }
    const signature = live
      .map((b) => `${encodeKey(b.id)}@${b.addresses.join(',')}`)
      .sort()
      .join(';');
    const changed = signature !== this.#liveSignature;
    this.#live = live;
    this.#liveSignature = signature;
    return changed;
  }
}
