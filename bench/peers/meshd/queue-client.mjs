// A meshd client that floods a slow service, for `npm run bench:compare --
// --scale`: `flood` sends `count` requests at once (payload of
// `payloadBytes`, its first 8 bytes the sequence number) and answers as soon
// as they are all sent; `wait` resolves when every one has settled, with the
// counts (every reply checked against its request) and when the last came.
import { randomBytes } from 'node:crypto';
import { MeshNode } from '../../../dist/lib/index.js';
import { flag, runPeer } from '../child-protocol.mjs';
import { wallMs } from '../load.mjs';

runPeer('meshd-queue-client', Number(flag('lifetime-ms', '600000')), async () => {
  const node = await MeshNode.connect({ brokers: flag('brokers').split(','), key: flag('key'), name: 'queue-client', timeout: 10_000 });
  let settled = Promise.resolve([]);
  const counts = { ok: 0, wrong: 0, failed: 0, failures: {}, lastAt: 0 };
  const flood = ({ count, payloadBytes, timeout }) => {
    const pattern = randomBytes(payloadBytes);
    const all = [];
    for (let seq = 0; seq < count; seq++) {
      const payload = Buffer.from(pattern);
      payload.writeBigUInt64BE(BigInt(seq), 0);
      all.push(
        node.request('slow', payload, { timeout, retries: 0 }).then(
          (reply) => {
            if (Buffer.compare(Buffer.from(reply.buffer, reply.byteOffset, reply.byteLength), payload) === 0) counts.ok++;
            else counts.wrong++;
            counts.lastAt = wallMs();
          },
          (error) => {
            counts.failed++;
            const code = String(error?.code ?? error);
            counts.failures[code] = (counts.failures[code] ?? 0) + 1;
            counts.lastAt = wallMs();
          },
        ),
      );
    }
    settled = Promise.all(all);
    return { sent: count, at: wallMs() };
  };
  return {
    info: { system: 'meshd' },
    commands: {
      flood,
      wait: async () => {
        await settled;
        return counts;
      },
    },
    close: () => node.close(),
  };
});
