/**
 * What a message handler may do at the broker: read the registry and the
 * service table, look sessions up, keep the pending table, route, dispatch
 * or fail a pending request, and report events. The Broker provides it.
 */
import type { GossipMessage } from '../../protocol/messages.ts';
import type { BrokerEvent } from '../broker-event.ts';
import type { BrokerCounters } from '../broker-stats.ts';
import type { PendingRequest, PendingTable } from '../pending-table.ts';
import type { Registry } from '../registry.ts';
import type { Router } from '../router.ts';
import type { ServiceTable } from '../service-table.ts';
import type { Session } from '../session.ts';
import type { SessionDirectory } from '../session-directory.ts';

/** The broker as its message handlers see it. */
export interface HandlerContext {
  /** The registry in force (replaced on reload). */
  readonly registry: Registry;
  /** Whether the broker is draining: it takes no new requests. */
  readonly draining: boolean;
  /** Services: their workers, credits and queues. */
  readonly services: ServiceTable<PendingRequest>;
  /** Requests accepted and not yet answered. */
  readonly pending: PendingTable;
  /** Finds open sessions. */
  readonly sessions: Pick<SessionDirectory, 'get' | 'hasKey' | 'anyNode'>;
  /** Moves pending requests to workers, queues and clients. */
  readonly router: Pick<Router, 'route' | 'dispatch' | 'resend' | 'fail' | 'recipientOf' | 'idle' | 'withdraw'>;
  /** The broker's monotonic clock, ms. */
  now(): number;
  /** Whether input read now may be stale (the stall watchdog). */
  stalled(): boolean;
  /** Counts how requests end (an integer bump: no event per request). */
  readonly stats: BrokerCounters;
  /** Reports an event (for logs). */
  emit(event: BrokerEvent): void;
  /** A GOSSIP from a peer broker's session. */
  gossip(from: Session, message: GossipMessage): void;
}
