// FloodLog: which failed handshakes a broker logs one by one, and the
// summary of the rest (docs/cli.md, events `handshake-failed` and
// `handshake-flood`).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FloodLog } from '../../lib/broker/flood-log.ts';

test('the first failure per source and code in a window is reported; repeats are only counted', () => {
  const log = new FloodLog({ windowMs: 10_000, maxReports: 10, maxSources: 100 });
  assert.equal(log.due, undefined);
  assert.equal(log.note('failed', '10.0.0.1', 'MESH_ERR_DECRYPT', 5), true);
  assert.equal(log.due, 10_005);
  assert.equal(log.note('failed', '10.0.0.1', 'MESH_ERR_DECRYPT', 6), false);
  assert.equal(log.note('failed', '10.0.0.1', 'MESH_ERR_UNAUTHORIZED', 7), true, 'another code');
  assert.equal(log.note('failed', '10.0.0.2', 'MESH_ERR_DECRYPT', 8), true, 'another source');
  assert.deepEqual(log.flush(), { windowMs: 10_000, failed: 1, evicted: 0, refused: 0, sources: [{ source: '10.0.0.1', count: 1 }] });
  assert.equal(log.due, undefined);
  assert.equal(log.note('failed', '10.0.0.1', 'MESH_ERR_DECRYPT', 20_000), true, 'a new window reports it again');
});

test('at most maxReports failures are reported per window, whatever their sources', () => {
  const log = new FloodLog({ windowMs: 1000, maxReports: 3, maxSources: 100 });
  const reported = Array.from({ length: 50 }, (_, i) => log.note('failed', `10.0.0.${i}`, 'MESH_ERR_HANDSHAKE_TIMEOUT', i)).filter(Boolean).length;
  assert.equal(reported, 3);
  const summary = log.flush();
  assert.equal(summary?.failed, 47);
  assert.equal(summary?.sources.length, 5, 'the top 5 sources');
});

test('evictions and refusals are never reported one by one; the summary ranks sources by count', () => {
  const log = new FloodLog({ windowMs: 1000, maxReports: 10, maxSources: 100 });
  for (let i = 0; i < 7; i++) assert.equal(log.note('evicted', '127.0.0.2', 'MESH_ERR_LIMIT', i), false);
  for (let i = 0; i < 3; i++) assert.equal(log.note('refused', '127.0.0.3', 'MESH_ERR_LIMIT', i), false);
  assert.deepEqual(log.flush(), {
    windowMs: 1000,
    failed: 0,
    evicted: 7,
    refused: 3,
    sources: [
      { source: '127.0.0.2', count: 7 },
      { source: '127.0.0.3', count: 3 },
    ],
  });
  assert.equal(log.flush(), undefined, 'an empty window has no summary');
});

test('sources past maxSources are counted together as "other": memory stays bounded', () => {
  const log = new FloodLog({ windowMs: 1000, maxReports: 0, maxSources: 4 });
  for (let i = 0; i < 1000; i++) log.note('evicted', `10.0.${i >> 8}.${i & 255}`, 'MESH_ERR_LIMIT', i);
  const summary = log.flush();
  assert.equal(summary?.evicted, 1000);
  assert.deepEqual(summary?.sources[0], { source: 'other', count: 996 });
});
