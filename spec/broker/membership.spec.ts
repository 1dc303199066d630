// Membership by example (docs/architecture.md#quorum-rounds): quorum verdicts, refutation, restarts,
// leaving, tombstones, two-broker meshes and hostile GOSSIP. Time is passed
// in explicitly; no timers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeKey } from '../../lib/crypto/keys.ts';
import { DEFAULT_UNREACHABLE_AFTER_MS, Membership, compareEntries, makeBootId, mergeEntry, mergeViews } from '../../lib/broker/membership.ts';
import type { MemberEntry, MembershipOptions } from '../../lib/broker/membership.ts';
import { BOOT_ID_LENGTH, MAX_BROKERS } from '../../lib/protocol/messages.ts';
import type { GossipMessage, ViewEntry } from '../../lib/protocol/messages.ts';

const ROUND = 1000;
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

function keyOf(n: number): Uint8Array {
  return new Uint8Array(32).fill(n);
}
const K = (n: number): string => encodeKey(keyOf(n));

function bootIdOf(ms: number, salt = 0): Uint8Array {
  return makeBootId(ms, new Uint8Array(BOOT_ID_LENGTH - 6).fill(salt));
}

interface Node {
  readonly n: number;
  readonly key: string;
  m: Membership;
}

type Extra = Omit<MembershipOptions, 'self'>;

function member(n: number, bootMs: number, extra: Extra = {}): Membership {
  return new Membership({ self: { id: keyOf(n), addresses: [`b${n}:7000`], bootId: bootIdOf(bootMs, n) }, roundMs: ROUND, ...extra });
}

/**
 * A lockstep in-memory mesh: every tick each broker ends its round, then
 * every GOSSIP goes over each link that is up. Cutting a link tells both
 * ends at once (setConnected false), as a closed connection does.
 */
class Net {
  now = 0;
  readonly nodes: Node[];
  readonly #down = new Set<string>();
  constructor(ns: readonly number[], extra: Extra = {}) {
    this.nodes = ns.map((n) => ({ n, key: K(n), m: member(n, 1_000 + n, extra) }));
    for (const a of this.nodes) {
      for (const b of this.nodes) {
        if (a === b) continue;
        a.m.addSeed({ id: keyOf(b.n), addresses: [`b${b.n}:7000`] }, 0);
        a.m.setConnected(b.key, true, 0);
      }
    }
  }
  node(n: number): Node {
    return this.nodes.find((x) => x.n === n)!;
  }
  #pair(a: Node, b: Node): string {
    return a.n < b.n ? `${a.n}-${b.n}` : `${b.n}-${a.n}`;
  }
  up(a: Node, b: Node): boolean {
    return !this.#down.has(this.#pair(a, b));
  }
  setLink(x: number, y: number, up: boolean): void {
    const [a, b] = [this.node(x), this.node(y)];
    if (up) this.#down.delete(this.#pair(a, b));
    else this.#down.add(this.#pair(a, b));
    a.m.setConnected(b.key, up, this.now);
    b.m.setConnected(a.key, up, this.now);
  }
  /** Cuts (or restores) every link of broker `x`. */
  isolate(x: number, cut = true): void {
    for (const o of this.nodes) if (o.n !== x) this.setLink(x, o.n, !cut);
  }
  tick(): void {
    this.now += ROUND;
    const sent = this.nodes.map((a) => [a, a.m.round(this.now).gossip] as const);
    for (const [a, gossip] of sent) {
      for (const b of this.nodes) if (b !== a && this.up(a, b)) b.m.onGossip(a.key, gossip, this.now);
    }
  }
  ticks(k: number): void {
    for (let i = 0; i < k; i++) this.tick();
  }
}

const keysOf = (...ns: number[]): string[] => ns.map(K).sort();

/** A 3-broker mesh (1, 2, 3) that has agreed on everyone. */
function threeBrokers(extra: Extra = {}): Net {
  const net = new Net([1, 2, 3], extra);
  net.ticks(2);
  for (const x of net.nodes) assert.deepEqual(x.m.liveKeys(), keysOf(1, 2, 3));
  return net;
}

void test('seeds are not announced until a real entry arrives, then the real entry replaces them', () => {
  const a = member(1, 1_000);
  a.addSeed({ id: keyOf(2), addresses: ['b2:7000'] }, 0);
  assert.deepEqual(a.liveKeys(), [K(1)], 'a seed is not in live');
  assert.equal(a.live[0]!.id, a.view.get(K(1))!.id, 'self first');
  assert.deepEqual(a.peers().map((e) => encodeKey(e.id)), [K(2)], 'but it is a peer to dial');
  assert.ok(a.view.get(K(2))!.bootId.every((x) => x === 0));
  const b = member(2, 2_000);
  assert.equal(a.onGossip(K(2), b.gossip(10), 10), true);
  assert.deepEqual(a.liveKeys(), keysOf(1, 2));
  assert.equal(hex(a.view.get(K(2))!.bootId), hex(bootIdOf(2_000, 2)));
  // A second addSeed does not overwrite the real entry.
  a.addSeed({ id: keyOf(2), addresses: ['elsewhere:1'] }, 20);
  assert.equal(hex(a.view.get(K(2))!.bootId), hex(bootIdOf(2_000, 2)));
});

void test('3 brokers: the two that still hear each other declare the cut-off one dead; the cut-off one, alone, declares nobody dead', () => {
  const net = threeBrokers();
  const t0 = net.now;
  net.isolate(3);
  const [a, b, c] = [net.node(1).m, net.node(2).m, net.node(3).m];

  net.tick(); // t0 + 1000: within the grace, nothing happens.
  for (const m of [a, b]) {
    assert.equal(m.statusOf(K(3)), 'alive');
    assert.deepEqual(m.liveKeys(), keysOf(1, 2, 3));
  }
  net.tick(); // t0 + 2000: past the grace: suspected, but 3's last GOSSIP is still fresh, so no majority.
  for (const m of [a, b]) {
    assert.equal(m.statusOf(K(3)), 'suspect');
    assert.deepEqual(m.liveKeys(), keysOf(1, 2, 3), 'a suspect is still live');
  }
  net.tick(); // t0 + 3000: 1 and 2 answered (2 of 3 live: quorate), both report 3 unreachable.
  assert.equal(net.now - t0, 3 * ROUND);
  for (const m of [a, b]) {
    assert.equal(m.statusOf(K(3)), 'dead');
    assert.deepEqual(m.liveKeys(), keysOf(1, 2));
    assert.equal(m.live.length, 2);
  }
  // The cut-off broker is never quorate (1 of 3): the others stay live there, as suspects.
  for (let i = 0; i < 40; i++) {
    net.tick();
    assert.deepEqual(c.liveKeys(), keysOf(1, 2, 3), `at ${net.now}`);
    assert.notEqual(c.statusOf(K(1)), 'dead');
    assert.notEqual(c.statusOf(K(2)), 'dead');
  }
  assert.equal(c.statusOf(K(1)), 'suspect');
  assert.equal(c.statusOf(K(2)), 'suspect');
  assert.equal(c.incarnation, 0);
});

void test('a broker declared dead refutes when it hears of it and is alive again everywhere, with a bumped incarnation', () => {
  const net = threeBrokers();
  net.isolate(3);
  net.ticks(3);
  const [a, b, c] = [net.node(1).m, net.node(2).m, net.node(3).m];
  assert.equal(a.statusOf(K(3)), 'dead');
  assert.equal(b.statusOf(K(3)), 'dead');
  net.isolate(3, false);
  net.tick(); // 3 hears "3 is dead" (and 1, 2 hear they were suspected).
  assert.equal(c.incarnation, 1, 'refuted: incarnation bumped past the dead entry');
  assert.equal(a.incarnation, 1);
  assert.equal(b.incarnation, 1);
  net.tick(); // The refutations arrive.
  for (const x of net.nodes) {
    assert.deepEqual(x.m.liveKeys(), keysOf(1, 2, 3), `broker ${x.n}`);
    for (const o of [1, 2, 3]) assert.equal(x.m.statusOf(K(o)), 'alive', `broker ${x.n} about ${o}`);
  }
  assert.equal(a.view.get(K(3))!.incarnation, 1);
  assert.equal(a.live.find((e) => encodeKey(e.id) === K(3))!.incarnation, 1);
  // And it stays so.
  net.ticks(10);
  for (const x of net.nodes) assert.deepEqual(x.m.liveKeys(), keysOf(1, 2, 3));
  assert.equal(c.incarnation, 1);
});

void test('a restarted broker (newer boot id) replaces its dead entry at once, and its old boot cannot come back', () => {
  const net = threeBrokers();
  net.isolate(3);
  net.ticks(3);
  const a = net.node(1).m;
  const oldBoot = a.view.get(K(3))!;
  assert.equal(oldBoot.status, 'dead');
  // Process 3 restarts: same key, later boot time, incarnation 0.
  const restarted = member(3, 1_000_000);
  a.setConnected(K(3), true, net.now);
  assert.equal(a.onGossip(K(3), restarted.gossip(net.now), net.now), true, 'the live list changed');
  assert.equal(a.statusOf(K(3)), 'alive');
  assert.deepEqual(a.liveKeys(), keysOf(1, 2, 3));
  const entry = a.live.find((e) => encodeKey(e.id) === K(3))!;
  assert.equal(hex(entry.bootId), hex(bootIdOf(1_000_000, 3)));
  assert.equal(entry.incarnation, 0);
  // A late GOSSIP of the old boot (even one that had refuted to a high incarnation) loses.
  const stale: GossipMessage = { type: 'GOSSIP', bootId: oldBoot.bootId, incarnation: 9, view: [{ ...oldBoot, incarnation: 9, status: 'alive', reachable: true }] };
  a.onGossip(K(2), stale, net.now);
  assert.equal(hex(a.view.get(K(3))!.bootId), hex(bootIdOf(1_000_000, 3)));
  assert.equal(a.view.get(K(3))!.incarnation, 0);
  // A dead claim about the old boot does not touch the new one.
  a.onGossip(K(2), { ...stale, view: [{ ...oldBoot, incarnation: 9, status: 'dead', reachable: false }] }, net.now);
  assert.equal(a.statusOf(K(3)), 'alive');
});

void test('leave() is announced as leaving; the others drop the broker from live and stop dialling it; it does not refute', () => {
  const net = threeBrokers();
  const [a, b, c] = [net.node(1).m, net.node(2).m, net.node(3).m];
  b.leave();
  assert.equal(b.statusOf(K(2)), 'leaving');
  // The GOSSIP sent at once on leave.
  assert.equal(a.onGossip(K(2), b.gossip(net.now), net.now), true);
  assert.equal(a.statusOf(K(2)), 'leaving');
  assert.deepEqual(a.liveKeys(), keysOf(1, 3));
  assert.ok(!a.peers().some((e) => encodeKey(e.id) === K(2)), 'not a peer to dial any more');
  net.tick();
  assert.equal(c.statusOf(K(2)), 'leaving');
  assert.deepEqual(c.liveKeys(), keysOf(1, 3));
  // Told it is dead, a leaving broker does not refute.
  const entry = a.view.get(K(2))!;
  b.onGossip(K(1), { type: 'GOSSIP', bootId: bootIdOf(1_001, 1), incarnation: 0, view: [{ ...entry, status: 'dead', reachable: false }] }, net.now);
  assert.equal(b.incarnation, 0);
  assert.equal(b.statusOf(K(2)), 'leaving');
  net.ticks(5);
  for (const m of [a, b, c]) assert.deepEqual(m.liveKeys(), keysOf(1, 3), 'after a round the leaving broker does not list itself either');
});

void test('right after leave(), live no longer lists the leaving broker itself', () => {
  // `live` is "the agreed live brokers (alive or suspect)": a leaving self is
  // out of it at once, not only after the next round or GOSSIP.
  const b = member(2, 1_000);
  b.onGossip(K(1), member(1, 1_000).gossip(0), 0);
  b.leave();
  assert.equal(b.statusOf(K(2)), 'leaving');
  assert.deepEqual(b.liveKeys(), [K(1)], 'live must not list a leaving self');
});

void test('tombstones expire after tombstoneMs and the entry is forgotten', () => {
  const net = threeBrokers({ tombstoneMs: 5_000 });
  net.isolate(3);
  net.ticks(3);
  const [a, b] = [net.node(1).m, net.node(2).m];
  const deadAt = net.now;
  assert.equal(a.statusOf(K(3)), 'dead');
  assert.equal(b.statusOf(K(3)), 'dead');
  while (net.now < deadAt + 4_000) {
    net.tick();
    assert.equal(a.statusOf(K(3)), 'dead', `kept at ${net.now - deadAt} ms`);
    assert.equal(b.statusOf(K(3)), 'dead');
  }
  net.tick(); // deadAt + 5000
  for (const m of [a, b]) {
    assert.equal(m.statusOf(K(3)), undefined);
    assert.ok(!m.view.has(K(3)));
    assert.deepEqual(m.liveKeys(), keysOf(1, 2));
  }
  net.ticks(20);
  for (const m of [a, b]) assert.ok(!m.view.has(K(3)), 'stays forgotten');
});

void test('a tombstone expires everywhere even when brokers learned of the death at different times (no ping-pong)', () => {
  // 1 learns of 3's death first; 2 learns it from 1's GOSSIP, which arrives
  // after 2's own round. When 1 has forgotten 3, 2 still gossips the
  // tombstone: it must not re-enter 1's view, or the two would hand it back
  // and forth for ever.
  const T = 5_000;
  const a = member(1, 1_001, { tombstoneMs: T });
  const b = member(2, 1_002, { tombstoneMs: T });
  const c = member(3, 1_003);
  a.setConnected(K(2), true, 0);
  b.setConnected(K(1), true, 0);
  for (const m of [a, b]) m.onGossip(K(3), c.gossip(0), 0);
  const e3 = a.view.get(K(3))!;
  a.onGossip(K(2), { type: 'GOSSIP', bootId: bootIdOf(1_002, 2), incarnation: 0, view: [{ ...e3, status: 'dead', reachable: false }] }, 100);
  assert.equal(a.statusOf(K(3)), 'dead');
  assert.equal(b.statusOf(K(3)), 'alive');
  // 1 ends its rounds at 500 mod 1000, 2 at 700 mod 1000; GOSSIP takes 300
  // ms. So 2 learns at 800, after its round at 700: it forgets at 6700, and
  // its GOSSIP of 5700 reaches 1 at 6000, after 1 forgot 3 at 5500.
  const inFlight: { at: number; to: Membership; from: string; gossip: GossipMessage }[] = [];
  for (let now = 100; now <= 60_000; now += 100) {
    for (const f of inFlight.filter((x) => x.at === now)) f.to.onGossip(f.from, f.gossip, now);
    if (now % 1000 === 500) inFlight.push({ at: now + 300, to: b, from: K(1), gossip: a.round(now).gossip });
    if (now % 1000 === 700) inFlight.push({ at: now + 300, to: a, from: K(2), gossip: b.round(now).gossip });
    if (now === 1_500) assert.equal(b.statusOf(K(3)), 'dead', '2 learned it from 1');
    if (now === 6_000) assert.equal(a.statusOf(K(3)), undefined, '1 forgot 3 first');
  }
  assert.equal(a.statusOf(K(3)), undefined, '1 forgot 3');
  assert.equal(b.statusOf(K(3)), undefined, '2 forgot 3');
});

void test('a 2-broker mesh never declares the other dead: 1 of 2 is not a majority', () => {
  const net = new Net([1, 2]);
  net.ticks(2);
  net.isolate(2);
  for (let i = 0; i < 60; i++) {
    net.tick();
    for (const x of net.nodes) {
      assert.equal(x.m.liveKeys().length, 2, `broker ${x.n} at ${net.now}`);
      assert.notEqual(x.m.statusOf(K(x.n === 1 ? 2 : 1)), 'dead');
    }
  }
  assert.equal(net.node(1).m.statusOf(K(2)), 'suspect');
  // Even while the other still answers (fresh GOSSIP) but cannot be reached.
  const a = member(1, 1_000);
  const b = member(2, 2_000);
  a.onGossip(K(2), b.gossip(0), 0);
  a.setConnected(K(2), false, 0);
  for (let now = ROUND; now <= 20 * ROUND; now += ROUND) {
    a.onGossip(K(2), b.round(now).gossip, now);
    a.round(now);
    assert.notEqual(a.statusOf(K(2)), 'dead');
  }
});

void test('a majority reporting unreachable is needed: one of three losing its link to a broker only suspects it', () => {
  const net = threeBrokers();
  net.setLink(1, 3, false);
  net.ticks(20);
  const a = net.node(1).m;
  assert.notEqual(a.statusOf(K(3)), 'dead');
  assert.deepEqual(a.liveKeys(), keysOf(1, 2, 3));
  assert.deepEqual(net.node(2).m.liveKeys(), keysOf(1, 2, 3));
  assert.deepEqual(net.node(3).m.liveKeys(), keysOf(1, 2, 3));
});

// ------------------------------------------------------------ hostile input

function strangers(count: number, salt: number, reachable: boolean): ViewEntry[] {
  return Array.from({ length: count }, (_, i) => {
    const id = new Uint8Array(32).fill(salt);
    id[0] = i & 0xff;
    id[1] = i >> 8;
    return { id, addresses: [`x${i}:1`], bootId: bootIdOf(5_000 + i, salt), incarnation: i, status: 'alive' as const, reachable };
  });
}

void test('hostile GOSSIP: 256 entries of unknown brokers do not grow the view past MAX_BROKERS', () => {
  const net = threeBrokers();
  const a = net.node(1).m;
  const gossip = (view: ViewEntry[]): GossipMessage => ({ type: 'GOSSIP', bootId: bootIdOf(1_002, 2), incarnation: 0, view });
  a.onGossip(K(2), gossip(strangers(MAX_BROKERS, 200, true)), net.now);
  assert.ok(a.view.size <= MAX_BROKERS, `view has ${a.view.size} entries`);
  assert.equal(a.view.size, MAX_BROKERS);
  a.onGossip(K(2), gossip(strangers(MAX_BROKERS, 201, true)), net.now);
  assert.equal(a.view.size, MAX_BROKERS, 'a second batch does not grow it either');
  for (const k of [1, 2, 3]) assert.equal(a.statusOf(K(k)), 'alive', 'the real brokers are still there');
  assert.equal(a.live[0]!.id, a.view.get(K(1))!.id);
  assert.ok(a.live.length <= MAX_BROKERS);
  assert.ok(a.gossip(net.now).view.length <= MAX_BROKERS);
  assert.ok(a.round(net.now + ROUND).gossip.view.length <= MAX_BROKERS);
});

void test('hostile GOSSIP: second-hand unreachable strangers, or strangers the registry does not admit, never enter', () => {
  const a = member(1, 1_000);
  const gossip = (view: ViewEntry[]): GossipMessage => ({ type: 'GOSSIP', bootId: bootIdOf(1_002, 2), incarnation: 0, view });
  a.onGossip(K(2), gossip(strangers(MAX_BROKERS, 200, false)), 0);
  assert.deepEqual([...a.view.keys()], [K(1)], 'nothing second-hand and unreachable entered');
  const registered = new Set([K(1), K(2)]);
  const strict = member(1, 1_000, { admit: (k) => registered.has(k) });
  strict.onGossip(K(2), gossip(strangers(MAX_BROKERS, 200, true)), 0);
  assert.deepEqual([...strict.view.keys()], [K(1)], 'nothing unregistered entered');
  // Not even first-hand.
  strict.onGossip(K(9), member(9, 9_000).gossip(0), 0);
  assert.ok(!strict.view.has(K(9)));
  strict.onGossip(K(2), member(2, 2_000).gossip(0), 0);
  assert.deepEqual(strict.liveKeys(), keysOf(1, 2));
});

void test('entries about self with another boot id (older or newer) do not change self; the same boot id is refuted', () => {
  const a = member(1, 5_000);
  const before = a.view.get(K(1))!;
  const own = before.bootId;
  const claims: ViewEntry[] = [];
  for (const bootId of [bootIdOf(4_999, 1), bootIdOf(9_999, 1), bootIdOf(5_000, 2), new Uint8Array(BOOT_ID_LENGTH)]) {
    for (const status of ['suspect', 'leaving', 'dead'] as const) {
      claims.push({ id: keyOf(1), addresses: ['evil:1'], bootId, incarnation: 7, status, reachable: false });
    }
  }
  for (const claim of claims) a.onGossip(K(2), { type: 'GOSSIP', bootId: bootIdOf(1, 2), incarnation: 0, view: [claim] }, 10);
  assert.equal(a.incarnation, 0);
  const after = a.view.get(K(1))!;
  assert.equal(hex(after.bootId), hex(own));
  assert.equal(after.status, 'alive');
  assert.equal(after.incarnation, 0);
  assert.deepEqual(after.addresses, ['b1:7000']);
  assert.equal(hex(a.live[0]!.bootId), hex(own));
  const self = a.gossip(10).view.find((e) => encodeKey(e.id) === K(1))!;
  assert.equal(hex(self.bootId), hex(own));
  assert.equal(self.status, 'alive');
  // An 'alive' claim about self, even with a higher incarnation, needs no refutation.
  a.onGossip(K(2), { type: 'GOSSIP', bootId: bootIdOf(1, 2), incarnation: 0, view: [{ ...before, incarnation: 3, reachable: true }] }, 10);
  assert.equal(a.incarnation, 0);
  // A claim about this boot below the current incarnation is already refuted.
  a.onGossip(K(2), { type: 'GOSSIP', bootId: bootIdOf(1, 2), incarnation: 0, view: [{ ...before, incarnation: 4, status: 'suspect', reachable: false }] }, 10);
  assert.equal(a.incarnation, 5, 'the same boot id: refuted past the claim');
  a.onGossip(K(2), { type: 'GOSSIP', bootId: bootIdOf(1, 2), incarnation: 0, view: [{ ...before, incarnation: 2, status: 'dead', reachable: false }] }, 10);
  assert.equal(a.incarnation, 5);
  assert.equal(a.view.get(K(1))!.incarnation, 5);
});

void test('the quorum grace: a peer never connected counts as reachable only for unreachableAfterMs', () => {
  const a = member(1, 1_000);
  a.addSeed({ id: keyOf(2), addresses: ['b2:7000'] }, 0);
  assert.equal(a.reachable(K(2), DEFAULT_UNREACHABLE_AFTER_MS - 1), true);
  assert.equal(a.reachable(K(2), DEFAULT_UNREACHABLE_AFTER_MS), false);
  a.setConnected(K(2), true, 2_000);
  assert.equal(a.reachable(K(2), 10_000), true);
  a.setConnected(K(2), false, 10_000);
  a.setConnected(K(2), false, 11_000); // a second "down" does not restart the grace
  assert.equal(a.reachable(K(2), 10_000 + DEFAULT_UNREACHABLE_AFTER_MS), false);
  assert.equal(a.reachable(K(1), 99_999), true, 'self is always reachable');
});

// ------------------------------------------------------------ merge order

void test('entries whose addresses differ only in where they split on "," are ordered, so the merge does not depend on arrival order', () => {
  // Both address lists pass the GOSSIP decoder (an address is any
  // /^[^\s/@]{1,262}$/ string, commas included): compareEntries must still
  // tell them apart, or two brokers that heard them in different orders
  // would hold different views for ever.
  const base = { id: keyOf(3), bootId: bootIdOf(1_000, 3), incarnation: 0, status: 'alive' as const };
  const x: MemberEntry = { ...base, addresses: ['h1:1,h2:2'] };
  const y: MemberEntry = { ...base, addresses: ['h1:1', 'h2:2'] };
  const ab = mergeViews(new Map(), [x, y]).get(K(3))!;
  const ba = mergeViews(new Map(), [y, x]).get(K(3))!;
  assert.notEqual(compareEntries(x, y), 0, 'two distinct entries must be ordered (membership.ts: "any two distinct entries are ordered")');
  assert.deepEqual(mergeEntry(x, y).addresses, mergeEntry(y, x).addresses, 'mergeEntry must be commutative');
  assert.deepEqual(ab.addresses, ba.addresses, 'mergeViews must not depend on the order');
});
