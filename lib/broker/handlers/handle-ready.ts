/**
 * READY from a worker: it offers a service (if the registry lets it serve
 * that) and grants credits, which go to the requests waiting in the
 * service's queue first, oldest first.
 */
import type { ReadyMessage } from '../../protocol/messages.ts';
import type { Session } from '../session.ts';
import type { HandlerContext } from './handler-context.ts';

/** Handles a READY from `worker`. */
export function handleReady(ctx: HandlerContext, worker: Session, m: ReadyMessage): void {
  if (!ctx.registry.mayServe(worker.entry, m.service)) {
    ctx.emit({ type: 'forbidden', key: worker.key, name: worker.name, what: `serve ${m.service}` });
    worker.sendError('MESH_ERR_FORBIDDEN', `${worker.name} may not serve ${m.service}`);
    return;
  }
  const service = ctx.services.ensure(m.service);
  worker.services.add(m.service);
  service.offer({ id: worker.id, key: worker.key }, m.credits);
  // Waiting requests first, oldest first.
  while (service.queueLength > 0) {
    const picked = service.pick();
    if (!picked) break;
    const p = service.dequeue()!.item;
    if (!ctx.pending.isLive(p)) {
      service.offer({ id: picked.id, key: picked.key }, 1); // give the credit back
      continue;
    }
    if (p.deadline <= ctx.now()) {
      service.offer({ id: picked.id, key: picked.key }, 1);
      ctx.router.fail(p, 'MESH_ERR_TIMEOUT', 'deadline passed in the queue');
      continue;
    }
    ctx.router.dispatch(p, ctx.sessions.get(picked.id)!);
  }
}
