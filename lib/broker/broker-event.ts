/**
 * The events of a Broker (`broker.on(type, listener)`): one object per
 * event, with a kebab-case `type` (the `meshd broker` log event names).
 */
import type { MeshError } from '../errors.ts';
import type { FloodSummary } from './flood-log.ts';
import type { PeerEvent } from './peer-mesh.ts';

/** Something worth logging. */
export type BrokerEvent =
  | { type: 'connected'; key: string; name: string; role: string; remote: string }
  | { type: 'disconnected'; key: string; name: string; error?: MeshError | undefined }
  | { type: 'handshake-failed'; remote: string; error: MeshError }
  | ({ type: 'handshake-flood' } & FloodSummary)
  | { type: 'registry-reloaded'; entries: number; removed: number }
  | { type: 'registry-error'; error: MeshError }
  | { type: 'forbidden'; key: string; name: string; what: string }
  | { type: 'draining' }
  | { type: 'stalled'; ms: number }
  | PeerEvent
  | { type: 'closed' };

/** The type of a broker event. */
export type BrokerEventType = BrokerEvent['type'];

/** Every broker event type, e.g. to listen to all of them (as `meshd broker` does to log them). */
export const BROKER_EVENT_TYPES = [
  'connected',
  'disconnected',
  'handshake-failed',
  'handshake-flood',
  'registry-reloaded',
  'registry-error',
  'forbidden',
  'draining',
  'stalled',
  'peer-up',
  'peer-down',
  'peer-dial-failed',
  'peer-not-registered',
  'brokers',
  'closed',
] as const satisfies readonly BrokerEventType[];

// Every type is in the list: this line fails to compile when one is missing.
const _allListed: readonly (typeof BROKER_EVENT_TYPES)[number][] = [] as BrokerEventType[];
