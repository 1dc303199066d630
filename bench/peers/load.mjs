// The client load loop shared by every system of `npm run bench:compare`:
// K requests in flight, each a payload of `payloadBytes` whose first 8 bytes
// are its sequence number and the rest a fixed random pattern; every reply
// must equal its request byte for byte. Bounded by a count and a time.
import { randomBytes } from 'node:crypto';

/**
 * `send(payload)` resolves with the reply bytes. Returns the counts, the
 * rate and the latency percentiles in µs.
 */
export async function runLoad(send, { k, count, maxMs, payloadBytes }) {
  const pattern = randomBytes(payloadBytes);
  const latencies = new Float64Array(count);
  let issued = 0;
  let done = 0;
  let ok = 0;
  let wrong = 0;
  let failed = 0;
  const failures = {};
  const start = performance.now();
  const deadline = start + maxMs;
  const one = async () => {
    while (issued < count && performance.now() < deadline) {
      const seq = issued++;
      const payload = Buffer.from(pattern);
      payload.writeBigUInt64BE(BigInt(seq), 0);
      const t0 = performance.now();
      try {
        const reply = await send(payload);
        latencies[done] = performance.now() - t0;
        if (Buffer.compare(Buffer.from(reply.buffer, reply.byteOffset, reply.byteLength), payload) === 0) ok++;
        else wrong++;
      } catch (error) {
        latencies[done] = performance.now() - t0;
        failed++;
        const code = String(error?.code ?? error?.message ?? error);
        failures[code] = (failures[code] ?? 0) + 1;
      }
      done++;
    }
  };
  await Promise.all(Array.from({ length: k }, one));
  const elapsedMs = performance.now() - start;
  const sorted = latencies.subarray(0, done).sort();
  const at = (q) => (done === 0 ? 0 : Math.round(sorted[Math.min(done - 1, Math.floor(q * done))] * 1000));
  return {
    k,
    requests: done,
    ok,
    wrong,
    failed,
    failures,
    elapsedMs: Math.round(elapsedMs),
    requestsPerSec: Math.round((done / elapsedMs) * 1000),
    latencyUs: { p50: at(0.5), p99: at(0.99), max: done === 0 ? 0 : Math.round(sorted[done - 1] * 1000) },
  };
}

/** Wall-clock ms (same clock in every process of the machine). */
export const wallMs = () => performance.timeOrigin + performance.now();

/**
 * The failover loop: K requests in flight for `durationMs` (then it waits,
 * bounded by `settleMs`, for what is still in flight). Returns one record
 * per request: [sentAtWallMs, settledAtWallMs or -1, outcome] where outcome
 * is 'ok', 'wrong', or an error code; a request still unsettled after the
 * wait is returned with -1 and 'unsettled' (lost).
 */
export async function runTimed(send, { k, durationMs, settleMs, payloadBytes }) {
  const pattern = randomBytes(payloadBytes);
  const records = [];
  const end = performance.now() + durationMs;
  let seq = 0;
  const one = async () => {
    while (performance.now() < end) {
      const payload = Buffer.from(pattern);
      payload.writeBigUInt64BE(BigInt(seq++), 0);
      const record = [wallMs(), -1, 'unsettled'];
      records.push(record);
      try {
        const reply = await send(payload);
        record[2] = Buffer.compare(Buffer.from(reply.buffer, reply.byteOffset, reply.byteLength), payload) === 0 ? 'ok' : 'wrong';
      } catch (error) {
        record[2] = String(error?.code ?? error?.message ?? error);
      }
      record[1] = wallMs();
    }
  };
  let timer;
  const settled = Promise.all(Array.from({ length: k }, one));
  const cap = new Promise((resolve) => {
    timer = setTimeout(resolve, durationMs + settleMs);
  });
  await Promise.race([settled, cap]);
  clearTimeout(timer);
  return { k, records: records.map((r) => [...r]) };
}

/** The sequence number a request payload carries (its first 8 bytes). */
export function seqOf(payload) {
  return Number(Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength).readBigUInt64BE(0));
}
