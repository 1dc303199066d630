/**
 * The options of `Broker.start` (docs/api.md#broker, docs/limits.md#broker).
 */
import type { CryptoSuite, KeyPair } from '../crypto/crypto-suite.ts';
import type { SuiteName } from '../crypto/suites.ts';
import type { ChannelOptions } from '../protocol/connection.ts';
import type { Registry } from './registry.ts';
import type { QueueLimits } from './service-table.ts';

/** Options of `Broker.start`. */
export interface BrokerOptions extends Omit<ChannelOptions, 'suite'> {
  /** Crypto suite: `'node'` (node:crypto), `'noble'` (pure JS) or a suite object (default: node where the runtime supports it). */
  readonly suite?: SuiteName | CryptoSuite | undefined;
  /** The broker's static key pair, or the path of its key file. */
  readonly key: KeyPair | string;
  /** Registry: a parsed Registry, or the path of the YAML file (watched and reloaded). */
  readonly registry: Registry | string;
  /** Listen host (default 127.0.0.1). */
  readonly host?: string | undefined;
  /** Listen port (default 0: any free port). */
  readonly port?: number | undefined;
  /** Name in HELLO and logs (default "broker"). */
  readonly name?: string | undefined;
  /**
   * Most handshakes in progress at once (default 256). At the bound a new
   * connection takes the place of the one with the least progress (the
   * oldest that has sent nothing first); it is closed at once when all have
   * made progress (docs/limits.md#admission).
   */
  readonly maxHandshakes?: number | undefined;
  /** Most handshakes in progress from one source address (default 64); at it, that source's least-progress connection makes room. */
  readonly maxHandshakesPerSource?: number | undefined;
  /** Time a new connection has to send its preamble and handshake message 1, ms (default 500); a silent one is closed. */
  readonly firstMessageTimeout?: number | undefined;
  /**
   * Most established connections (default 10 000): while this many are up,
   * new connections are dropped at accept (handshakes already in progress
   * may still complete).
   */
  readonly maxConnections?: number | undefined;
  /** Most requests one client key may have pending at this broker (default 10 000). */
  readonly maxPendingPerClient?: number | undefined;
  /** Per-service queue bounds. */
  readonly queue?: Partial<QueueLimits> | undefined;
  /** Longest wait for in-flight replies when draining, ms (default 5000). */
  readonly drainTimeout?: number | undefined;
  /** Peer brokers to join, as `mesh://KEY@host:port` URLs (docs/architecture.md#the-broker-mesh). */
  readonly peers?: readonly string[] | undefined;
  /** Quorum round interval, ms (default 1000). */
  readonly gossipInterval?: number | undefined;
  /** How long dead and leaving brokers are remembered, ms (default 30 000). */
  readonly tombstone?: number | undefined;
  /** `host:port` announced to peers and nodes (default: the listen address). */
  readonly advertise?: string | undefined;
  /** Aborts start(): it rejects with MESH_ERR_ABORTED and releases what it had opened. */
  readonly signal?: AbortSignal | undefined;
  /** Monotonic clock, ms (default performance.now). */
  readonly now?: (() => number) | undefined;
}
