/**
 * The admin endpoint's `GET /metrics` (docs/cli.md#get-metrics): the
 * broker's counters and gauges in the Prometheus text format, through
 * prom-client with a Registry of its own (never the global one), plus
 * prom-client's default process metrics. Every meshd metric is filled at
 * scrape time from one `broker.stats()` snapshot, so one scrape is
 * consistent; nothing is recorded per request here.
 */

import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { Histogram } from 'prom-client';
import type { Broker, BrokerStats } from '../../lib/index.ts';
import type { LagWindow } from './event-loop-lag.ts';

/** What one scrape reads. */
interface Scrape {
  readonly stats: BrokerStats;
  readonly ready: boolean;
  readonly lag: LagWindow;
}

/** One series of a metric, as the Registry formats it: `metricName{labels} value`. */
interface Series {
  readonly metricName: string;
  readonly labels: Readonly<Record<string, string | number>>;
  readonly value: number;
}

/** Every metric meshd adds, for docs and tests: name, type, labels. */
export const MESHD_METRICS = [
  ['meshd_requests_total', 'counter', ['service', 'outcome']],
  ['meshd_request_duration_seconds', 'histogram', ['service']],
  ['meshd_request_resends_total', 'counter', ['service']],
  ['meshd_redispatches_total', 'counter', ['service', 'reason']],
  ['meshd_queue_depth', 'gauge', ['service']],
  ['meshd_requests_in_flight', 'gauge', ['service']],
  ['meshd_service_workers', 'gauge', ['service']],
  ['meshd_pending_requests', 'gauge', []],
  ['meshd_connections', 'gauge', ['role']],
  ['meshd_handshakes_in_progress', 'gauge', []],
  ['meshd_handshake_failures_total', 'counter', ['reason']],
  ['meshd_handshakes_evicted_total', 'counter', []],
  ['meshd_gossip_rounds_total', 'counter', []],
  ['meshd_brokers', 'gauge', []],
  ['meshd_ready', 'gauge', []],
  ['meshd_uptime_seconds', 'gauge', []],
  ['meshd_event_loop_lag_seconds', 'gauge', ['stat']],
] as const;

type MetricName = (typeof MESHD_METRICS)[number][0];

/** The prom-client registry of one admin endpoint. */
export class AdminMetrics {
  readonly registry = new Registry();
  #scrape: Scrape | undefined;

  constructor() {
    const scrape = (): Scrape => {
      if (!this.#scrape) throw new Error('metrics collected outside a scrape');
      return this.#scrape;
    };
    const help: Record<MetricName, string> = {
      meshd_requests_total: 'Requests this broker took in, by service and how they ended: replied, an error code, timed-out, refused, dropped.',
      meshd_request_duration_seconds: 'Time from reading a REQUEST to forwarding its REPLY, for replied requests.',
      meshd_request_resends_total: 'REQUESTs for a request still pending here (a client resend through the same broker).',
      meshd_redispatches_total: 'Requests sent to another worker: reason worker-lost or refused.',
      meshd_queue_depth: 'Requests waiting in the service queue for a worker with a free credit.',
      meshd_requests_in_flight: 'Requests dispatched to a worker and not answered yet.',
      meshd_service_workers: 'Workers connected to this broker that offer the service.',
      meshd_pending_requests: 'Requests accepted and not answered yet.',
      meshd_connections: 'Open sessions by registry role.',
      meshd_handshakes_in_progress: 'Handshakes in progress.',
      meshd_handshake_failures_total: 'Connections turned away before they became a session, by error code.',
      meshd_handshakes_evicted_total: 'Connections in their handshake closed to make room for a newcomer when the handshake bounds were full.',
      meshd_gossip_rounds_total: 'Quorum rounds completed.',
      meshd_brokers: 'Brokers in the agreed live list, this one included.',
      meshd_ready: '1 once the broker completed its first quorum round and while it is not draining, else 0.',
      meshd_uptime_seconds: 'Time since the broker started.',
      meshd_event_loop_lag_seconds: 'Event-loop delay over the last 10 s window: stat p50, p99 or max.',
    };
    const registers = this.registry;
    const counter = (name: MetricName, labelNames: readonly string[], fill: (c: Counter, s: Scrape) => void): void => {
      new Counter({
        name,
        help: help[name],
        labelNames,
        registers: [registers],
        collect() {
          this.reset();
          fill(this, scrape());
        },
      });
    };
    const gauge = (name: MetricName, labelNames: readonly string[], fill: (g: Gauge, s: Scrape) => void): void => {
      new Gauge({
        name,
        help: help[name],
        labelNames,
        registers: [registers],
        collect() {
          this.reset();
          fill(this, scrape());
        },
      });
    };
    counter('meshd_requests_total', ['service', 'outcome'], (c, { stats }) => {
      for (const s of stats.services) for (const [outcome, n] of Object.entries(s.requests)) c.inc({ service: s.name, outcome }, n ?? 0);
    });
    this.#histogram('meshd_request_duration_seconds', help.meshd_request_duration_seconds, scrape);
    counter('meshd_request_resends_total', ['service'], (c, { stats }) => {
      for (const s of stats.services) c.inc({ service: s.name }, s.resends);
    });
    counter('meshd_redispatches_total', ['service', 'reason'], (c, { stats }) => {
      for (const s of stats.services) {
        c.inc({ service: s.name, reason: 'worker-lost' }, s.redispatches.workerLost);
        c.inc({ service: s.name, reason: 'refused' }, s.redispatches.refused);
      }
    });
    gauge('meshd_queue_depth', ['service'], (g, { stats }) => {
      for (const s of stats.services) g.set({ service: s.name }, s.queued);
    });
    gauge('meshd_requests_in_flight', ['service'], (g, { stats }) => {
      for (const s of stats.services) g.set({ service: s.name }, s.inFlight);
    });
    gauge('meshd_service_workers', ['service'], (g, { stats }) => {
      for (const s of stats.services) g.set({ service: s.name }, s.workers);
    });
    gauge('meshd_pending_requests', [], (g, { stats }) => g.set(stats.pending));
    gauge('meshd_connections', ['role'], (g, { stats }) => {
      for (const [role, n] of Object.entries(stats.connections)) g.set({ role }, n);
    });
    gauge('meshd_handshakes_in_progress', [], (g, { stats }) => g.set(stats.handshakes));
    counter('meshd_handshake_failures_total', ['reason'], (c, { stats }) => {
      for (const [reason, n] of Object.entries(stats.handshakesFailed)) c.inc({ reason }, n ?? 0);
    });
    counter('meshd_handshakes_evicted_total', [], (c, { stats }) => c.inc(stats.handshakesEvicted));
    counter('meshd_gossip_rounds_total', [], (c, { stats }) => c.inc(stats.gossipRounds));
    gauge('meshd_brokers', [], (g, { stats }) => g.set(stats.brokers));
    gauge('meshd_ready', [], (g, { ready }) => g.set(ready ? 1 : 0));
    gauge('meshd_uptime_seconds', [], (g, { stats }) => g.set(stats.uptimeMs / 1000));
    gauge('meshd_event_loop_lag_seconds', ['stat'], (g, { lag }) => {
      g.set({ stat: 'p50' }, lag.p50Ms / 1000);
      g.set({ stat: 'p99' }, lag.p99Ms / 1000);
      g.set({ stat: 'max' }, lag.maxMs / 1000);
    });
    collectDefaultMetrics({ register: this.registry });
  }

  /** The Content-Type of {@link AdminMetrics.text}. */
  get contentType(): string {
    return this.registry.contentType;
  }

  /** The metrics of `broker` now, as Prometheus text. */
  async text(broker: Broker, ready: boolean, lag: LagWindow): Promise<string> {
    this.#scrape = { stats: broker.stats(), ready, lag };
    try {
      return await this.registry.metrics();
    } finally {
      this.#scrape = undefined;
    }
  }

  /**
   * The latency histogram. The broker has counted its buckets already, so
   * this is not a prom-client Histogram (which only counts observations made
   * through it) but a metric of the shape the Registry reads through `get()`:
   * cumulative `_bucket` series with `le` (seconds), `_sum` and `_count`.
   */
  #histogram(name: MetricName, help: string, scrape: () => Scrape): void {
    const metric = {
      name,
      help,
      type: 'histogram' as const,
      aggregator: 'sum' as const,
      get: () => {
        const values: Series[] = [];
        for (const s of scrape().stats.services) {
          const { boundsMs, counts, count, sumMs } = s.latency;
          let cumulative = 0;
          boundsMs.forEach((bound, i) => {
            cumulative += counts[i] ?? 0;
            values.push({ metricName: `${name}_bucket`, labels: { service: s.name, le: bound / 1000 }, value: cumulative });
          });
          values.push({ metricName: `${name}_bucket`, labels: { service: s.name, le: '+Inf' }, value: count });
          values.push({ metricName: `${name}_sum`, labels: { service: s.name }, value: sumMs / 1000 });
          values.push({ metricName: `${name}_count`, labels: { service: s.name }, value: count });
        }
        return Promise.resolve({ name, help, type: 'histogram', values, aggregator: 'sum' as const });
      },
    };
    // The Registry formats any metric through get() (type 'histogram' as a string, as
    // prom-client's own metrics give it); its declared parameter type names only its classes.
    this.registry.registerMetric(metric as unknown as Histogram);
  }
}
