/**
 * The events a broker reports through its `onEvent` option (for logs).
 */
import type { MeshError } from '../errors.ts';
import type { PeerEvent } from './peer-mesh.ts';

/** Something worth logging. */
export type BrokerEvent =
  | { type: 'connected'; key: string; name: string; role: string; remote: string }
  | { type: 'disconnected'; key: string; name: string; error?: MeshError | undefined }
  | { type: 'handshake-failed'; remote: string; error: MeshError }
  | { type: 'registry-reloaded'; entries: number; removed: number }
  | { type: 'registry-error'; error: MeshError }
  | { type: 'forbidden'; key: string; name: string; what: string }
  | { type: 'draining' }
  | { type: 'stalled'; ms: number }
  | PeerEvent
  | { type: 'closed' };
