// EventHub, the one event style of Broker and MeshNode: typed on/off per
// type, one object per event, listener errors isolated, and hold/release
// (events queued while held come out in order, on a later turn).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventHub } from '../../lib/protocol/event-hub.ts';

type Ev = { readonly type: 'a'; readonly n: number } | { readonly type: 'b'; readonly s: string };

test('a listener gets the events of its type only, until off()', () => {
  const hub = new EventHub<Ev>();
  const as: number[] = [];
  const bs: string[] = [];
  const onA = (e: { n: number }): void => void as.push(e.n);
  hub.on('a', onA);
  hub.on('b', (e) => void bs.push(e.s));
  hub.emit({ type: 'a', n: 1 });
  hub.emit({ type: 'b', s: 'x' });
  hub.off('a', onA);
  hub.emit({ type: 'a', n: 2 });
  assert.deepEqual(as, [1]);
  assert.deepEqual(bs, ['x']);
  assert.equal(hub.listenerCount('a'), 0);
  assert.equal(hub.listenerCount('b'), 1);
});

test('a listener that throws does not stop the others; its error goes to the error handler', () => {
  const errors: unknown[] = [];
  const hub = new EventHub<Ev>((e) => void errors.push(e));
  let after = 0;
  hub.on('a', () => {
    throw new Error('bug');
  });
  hub.on('a', () => void after++);
  hub.emit({ type: 'a', n: 1 });
  assert.equal(after, 1);
  assert.match(String(errors[0]), /bug/);
});

test('held events come out in order on a later turn, after listeners attached meanwhile; then delivery is direct', async () => {
  const hub = new EventHub<Ev>();
  hub.hold();
  hub.emit({ type: 'a', n: 1 });
  hub.release();
  hub.emit({ type: 'a', n: 2 }); // still held until the release runs
  const seen: number[] = [];
  await Promise.resolve(); // a caller attaching after an await of the factory
  hub.on('a', (e) => void seen.push(e.n));
  assert.deepEqual(seen, []);
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(seen, [1, 2]);
  hub.emit({ type: 'a', n: 3 });
  assert.deepEqual(seen, [1, 2, 3]);
});
