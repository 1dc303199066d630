// The requester (the client half of a node) against a fake link pool and a
// clock moved by hand: broker choice, resends with dup and the worker hint,
// hand-backs and their backoff, the retry budget, and the deadline
// arithmetic of docs/api.md#calling-a-service and
// docs/architecture.md#the-life-of-a-request-across-a-broker-failure.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Requester } from '../../lib/node/requester.ts';
import { MeshError, isMeshError } from '../../lib/errors.ts';
import type { ErrorCode } from '../../lib/errors.ts';
import type { RequestMessage } from '../../lib/protocol/messages.ts';
import { FakeClock } from './fake-clock.ts';
import { FakePool } from './fake-links.ts';
import type { FakeLink, Sent } from './fake-links.ts';

/** A worker's key, as DISPATCHED names it. */
const W = new Uint8Array(32).fill(7);

function setup(...keys: string[]): { clock: FakeClock; pool: FakePool; requester: Requester } {
  const clock = new FakeClock();
  const pool = new FakePool(...(keys.length > 0 ? keys : ['A', 'B', 'C']));
  return { clock, pool, requester: new Requester(pool, clock) };
}

interface Tracked {
  state: 'pending' | 'resolved' | 'rejected';
  value: Buffer | undefined;
  error: unknown;
}

/** Records how a request settles. */
function track(p: Promise<Buffer>): Tracked {
  const t: Tracked = { state: 'pending', value: undefined, error: undefined };
  p.then(
    (v) => Object.assign(t, { state: 'resolved', value: v }),
    (e: unknown) => Object.assign(t, { state: 'rejected', error: e }),
  );
  return t;
}

/** Lets promise callbacks run (real I/O turn; the fake clock does not move). */
const flush = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

function reply(requester: Requester, link: FakeLink, id: Uint8Array, text = 'ok'): void {
  requester.onMessage(link, { type: 'REPLY', id, payload: Buffer.from(text) });
}

function error(requester: Requester, link: FakeLink, id: Uint8Array, code: ErrorCode, retryable: boolean): void {
  requester.onMessage(link, { type: 'ERROR', id, code, retryable, text: `${code} from ${link.key}` });
}

function dispatched(requester: Requester, link: FakeLink, id: Uint8Array, worker = W): void {
  requester.onMessage(link, { type: 'DISPATCHED', dispatched: [{ id, worker }] });
}

function rejectedWith(t: Tracked, code: ErrorCode): boolean {
  return t.state === 'rejected' && isMeshError(t.error, code);
}

const keys = (sent: ReadonlyArray<Sent<RequestMessage>>): string[] => sent.map((s) => s.link.key);

// ------------------------------------------------------------ broker choice

test('requests go round-robin across the healthy brokers', async () => {
  const { pool, requester } = setup('A', 'B', 'C');
  pool.link('C').healthy = false; // draining: takes no new requests
  for (let i = 0; i < 4; i++) track(requester.request('echo', Buffer.from('x'), { timeout: 10_000 }));
  const first = keys(pool.requests());
  assert.ok(!first.includes('C'), `an unhealthy broker got a request: ${first.join(',')}`);
  pool.link('C').healthy = true;
  for (let i = 0; i < 6; i++) track(requester.request('echo', Buffer.from('x'), { timeout: 10_000 }));
  const next = keys(pool.requests().slice(4));
  assert.deepEqual(new Set(next.slice(0, 3)), new Set(['A', 'B', 'C']), `three in a row go to three brokers: ${next.join(',')}`);
  assert.deepEqual(next.slice(3), next.slice(0, 3), `then the same turn again: ${next.join(',')}`);
  await flush();
});

test('the first REQUEST: 16-byte id, attempt 1, no dup, no hint, the payload', () => {
  const { pool, requester } = setup('A');
  track(requester.request('billing.charge', Buffer.from('pay'), { timeout: 10_000 }));
  const { link, message } = pool.last();
  assert.equal(link.key, 'A');
  assert.equal(message.id.length, 16);
  assert.equal(message.service, 'billing.charge');
  assert.equal(message.attempt, 1);
  assert.equal(message.dup, false);
  assert.equal(message.worker, undefined);
  assert.equal(Buffer.from(message.payload).toString(), 'pay');
  assert.equal(link.active, 1, 'the link counts the request in flight');
});

test('a resend after an attempt timeout avoids the broker of the failed attempt', () => {
  const { clock, pool, requester } = setup('A', 'B', 'C');
  for (let i = 0; i < 6; i++) track(requester.request('echo', Buffer.from('x'), { timeout: 900 }));
  clock.advance(300); // every first attempt times out (900 / 3)
  const all = pool.requests();
  assert.equal(all.length, 12);
  const firstLink = new Map(all.filter((s) => s.message.attempt === 1).map((s) => [Buffer.from(s.message.id).toString('hex'), s.link.key]));
  for (const s of all.filter((x) => x.message.attempt === 2)) {
    assert.notEqual(s.link.key, firstLink.get(Buffer.from(s.message.id).toString('hex')), 'resent through the broker that just failed');
  }
});

test('with one healthy broker, a resend goes through it again', () => {
  const { clock, pool, requester } = setup('A', 'B');
  pool.down(pool.link('B'));
  track(requester.request('echo', Buffer.from('x'), { timeout: 900 }));
  clock.advance(300);
  assert.deepEqual(keys(pool.requests()), ['A', 'A']);
});

test('the broker option picks the first attempt only; unknown or unhealthy falls back to round-robin', () => {
  const { clock, pool, requester } = setup('A', 'B', 'C');
  track(requester.request('echo', Buffer.from('x'), { timeout: 900, broker: 'B' }));
  track(requester.request('echo', Buffer.from('x'), { timeout: 900, broker: pool.link('C').url }));
  assert.deepEqual(keys(pool.requests()), ['B', 'C'], 'by key, and by mesh:// URL');
  clock.advance(300);
  const resends = pool.requests().slice(2);
  assert.equal(resends.length, 2);
  assert.notEqual(resends[0]!.link.key, 'B', 'the resend is not steered back to the preferred broker');
  assert.notEqual(resends[1]!.link.key, 'C');
  pool.link('B').healthy = false;
  const before = pool.requests().length;
  const t = track(requester.request('echo', Buffer.from('x'), { timeout: 900, broker: 'B' }));
  const u = track(requester.request('echo', Buffer.from('x'), { timeout: 900, broker: 'no-such-broker' }));
  const fallback = pool.requests().slice(before);
  assert.equal(fallback.length, 2);
  assert.ok(fallback.every((s) => s.link.key !== 'B'), 'an unhealthy preferred broker is not used');
  assert.equal(t.state, 'pending');
  assert.equal(u.state, 'pending');
});

test('a send the link refuses goes to the next healthy broker, still as attempt 1', () => {
  const { pool, requester } = setup('A', 'B');
  pool.link('A').accepts = false;
  track(requester.request('echo', Buffer.from('x'), { timeout: 900, broker: 'A' }));
  const sent = pool.requests();
  assert.deepEqual(keys(sent), ['B']);
  assert.equal(sent[0]!.message.attempt, 1);
  assert.equal(pool.link('A').active, 0, 'the refused send is not counted in flight');
});

test('a broker that answered MESH_ERR_NO_SERVICE gets no requests for that service for 1 s while others are healthy', async () => {
  const { clock, pool, requester } = setup('A', 'B');
  const first = track(requester.request('echo', Buffer.from('x'), { timeout: 10_000 }));
  const { link: lacking, message } = pool.last();
  const other = lacking.key === 'A' ? pool.link('B') : pool.link('A');
  error(requester, lacking, message.id, 'MESH_ERR_NO_SERVICE', true);
  const resend = pool.last();
  assert.equal(resend.link, other, 'resent through the other broker');
  assert.equal(resend.message.attempt, 2);
  assert.equal(resend.message.dup, false, 'refused before dispatch: no dup');
  reply(requester, other, message.id);
  await flush();
  assert.equal(first.state, 'resolved');

  const mark = pool.requests().length;
  for (let i = 0; i < 4; i++) track(requester.request('echo', Buffer.from('x'), { timeout: 10_000 }));
  assert.deepEqual(keys(pool.requests().slice(mark)), [other.key, other.key, other.key, other.key]);
  for (let i = 0; i < 2; i++) track(requester.request('other', Buffer.from('x'), { timeout: 10_000 }));
  assert.ok(keys(pool.requests().slice(mark + 4)).includes(lacking.key), 'another service still goes there');

  other.healthy = false;
  track(requester.request('echo', Buffer.from('x'), { timeout: 10_000 }));
  assert.equal(pool.last().link, lacking, 'when it is the only healthy broker, it is used anyway');
  other.healthy = true;

  clock.advance(999);
  const beforeExpiry = pool.requests().length;
  for (let i = 0; i < 2; i++) track(requester.request('echo', Buffer.from('x'), { timeout: 10_000 }));
  assert.deepEqual(keys(pool.requests().slice(beforeExpiry)), [other.key, other.key], 'still avoided at 999 ms');
  clock.advance(1);
  const atExpiry = pool.requests().length;
  for (let i = 0; i < 2; i++) track(requester.request('echo', Buffer.from('x'), { timeout: 10_000 }));
  assert.ok(keys(pool.requests().slice(atExpiry)).includes(lacking.key), 'used again after 1 s');
});

// ------------------------------------------------------------ dup and the worker hint

test('DISPATCHED sets the worker hint: a resend after an attempt timeout carries the same id, dup and the hint', () => {
  const { clock, pool, requester } = setup('A', 'B');
  track(requester.request('echo', Buffer.from('body'), { timeout: 900 }));
  const first = pool.last();
  dispatched(requester, first.link, first.message.id);
  clock.advance(299);
  assert.equal(pool.requests().length, 1, 'no resend before the attempt timeout');
  clock.advance(1);
  const second = pool.last();
  assert.notEqual(second.link, first.link);
  assert.deepEqual(second.message.id, first.message.id);
  assert.equal(second.message.attempt, 2);
  assert.equal(second.message.dup, true);
  assert.deepEqual(second.message.worker, W);
  assert.equal(Buffer.from(second.message.payload).toString(), 'body');
  assert.equal(first.link.active, 0, 'the failed attempt no longer counts on its link');
  assert.equal(second.link.active, 1);
});

test('without DISPATCHED, a resend after an attempt timeout is dup with no hint', () => {
  const { clock, pool, requester } = setup('A', 'B');
  track(requester.request('echo', Buffer.from('x'), { timeout: 900 }));
  clock.advance(300);
  const second = pool.last();
  assert.equal(second.message.attempt, 2);
  assert.equal(second.message.dup, true);
  assert.equal(second.message.worker, undefined);
});

test('a DISPATCHED from an earlier attempt\'s broker does not replace the hint of the current one', () => {
  const { clock, pool, requester } = setup('A', 'B', 'C');
  track(requester.request('echo', Buffer.from('x'), { timeout: 900 }));
  const first = pool.last();
  dispatched(requester, first.link, first.message.id, W);
  clock.advance(300);
  const second = pool.last();
  const stale = new Uint8Array(32).fill(9);
  dispatched(requester, first.link, first.message.id, stale); // late news from the first broker
  clock.advance(300);
  assert.deepEqual(pool.last().message.worker, W);
  assert.notEqual(pool.last().link, second.link);
});

test('an overdue attempt timer acts after the input already waiting: a DISPATCHED read then gives the hint, a REPLY read then wins', async () => {
  const { clock, pool, requester } = setup('A', 'B');
  track(requester.request('echo', Buffer.from('x'), { timeout: 900 }));
  const first = pool.last();
  clock.fire(350); // the process was starved: the timer runs before the socket is read
  dispatched(requester, first.link, first.message.id); // read in the same turn
  clock.runImmediates();
  assert.deepEqual(pool.last().message.worker, W, 'the resend carries the worker named in the waiting DISPATCHED');

  const t = track(requester.request('echo', Buffer.from('y'), { timeout: 900 }));
  const other = pool.last();
  clock.fire(350);
  reply(requester, other.link, other.message.id, 'late but there');
  clock.runImmediates();
  await flush();
  assert.equal(pool.requests().filter((s) => Buffer.compare(s.message.id, other.message.id) === 0).length, 1, 'no resend');
  assert.equal(t.state, 'resolved');
  assert.equal(t.value?.toString(), 'late but there');
});

test('a link going down resends its attempts at once, with dup and the hint, through another broker', async () => {
  const { pool, requester } = setup('A', 'B');
  const t = track(requester.request('echo', Buffer.from('x'), { timeout: 900, broker: 'A' }));
  const u = track(requester.request('echo', Buffer.from('y'), { timeout: 900, broker: 'B' }));
  const onA = pool.requests()[0]!;
  dispatched(requester, onA.link, onA.message.id);
  pool.down(pool.link('A'));
  requester.onLinkDown(pool.link('A'), new MeshError('MESH_ERR_CONNECTION', 'lost'));
  const resend = pool.last();
  assert.equal(resend.link.key, 'B');
  assert.deepEqual(resend.message.id, onA.message.id);
  assert.equal(resend.message.attempt, 2);
  assert.equal(resend.message.dup, true);
  assert.deepEqual(resend.message.worker, W);
  assert.equal(pool.requests().length, 3, 'the attempt on B was not resent');
  assert.equal(pool.link('A').active, 0);
  reply(requester, pool.link('B'), onA.message.id, 'a');
  reply(requester, pool.link('B'), pool.requests()[1]!.message.id, 'b');
  await flush();
  assert.equal(t.value?.toString(), 'a');
  assert.equal(u.value?.toString(), 'b');
  assert.equal(pool.link('B').active, 0);
});

test('a link going down before DISPATCHED resends with dup but no hint: the first copy may have run', () => {
  const { pool, requester } = setup('A', 'B');
  track(requester.request('echo', Buffer.from('x'), { timeout: 900, broker: 'A' }));
  pool.down(pool.link('A'));
  requester.onLinkDown(pool.link('A'), undefined);
  const resend = pool.last();
  assert.equal(resend.link.key, 'B');
  assert.equal(resend.message.dup, true);
  assert.equal(resend.message.worker, undefined);
});

test('a link going down with no retry left ends the request with the link\'s error at once', async () => {
  const { pool, requester } = setup('A', 'B');
  const t = track(requester.request('echo', Buffer.from('x'), { timeout: 900, retries: 0, broker: 'A' }));
  requester.onLinkDown(pool.link('A'), new MeshError('MESH_ERR_HEARTBEAT', 'silent'));
  await flush();
  assert.ok(rejectedWith(t, 'MESH_ERR_HEARTBEAT'), String(t.error));
  assert.equal(pool.requests().length, 1);
});

// ------------------------------------------------------------ errors

test('a retryable ERROR resends without dup; a non-retryable one ends the request; a broker\'s MESH_ERR_TIMEOUT is left to the client\'s timers', async () => {
  const { pool, requester } = setup('A', 'B');
  const busy = track(requester.request('echo', Buffer.from('x'), { timeout: 900 }));
  const b1 = pool.last();
  error(requester, b1.link, b1.message.id, 'MESH_ERR_BUSY', true);
  const b2 = pool.last();
  assert.equal(b2.message.attempt, 2);
  assert.equal(b2.message.dup, false);
  assert.notEqual(b2.link, b1.link);
  error(requester, b1.link, b1.message.id, 'MESH_ERR_BUSY', true); // the old attempt's news: ignored
  assert.equal(pool.requests().length, 2);
  error(requester, b2.link, b2.message.id, 'MESH_ERR_HANDLER', false);
  await flush();
  assert.ok(rejectedWith(busy, 'MESH_ERR_HANDLER'));
  assert.match((busy.error as Error).message, /MESH_ERR_HANDLER from/);

  const slow = track(requester.request('echo', Buffer.from('x'), { timeout: 900 }));
  const s1 = pool.last();
  error(requester, s1.link, s1.message.id, 'MESH_ERR_TIMEOUT', true);
  await flush();
  assert.equal(slow.state, 'pending');
  assert.equal(pool.requests().length, 3, 'no resend for a broker\'s TIMEOUT');
});

test('a reply is matched by id on any broker; later copies are ignored', async () => {
  const { clock, pool, requester } = setup('A', 'B');
  const t = track(requester.request('echo', Buffer.from('x'), { timeout: 900 }));
  const first = pool.last();
  clock.advance(300);
  const second = pool.last();
  reply(requester, first.link, first.message.id, 'from the first');
  reply(requester, second.link, second.message.id, 'from the second');
  await flush();
  assert.equal(t.value?.toString(), 'from the first');
  assert.equal(requester.size, 0);
  assert.equal(first.link.active + second.link.active, 0);
});

test('a payload over the broker\'s limit fails with MESH_ERR_ENVELOPE_TOO_LARGE', async () => {
  const { pool, requester } = setup('A');
  pool.link('A').peerMaxPayload = 4;
  const t = track(requester.request('echo', Buffer.from('12345'), { timeout: 900 }));
  await flush();
  assert.ok(rejectedWith(t, 'MESH_ERR_ENVELOPE_TOO_LARGE'));
  assert.equal(pool.requests().length, 0);
});

// ------------------------------------------------------------ hand-backs

test('a REFUSED hand-back resends at once without using a retry, without dup; REFUSED from another broker is ignored', async () => {
  const { pool, requester } = setup('A', 'B', 'C');
  const t = track(requester.request('echo', Buffer.from('x'), { timeout: 900, retries: 0 }));
  const first = pool.last();
  const elsewhere = pool.links.find((l) => l !== first.link)!;
  requester.onMessage(elsewhere, { type: 'REFUSED', id: first.message.id });
  assert.equal(pool.requests().length, 1, 'REFUSED from a broker not carrying the attempt');
  requester.onMessage(first.link, { type: 'REFUSED', id: first.message.id });
  const second = pool.last();
  assert.notEqual(second.link, first.link);
  assert.equal(second.message.attempt, 2);
  assert.equal(second.message.dup, false);
  reply(requester, second.link, second.message.id);
  await flush();
  assert.equal(t.state, 'resolved', 'with retries: 0 the request still went through');
});

test('a hand-back after an earlier attempt was dispatched keeps dup and the hint', () => {
  const { clock, pool, requester } = setup('A', 'B', 'C');
  track(requester.request('echo', Buffer.from('x'), { timeout: 900, retries: 1 }));
  const first = pool.last();
  dispatched(requester, first.link, first.message.id);
  clock.advance(450); // 900 / 2: the one retry is used
  const second = pool.last();
  requester.onMessage(second.link, { type: 'REFUSED', id: second.message.id });
  const third = pool.last();
  assert.equal(third.message.attempt, 3, 'resent although no retry is left');
  assert.notEqual(third.link, second.link);
  assert.equal(third.message.dup, true);
  assert.deepEqual(third.message.worker, W);
  assert.equal(third.message.ttl, 450, 'the last attempt carries all the time left');
});

test('a late DISPATCHED from an earlier attempt\'s broker gives the hint while none is known; a hand-back then sets dup', () => {
  const { pool, requester } = setup('A', 'B', 'C');
  track(requester.request('echo', Buffer.from('x'), { timeout: 900 }));
  const first = pool.last();
  error(requester, first.link, first.message.id, 'MESH_ERR_BUSY', true);
  const second = pool.last();
  assert.equal(second.message.dup, false);
  dispatched(requester, first.link, first.message.id); // the first broker did dispatch a copy after all
  requester.onMessage(second.link, { type: 'REFUSED', id: second.message.id });
  const third = pool.last();
  assert.equal(third.message.attempt, 3);
  assert.equal(third.message.dup, true, 'a copy was dispatched: the resend may run a second time');
  assert.deepEqual(third.message.worker, W);
});

test('DRAIN hands back the attempts on that broker not yet dispatched; dispatched ones stay and their replies count', async () => {
  const { pool, requester } = setup('A', 'B');
  const kept = track(requester.request('echo', Buffer.from('x'), { timeout: 900, broker: 'A' }));
  const moved = track(requester.request('echo', Buffer.from('y'), { timeout: 900, broker: 'A', retries: 0 }));
  const [k, m] = pool.requests();
  dispatched(requester, k!.link, k!.message.id);
  pool.link('A').healthy = false; // draining: up, but takes nothing new
  requester.onLinkDraining(pool.link('A'));
  assert.equal(pool.requests().length, 3);
  const resend = pool.last();
  assert.equal(resend.link.key, 'B');
  assert.deepEqual(resend.message.id, m!.message.id);
  assert.equal(resend.message.dup, false);
  reply(requester, pool.link('A'), k!.message.id, 'kept');
  reply(requester, pool.link('B'), m!.message.id, 'moved');
  await flush();
  assert.equal(kept.value?.toString(), 'kept');
  assert.equal(moved.value?.toString(), 'moved');
});

test('repeated hand-backs back off 10, 20, 40 ... ms up to 250 ms; the ninth fails the request', async () => {
  const { clock, pool, requester } = setup('A', 'B');
  const t = track(requester.request('echo', Buffer.from('x'), { timeout: 60_000 }));
  const waits: number[] = [];
  for (let i = 0; i < 8; i++) {
    const { link, message } = pool.last();
    const before = pool.requests().length;
    requester.onMessage(link, { type: 'REFUSED', id: message.id });
    let waited = 0;
    while (pool.requests().length === before) {
      assert.ok(waited < 1000, 'no resend within 1 s');
      clock.advance(1);
      waited++;
    }
    waits.push(waited);
  }
  assert.deepEqual(waits, [0, 10, 20, 40, 80, 160, 250, 250]);
  assert.deepEqual(pool.requests().map((s) => s.message.attempt), [1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assert.ok(pool.requests().every((s) => !s.message.dup));
  const { link, message } = pool.last();
  requester.onMessage(link, { type: 'REFUSED', id: message.id });
  await flush();
  assert.ok(rejectedWith(t, 'MESH_ERR_DRAINING'), String(t.error));
  assert.equal(pool.requests().length, 9);
});

test('a hand-back of attempt 255 (the highest the protocol allows) ends the request instead of sending attempt 256', async () => {
  const { clock, pool, requester } = setup('A', 'B');
  const t = track(requester.request('echo', Buffer.from('x'), { timeout: 1_000_000, retries: 254 }));
  for (let i = 1; i < 255; i++) {
    clock.advance(100); // a token back for each retry
    const { link, message } = pool.last();
    error(requester, link, message.id, 'MESH_ERR_BUSY', true);
  }
  const last = pool.last();
  assert.equal(last.message.attempt, 255);
  requester.onMessage(last.link, { type: 'REFUSED', id: last.message.id });
  await flush();
  assert.ok(rejectedWith(t, 'MESH_ERR_DRAINING'), String(t.error));
  assert.equal(pool.requests().length, 255);
});

// ------------------------------------------------------------ the retry budget

/** Spends the whole budget (100 tokens) at the current time: 100 requests each resent once after MESH_ERR_BUSY. */
function spendBudget(pool: FakePool, requester: Requester): void {
  for (let i = 0; i < 100; i++) {
    track(requester.request('spend', Buffer.from('x'), { timeout: 60_000 }));
    const { link, message } = pool.last();
    error(requester, link, message.id, 'MESH_ERR_BUSY', true);
    assert.equal(pool.last().message.attempt, 2, `retry ${i + 1} of the budget`);
  }
}

test('the retry budget stops a storm: 100 retries, then a failed attempt ends its request; it refills at 10 per second', async () => {
  const { clock, pool, requester } = setup('A', 'B');
  spendBudget(pool, requester);
  const t = track(requester.request('echo', Buffer.from('x'), { timeout: 60_000 }));
  const first = pool.last();
  error(requester, first.link, first.message.id, 'MESH_ERR_BUSY', true);
  await flush();
  assert.ok(rejectedWith(t, 'MESH_ERR_BUSY'), 'no token left: no retry');
  assert.equal(pool.last(), first);

  clock.advance(100); // one token back
  const u = track(requester.request('echo', Buffer.from('x'), { timeout: 60_000 }));
  const u1 = pool.last();
  error(requester, u1.link, u1.message.id, 'MESH_ERR_BUSY', true);
  assert.equal(pool.last().message.attempt, 2, 'one retry after 100 ms');
  const v = track(requester.request('echo', Buffer.from('x'), { timeout: 60_000 }));
  const v1 = pool.last();
  error(requester, v1.link, v1.message.id, 'MESH_ERR_BUSY', true);
  await flush();
  assert.equal(u.state, 'pending');
  assert.ok(rejectedWith(v, 'MESH_ERR_BUSY'), 'and only one');
});

test('with the budget spent, an attempt timeout waits for the deadline: a late reply still counts', async () => {
  const { clock, pool, requester } = setup('A', 'B');
  spendBudget(pool, requester);
  // 30 ms and 2 retries: 10 ms attempts, too short for the budget to refill a token.
  const late = track(requester.request('echo', Buffer.from('x'), { timeout: 30 }));
  const l1 = pool.last();
  const none = track(requester.request('echo', Buffer.from('y'), { timeout: 30 }));
  const count = pool.requests().length;
  clock.advance(10);
  assert.equal(pool.requests().length, count, 'no resend');
  clock.advance(10);
  reply(requester, l1.link, l1.message.id, 'late');
  clock.advance(9);
  await flush();
  assert.equal(late.value?.toString(), 'late');
  assert.equal(none.state, 'pending', 'still waiting at 29 ms');
  clock.advance(1);
  await flush();
  assert.ok(rejectedWith(none, 'MESH_ERR_TIMEOUT'));
});

// ------------------------------------------------------------ deadlines

test('deadline arithmetic: attempts of timeout/(retries+1), wire ttl up to 25 ms shorter, the last attempt gets all the time left', async () => {
  const { clock, pool, requester } = setup('A', 'B', 'C');
  const t = track(requester.request('echo', Buffer.from('x'), { timeout: 1000, retries: 2 }));
  assert.deepEqual(pool.requests().map((s) => s.message.ttl), [308], '333 ms attempt, ttl 25 ms shorter');
  clock.advance(332);
  assert.equal(pool.requests().length, 1);
  clock.advance(1);
  assert.deepEqual(pool.requests().map((s) => s.message.ttl), [308, 308]);
  clock.advance(333);
  assert.deepEqual(pool.requests().map((s) => s.message.ttl), [308, 308, 334], 'the last attempt: all 334 ms left, not shortened');
  clock.advance(333);
  await flush();
  assert.equal(t.state, 'pending', 'at 999 ms');
  clock.advance(1);
  await flush();
  assert.ok(rejectedWith(t, 'MESH_ERR_TIMEOUT'));
  assert.match((t.error as Error).message, /3 attempts/);
  assert.equal(pool.requests().length, 3);
});

test('deadline arithmetic: the ttl margin is a tenth of a short attempt; attemptTimeout sets the attempt', () => {
  const { clock, pool, requester } = setup('A', 'B');
  track(requester.request('echo', Buffer.from('x'), { timeout: 100, retries: 2 }));
  assert.equal(pool.last().message.ttl, 30, '33 ms attempt: 3 ms margin');
  clock.advance(1000);
  pool.journal.length = 0;
  track(requester.request('echo', Buffer.from('x'), { timeout: 1000, retries: 1, attemptTimeout: 100 }));
  assert.equal(pool.last().message.ttl, 90, '100 ms attempt: 10 ms margin');
  clock.advance(99);
  assert.equal(pool.requests().length, 1);
  clock.advance(1);
  assert.deepEqual(pool.requests().map((s) => s.message.ttl), [90, 900], 'then the last attempt gets the 900 ms left');
});

test('no healthy broker: a request waits for one and goes out when one is up, with the time left', async () => {
  const { clock, pool, requester } = setup('A');
  pool.down(pool.link('A'));
  const t = track(requester.request('echo', Buffer.from('x'), { timeout: 1000, retries: 0 }));
  assert.equal(pool.requests().length, 0);
  assert.equal(pool.waiting, 1);
  clock.advance(400);
  pool.bringUp(pool.link('A'));
  const sent = pool.last();
  assert.equal(sent.message.attempt, 1);
  assert.equal(sent.message.ttl, 600);
  reply(requester, sent.link, sent.message.id);
  await flush();
  assert.equal(t.state, 'resolved');
});

test('no healthy broker until the deadline: MESH_ERR_TIMEOUT, and the wait is given up', async () => {
  const { clock, pool, requester } = setup('A', 'B');
  pool.down(pool.link('A'));
  pool.down(pool.link('B'));
  const t = track(requester.request('echo', Buffer.from('x'), { timeout: 1000 }));
  clock.advance(999);
  await flush();
  assert.equal(t.state, 'pending');
  clock.advance(1);
  await flush();
  assert.ok(rejectedWith(t, 'MESH_ERR_TIMEOUT'));
  assert.equal(pool.waiting, 0);
  pool.bringUp(pool.link('A'));
  assert.equal(pool.requests().length, 0, 'nothing sent once the request is over');
});

// ------------------------------------------------------------ congested links

test('a congested link is passed over for one that is not; with every link congested, requests wait in order and go out when one drains', async () => {
  const { clock, pool, requester } = setup('A', 'B');
  pool.link('A').congested = true;
  const first = track(requester.request('echo', Buffer.from('1'), { timeout: 1000, retries: 0 }));
  assert.deepEqual(keys(pool.requests()), ['B'], 'the request goes to the link that is not congested');
  pool.link('B').congested = true;
  const held = [2, 3, 4].map((n) => track(requester.request('echo', Buffer.from(String(n)), { timeout: 1000, retries: 0 })));
  assert.equal(pool.requests().length, 1, 'nothing more is written while every link is congested');
  clock.advance(300);
  requester.onWritable();
  assert.equal(pool.requests().length, 1, 'still congested: still waiting');
  pool.link('A').congested = false;
  requester.onWritable();
  const sent = pool.requests();
  assert.deepEqual(sent.slice(1).map((s) => Buffer.from(s.message.payload).toString()), ['2', '3', '4'], 'in the order they were made');
  assert.deepEqual(keys(sent.slice(1)), ['A', 'A', 'A']);
  assert.equal(sent[1]!.message.attempt, 1);
  assert.equal(sent[1]!.message.ttl, 700, 'the attempt starts when it is written, with the time left');
  for (const s of sent) reply(requester, s.link, s.message.id);
  await flush();
  assert.ok([first, ...held].every((t) => t.state === 'resolved'));
});

test('a request made while others wait goes behind them; a held request that times out or is aborted is never written', async () => {
  const { clock, pool, requester } = setup('A');
  pool.link('A').congested = true;
  const a = track(requester.request('echo', Buffer.from('a'), { timeout: 100, retries: 0 }));
  const controller = new AbortController();
  const b = track(requester.request('echo', Buffer.from('b'), { timeout: 1000, retries: 0, signal: controller.signal }));
  pool.link('A').congested = false;
  // A new request while a and b still wait (no onWritable yet): it queues behind them.
  const c = track(requester.request('echo', Buffer.from('c'), { timeout: 1000, retries: 0 }));
  assert.equal(pool.requests().length, 0);
  clock.advance(100);
  controller.abort();
  await flush();
  assert.ok(rejectedWith(a, 'MESH_ERR_TIMEOUT'));
  assert.ok(rejectedWith(b, 'MESH_ERR_ABORTED'));
  requester.onWritable();
  assert.deepEqual(pool.requests().map((s) => Buffer.from(s.message.payload).toString()), ['c']);
  reply(requester, pool.last().link, pool.last().message.id);
  await flush();
  assert.equal(c.state, 'resolved');
  assert.equal(requester.size, 0);
});

// ------------------------------------------------------------ abort and close

test('abort rejects with MESH_ERR_ABORTED and frees the link; close rejects pending and new requests with MESH_ERR_CLOSED', async () => {
  const { pool, requester } = setup('A');
  const controller = new AbortController();
  const aborted = track(requester.request('echo', Buffer.from('x'), { timeout: 1000, signal: controller.signal }));
  const pending = track(requester.request('echo', Buffer.from('y'), { timeout: 1000 }));
  assert.equal(pool.link('A').active, 2);
  controller.abort(new Error('user gave up'));
  await flush();
  assert.ok(rejectedWith(aborted, 'MESH_ERR_ABORTED'));
  assert.equal(((aborted.error as MeshError).cause as Error).message, 'user gave up');
  assert.equal(pool.link('A').active, 1);
  requester.close();
  const after = track(requester.request('echo', Buffer.from('z'), { timeout: 1000 }));
  await flush();
  assert.ok(rejectedWith(pending, 'MESH_ERR_CLOSED'));
  assert.ok(rejectedWith(after, 'MESH_ERR_CLOSED'));
  assert.equal(pool.link('A').active, 0);
  assert.equal(requester.size, 0);
});

test('bad options are MESH_ERR_CONFIG; an already aborted signal is MESH_ERR_ABORTED; nothing is sent', async () => {
  const { pool, requester } = setup('A');
  const results = [
    track(requester.request('bad name!', Buffer.from('x'))),
    track(requester.request('echo', Buffer.from('x'), { timeout: 0 })),
    track(requester.request('echo', Buffer.from('x'), { retries: 1.5 })),
    track(requester.request('echo', Buffer.from('x'), { retries: 255 })),
    track(requester.request('echo', Buffer.from('x'), { timeout: Infinity })),
    track(requester.request('echo', Buffer.from('x'), { timeout: 2 ** 31 })),
    track(requester.request('echo', Buffer.from('x'), { timeout: NaN })),
    track(requester.request('echo', Buffer.from('x'), { attemptTimeout: -1 })),
    track(requester.request('echo', Buffer.from('x'), { signal: AbortSignal.abort() })),
  ];
  await flush();
  assert.deepEqual(results.map((r) => (r.error as MeshError).code), [...Array<string>(8).fill('MESH_ERR_CONFIG'), 'MESH_ERR_ABORTED']);
  assert.equal(pool.requests().length, 0);
});

test('past pending.maxRequests or pending.maxBytes, request() rejects at once with MESH_ERR_BUSY and sends nothing; answers make room again', async () => {
  const clock = new FakeClock();
  const pool = new FakePool('A');
  const requester = new Requester(pool, clock, { maxRequests: 2, maxBytes: 100 });
  const link = pool.links[0]!;
  const first = track(requester.request('echo', Buffer.alloc(10)));
  const second = track(requester.request('echo', Buffer.alloc(10)));
  const third = track(requester.request('echo', Buffer.alloc(10)));
  await flush();
  assert.ok(rejectedWith(third, 'MESH_ERR_BUSY'), 'the third request is refused');
  assert.equal((third.error as MeshError).retryable, true);
  assert.match((third.error as MeshError).message, /awaits answers to 2 requests \(maxRequests 2\)/);
  assert.equal(link.requests().length, 2, 'only the first two went out');
  reply(requester, link, link.requests()[0]!.id);
  await flush();
  assert.equal(first.state, 'resolved');
  // One slot free, but 10 + 95 payload bytes would pass maxBytes.
  const big = track(requester.request('echo', Buffer.alloc(95)));
  await flush();
  assert.ok(rejectedWith(big, 'MESH_ERR_BUSY'));
  assert.match((big.error as MeshError).message, /10 payload bytes \(maxBytes 100\)/);
  const fits = track(requester.request('echo', Buffer.alloc(90)));
  await flush();
  assert.equal(fits.state, 'pending');
  assert.equal(link.requests().length, 3);
  assert.equal(second.state, 'pending');
  assert.equal(requester.counts().sent, 3, 'refused requests are not counted as sent');
});

test('pending limits that are not positive whole numbers are refused with MESH_ERR_CONFIG', () => {
  for (const limits of [{ maxRequests: 0 }, { maxBytes: -1 }, { maxRequests: 1.5 }, { maxBytes: Number.NaN }]) {
    assert.throws(() => new Requester(new FakePool('A'), new FakeClock(), limits), (e: unknown) => isMeshError(e, 'MESH_ERR_CONFIG') && /pending\.max/.test((e as Error).message));
  }
});
