/**
 * The JSON document of the admin endpoint's `GET /status`
 * (docs/cli.md#get-status): what `meshd status` prints and `meshd top`
 * follows. Built from `broker.status()` and `broker.stats()`; versioned, so a
 * reader can tell a meshd admin endpoint from anything else on a port.
 */

import type { Broker, BrokerServiceStats, RoleName } from '../../lib/index.ts';
import type { LagWindow } from './event-loop-lag.ts';

/** `type` of every /status document. */
export const STATUS_TYPE = 'meshd-broker-status';
/** `version` of the /status document this meshd writes and reads. */
export const STATUS_VERSION = 1;

/**
 * Where the broker is in its life: `starting` until its first quorum round
 * completed, `ready` then, `draining` once it began shutting down.
 */
export type BrokerState = 'starting' | 'ready' | 'draining';

/** One service in /status. */
export interface StatusService extends BrokerServiceStats {
  /** Credits its workers have granted this broker and it has not used. */
  readonly credits: number;
  /** Payload bytes waiting in its queue. */
  readonly queuedBytes: number;
}

/** The /status document. */
export interface StatusDocument {
  readonly type: typeof STATUS_TYPE;
  readonly version: typeof STATUS_VERSION;
  readonly state: BrokerState;
  readonly broker: {
    readonly name: string;
    readonly key: string;
    readonly address: string;
    readonly uptimeMs: number;
    readonly gossipRounds: number;
  };
  /** Keys of the live brokers this broker agrees on, itself included, sorted. */
  readonly brokers: readonly string[];
  /** Every other broker in its view: status (`alive`, `suspect`, `leaving`, `dead`), addresses, connected now. */
  readonly peers: ReadonlyArray<{ readonly key: string; readonly status: string; readonly addresses: readonly string[]; readonly connected: boolean }>;
  /** Open sessions by role. */
  readonly connections: Readonly<Record<RoleName, number>>;
  readonly handshakes: number;
  readonly handshakesFailed: Readonly<Record<string, number>>;
  /** Connections in their handshake closed to make room for a newcomer. */
  readonly handshakesEvicted: number;
  readonly pending: number;
  readonly services: readonly StatusService[];
  /** Event-loop delay over the last window, ms. */
  readonly eventLoop: LagWindow;
}

/** The document a broker that has not started yet answers with (503). */
export interface StartingDocument {
  readonly type: typeof STATUS_TYPE;
  readonly version: typeof STATUS_VERSION;
  readonly state: 'starting';
}

/** The state of a running broker: `ready` once it completed a quorum round. */
export function brokerState(broker: Broker, rounds: number): BrokerState {
  if (broker.draining) return 'draining';
  return rounds > 0 ? 'ready' : 'starting';
}

/** The /status document of a running broker, now. */
export function statusDocument(broker: Broker, lag: LagWindow): StatusDocument {
  const status = broker.status();
  const stats = broker.stats();
  const credit = new Map(status.services.map((s) => [s.name, s]));
  return {
    type: STATUS_TYPE,
    version: STATUS_VERSION,
    state: brokerState(broker, stats.gossipRounds),
    broker: { name: broker.name, key: broker.key, address: status.address, uptimeMs: Math.round(stats.uptimeMs), gossipRounds: stats.gossipRounds },
    brokers: status.brokers,
    peers: status.view,
    connections: stats.connections,
    handshakes: stats.handshakes,
    handshakesFailed: stats.handshakesFailed,
    handshakesEvicted: stats.handshakesEvicted,
    pending: stats.pending,
    services: stats.services.map((s) => ({ ...s, credits: credit.get(s.name)?.credits ?? 0, queuedBytes: credit.get(s.name)?.queuedBytes ?? 0 })),
    eventLoop: lag,
  };
}
