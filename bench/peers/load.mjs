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
