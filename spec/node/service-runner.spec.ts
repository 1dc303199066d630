// The service runner (the worker half of a node) against a fake link pool
// and a clock moved by hand: credits, the concurrency bound, reply paths,
// the reply cache, withdrawal, rebalancing, and the handler's AbortSignal
// (docs/api.md#offering-a-service,
// docs/architecture.md#how-nodes-learn-and-forget-brokers).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RESEND_GRACE_MS, RequestNotTaken, ServiceRunner } from '../../lib/node/service-runner.ts';
import type { Handler, HandlerResult, IncomingRequest } from '../../lib/node/service-runner.ts';
import { MeshError, isMeshError } from '../../lib/errors.ts';
import type { ErrorMessage, ReplyMessage, RequestMessage } from '../../lib/protocol/messages.ts';
import { FakeClock } from './fake-clock.ts';
import { FakePool } from './fake-links.ts';
import type { FakeLink } from './fake-links.ts';

const CLIENT = new Uint8Array(32).fill(1);
const OTHER_CLIENT = new Uint8Array(32).fill(2);

function setup(...keys: string[]): { clock: FakeClock; pool: FakePool; runner: ServiceRunner } {
  const clock = new FakeClock();
  const pool = new FakePool(...(keys.length > 0 ? keys : ['A', 'B']));
  return { clock, pool, runner: new ServiceRunner(pool, clock) };
}

/** REQUEST number `n` of the client, as a broker forwards it (sender stamped). */
function req(n: number, fields: Partial<RequestMessage> = {}): RequestMessage {
  return { type: 'REQUEST', id: new Uint8Array(16).fill(n), service: 'echo', attempt: 1, dup: false, ttl: 1000, sender: CLIENT, senderName: 'client', payload: Buffer.from(`p${n}`), ...fields };
}

interface Call {
  readonly req: IncomingRequest;
  resolve(value: HandlerResult): void;
  reject(error: unknown): void;
}

/** A handler that answers when the test says so. */
function gated(): { calls: Call[]; handler: Handler } {
  const calls: Call[] = [];
  const handler: Handler = (r) => new Promise<HandlerResult>((resolve, reject) => calls.push({ req: r, resolve, reject }));
  return { calls, handler };
}

/** Lets promise callbacks run (the fake clock does not move). */
const flush = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** Credits this link's broker holds for `service`: READY adds, CANCEL clears, each REQUEST it sent takes one. */
function brokerCredits(link: FakeLink, delivered: number, service = 'echo'): number {
  let credits = 0;
  let taken = delivered;
  for (const m of link.sent) {
    if (m.type === 'READY' && m.service === service) credits += m.credits;
    if (m.type === 'CANCEL' && m.service === service) {
      credits = 0;
      taken = 0;
    }
  }
  return credits - taken;
}

function replies(link: FakeLink): ReplyMessage[] {
  return link.sent.filter((m): m is ReplyMessage => m.type === 'REPLY');
}

function errors(link: FakeLink): ErrorMessage[] {
  return link.sent.filter((m): m is ErrorMessage => m.type === 'ERROR');
}

// ------------------------------------------------------------ credits

test('credits: every free slot is granted, spread over the healthy links, never more than free slots', async () => {
  const { pool, runner } = setup('A', 'B', 'C');
  pool.link('C').healthy = false; // draining: no new credits
  const { calls, handler } = gated();
  runner.add('echo', handler, { concurrency: 5 });
  const [a, b, c] = [pool.link('A'), pool.link('B'), pool.link('C')];
  assert.deepEqual([...a.log(), ...b.log()].sort(), ['READY echo 2', 'READY echo 3']);
  assert.deepEqual(c.log(), []);

  // A scripted run: requests arrive only where the broker holds a credit,
  // handlers finish in another order; after each step the credits held
  // plus the handlers running are exactly the concurrency.
  const delivered = new Map<FakeLink, number>([[a, 0], [b, 0]]);
  let n = 0;
  const arrive = (link: FakeLink): void => {
    assert.ok(brokerCredits(link, delivered.get(link)!) > 0, 'the broker has a credit');
    delivered.set(link, delivered.get(link)! + 1);
    runner.onRequest(link, req(++n));
  };
  const check = (what: string): void => {
    const held = brokerCredits(a, delivered.get(a)!) + brokerCredits(b, delivered.get(b)!);
    assert.equal(held + runner.running, 5, `${what}: ${held} credits + ${runner.running} running`);
  };
  for (const step of ['A', 'A', 'B', 'A', 'done0', 'B', 'done2', 'done1', 'A', 'B', 'done3', 'done4', 'done5', 'done6']) {
    if (step.startsWith('done')) {
      calls[Number(step.slice(4))]!.resolve('ok');
      await flush();
    } else arrive(pool.link(step));
    check(step);
  }
  assert.equal(runner.running, 0);
  assert.equal(calls.length, 7);
});

test('handlers that answer together free their slots in one READY', async () => {
  const { pool, runner } = setup('A');
  runner.add('echo', (r) => r.payload, { concurrency: 8 }); // A 8
  for (let n = 1; n <= 5; n++) runner.onRequest(pool.link('A'), req(n));
  pool.link('A').clear();
  await flush();
  assert.deepEqual(pool.link('A').log(), ['REPLY', 'REPLY', 'REPLY', 'REPLY', 'REPLY', 'READY echo 5']);
  assert.equal(brokerCredits(pool.link('A'), 0), 5);
});

test('a free slot goes to the healthy link holding the fewest credits', async () => {
  const { pool, runner } = setup('A', 'B');
  const { calls, handler } = gated();
  runner.add('echo', handler, { concurrency: 4 }); // A 2, B 2
  runner.onRequest(pool.link('A'), req(1));
  runner.onRequest(pool.link('A'), req(2)); // A 0, B 2
  pool.link('A').clear();
  pool.link('B').clear();
  calls[0]!.resolve('ok');
  await flush();
  assert.deepEqual(pool.link('A').log(), ['REPLY', 'READY echo 1']);
  assert.deepEqual(pool.link('B').log(), []);
});

test('a request beyond concurrency is REFUSED, not run; the next one after a slot frees runs', async () => {
  const { pool, runner } = setup('A');
  const { calls, handler } = gated();
  runner.add('echo', handler, { concurrency: 2 });
  const a = pool.link('A');
  a.clear();
  for (const n of [1, 2, 3]) runner.onRequest(a, req(n)); // a broker may send more (hinted resends, a crossed rebalance)
  assert.equal(calls.length, 2);
  assert.deepEqual(a.log(), ['REFUSED']);
  assert.deepEqual((a.sent[0] as { id: Uint8Array }).id, req(3).id);
  calls[0]!.resolve('ok');
  await flush();
  runner.onRequest(a, req(3, { attempt: 1 })); // the broker re-dispatches it later
  assert.equal(calls.length, 3);
  assert.deepEqual(calls[2]!.req.id, req(3).id, 'the refused request was not remembered as running');
});

test('a request for a service not offered here is REFUSED; one without a sender stamp gets MESH_ERR_PROTOCOL', () => {
  const { pool, runner } = setup('A');
  const a = pool.link('A');
  runner.onRequest(a, req(1, { service: 'other' }));
  runner.onRequest(a, req(2, { sender: undefined }));
  assert.deepEqual(a.log(), ['REFUSED', 'ERROR MESH_ERR_PROTOCOL']);
});

// ------------------------------------------------------------ replies

test('a reply goes back on the link the request came on, addressed to the client', async () => {
  const { pool, runner } = setup('A', 'B');
  runner.add('echo', (r) => Buffer.concat([Buffer.from('re:'), r.payload]));
  runner.onRequest(pool.link('B'), req(1));
  await flush();
  const [r] = replies(pool.link('B'));
  assert.ok(r);
  assert.deepEqual(r.id, req(1).id);
  assert.deepEqual(r.to, CLIENT);
  assert.equal(Buffer.from(r.payload).toString(), 're:p1');
  assert.deepEqual(replies(pool.link('A')), []);
});

test('when that link is down, the reply goes through another link, addressed with to', async () => {
  const { pool, runner } = setup('A', 'B');
  const { calls, handler } = gated();
  runner.add('echo', handler);
  runner.onRequest(pool.link('A'), req(1));
  pool.down(pool.link('A'));
  runner.onLinkDown(pool.link('A'));
  calls[0]!.resolve('answer');
  await flush();
  const [r] = replies(pool.link('B'));
  assert.ok(r, 'the reply went through B');
  assert.deepEqual(r.to, CLIENT);
  assert.equal(Buffer.from(r.payload).toString(), 'answer');
  assert.equal(pool.link('A').active, 0, 'released on its link');
});

test('a draining link still carries the replies of the requests it brought, and its credits go to the others', async () => {
  const { pool, runner } = setup('A', 'B');
  const { calls, handler } = gated();
  runner.add('echo', handler, { concurrency: 4 }); // A 2, B 2
  runner.onRequest(pool.link('A'), req(1));
  pool.link('A').healthy = false; // DRAIN: up, no new work
  pool.link('B').clear();
  runner.onLinkDown(pool.link('A'));
  assert.deepEqual(pool.link('B').log(), ['READY echo 1'], 'the credit A still held moves to B');
  calls[0]!.resolve('ok');
  await flush();
  assert.equal(replies(pool.link('A')).length, 1);
  assert.deepEqual(pool.link('B').log(), ['READY echo 1', 'READY echo 1'], 'the freed slot goes to B');
});

test('a reply over the broker\'s payload limit becomes MESH_ERR_ENVELOPE_TOO_LARGE', async () => {
  const { pool, runner } = setup('A');
  pool.link('A').peerMaxPayload = 10;
  runner.add('echo', () => Buffer.alloc(11));
  runner.onRequest(pool.link('A'), req(1));
  await flush();
  assert.deepEqual(errors(pool.link('A')).map((e) => [e.code, e.retryable]), [['MESH_ERR_ENVELOPE_TOO_LARGE', false]]);
});

test('a handler error reaches the client as MESH_ERR_HANDLER with its message; so does a result that is not bytes', async () => {
  const { pool, runner } = setup('A');
  runner.add('echo', (r) => {
    if (r.payload.toString() === 'p1') throw new Error('no such account');
    return 42 as unknown as string;
  });
  runner.onRequest(pool.link('A'), req(1));
  runner.onRequest(pool.link('A'), req(2));
  await flush();
  assert.deepEqual(
    errors(pool.link('A')).map((e) => [e.code, e.retryable, e.text]),
    [
      ['MESH_ERR_HANDLER', false, 'no such account'],
      ['MESH_ERR_HANDLER', false, 'handler returned neither bytes nor a string'],
    ],
  );
});

// ------------------------------------------------------------ the reply cache

test('a resend attaches to the running execution; the reply goes on the newest path only', async () => {
  const { pool, runner } = setup('A', 'B');
  const { calls, handler } = gated();
  runner.add('echo', handler);
  runner.onRequest(pool.link('A'), req(1));
  runner.onRequest(pool.link('B'), req(1, { attempt: 2, dup: true }));
  assert.equal(calls.length, 1, 'not run twice');
  assert.equal(runner.running, 1);
  calls[0]!.resolve('once');
  await flush();
  assert.equal(replies(pool.link('A')).length, 0);
  assert.deepEqual(replies(pool.link('B')).map((r) => Buffer.from(r.payload).toString()), ['once']);
});

test('a resend of a finished request gets the reply replayed without running again; another client\'s same id runs', async () => {
  const { pool, runner } = setup('A', 'B');
  let runs = 0;
  runner.add('echo', () => `run ${++runs}`);
  runner.onRequest(pool.link('A'), req(1));
  await flush();
  runner.onRequest(pool.link('B'), req(1, { attempt: 2, dup: true }));
  assert.deepEqual(replies(pool.link('B')).map((r) => Buffer.from(r.payload).toString()), ['run 1'], 'replayed at once, on the resend\'s link');
  runner.onRequest(pool.link('A'), req(1, { sender: OTHER_CLIENT }));
  await flush();
  assert.equal(runs, 2);
  assert.deepEqual(replies(pool.link('A')).map((r) => [Buffer.from(r.payload).toString(), Buffer.from(r.to!).equals(OTHER_CLIENT)]), [['run 1', false], ['run 2', true]]);
});

test('a request that arrives with ttl 0 is answered MESH_ERR_TIMEOUT without running, its credit granted again; a resend with ttl 0 still attaches', async () => {
  const { pool, runner } = setup('A');
  const { calls, handler } = gated();
  runner.add('echo', handler, { concurrency: 2 });
  const a = pool.link('A');
  runner.onRequest(a, req(1, { ttl: 0 }));
  assert.equal(calls.length, 0, 'not run');
  assert.deepEqual(errors(a).map((e) => [e.code, e.retryable, Buffer.from(e.id!).equals(req(1).id)]), [['MESH_ERR_TIMEOUT', true, true]]);
  assert.equal(brokerCredits(a, 1), 2, 'the slot it did not use is granted again');
  assert.equal(runner.counts().expired, 1);
  // With time left it runs; a resend that comes with no time left attaches to it.
  runner.onRequest(a, req(2));
  runner.onRequest(a, req(2, { attempt: 2, dup: true, ttl: 0 }));
  assert.equal(calls.length, 1);
  calls[0]!.resolve('ran');
  await flush();
  assert.deepEqual(replies(a).map((r) => Buffer.from(r.payload).toString()), ['ran']);
  assert.equal(runner.counts().expired, 1);
});

test('a handler error is cached like a reply and replayed to a resend', async () => {
  const { pool, runner } = setup('A');
  let runs = 0;
  runner.add('echo', () => {
    runs++;
    throw new Error('boom');
  });
  runner.onRequest(pool.link('A'), req(1));
  await flush();
  runner.onRequest(pool.link('A'), req(1, { attempt: 2, dup: true }));
  assert.equal(runs, 1);
  assert.deepEqual(errors(pool.link('A')).map((e) => e.text), ['boom', 'boom']);
});

// ------------------------------------------------------------ withdrawal

test('close() withdraws: CANCEL on every up link, new requests REFUSED, a resend still attaches, running ones finish first', async () => {
  const { pool, runner } = setup('A', 'B');
  const { calls, handler } = gated();
  const handle = runner.add('echo', handler, { concurrency: 2 });
  runner.onRequest(pool.link('A'), req(1));
  pool.link('A').clear();
  pool.link('B').clear();
  let closed = false;
  const closing = handle.close().then(() => (closed = true));
  assert.deepEqual(pool.link('A').log(), ['CANCEL echo']);
  assert.deepEqual(pool.link('B').log(), ['CANCEL echo']);
  runner.onRequest(pool.link('A'), req(2));
  assert.deepEqual(pool.link('A').log(), ['CANCEL echo', 'REFUSED']);
  runner.onRequest(pool.link('B'), req(1, { attempt: 2, dup: true }));
  assert.equal(calls.length, 1);
  await flush();
  assert.equal(closed, false, 'waits for the running request');
  calls[0]!.resolve('done');
  await closing;
  assert.deepEqual(pool.link('B').log(), ['CANCEL echo', 'REPLY'], 'the reply, and no READY after the CANCEL');
  assert.deepEqual(pool.link('A').log(), ['CANCEL echo', 'REFUSED']);
  runner.add('echo', handler, { concurrency: 2 });
  assert.deepEqual([...pool.link('A').log(), ...pool.link('B').log()].filter((l) => l.startsWith('READY')), ['READY echo 1', 'READY echo 1'], 'the name can be served again');
});

test('a handle withdraws only its own offering: close() is idempotent, and [Symbol.asyncDispose] closes', async () => {
  const { pool, runner } = setup('A');
  const first = runner.add('echo', () => 'first');
  await first.close();
  const second = runner.add('echo', () => 'second');
  pool.link('A').clear();
  await first.close();
  assert.deepEqual(pool.link('A').log(), [], 'the old handle does not touch the new offering');
  runner.onRequest(pool.link('A'), req(1));
  await flush();
  assert.deepEqual(replies(pool.link('A')).map((r) => Buffer.from(r.payload).toString()), ['second']);
  {
    await using _scoped = second;
  }
  assert.deepEqual(pool.link('A').log(), ['REPLY', 'READY echo 1', 'CANCEL echo']);
  await second.close();
  assert.equal(pool.link('A').log().filter((l) => l === 'CANCEL echo').length, 1, 'one CANCEL');
});

test('aborting serve\'s signal withdraws like close(); an already aborted signal throws MESH_ERR_ABORTED', async () => {
  const { pool, runner } = setup('A');
  const controller = new AbortController();
  const { calls, handler } = gated();
  const handle = runner.add('echo', handler, { signal: controller.signal });
  runner.onRequest(pool.link('A'), req(1));
  pool.link('A').clear();
  controller.abort();
  assert.deepEqual(pool.link('A').log(), ['CANCEL echo']);
  runner.onRequest(pool.link('A'), req(2));
  assert.deepEqual(pool.link('A').log(), ['CANCEL echo', 'REFUSED']);
  assert.equal(calls[0]!.req.signal.aborted, false, 'withdrawing does not abort running handlers');
  calls[0]!.resolve('ok');
  await handle.close();
  assert.deepEqual(pool.link('A').log(), ['CANCEL echo', 'REFUSED', 'REPLY']);

  pool.link('A').clear();
  assert.throws(() => runner.add('echo', handler, { signal: AbortSignal.abort() }), (e: unknown) => isMeshError(e, 'MESH_ERR_ABORTED'));
  assert.deepEqual(pool.link('A').log(), [], 'never offered');
  runner.add('echo', handler); // and the name is free
  assert.deepEqual(pool.link('A').log(), ['READY echo 16']);
});

test('drain() withdraws every service and waits for their running requests', async () => {
  const { pool, runner } = setup('A');
  const { calls, handler } = gated();
  runner.add('echo', handler);
  runner.add('other', handler);
  runner.onRequest(pool.link('A'), req(1, { service: 'other' }));
  pool.link('A').clear();
  let drained = false;
  const draining = runner.drain().then(() => (drained = true));
  assert.deepEqual(pool.link('A').log().sort(), ['CANCEL echo', 'CANCEL other']);
  runner.onRequest(pool.link('A'), req(2));
  await flush();
  assert.equal(drained, false);
  calls[0]!.resolve('ok');
  await draining;
  assert.deepEqual(pool.link('A').log().slice(2), ['REFUSED', 'REPLY']);
  assert.equal(calls.length, 1);
  // A draining node takes no new services: a clear error, not a service that silently refuses everything.
  assert.throws(() => runner.add('late', handler), (e: unknown) => isMeshError(e, 'MESH_ERR_DRAINING'));
});

test('a request the app never looked at (RequestNotTaken) goes back to the broker: REFUSED, no answer, nothing cached', async () => {
  const { pool, runner } = setup('A');
  const calls: IncomingRequest[] = [];
  let notTaken = true;
  runner.add('echo', (r) => {
    calls.push(r);
    return notTaken ? Promise.reject(new RequestNotTaken('iterator left')) : r.payload;
  });
  runner.onRequest(pool.link('A'), req(1));
  await flush();
  assert.deepEqual(pool.link('A').log().filter((l) => !l.startsWith('READY')), ['REFUSED']);
  assert.equal(runner.running, 0);
  // Nothing cached: the same request dispatched here again runs.
  notTaken = false;
  runner.onRequest(pool.link('A'), req(1));
  await flush();
  assert.equal(calls.length, 2);
  assert.equal(replies(pool.link('A')).length, 1);
});

// ------------------------------------------------------------ rebalancing

test('a link that comes up while every slot is granted gets half of the richest link\'s credits', () => {
  const { pool, runner } = setup('A', 'B');
  pool.down(pool.link('B'));
  runner.add('echo', () => 'ok', { concurrency: 8 });
  assert.deepEqual(pool.link('A').log(), ['READY echo 8']);
  pool.link('A').clear();
  pool.bringUp(pool.link('B'));
  runner.onLinkUp();
  assert.deepEqual(pool.link('A').log(), ['CANCEL echo', 'READY echo 4'], 'the rich link keeps half');
  assert.deepEqual(pool.link('B').log(), ['READY echo 4']);
});

test('a link that goes down frees its credits for the others; when it is back, credits move to it again', () => {
  const { pool, runner } = setup('A', 'B');
  runner.add('echo', () => 'ok', { concurrency: 4 }); // A 2, B 2
  pool.link('B').clear();
  pool.down(pool.link('A'));
  runner.onLinkDown(pool.link('A'));
  assert.deepEqual(pool.link('B').log(), ['READY echo 2']);
  pool.link('A').clear();
  pool.link('B').clear();
  pool.bringUp(pool.link('A'));
  runner.onLinkUp();
  assert.deepEqual(pool.link('B').log(), ['CANCEL echo', 'READY echo 2']);
  assert.deepEqual(pool.link('A').log(), ['READY echo 2']);
});

test('a link that comes up with free slots gets them without moving credits', async () => {
  const { pool, runner } = setup('A', 'B');
  pool.down(pool.link('B'));
  const { calls, handler } = gated();
  runner.add('echo', handler, { concurrency: 2 }); // A 2
  runner.onRequest(pool.link('A'), req(1));
  runner.onRequest(pool.link('A'), req(2)); // A 0, running 2
  calls[0]!.resolve('ok');
  calls[1]!.resolve('ok');
  pool.down(pool.link('A')); // the replies wait in the cache; the slots free up with no link to grant them on
  runner.onLinkDown(pool.link('A'));
  await flush();
  pool.bringUp(pool.link('B'));
  runner.onLinkUp();
  assert.deepEqual(pool.link('B').log(), ['READY echo 2']);
});

// ------------------------------------------------------------ the handler's signal

test('req.signal aborts with MESH_ERR_TIMEOUT when the request\'s ttl has run out by the resend grace', async () => {
  const { clock, pool, runner } = setup('A');
  const { calls, handler } = gated();
  runner.add('echo', handler);
  runner.onRequest(pool.link('A'), req(1, { ttl: 300 }));
  assert.equal(clock.pendingTimers, 0, 'no timer for a handler that never reads its signal');
  const signal = calls[0]!.req.signal;
  assert.equal(calls[0]!.req.signal, signal, 'one signal per request');
  assert.equal(clock.pendingTimers, 1);
  clock.advance(300 + RESEND_GRACE_MS - 1);
  assert.equal(signal.aborted, false, 'a resend may still come and extend it');
  clock.advance(1);
  assert.equal(signal.aborted, true);
  assert.ok(isMeshError(signal.reason, 'MESH_ERR_TIMEOUT'));
  calls[0]!.resolve('late anyway');
  await flush();
  assert.deepEqual(replies(pool.link('A')).map((r) => Buffer.from(r.payload).toString()), ['late anyway'], 'an answer after the abort is still sent');
});

test('a resend that attaches within the grace pushes the abort to its own ttl, never earlier', () => {
  const { clock, pool, runner } = setup('A', 'B');
  const { calls, handler } = gated();
  runner.add('echo', handler);
  runner.onRequest(pool.link('A'), req(1, { ttl: 300 }));
  const signal = calls[0]!.req.signal;
  // The first attempt's ttl ran out at 300; its resend arrives at 320, inside the grace.
  clock.advance(320);
  assert.equal(signal.aborted, false, 'still inside the grace at 320 ms');
  runner.onRequest(pool.link('B'), req(1, { attempt: 2, dup: true, ttl: 300 })); // until 620
  runner.onRequest(pool.link('A'), req(1, { attempt: 3, dup: true, ttl: 10 })); // until 330: no change
  clock.advance(300 + RESEND_GRACE_MS - 1);
  assert.equal(signal.aborted, false, `at ${620 + RESEND_GRACE_MS - 1} ms`);
  clock.advance(1);
  assert.ok(isMeshError(signal.reason, 'MESH_ERR_TIMEOUT'));
});

test('a signal first read after the ttl ran out is already aborted', () => {
  const { clock, pool, runner } = setup('A');
  const { calls, handler } = gated();
  runner.add('echo', handler);
  runner.onRequest(pool.link('A'), req(1, { ttl: 50 }));
  clock.advance(50 + RESEND_GRACE_MS);
  assert.ok(isMeshError(calls[0]!.req.signal.reason, 'MESH_ERR_TIMEOUT'));
});

test('a handler that gives up on its aborted signal: the client gets MESH_ERR_TIMEOUT, not MESH_ERR_HANDLER, and a resend runs it again', async () => {
  const { clock, pool, runner } = setup('A');
  const calls: IncomingRequest[] = [];
  runner.add('echo', (r) => {
    calls.push(r);
    return new Promise<HandlerResult>((_resolve, reject) => r.signal.addEventListener('abort', () => reject(r.signal.reason as Error)));
  });
  runner.onRequest(pool.link('A'), req(1, { ttl: 300 }));
  clock.advance(300 + RESEND_GRACE_MS);
  await flush();
  assert.deepEqual(errors(pool.link('A')).map((e) => [e.code, e.retryable]), [['MESH_ERR_TIMEOUT', true]]);
  assert.equal(runner.running, 0);
  runner.onRequest(pool.link('A'), req(1, { attempt: 2, dup: true, ttl: 300 }));
  assert.equal(calls.length, 2, 'nothing cached: the resend runs');
  assert.equal(calls[1]!.dup, true);
});

test('abortRunning aborts the running handlers\' signals with the reason, also one read later; their failures are not sent', async () => {
  const { pool, runner } = setup('A');
  const { calls, handler } = gated();
  runner.add('echo', handler);
  runner.onRequest(pool.link('A'), req(1));
  runner.onRequest(pool.link('A'), req(2));
  runner.onRequest(pool.link('A'), req(3));
  calls[2]!.resolve('done');
  await flush();
  const early = calls[0]!.req.signal;
  runner.abortRunning(new MeshError('MESH_ERR_CLOSED', 'node closed'));
  assert.ok(isMeshError(early.reason, 'MESH_ERR_CLOSED'));
  assert.ok(isMeshError(calls[1]!.req.signal.reason, 'MESH_ERR_CLOSED'), 'read after the abort');
  assert.equal(calls[2]!.req.signal.aborted, false, 'a finished handler is not aborted');
  pool.link('A').clear();
  calls[0]!.reject(early.reason);
  calls[1]!.reject(new Error('stopped'));
  await flush();
  assert.deepEqual(pool.link('A').log().filter((l) => !l.startsWith('READY')), [], 'MESH_ERR_CLOSED does not travel');
  assert.equal(runner.running, 0);
});
