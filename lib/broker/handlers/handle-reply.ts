/**
 * REPLY from a worker: matched to its pending request and passed to the
 * client, stamped with the worker's key (docs/protocol.md#6-messages, REPLY).
 * A reply to a request pending here is counted with its latency; one that
 * only passes through (addressed to a client whose request went through
 * another broker) is not.
 */
import type { ReplyMessage } from '../../protocol/messages.ts';
import type { Session } from '../session.ts';
import type { HandlerContext } from './handler-context.ts';

/** Handles a REPLY from `worker`. */
export function handleReply(ctx: HandlerContext, worker: Session, m: ReplyMessage): void {
  const p = ctx.pending.takeInflight(worker.id, m.id, m.to);
  ctx.router.idle(worker);
  // The request came through this broker, or the worker's broker for it is
  // gone and the reply is addressed (`to`) to a client connected here.
  const client = ctx.router.recipientOf(p, m.to);
  if (!client) {
    if (p) ctx.stats.ended(p.message.service, 'dropped');
    return;
  }
  if (m.payload.length > client.connection.peerMaxPayload) {
    if (p) ctx.stats.ended(p.message.service, 'MESH_ERR_ENVELOPE_TOO_LARGE');
    client.sendError('MESH_ERR_ENVELOPE_TOO_LARGE', `reply of ${m.payload.length} bytes is over the client's limit of ${client.connection.peerMaxPayload}`, m.id);
    return;
  }
  client.connection.send({ type: 'REPLY', id: m.id, worker: worker.publicKey, trace: m.trace, payload: m.payload });
  // Counted once sent: the latency is the broker's time from the REQUEST to here.
  if (p) ctx.stats.replied(p.message.service, p.receivedAt);
}
