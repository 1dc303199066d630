/**
 * ERROR from a worker about a request (its handler failed, or it refuses
 * the request with a code): passed to the client like a reply.
 */
import type { ErrorMessage } from '../../protocol/messages.ts';
import type { Session } from '../session.ts';
import type { HandlerContext } from './handler-context.ts';

/** Handles an ERROR from `worker`; one without a request id is a connection-level notice and ignored here. */
export function handleWorkerError(ctx: HandlerContext, worker: Session, m: ErrorMessage): void {
  if (m.id === undefined) return; // fatal notices close the connection inside Connection
  const p = ctx.pending.takeInflight(worker.id, m.id, m.to);
  ctx.router.idle(worker);
  const client = ctx.router.recipientOf(p, m.to);
  if (p) {
    if (client) ctx.stats.failed(p.message.service, m.code);
    else ctx.stats.ended(p.message.service, 'dropped');
  }
  client?.connection.send({ type: 'ERROR', id: m.id, code: m.code, retryable: m.retryable, text: m.text });
}
