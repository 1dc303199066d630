// Property tests: membership views form a semilattice, every broker that
// hears the same entries ends with the same view
// (docs/architecture.md#merging-views), and a chain bootstrap converges to a
// full mesh within a few rounds (docs/architecture.md#chain-bootstrap).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { encodeKey } from '../../lib/crypto/keys.ts';
import { Membership, compareEntries, makeBootId, mergeViews } from '../../lib/broker/membership.ts';
import type { MemberEntry } from '../../lib/broker/membership.ts';
import { BOOT_ID_LENGTH } from '../../lib/protocol/messages.ts';
import type { BrokerStatusName, GossipMessage, ViewEntry } from '../../lib/protocol/messages.ts';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const STATUSES: readonly BrokerStatusName[] = ['alive', 'suspect', 'leaving', 'dead'];

/** A 32-byte key whose bytes are all `n` (n in 1..255). */
function keyOf(n: number): Uint8Array {
  return new Uint8Array(32).fill(n);
}

/** A boot id for a boot at `ms` (random part derived from `salt`). */
function bootIdOf(ms: number, salt = 0): Uint8Array {
  return makeBootId(ms, new Uint8Array(BOOT_ID_LENGTH - 6).fill(salt));
}

/** A view as one comparable string: entries sorted by key. */
function encodeView(view: ReadonlyMap<string, MemberEntry>, skip: ReadonlySet<string> = new Set()): string {
  return [...view.entries()]
    .filter(([k]) => !skip.has(k))
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([k, e]) => `${k}|${encodeKey(e.id)}|${hex(e.bootId)}|${e.incarnation}|${e.status}|${JSON.stringify(e.addresses)}`)
    .join('\n');
}

const EMPTY: ReadonlyMap<string, MemberEntry> = new Map();
const viewOf = (entries: readonly MemberEntry[]): Map<string, MemberEntry> => mergeViews(EMPTY, entries);

// Small pools so that entries about the same broker collide often: same boot
// ids, same incarnations, same statuses, differing only in the addresses.
// Addresses here never contain ',' (see membership.spec.ts for that case).
const SUBJECTS = [1, 2, 3, 4];
const BOOTS = [new Uint8Array(BOOT_ID_LENGTH), bootIdOf(1_000), bootIdOf(1_000, 7), bootIdOf(2_000)];
const addressArb = fc.constantFrom('a:1', 'b:2', '[::1]:3', '10.0.0.1:7000');
const entryArb: fc.Arbitrary<MemberEntry> = fc.record({
  id: fc.constantFrom(...SUBJECTS).map(keyOf),
  addresses: fc.array(addressArb, { minLength: 1, maxLength: 3 }),
  bootId: fc.constantFrom(...BOOTS),
  incarnation: fc.nat({ max: 3 }),
  status: fc.constantFrom(...STATUSES),
});
const entriesArb = fc.array(entryArb, { maxLength: 16 });

void test('mergeViews is commutative, associative and idempotent', () => {
  fc.assert(
    fc.property(entriesArb, entriesArb, entriesArb, (ea, eb, ec) => {
      const [a, b, c] = [viewOf(ea), viewOf(eb), viewOf(ec)];
      // Commutative.
      assert.equal(encodeView(mergeViews(a, b.values())), encodeView(mergeViews(b, a.values())));
      // Associative.
      const left = mergeViews(mergeViews(a, b.values()), c.values());
      const right = mergeViews(a, mergeViews(b, c.values()).values());
      assert.equal(encodeView(left), encodeView(right));
      // Idempotent, whole views and repeated entries.
      assert.equal(encodeView(mergeViews(a, a.values())), encodeView(a));
      assert.equal(encodeView(viewOf([...ea, ...ea])), encodeView(a));
      // Pure: the inputs are not modified.
      assert.equal(encodeView(a), encodeView(viewOf(ea)));
    }),
    { numRuns: 500 },
  );
});

void test('mergeViews keeps, per broker, the greatest entry, whatever the order of the entries', () => {
  fc.assert(
    fc.property(entriesArb, fc.array(fc.nat()), (entries, seeds) => {
      const shuffled = shuffle(entries, seeds);
      const merged = viewOf(entries);
      assert.equal(encodeView(viewOf(shuffled)), encodeView(merged));
      for (const e of entries) {
        const kept = merged.get(encodeKey(e.id));
        assert.ok(kept !== undefined && compareEntries(kept, e) >= 0, 'the kept entry is an upper bound');
      }
      assert.equal(merged.size, new Set(entries.map((e) => encodeKey(e.id))).size);
    }),
    { numRuns: 300 },
  );
});

void test('compareEntries is a total order (antisymmetric, transitive) on comma-free addresses', () => {
  fc.assert(
    fc.property(fc.array(entryArb, { minLength: 3, maxLength: 3 }), ([a, b, c]) => {
      const ab = compareEntries(a!, b!);
      assert.ok(Math.sign(ab) === -Math.sign(compareEntries(b!, a!)), 'antisymmetric');
      if (ab === 0) assert.equal(encodeView(viewOf([a!])), encodeView(viewOf([{ ...b!, id: a!.id }])), 'equal only when identical');
      if (ab <= 0 && compareEntries(b!, c!) <= 0) assert.ok(compareEntries(a!, c!) <= 0);
    }),
    { numRuns: 500 },
  );
});

/** A deterministic permutation of `items` driven by `seeds`. */
function shuffle<T>(items: readonly T[], seeds: readonly number[]): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = (seeds[i % Math.max(1, seeds.length)] ?? i) % (i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

/** Splits `items` into consecutive chunks at the given (modulo) cut points. */
function chunk<T>(items: readonly T[], cuts: readonly number[]): T[][] {
  const points = [...new Set(cuts.map((c) => c % (items.length + 1)))].sort((a, b) => a - b);
  const out: T[][] = [];
  let from = 0;
  for (const p of [...points, items.length]) {
    if (p > from) out.push(items.slice(from, p));
    from = Math.max(from, p);
  }
  return out;
}

// The receivers: their own keys are 101.., apart from the subjects 1..4 (a
// receiver may still hear about itself: subject 101 is in the pool below).
const RECEIVERS = [101, 102, 103];
const SENDERS = [1, 2, 3, 4, 101, 102, 103, 200];
const wireEntryArb: fc.Arbitrary<ViewEntry> = fc.record({
  id: fc.constantFrom(...SUBJECTS, 101).map(keyOf),
  addresses: fc.array(addressArb, { minLength: 1, maxLength: 2 }),
  bootId: fc.constantFrom(...BOOTS),
  incarnation: fc.nat({ max: 3 }),
  status: fc.constantFrom(...STATUSES),
  reachable: fc.boolean(),
});
/** How one receiver gets the entries: its own order, its own GOSSIP boundaries, its own senders. */
const deliveryArb = fc.record({ order: fc.array(fc.nat(), { maxLength: 20 }), cuts: fc.array(fc.nat(), { maxLength: 8 }), senders: fc.array(fc.constantFrom(...SENDERS), { minLength: 1, maxLength: 8 }) });

function receiver(n: number): Membership {
  return new Membership({ self: { id: keyOf(n), addresses: [`r${n}:1`], bootId: bootIdOf(5_000, n) } });
}

/** Delivers `entries` to `m` as GOSSIPs cut and ordered as `d` says. */
function deliver(m: Membership, entries: readonly ViewEntry[], d: { order: number[]; cuts: number[]; senders: number[] }, now: number): void {
  chunk(shuffle(entries, d.order), d.cuts).forEach((view, i) => {
    const gossip: GossipMessage = { type: 'GOSSIP', bootId: bootIdOf(9_000), incarnation: 0, view };
    m.onGossip(encodeKey(keyOf(d.senders[i % d.senders.length]!)), gossip, now);
  });
}

const selfKeys = new Set(RECEIVERS.map((n) => encodeKey(keyOf(n))));
const asMember = (e: ViewEntry): MemberEntry => ({ id: e.id, addresses: e.addresses, bootId: e.bootId, incarnation: e.incarnation, status: e.status });

void test('convergence: receivers that hear the same admissible entries, in any order, from any senders, hold the same view', () => {
  fc.assert(
    fc.property(
      // Admissible: reachable as the sender says (a receiver never drops an entry for being second-hand and unreachable).
      fc.array(wireEntryArb.map((e) => ({ ...e, reachable: true })), { maxLength: 24 }),
      fc.array(deliveryArb, { minLength: RECEIVERS.length, maxLength: RECEIVERS.length }),
      (entries, deliveries) => {
        const ms = RECEIVERS.map(receiver);
        ms.forEach((m, i) => deliver(m, entries, deliveries[i]!, 10));
        const expected = encodeView(viewOf(entries.map(asMember)), selfKeys);
        for (const m of ms) assert.equal(encodeView(m.view, selfKeys), expected);
      },
    ),
    { numRuns: 300 },
  );
});

void test('convergence with second-hand unreachable entries: once every receiver has heard the GOSSIPs twice, views agree', () => {
  // An unknown broker enters only first-hand (the sender itself) or when the
  // sender reaches it, so a first pass may drop an entry that arrives before
  // its broker is known. Which brokers get in does not depend on the order,
  // so the second pass (the next round's GOSSIP) makes the views equal.
  const messageArb = fc.record({ sender: fc.constantFrom(...SENDERS), view: fc.array(wireEntryArb, { minLength: 1, maxLength: 5 }) });
  fc.assert(
    fc.property(
      fc.array(messageArb, { maxLength: 8 }),
      fc.array(fc.tuple(fc.array(fc.nat()), fc.array(fc.nat())), { minLength: RECEIVERS.length, maxLength: RECEIVERS.length }),
      (messages, orders) => {
        const ms = RECEIVERS.map(receiver);
        ms.forEach((m, i) => {
          for (const [pass, order] of orders[i]!.entries()) {
            for (const { sender, view } of shuffle(messages, order)) m.onGossip(encodeKey(keyOf(sender)), { type: 'GOSSIP', bootId: bootIdOf(9_000), incarnation: 0, view }, 10 + pass);
          }
        });
        const admitted = new Set(messages.flatMap(({ sender, view }) => view.filter((e) => e.reachable || hex(e.id) === hex(keyOf(sender))).map((e) => encodeKey(e.id))));
        const expected = viewOf(messages.flatMap(({ view }) => view.filter((e) => admitted.has(encodeKey(e.id))).map(asMember)));
        for (const [i, m] of ms.entries()) assert.equal(encodeView(m.view, selfKeys), encodeView(expected, selfKeys), `receiver ${i}`);
      },
    ),
    { numRuns: 300 },
  );
});

void test('makeBootId orders boots by wall-clock time, whatever the random part', () => {
  const ms = fc.integer({ min: 0, max: 2 ** 48 - 1 });
  const rnd = fc.uint8Array({ minLength: BOOT_ID_LENGTH - 6, maxLength: BOOT_ID_LENGTH - 6 });
  fc.assert(
    fc.property(ms, ms, rnd, rnd, (t1, t2, r1, r2) => {
      const a = makeBootId(t1, r1);
      const b = makeBootId(t2, r2);
      assert.equal(a.length, BOOT_ID_LENGTH);
      assert.equal(hex(a.subarray(6)), hex(r1));
      const entry = (bootId: Uint8Array): MemberEntry => ({ id: keyOf(1), addresses: ['a:1'], bootId, incarnation: 0, status: 'alive' });
      if (t1 !== t2) assert.equal(Math.sign(compareEntries(entry(a), entry(b))), Math.sign(t1 - t2));
      // A restart outranks the old boot even when the old one had bumped its incarnation and is dead.
      if (t1 < t2) assert.ok(compareEntries(entry(b), { ...entry(a), incarnation: 2 ** 32 - 1, status: 'dead' }) > 0);
    }),
    { numRuns: 1000 },
  );
  // Realistic clocks, one millisecond apart.
  const now = 1_760_000_000_000;
  assert.ok(compareEntries({ id: keyOf(1), addresses: ['a:1'], bootId: bootIdOf(now + 1, 0), incarnation: 0, status: 'alive' }, { id: keyOf(1), addresses: ['a:1'], bootId: bootIdOf(now, 255), incarnation: 9, status: 'dead' }) > 0);
});

// ------------------------------------------------------------ simulated mesh

const ROUND = 1000;
/** Simulated time step: brokers run their rounds at their own phase within the interval. */
const STEP = 100;

interface SimBroker {
  readonly key: string;
  readonly m: Membership;
  readonly phase: number;
}

/**
 * An in-memory mesh. A broker dials every peer it lists; the link is up one
 * step later (both ends then see the connection) and, when `greet` is set,
 * starts with a GOSSIP each way as a real connection does. Every round a
 * broker sends its GOSSIP over all its links.
 */
class Mesh {
  readonly brokers: SimBroker[];
  readonly links = new Set<string>();
  readonly greet: boolean;
  now = 0;
  #dialling: [SimBroker, SimBroker][] = [];
  constructor(brokers: SimBroker[], greet: boolean) {
    this.brokers = brokers;
    this.greet = greet;
  }
  #link(a: SimBroker, b: SimBroker): string {
    return a.key < b.key ? `${a.key}-${b.key}` : `${b.key}-${a.key}`;
  }
  step(): void {
    this.now += STEP;
    // Dials started last step complete now.
    for (const [a, b] of this.#dialling) {
      if (this.links.has(this.#link(a, b))) continue;
      this.links.add(this.#link(a, b));
      a.m.setConnected(b.key, true, this.now);
      b.m.setConnected(a.key, true, this.now);
      if (this.greet) {
        b.m.onGossip(a.key, a.m.gossip(this.now), this.now);
        a.m.onGossip(b.key, b.m.gossip(this.now), this.now);
      }
    }
    for (const a of this.brokers) {
      if (this.now % ROUND !== a.phase) continue;
      const { gossip } = a.m.round(this.now);
      for (const b of this.brokers) {
        if (b !== a && this.links.has(this.#link(a, b))) b.m.onGossip(a.key, gossip, this.now);
      }
    }
    this.#dialling = [];
    for (const a of this.brokers) {
      for (const p of a.m.peers()) {
        const b = this.brokers.find((x) => x.key === encodeKey(p.id));
        if (b && !this.links.has(this.#link(a, b))) this.#dialling.push([a, b]);
      }
    }
  }
}

void test('a chain bootstrap (broker i seeded with broker i+1) converges to all N live everywhere within a few rounds', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 3, max: 7 }).chain((n) =>
        fc.record({
          keys: fc.uniqueArray(fc.integer({ min: 1, max: 255 }), { minLength: n, maxLength: n }),
          phases: fc.array(fc.nat({ max: ROUND / STEP - 1 }), { minLength: n, maxLength: n }),
          boots: fc.array(fc.integer({ min: 1, max: 2 ** 40 }), { minLength: n, maxLength: n }),
          greet: fc.boolean(),
        }),
      ),
      ({ keys, phases, boots, greet }) => {
        const n = keys.length;
        const brokers: SimBroker[] = keys.map((k, i) => ({
          key: encodeKey(keyOf(k)),
          phase: phases[i]! * STEP,
          m: new Membership({ self: { id: keyOf(k), addresses: [`b${k}:7000`], bootId: bootIdOf(boots[i]!, k) } }),
        }));
        brokers.forEach((b, i) => {
          if (i + 1 < n) b.m.addSeed({ id: keyOf(keys[i + 1]!), addresses: [`b${keys[i + 1]}:7000`] }, 0);
        });
        const mesh = new Mesh(brokers, greet);
        const all = brokers.map((b) => b.key).sort();
        // Measured worst case over 2,000 runs: 2.1 s without the greeting
        // GOSSIP, 0.3 s with it; 4 rounds leaves a margin.
        const limit = 4 * ROUND;
        while (mesh.now < limit && !brokers.every((b) => JSON.stringify(b.m.liveKeys()) === JSON.stringify(all))) mesh.step();
        for (const b of brokers) assert.deepEqual(b.m.liveKeys(), all, `broker ${b.key} lists all ${n} brokers live by ${limit} ms`);
        // And they stay so, all alive (nobody suspected), for a while.
        for (let i = 0; i < (10 * ROUND) / STEP; i++) mesh.step();
        for (const b of brokers) {
          assert.deepEqual(b.m.liveKeys(), all);
          for (const o of brokers) assert.equal(b.m.statusOf(o.key), 'alive');
          assert.equal(b.m.incarnation, 0, 'nobody had to refute anything');
        }
      },
    ),
    { numRuns: 100 },
  );
});
