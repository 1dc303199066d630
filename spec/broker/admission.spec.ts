// Admission, the state machine behind a broker's handshake table
// (docs/limits.md#admission): who is evicted when a bound is reached, that
// nothing is evicted before two turns of the event loop have passed, and
// which connections count as silent.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Admission } from '../../lib/broker/admission.ts';
import type { Candidate } from '../../lib/broker/admission.ts';

function admitted<T>(a: Admission<T>, value: T, source: string, now: number): Candidate<T> {
  const r = a.admit(value, source, now);
  assert.ok(r.admitted, `expected ${String(value)} to be admitted`);
  return r.admitted;
}

const settle = (a: Admission<unknown>): void => {
  a.nextTurn();
  a.nextTurn();
};

test('under the bounds everyone is admitted and nobody is evicted', () => {
  const a = new Admission<string>({ maxHandshakes: 3, maxPerSource: 3 });
  for (const v of ['a', 'b', 'c']) {
    const r = a.admit(v, 'x', 0);
    assert.equal(r.admitted?.value, v);
    assert.equal(r.admitted && r.evict, undefined);
  }
  assert.equal(a.size, 3);
});

test('when full, the oldest silent connection is evicted, once two turns have passed since it came', () => {
  const a = new Admission<string>({ maxHandshakes: 2, maxPerSource: 10 });
  admitted(a, 'a', 'x', 0);
  admitted(a, 'b', 'y', 1);
  // Same turn: nothing may go yet.
  assert.deepEqual(a.admit('c', 'z', 2), { admitted: undefined, reason: 'limit' });
  a.nextTurn();
  assert.equal(a.admit('c', 'z', 2).admitted, undefined, 'one turn is not enough');
  a.nextTurn();
  const r = a.admit('c', 'z', 3);
  assert.equal(r.admitted?.value, 'c');
  assert.equal(r.admitted && r.evict?.value, 'a');
  assert.equal(a.size, 2);
  assert.equal(a.sizeOf('x'), 0);
});

test('a connection that sent message 1 goes after every silent one, and the oldest of them first', () => {
  const a = new Admission<string>({ maxHandshakes: 3, maxPerSource: 10 });
  const first = admitted(a, 'first', 'x', 0);
  admitted(a, 'second', 'x', 1);
  admitted(a, 'third', 'x', 2);
  settle(a);
  a.progressed(first, 5);
  let r = a.admit('n1', 'y', 6);
  assert.equal(r.admitted && r.evict?.value, 'second');
  settle(a);
  r = a.admit('n2', 'y', 7);
  assert.equal(r.admitted && r.evict?.value, 'third');
  settle(a);
  r = a.admit('n3', 'y', 8);
  assert.equal(r.admitted && r.evict?.value, 'n1', 'silent newcomers of earlier turns go before the one that progressed');
});

test('when every connection has progressed recently, the newcomer is turned away', () => {
  const a = new Admission<string>({ maxHandshakes: 1, maxPerSource: 10 });
  const c = admitted(a, 'a', 'x', 0);
  settle(a);
  a.progressed(c, 1);
  assert.equal(a.admit('b', 'y', 2).admitted, undefined);
  settle(a);
  const r = a.admit('b', 'y', 3);
  assert.equal(r.admitted && r.evict?.value, 'a', 'stuck after message 1 for two turns: it may go');
});

test('at its own bound a source evicts only its own connections, or its newcomer is turned away', () => {
  const a = new Admission<string>({ maxHandshakes: 10, maxPerSource: 2 });
  admitted(a, 'other', 'y', 0);
  admitted(a, 'x1', 'x', 1);
  admitted(a, 'x2', 'x', 2);
  assert.deepEqual(a.admit('x3', 'x', 3), { admitted: undefined, reason: 'source-limit' });
  settle(a);
  const r = a.admit('x3', 'x', 4);
  assert.equal(r.admitted && r.evict?.value, 'x1', 'not "other", though it is older');
  assert.equal(a.sizeOf('x'), 2);
  assert.equal(a.sizeOf('y'), 1);
});

test('silentSince lists the settled silent connections accepted by then, oldest first; release is idempotent', () => {
  const a = new Admission<string>({ maxHandshakes: 10, maxPerSource: 10 });
  const c1 = admitted(a, 'a', 'x', 0);
  admitted(a, 'b', 'x', 10);
  const c3 = admitted(a, 'c', 'x', 20);
  assert.deepEqual(a.silentSince(100), [], 'not settled yet');
  settle(a);
  a.progressed(c3, 25);
  assert.deepEqual(a.silentSince(10).map((c) => c.value), ['a', 'b']);
  assert.equal(a.oldestSilent, 0);
  a.release(c1);
  a.release(c1);
  assert.equal(a.oldestSilent, 10);
  assert.deepEqual(a.all().map((c) => c.value), ['b', 'c']);
  assert.equal(a.hasFresh, true, 'c progressed in this turn');
  settle(a);
  assert.equal(a.hasFresh, false);
  admitted(a, 'd', 'y', 30);
  assert.equal(a.hasFresh, true);
});

test('property: the bounds always hold, and an evicted connection had the least progress and was settled', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 6 }),
      fc.integer({ min: 1, max: 6 }),
      fc.array(fc.oneof(fc.record({ op: fc.constant('admit' as const), source: fc.integer({ min: 0, max: 3 }) }), fc.record({ op: fc.constant('turn' as const) }), fc.record({ op: fc.constant('progress' as const), pick: fc.nat() }), fc.record({ op: fc.constant('release' as const), pick: fc.nat() })), { maxLength: 200 }),
      (maxHandshakes, maxPerSource, ops) => {
        const a = new Admission<number>({ maxHandshakes, maxPerSource });
        const live: Array<Candidate<number>> = [];
        let next = 0;
        let now = 0;
        for (const o of ops) {
          now++;
          if (o.op === 'turn') a.nextTurn();
          else if (o.op === 'admit') {
            const source = `s${o.source}`;
            const before = [...live];
            const r = a.admit(next++, source, now);
            if (r.admitted) {
              if (r.evict) {
                const victim = r.evict;
                assert.ok(a.turn >= victim.turn + 2, 'only a settled connection is evicted');
                const sourceFull = before.filter((c) => c.source === source).length >= maxPerSource;
                const pool = sourceFull ? before.filter((c) => c.source === source) : before;
                const least = Math.min(...pool.filter((c) => a.turn >= c.turn + 2).map((c) => c.stage));
                assert.equal(victim.stage, least, 'the least progress goes first');
                live.splice(live.indexOf(victim), 1);
              }
              live.push(r.admitted);
            }
          } else if (live.length > 0) {
            const c = live[o.pick % live.length]!;
            if (o.op === 'progress') a.progressed(c, now);
            else {
              a.release(c);
              live.splice(live.indexOf(c), 1);
            }
          }
          assert.equal(a.size, live.length);
          assert.ok(a.size <= maxHandshakes);
          for (let s = 0; s < 4; s++) assert.ok(a.sizeOf(`s${s}`) <= maxPerSource);
        }
      },
    ),
    { numRuns: 300 },
  );
});
