/**
 * A broker's /status for people: the tables of `meshd status`, and the
 * figures `meshd top` derives from two readings (rates, latency
 * percentiles from histogram buckets). Plain code: no I/O.
 */

import { formatTable } from '../commands/registry.ts';
import type { StatusDocument } from './admin-status.ts';

/**
 * The `q` quantile (0 to 1) of a fixed-bucket histogram, ms, interpolated
 * linearly within its bucket (as Prometheus' histogram_quantile does);
 * undefined when it counted nothing. A quantile in the overflow bucket is
 * the last bound.
 */
export function quantileMs(boundsMs: readonly number[], counts: readonly number[], q: number): number | undefined {
  const total = counts.reduce((a, b) => a + b, 0);
  if (total <= 0) return undefined;
  const rank = q * total;
  let below = 0;
  for (let i = 0; i < counts.length; i++) {
    const n = counts[i] ?? 0;
    if (n > 0 && below + n >= rank) {
      const upper = boundsMs[i];
      if (upper === undefined) return boundsMs[boundsMs.length - 1];
      const lower = i === 0 ? 0 : (boundsMs[i - 1] ?? 0);
      return lower + ((upper - lower) * (rank - below)) / n;
    }
    below += n;
  }
  return boundsMs[boundsMs.length - 1];
}

/** `0.4ms`, `12ms`, `2.5s`, or `-` for none. */
export function formatMs(ms: number | undefined): string {
  if (ms === undefined) return '-';
  if (ms >= 1000) return `${(ms / 1000).toFixed(ms >= 10_000 ? 0 : 1)}s`;
  return ms < 10 ? `${ms.toFixed(1)}ms` : `${Math.round(ms)}ms`;
}

/** `42s`, `5m 3s`, `2h 5m`, `3d 4h`. */
export function formatUptime(ms: number): string {
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86_400)}d ${Math.floor((s % 86_400) / 3600)}h`;
}

/** Requests of a service that ended any way but `replied`. */
function failedOf(requests: Readonly<Partial<Record<string, number>>>): number {
  let n = 0;
  for (const [outcome, count] of Object.entries(requests)) if (outcome !== 'replied') n += count ?? 0;
  return n;
}

/** `MESH_ERR_UNAUTHORIZED=2 MESH_ERR_LIMIT=1`, or `-`. */
function counts(map: Readonly<Partial<Record<string, number>>>): string {
  const parts = Object.entries(map).map(([k, n]) => `${k}=${n ?? 0}`);
  return parts.length === 0 ? '-' : parts.join(' ');
}

/** The lines `meshd status` prints for a running broker. */
export function statusLines(doc: StatusDocument): string[] {
  const lines = formatTable([
    ['BROKER', doc.broker.name],
    ['STATE', doc.state],
    ['ADDRESS', doc.broker.address],
    ['UPTIME', formatUptime(doc.broker.uptimeMs)],
    ['ROUNDS', String(doc.broker.gossipRounds)],
    ['LIVE BROKERS', String(doc.brokers.length)],
    ['PENDING', String(doc.pending)],
    ['HANDSHAKES FAILED', counts(doc.handshakesFailed)],
    ['HANDSHAKES EVICTED', String(doc.handshakesEvicted)],
    ['EVENT LOOP LAG', `p50 ${formatMs(doc.eventLoop.p50Ms)}, p99 ${formatMs(doc.eventLoop.p99Ms)}, max ${formatMs(doc.eventLoop.maxMs)}`],
  ]);
  lines.push('');
  lines.push(...formatTable([['ROLE', 'CONNECTIONS'], ...Object.entries(doc.connections).map(([role, n]) => [role, String(n)])]));
  lines.push('');
  if (doc.peers.length === 0) {
    lines.push('PEERS  none');
  } else {
    lines.push(...formatTable([['PEER', 'STATUS', 'CONNECTED', 'ADDRESS'], ...doc.peers.map((p) => [p.key, p.status, p.connected ? 'yes' : 'no', p.addresses.join(',')])]));
  }
  lines.push('');
  if (doc.services.length === 0) {
    lines.push('SERVICES  none');
  } else {
    const rows = doc.services.map((s) => [
      s.name,
      String(s.workers),
      String(s.credits),
      String(s.queued),
      String(s.inFlight),
      String(s.requests.replied ?? 0),
      String(failedOf(s.requests)),
      formatMs(quantileMs(s.latency.boundsMs, s.latency.counts, 0.5)),
      formatMs(quantileMs(s.latency.boundsMs, s.latency.counts, 0.99)),
    ]);
    lines.push(...formatTable([['SERVICE', 'WORKERS', 'CREDITS', 'QUEUED', 'IN-FLIGHT', 'REPLIED', 'FAILED', 'P50', 'P99'], ...rows]));
  }
  return lines;
}

/** The figures of one broker over one `meshd top` interval. */
export interface TopSample {
  /** Requests that ended (any outcome) per second over the interval; undefined without an earlier reading. */
  readonly perSecond: number | undefined;
  /** Latency percentiles of the requests replied in the interval, ms (undefined: none, or no earlier reading). */
  readonly p50Ms: number | undefined;
  readonly p99Ms: number | undefined;
  readonly queued: number;
  readonly inFlight: number;
  /** Open sessions of nodes (clients, workers, nodes; peer brokers not counted). */
  readonly nodes: number;
}

/** Requests ended so far, all services and outcomes. */
function ended(doc: StatusDocument): number {
  let n = 0;
  for (const s of doc.services) for (const count of Object.values(s.requests)) n += count ?? 0;
  return n;
}

/** Latency bucket counts of all services together. */
function buckets(doc: StatusDocument): { bounds: readonly number[]; counts: number[] } {
  const bounds = doc.services[0]?.latency.boundsMs ?? [];
  const sum = new Array<number>(bounds.length + 1).fill(0);
  for (const s of doc.services) s.latency.counts.forEach((n, i) => (sum[i] = (sum[i] ?? 0) + n));
  return { bounds, counts: sum };
}

/**
 * What changed between two readings of one broker `elapsedMs` apart
 * (`before` undefined: no earlier reading, so no rate). A broker that
 * restarted in between (another key, or its uptime went back) is measured
 * from zero.
 */
export function topSample(before: StatusDocument | undefined, now: StatusDocument, elapsedMs: number): TopSample {
  const restarted = before !== undefined && (before.broker.key !== now.broker.key || before.broker.uptimeMs > now.broker.uptimeMs);
  const was = restarted ? undefined : before;
  const done = ended(now) - (was ? ended(was) : 0);
  const nowBuckets = buckets(now);
  const wasBuckets = was ? buckets(was) : undefined;
  const delta = nowBuckets.counts.map((n, i) => Math.max(0, n - (wasBuckets?.counts[i] ?? 0)));
  const compared = before !== undefined && elapsedMs > 0;
  return {
    perSecond: compared ? (Math.max(0, done) * 1000) / elapsedMs : undefined,
    p50Ms: compared ? quantileMs(nowBuckets.bounds, delta, 0.5) : undefined,
    p99Ms: compared ? quantileMs(nowBuckets.bounds, delta, 0.99) : undefined,
    queued: now.services.reduce((n, s) => n + s.queued, 0),
    inFlight: now.services.reduce((n, s) => n + s.inFlight, 0),
    nodes: now.connections.client + now.connections.worker + now.connections.node,
  };
}
