// The stall watchdog on a hand-driven clock: a silent gap over STALL_MS
// opens a STALE_WINDOW_MS window (reported once) during which input is
// stale, whether the overdue tick or a read notices the gap first.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { STALE_WINDOW_MS, STALL_MS, STALL_TICK_MS, StallWatchdog } from '../../lib/broker/stall-watchdog.ts';
import { ManualTimers } from './manual-timers.ts';

function fixture() {
  const timers = new ManualTimers();
  const stalls: number[] = [];
  const watchdog = new StallWatchdog({ now: timers.now, timers, onStall: (ms) => stalls.push(ms) });
  return { timers, stalls, watchdog };
}

test('the defaults: a 100 ms tick, stalled when silent over 1 s, input stale for 500 ms after', () => {
  assert.deepEqual([STALL_TICK_MS, STALL_MS, STALE_WINDOW_MS], [100, 1000, 500]);
});

test('no window while the loop keeps ticking', () => {
  const { timers, stalls, watchdog } = fixture();
  watchdog.start();
  for (let i = 0; i < 50; i++) {
    timers.advance(STALL_TICK_MS);
    assert.equal(watchdog.stalled(), false);
  }
  assert.deepEqual(stalls, []);
});

test('the overdue tick after a silent gap over 1 s opens a 500 ms window, reported once', () => {
  const { timers, stalls, watchdog } = fixture();
  watchdog.start();
  timers.advance(STALL_TICK_MS);
  timers.freeze(1500);
  timers.runDue(); // the overdue tick runs before any read
  assert.deepEqual(stalls, [1500]);
  assert.equal(watchdog.stalled(), true, 'input read now is stale');
  timers.advance(STALE_WINDOW_MS - 1);
  assert.equal(watchdog.stalled(), true);
  timers.advance(1);
  assert.equal(watchdog.stalled(), false, 'the window is over');
  assert.deepEqual(stalls, [1500], 'reported once');
});

test('a read before the overdue tick ran opens the window itself; the tick then does not report again', () => {
  const { timers, stalls, watchdog } = fixture();
  watchdog.start();
  timers.advance(STALL_TICK_MS * 3);
  timers.freeze(2000.4);
  assert.equal(watchdog.stalled(), true, 'the first read after the freeze is stale');
  assert.deepEqual(stalls, [2000]);
  timers.runDue(); // now the overdue tick
  assert.deepEqual(stalls, [2000], 'one report per window');
  assert.equal(watchdog.stalled(), true);
  timers.advance(STALE_WINDOW_MS);
  assert.equal(watchdog.stalled(), false);
});

test('a gap of exactly 1 s is not a stall; just over is', () => {
  const { timers, stalls, watchdog } = fixture();
  watchdog.start();
  timers.advance(STALL_TICK_MS);
  timers.freeze(STALL_MS); // the overdue tick comes exactly STALL_MS after the last one
  timers.runDue();
  assert.equal(watchdog.stalled(), false);
  assert.deepEqual(stalls, []);
  timers.freeze(STALL_MS + 1);
  assert.equal(watchdog.stalled(), true);
  assert.deepEqual(stalls, [STALL_MS + 1]);
});

test('each freeze after the window closed opens a new one', () => {
  const { timers, stalls, watchdog } = fixture();
  watchdog.start();
  timers.freeze(1200);
  timers.runDue();
  timers.advance(STALE_WINDOW_MS);
  assert.equal(watchdog.stalled(), false);
  timers.freeze(3000);
  timers.runDue();
  assert.equal(watchdog.stalled(), true);
  assert.deepEqual(stalls, [1200, 3000]);
});

test('never stalled before start or after stop, and stop ends the tick', () => {
  const { timers, stalls, watchdog } = fixture();
  timers.freeze(5000);
  assert.equal(watchdog.stalled(), false, 'before start');
  watchdog.start();
  assert.equal(timers.armed, 1);
  watchdog.stop();
  assert.equal(timers.armed, 0);
  timers.freeze(5000);
  assert.equal(watchdog.stalled(), false, 'after stop');
  assert.deepEqual(stalls, []);
});
