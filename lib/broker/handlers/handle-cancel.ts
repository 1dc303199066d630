/** CANCEL from a worker: it withdraws a service it offered. */
import type { CancelMessage } from '../../protocol/messages.ts';
import type { Session } from '../session.ts';
import type { HandlerContext } from './handler-context.ts';

/** Handles a CANCEL from `worker`; a service it does not offer is ignored. */
export function handleCancel(ctx: HandlerContext, worker: Session, m: CancelMessage): void {
  if (!worker.services.has(m.service)) return;
  ctx.router.withdraw(worker, m.service);
}
