/**
 * The one table of message handlers, and the role checks in front of it. A
 * node sends REQUEST, READY and connection-level ERRORs; REPLY, REFUSED,
 * CANCEL and an ERROR about a request only when its role may serve (worker
 * or node); a peer broker sends only GOSSIP (and connection-level ERRORs).
 * Anything else closes the sender's connection with MESH_ERR_PROTOCOL, and
 * the broker keeps serving everyone else. Whether a party may call or serve
 * a given service is the registry's check, in the handlers.
 */
import { MeshError } from '../../errors.ts';
import type { RoleName } from '../../protocol/hello.ts';
import type { Message, MessageTypeName } from '../../protocol/messages.ts';
import type { Session } from '../session.ts';
import type { HandlerContext } from './handler-context.ts';
import { handleCancel } from './handle-cancel.ts';
import { handleReady } from './handle-ready.ts';
import { handleRefused } from './handle-refused.ts';
import { handleReply } from './handle-reply.ts';
import { handleRequest } from './handle-request.ts';
import { handleWorkerError } from './handle-worker-error.ts';

/** The message of type `K`. */
export type MessageOf<K extends MessageTypeName> = Extract<Message, { readonly type: K }>;

/** Handles one message of type `K` from a session. */
export type MessageHandler<K extends MessageTypeName> = (ctx: HandlerContext, session: Session, message: MessageOf<K>) => void;

/** A handler per message type; a type without one may not be sent to a broker. */
export type MessageHandlers = { readonly [K in MessageTypeName]?: MessageHandler<K> };

/** What a broker does with each message a node sends it. */
export const MESSAGE_HANDLERS: MessageHandlers = {
  REQUEST: handleRequest,
  READY: handleReady,
  CANCEL: handleCancel,
  REPLY: handleReply,
  ERROR: handleWorkerError,
  REFUSED: handleRefused,
};

/** Messages only a party that may serve (role worker or node) sends. */
const FROM_SERVERS: ReadonlySet<MessageTypeName> = new Set<MessageTypeName>(['REPLY', 'REFUSED', 'CANCEL']);

/** The handler for a message, typed for that message. */
export function handlerFor<K extends MessageTypeName>(handlers: MessageHandlers, message: MessageOf<K>): MessageHandler<K> | undefined {
  return handlers[message.type];
}

/** Whether a party of this role may send this message to a broker (GOSSIP is checked apart). */
function mayNodeSend(role: RoleName, message: Message): boolean {
  if (role === 'worker' || role === 'node') return true;
  return !FROM_SERVERS.has(message.type) && !(message.type === 'ERROR' && message.id !== undefined);
}

/** Checks a message against its sender's role and hands it to its handler. */
export function handleMessage(ctx: HandlerContext, session: Session, message: Message): void {
  const role = session.entry.role;
  if (role === 'broker' || message.type === 'GOSSIP') {
    // Brokers talk to brokers in GOSSIP only (and connection-level ERRORs).
    if (role === 'broker' && message.type === 'GOSSIP') ctx.gossip(session, message);
    else if (!(role === 'broker' && message.type === 'ERROR' && message.id === undefined)) refuse(session, message);
    return;
  }
  const handler = handlerFor(MESSAGE_HANDLERS, message);
  if (!handler || !mayNodeSend(role, message)) {
    refuse(session, message);
    return;
  }
  handler(ctx, session, message);
}

function refuse(session: Session, message: Message): void {
  session.connection.close(new MeshError('MESH_ERR_PROTOCOL', `${message.type} may not be sent to a broker by a ${session.entry.role}`), { notify: true });
}
