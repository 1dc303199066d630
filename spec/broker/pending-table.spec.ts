// The pending-request table on a hand-driven clock: per-client bounds,
// request keys, the per-session indexes (client sessions, worker in-flight),
// and the deadline sweep (queued requests answered MESH_ERR_TIMEOUT at their
// deadline, dispatched ones forgotten PENDING_GRACE after it).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PENDING_GRACE, PendingTable, requestKey } from '../../lib/broker/pending-table.ts';
import type { PendingRequest } from '../../lib/broker/pending-table.ts';
import { DEFAULT_QUEUE_LIMITS, ServiceTable } from '../../lib/broker/service-table.ts';
import { ManualTimers } from './manual-timers.ts';

const CLIENT_A = 'A'.repeat(43);
const CLIENT_B = 'B'.repeat(43);
const id = (n: number): Uint8Array => new Uint8Array(16).fill(n);

function fixture(maxPerClient?: number) {
  const timers = new ManualTimers();
  const services = new ServiceTable<PendingRequest>((p) => p.deadline);
  const expired: PendingRequest[] = [];
  const abandoned: Array<[PendingRequest, number]> = [];
  /** Whether the table still held each request when its callback ran (it must not). */
  const heldAtCallback: boolean[] = [];
  const table: PendingTable = new PendingTable({
    now: timers.now,
    timers,
    services,
    maxPerClient,
    onExpired: (p) => {
      expired.push(p);
      heldAtCallback.push(table.has(p.reqKey));
    },
    onAbandoned: (p, workerId) => {
      abandoned.push([p, workerId]);
      heldAtCallback.push(table.has(p.reqKey) || table.inflightCount(workerId) > 0);
    },
  });
  /** A request of `clientKey` sent through session `clientId`, due in `ttl` ms. */
  const request = (n: number, ttl: number, clientKey = CLIENT_A, clientId = 1): PendingRequest => ({
    reqKey: requestKey(clientKey, id(n)),
    message: { type: 'REQUEST', id: id(n), service: 'echo', attempt: 1, dup: false, ttl, payload: new Uint8Array(4) },
    clientId,
    clientKey,
    deadline: timers.now() + ttl,
    receivedAt: timers.now(),
    workerId: undefined,
    refusals: 0,
  });
  /** Adds the request and queues it in its service, as the router does when no worker has a credit. */
  const queue = (p: PendingRequest): PendingRequest => {
    assert.ok(table.add(p));
    assert.ok(services.ensure(p.message.service).enqueue({ item: p, bytes: p.message.payload.length }, DEFAULT_QUEUE_LIMITS));
    table.watch(p.deadline);
    return p;
  };
  return { timers, services, table, expired, abandoned, heldAtCallback, request, queue };
}

test('a request key is the client key and the request id in hex', () => {
  assert.equal(requestKey(CLIENT_A, id(0xab)), `${CLIENT_A}:${'ab'.repeat(16)}`);
  assert.notEqual(requestKey(CLIENT_A, id(1)), requestKey(CLIENT_B, id(1)));
});

test('each client key may have maxPerClient requests pending; forgetting one frees its slot', () => {
  const { table, request } = fixture(2);
  assert.ok(table.add(request(1, 100)));
  assert.ok(table.add(request(2, 100, CLIENT_A, 7)), 'another session of the same key counts against the same bound');
  assert.equal(table.add(request(3, 100)), false);
  assert.equal(table.countFor(CLIENT_A), 2);
  assert.equal(table.has(requestKey(CLIENT_A, id(3))), false, 'a refused request is not taken');
  assert.ok(table.add(request(1, 100, CLIENT_B)), 'other clients are not affected');
  assert.ok(table.forget(requestKey(CLIENT_A, id(1))));
  assert.equal(table.forget(requestKey(CLIENT_A, id(1))), false, 'forgetting twice');
  assert.equal(table.countFor(CLIENT_A), 1);
  assert.ok(table.add(request(3, 100)));
  assert.equal(table.size, 3);
});

test('a queued request is answered at its deadline, not before', () => {
  const { timers, services, table, expired, heldAtCallback, request, queue } = fixture();
  const p = queue(request(1, 300));
  timers.advance(299);
  assert.deepEqual(expired, []);
  assert.ok(table.has(p.reqKey));
  timers.advance(1);
  assert.deepEqual(expired, [p]);
  assert.deepEqual(heldAtCallback, [false], 'forgotten before its client is answered');
  assert.equal(table.countFor(CLIENT_A), 0);
  assert.equal(services.get('echo'), undefined, 'the emptied service (no workers) is pruned');
});

test('the sweep re-arms for the next deadline, and a deadline a resend extended is honoured', () => {
  const { timers, table, expired, request, queue } = fixture();
  const first = queue(request(1, 100));
  const second = queue(request(2, 300));
  const third = queue(request(3, 200));
  timers.advance(50);
  third.deadline = timers.now() + 400; // a resend: the client gave it more time
  table.watch(third.deadline);
  timers.advance(50);
  assert.deepEqual(expired, [first]);
  timers.advance(200);
  assert.deepEqual(expired, [first, second]);
  assert.ok(table.has(third.reqKey), 'not expired at its old deadline');
  timers.advance(150);
  assert.deepEqual(expired, [first, second, third]);
  assert.equal(timers.armed, 0, 'nothing left to sweep');
});

test('a queued request whose client left is dropped from the queue without an answer', () => {
  const { timers, services, table, expired, request, queue } = fixture();
  const gone = queue(request(1, 100));
  const kept = queue(request(2, 500));
  table.forget(gone.reqKey);
  timers.advance(100);
  assert.deepEqual(expired, []);
  assert.equal(services.get('echo')?.queueLength, 1);
  assert.equal(services.get('echo')?.queueBytes, kept.message.payload.length);
});

test('a dispatched request is forgotten PENDING_GRACE after its deadline, and its worker told', () => {
  const { timers, table, expired, abandoned, heldAtCallback, request, queue } = fixture();
  const p = request(1, 100);
  assert.ok(table.add(p));
  table.assign(p, 9);
  assert.equal(table.inflightCount(9), 1);
  const queued = queue(request(2, 500)); // a sweep runs in between, at 500
  timers.advance(100 + PENDING_GRACE - 1);
  assert.deepEqual(expired, [queued]);
  assert.ok(table.has(p.reqKey), 'still waiting for a late reply');
  timers.advance(1);
  assert.deepEqual(expired, [queued], 'a dispatched request is never answered MESH_ERR_TIMEOUT by the broker');
  assert.deepEqual(abandoned, [[p, 9]]);
  assert.deepEqual(heldAtCallback, [false, false], 'forgotten (and taken off the worker) before the callback');
  assert.equal(table.countFor(CLIENT_A), 0);
});

test('watch only ever moves the sweep earlier, and stop ends it', () => {
  const { timers, table, expired, queue, request } = fixture();
  table.watch(500);
  table.watch(900);
  assert.equal(timers.nextDue, 500);
  table.watch(200);
  assert.equal(timers.nextDue, 200);
  assert.equal(timers.armed, 1, 'one sweep timer at a time');
  table.stop();
  assert.equal(timers.armed, 0);
  queue(request(1, 50));
  timers.advance(1000);
  assert.deepEqual(expired, [], 'no sweep after stop');
});

test('a worker answer is found by id among that worker\'s requests, or by client key and id wherever it went', () => {
  const { table, request } = fixture();
  const a = request(1, 1000, CLIENT_A);
  const b = request(1, 1000, CLIENT_B, 2); // the same id from another client
  const c = request(2, 1000, CLIENT_A);
  for (const p of [a, b, c]) assert.ok(table.add(p));
  table.assign(a, 10);
  table.assign(b, 11);
  table.assign(c, 10);
  assert.equal(table.takeInflight(12, id(1), undefined), undefined, 'not in flight on worker 12');
  assert.equal(table.takeInflight(11, id(1), undefined), b, 'by id on its own worker: not the other client\'s');
  assert.equal(table.has(b.reqKey), false);
  assert.equal(table.takeInflight(11, id(1), undefined), undefined, 'answered once');
  // Worker 12 answers, through this broker, a request addressed to client A that went to worker 10.
  assert.equal(table.takeInflight(12, id(2), Buffer.from(CLIENT_A, 'base64url')), c);
  assert.equal(table.inflightCount(10), 1, 'taken off worker 10 as well');
  assert.equal(table.takeInflight(12, id(9), Buffer.from(CLIENT_A, 'base64url')), undefined, 'nothing pending with that key');
  assert.equal(table.size, 1);
});

test('a refused request comes off its worker and stays pending', () => {
  const { table, request } = fixture();
  const p = request(1, 1000);
  assert.ok(table.add(p));
  table.assign(p, 10);
  assert.equal(table.unassign(11, id(1)), undefined, 'another worker cannot refuse it');
  assert.equal(table.unassign(10, id(1)), p);
  assert.equal(p.workerId, undefined);
  assert.equal(table.inflightCount(10), 0);
  assert.ok(table.has(p.reqKey));
  assert.equal(table.unassign(10, id(1)), undefined, 'refused once');
});

test('a closed client session loses (and returns) its undispatched requests, not its dispatched ones nor those resent through another session', () => {
  const { table, request } = fixture();
  const queued = request(1, 1000, CLIENT_A, 1);
  const dispatched = request(2, 1000, CLIENT_A, 1);
  const moved = request(3, 1000, CLIENT_A, 1);
  const other = request(4, 1000, CLIENT_A, 2);
  for (const p of [queued, dispatched, moved, other]) assert.ok(table.add(p));
  table.assign(dispatched, 10);
  table.moveClient(moved, 2);
  assert.equal(moved.clientId, 2);
  assert.deepEqual(table.releaseClient(1), [queued], 'the forgotten requests, for the counters');
  assert.equal(table.has(queued.reqKey), false);
  assert.ok(table.has(dispatched.reqKey), 'its reply may still reach the client through another session');
  assert.ok(table.has(moved.reqKey));
  assert.ok(table.has(other.reqKey));
  assert.deepEqual(new Set(table.releaseClient(2)), new Set([moved, other]));
  assert.deepEqual(table.releaseClient(2), [], 'once');
  assert.equal(table.has(moved.reqKey), false);
  assert.equal(table.has(other.reqKey), false);
  assert.equal(table.countFor(CLIENT_A), 1);
});

test('a closed worker session hands back its requests in dispatch order, undispatched and still pending', () => {
  const { table, request } = fixture();
  const ps = [request(3, 1000), request(1, 1000), request(2, 1000)];
  for (const p of ps) {
    assert.ok(table.add(p));
    table.assign(p, 10);
  }
  const back = table.releaseWorker(10);
  assert.deepEqual(back, ps);
  assert.ok(back.every((p) => p.workerId === undefined && table.has(p.reqKey)));
  assert.equal(table.inflightCount(10), 0);
  assert.deepEqual(table.releaseWorker(10), []);
});

test('a queue entry whose record was forgotten stays dead when the client resends the same id (a new record under the same key)', () => {
  const { timers, services, table, expired, request, queue } = fixture();
  const old = queue(request(7, 1000));
  // The client's link closed: its undispatched request is forgotten, its queue entry stays behind.
  assert.ok(table.forget(old.reqKey));
  // It resends the same id through another session: a new record, queued again.
  const fresh = queue(request(7, 1000, CLIENT_A, 2));
  assert.equal(fresh.reqKey, old.reqKey);
  assert.equal(table.isLive(old), false, 'the old record is not the pending one');
  assert.equal(table.isLive(fresh), true);
  assert.equal(table.forgetRecord(old), false, 'forgetting the old record leaves the new one pending');
  assert.equal(table.has(fresh.reqKey), true);
  // The sweep drops the dead entry without answering, and answers the live one once at its deadline.
  timers.advance(1000);
  assert.deepEqual(expired, [fresh]);
  assert.equal(services.get('echo'), undefined, 'both entries left the queue');
});
