import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Heartbeat, IDLE_DEAD_FACTOR, RESPONDER_IDLE_FACTOR } from '../../lib/protocol/heartbeat.ts';
import { negotiateHeartbeat, DEFAULT_HEARTBEAT } from '../../lib/protocol/hello.ts';

const settings = { idleMs: 5000, activeMs: 200, deadMs: 600 };

test('idle: pings every idleMs and declares dead after 3 × idleMs of silence', () => {
  const hb = new Heartbeat(settings, 0);
  assert.equal(hb.check(4999), 'none');
  assert.equal(hb.nextCheck(0), 5000);
  assert.equal(hb.check(5000), 'ping');
  assert.equal(hb.check(5001), 'none', 'one ping per interval');
  assert.equal(hb.check(10_000), 'ping');
  assert.equal(hb.check(IDLE_DEAD_FACTOR * 5000), 'dead');
});

test('the accepting side waits 1.5 × idleMs before its idle ping: the dialler\'s ping, arriving first, keeps it from ever sending one; dead after 3 × idleMs all the same', () => {
  assert.equal(RESPONDER_IDLE_FACTOR, 1.5);
  const dialler = new Heartbeat(settings, 0, true);
  const acceptor = new Heartbeat(settings, 0, false);
  assert.equal(acceptor.nextCheck(0), 7500);
  let acceptorPings = 0;
  for (let t = 0; t <= 60_000; t += 100) {
    if (dialler.check(t) === 'ping') {
      acceptor.received(t + 1); // the PING arrives
      dialler.received(t + 2); // its PONG comes back
    }
    if (acceptor.check(t) === 'ping') acceptorPings++;
  }
  assert.equal(acceptorPings, 0);
  const lonely = new Heartbeat(settings, 0, false);
  assert.equal(lonely.check(7499), 'none');
  assert.equal(lonely.check(7500), 'ping');
  assert.equal(lonely.check(IDLE_DEAD_FACTOR * 5000), 'dead');
  // Active, both sides ping at the same fast rate.
  lonely.setActive(true, 20_000);
  lonely.received(20_000);
  assert.equal(lonely.check(20_200), 'ping');
});

test('any received frame resets the silence', () => {
  const hb = new Heartbeat(settings, 0);
  hb.received(4000);
  assert.equal(hb.check(8999), 'none');
  assert.equal(hb.check(9000), 'ping');
});

test('active: ping after 200 ms of silence, dead after 600 ms, even after a long idle spell', () => {
  const hb = new Heartbeat(settings, 0);
  hb.setActive(true, 4000); // 4 s of idle silence must not count as fast-rate silence
  assert.equal(hb.check(4000), 'ping', 'idle silence counts at most activeMs');
  assert.equal(hb.check(4100), 'none');
  assert.equal(hb.check(4200), 'ping');
  assert.equal(hb.check(4399), 'none');
  assert.equal(hb.check(4400), 'dead');
});

test('active and answered: never dead', () => {
  const hb = new Heartbeat(settings, 0);
  hb.setActive(true, 0);
  for (let t = 0; t < 10_000; t += 150) {
    assert.notEqual(hb.check(t), 'dead');
    hb.received(t);
  }
});

test('back to idle stops fast pings', () => {
  const hb = new Heartbeat(settings, 0);
  hb.setActive(true, 0);
  hb.setActive(false, 100);
  assert.equal(hb.check(300), 'none');
  assert.equal(hb.check(700), 'none');
});

test('stretch moves deadlines forward (event-loop lag is not peer silence)', () => {
  const hb = new Heartbeat(settings, 0);
  hb.setActive(true, 0);
  hb.stretch(1000);
  assert.equal(hb.check(1100), 'none');
  assert.equal(hb.check(1600), 'dead');
});

test('nextCheck points at the next ping or death, never 0', () => {
  const hb = new Heartbeat(settings, 0);
  hb.setActive(true, 0);
  assert.equal(hb.nextCheck(0), 200);
  assert.equal(hb.check(200), 'ping');
  assert.equal(hb.nextCheck(200), 200);
  assert.equal(hb.nextCheck(10_000), 1);
});

test('negotiation takes the faster pings and the longer dead timeout', () => {
  assert.deepEqual(negotiateHeartbeat(DEFAULT_HEARTBEAT, { idleMs: 1000, activeMs: 300, deadMs: 900 }), { idleMs: 1000, activeMs: 200, deadMs: 900 });
  assert.deepEqual(negotiateHeartbeat({ idleMs: 100, activeMs: 100, deadMs: 150 }, { idleMs: 100, activeMs: 50, deadMs: 60 }), { idleMs: 100, activeMs: 50, deadMs: 150 });
});
