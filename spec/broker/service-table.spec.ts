import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ServiceState, ServiceTable } from '../../lib/broker/service-table.ts';

const w = (id: number) => ({ id, key: `k${id}` });

test('round-robin from the one after the last chosen, among workers with credit', () => {
  const s = new ServiceState<string>('echo', () => 0);
  s.offer(w(1), 2);
  s.offer(w(2), 2);
  s.offer(w(3), 1);
  assert.deepEqual([s.pick(), s.pick(), s.pick(), s.pick(), s.pick(), s.pick()].map((x) => x?.id), [1, 2, 3, 1, 2, undefined]);
  s.offer(w(3), 1);
  assert.equal(s.pick()?.id, 3);
});

test('picks spread evenly and never exceed credits (property)', () => {
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 0, max: 20 }), { minLength: 1, maxLength: 6 }), (credits) => {
      const s = new ServiceState<string>('x', () => 0);
      credits.forEach((c, i) => s.offer(w(i), c));
      const got = new Map<number, number>();
      for (let p = s.pick(); p; p = s.pick()) got.set(p.id, (got.get(p.id) ?? 0) + 1);
      credits.forEach((c, i) => assert.equal(got.get(i) ?? 0, c));
      assert.equal(s.totalCredits, 0);
    }),
  );
});

test('withdraw keeps the cursor valid', () => {
  const s = new ServiceState<string>('echo', () => 0);
  for (const i of [1, 2, 3]) s.offer(w(i), 10);
  assert.equal(s.pick()?.id, 1);
  assert.equal(s.pick()?.id, 2);
  s.withdraw(2);
  assert.equal(s.pick()?.id, 3);
  assert.equal(s.pick()?.id, 1);
  s.withdraw(1);
  s.withdraw(3);
  assert.equal(s.pick(), undefined);
});

test('queue is FIFO and bounded in count and bytes; deadlines are read from the items', () => {
  const deadlines: Record<string, number> = { a: 5, b: 1, c: 9, d: 9 };
  const s = new ServiceState<string>('q', (item) => deadlines[item]!);
  const limits = { maxCount: 3, maxBytes: 100 };
  assert.ok(s.enqueue({ item: 'a', bytes: 10 }, limits));
  assert.ok(s.enqueue({ item: 'b', bytes: 80 }, limits));
  assert.ok(!s.enqueue({ item: 'c', bytes: 20 }, limits), 'bytes bound');
  assert.ok(s.enqueue({ item: 'c', bytes: 10 }, limits));
  assert.ok(!s.enqueue({ item: 'd', bytes: 0 }, limits), 'count bound');
  assert.equal(s.earliestDeadline(), 1);
  deadlines.b = 7; // extended by a resend
  assert.equal(s.earliestDeadline(), 5);
  assert.deepEqual(s.removeWhere((e) => e.item === 'b').map((e) => e.item), ['b']);
  assert.equal(s.queueBytes, 20);
  assert.deepEqual([s.dequeue()?.item, s.dequeue()?.item, s.dequeue()?.item], ['a', 'c', undefined]);
  assert.equal(s.queueBytes, 0);
});

test('the table creates services on offer and withdraws a worker everywhere', () => {
  const t = new ServiceTable<string>(() => 0);
  t.ensure('a').offer(w(1), 1);
  t.ensure('b').offer(w(1), 1);
  t.ensure('b').offer(w(2), 1);
  assert.deepEqual(t.withdrawAll(1).sort(), ['a', 'b']);
  assert.equal(t.get('b')?.workers.length, 1);
  assert.equal(t.get('c'), undefined);
});
