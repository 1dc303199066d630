// What a benchmark worker executed: the sequence number of every request it
// ran (failover runs count duplicates across workers from these), bounded.
import { seqOf } from './load.mjs';

const MAX = 2_000_000;

export function executionLog() {
  let seqs = [];
  let dropped = 0;
  return {
    record(payload) {
      if (payload.byteLength < 8) return;
      if (seqs.length >= MAX) dropped++;
      else seqs.push(seqOf(payload));
    },
    /** Returns what was recorded since the last take, and forgets it. */
    take() {
      const out = { seqs, dropped };
      seqs = [];
      dropped = 0;
      return out;
    },
  };
}
