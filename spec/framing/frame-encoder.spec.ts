import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeFrame, frameHeader, writeFrameHeader, MAX_FRAME_LENGTH } from '../../lib/framing/frame-encoder.ts';
import { isMeshError } from '../../lib/errors.ts';

void test('frameHeader is the uint16 big-endian length', () => {
  assert.deepEqual(frameHeader(0), Buffer.from([0, 0]));
  assert.deepEqual(frameHeader(1), Buffer.from([0, 1]));
  assert.deepEqual(frameHeader(0x1234), Buffer.from([0x12, 0x34]));
  assert.deepEqual(frameHeader(MAX_FRAME_LENGTH), Buffer.from([0xff, 0xff]));
});

void test('frameHeader rejects lengths outside 0..65535', () => {
  for (const bad of [65536, 1_000_000, -1, 1.5, Number.NaN, Infinity]) {
    assert.throws(
      () => frameHeader(bad),
      (err: unknown) => isMeshError(err, 'MESH_ERR_FRAME_TOO_LARGE'),
      String(bad),
    );
  }
});

void test('encodeFrame is header then body', () => {
  assert.deepEqual(encodeFrame(Buffer.from('abc')), Buffer.from([0, 3, 0x61, 0x62, 0x63]));
  assert.deepEqual(encodeFrame(new Uint8Array(0)), Buffer.from([0, 0]));
  const big = encodeFrame(new Uint8Array(MAX_FRAME_LENGTH).fill(7));
  assert.equal(big.length, MAX_FRAME_LENGTH + 2);
  assert.equal(big.readUInt16BE(0), MAX_FRAME_LENGTH);
  assert.throws(
    () => encodeFrame(new Uint8Array(MAX_FRAME_LENGTH + 1)),
    (err: unknown) => isMeshError(err, 'MESH_ERR_FRAME_TOO_LARGE'),
  );
});

void test('writeFrameHeader writes in place', () => {
  const target = Buffer.alloc(6);
  writeFrameHeader(target, 2, 0x0102);
  assert.deepEqual(target, Buffer.from([0, 0, 1, 2, 0, 0]));
});
