/**
 * REFUSED from a worker: it will not run a request it was given (it no
 * longer offers the service, drains, or is at its concurrency bound), so the
 * request is routed again, a bounded number of times.
 */
import type { RefusedMessage } from '../../protocol/messages.ts';
import type { Session } from '../session.ts';
import type { HandlerContext } from './handler-context.ts';

/** Refusals a request may collect and still be routed again; the next one answers its client MESH_ERR_BUSY. */
export const MAX_REFUSALS = 8;

/** Handles a REFUSED from `worker`; an id it has no request in flight for is ignored. */
export function handleRefused(ctx: HandlerContext, worker: Session, m: RefusedMessage): void {
  const p = ctx.pending.unassign(worker.id, m.id);
  if (!p) return;
  ctx.router.idle(worker);
  p.message = { ...p.message, worker: undefined };
  if (++p.refusals > MAX_REFUSALS) {
    ctx.router.fail(p, 'MESH_ERR_BUSY', `refused by ${MAX_REFUSALS} workers`);
    return;
  }
  ctx.stats.redispatched(p.message.service, 'refused');
  ctx.router.route(p);
}
