/**
 * REQUEST from a client (docs/architecture.md#how-a-broker-routes-a-request,
 * docs/registry.md#checks-at-the-broker): checked against the registry,
 * stamped with the sender's key and name, and routed; a resend of a request
 * still pending here updates it and reaches the worker that has it.
 */
import { encodeKey } from '../../crypto/keys.ts';
import type { RequestMessage } from '../../protocol/messages.ts';
import { requestKey } from '../pending-table.ts';
import type { PendingRequest } from '../pending-table.ts';
import type { Session } from '../session.ts';
import type { HandlerContext } from './handler-context.ts';

/** Handles a REQUEST from `client`. */
export function handleRequest(ctx: HandlerContext, client: Session, m: RequestMessage): void {
  if (!ctx.registry.mayCall(client.entry, m.service)) {
    ctx.emit({ type: 'forbidden', key: client.key, name: client.name, what: `call ${m.service}` });
    ctx.stats.ended(m.service, 'MESH_ERR_FORBIDDEN');
    client.sendError('MESH_ERR_FORBIDDEN', `${client.name} may not call ${m.service}`, m.id);
    return;
  }
  if (ctx.draining || ctx.stalled()) {
    // Handed back, never dispatched: the client resends it elsewhere. After
    // a freeze, a request read now may be one the client has long resent.
    ctx.stats.ended(m.service, 'refused');
    client.connection.send({ type: 'REFUSED', id: m.id });
    return;
  }
  if (m.ttl <= 0) {
    ctx.stats.ended(m.service, 'MESH_ERR_TIMEOUT');
    client.sendError('MESH_ERR_TIMEOUT', 'request arrived with no time left', m.id);
    return;
  }
  const reqKey = requestKey(client.key, m.id);
  const existing = ctx.pending.get(reqKey);
  if (existing) {
    ctx.stats.resent(m.service);
    resend(ctx, client, existing, m);
    return;
  }
  if (!ctx.services.get(m.service) && !(m.worker && ctx.sessions.hasKey(encodeKey(m.worker)))) {
    ctx.stats.ended(m.service, 'MESH_ERR_NO_SERVICE');
    client.sendError('MESH_ERR_NO_SERVICE', `no worker offers ${m.service} at this broker`, m.id);
    return;
  }
  const now = ctx.now();
  const pending: PendingRequest = {
    reqKey,
    message: { ...m, sender: client.publicKey, senderName: client.name },
    clientId: client.id,
    clientKey: client.key,
    deadline: now + m.ttl,
    receivedAt: now,
    workerId: undefined,
    refusals: 0,
  };
  if (!ctx.pending.add(pending)) {
    ctx.stats.ended(m.service, 'MESH_ERR_BUSY');
    client.sendError('MESH_ERR_BUSY', `${client.name} has ${ctx.pending.countFor(client.key)} requests pending at this broker (limit ${ctx.pending.maxPerClient})`, m.id);
    return;
  }
  ctx.router.route(pending);
}

/**
 * A resend through this broker of a request still pending here: answer on
 * the latest path, and let the worker that has it attach (it dedups by
 * sender and id).
 */
function resend(ctx: HandlerContext, client: Session, existing: PendingRequest, m: RequestMessage): void {
  ctx.pending.moveClient(existing, client.id);
  existing.message = { ...existing.message, attempt: Math.max(existing.message.attempt, m.attempt), dup: existing.message.dup || m.dup };
  existing.deadline = Math.max(existing.deadline, ctx.now() + m.ttl);
  if (existing.workerId === undefined) ctx.pending.watch(existing.deadline);
  const worker = existing.workerId === undefined ? undefined : ctx.sessions.get(existing.workerId);
  if (worker) {
    // The worker counts a credit for every REQUEST it receives: take one here too.
    ctx.services.get(m.service)?.takeCredit(worker.id);
    ctx.router.resend(existing, worker);
  }
}
