// SessionAcceptor, on a real loopback listener: a registered key gets a
// session and its first messages in order, an unknown key fails the
// handshake; admission (docs/limits.md#admission): a full table evicts the
// oldest silent connection, per source too, a silent connection is closed
// after firstMessageTimeout (before the broker's preamble), and draining closes newcomers without touching
// the connections already admitted.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { SessionAcceptor } from '../../lib/broker/session-acceptor.ts';
import type { SessionAcceptorOptions } from '../../lib/broker/session-acceptor.ts';
import { SessionDirectory } from '../../lib/broker/session-directory.ts';
import type { Session } from '../../lib/broker/session.ts';
import { getSuite } from '../../lib/crypto/suites.ts';
import type { MeshError } from '../../lib/errors.ts';
import { listen } from '../../lib/framing/listener.ts';
import type { Listener } from '../../lib/framing/listener.ts';
import { Connection } from '../../lib/protocol/connection.ts';
import { encodePreamble } from '../../lib/protocol/preamble.ts';
import type { Message } from '../../lib/protocol/messages.ts';
import { party, registryOf, until } from '../helpers/mesh.ts';

const broker = party('broker');
const worker = party('worker');
const stranger = party('stranger');
const registry = registryOf([
  [broker, { role: 'broker' }],
  [worker, { role: 'node', serve: ['echo'] }],
]);

interface Rig {
  readonly acceptor: SessionAcceptor;
  readonly listener: Listener;
  readonly sessions: SessionDirectory;
  readonly opened: Session[];
  readonly received: Array<[Session, Message]>;
  readonly closed: Array<[Session, MeshError | undefined]>;
  readonly failed: MeshError[];
  draining: boolean;
}

async function rig(options: Partial<SessionAcceptorOptions> = {}): Promise<Rig> {
  const sessions = new SessionDirectory();
  const partial = { opened: [], received: [], closed: [], failed: [], draining: false, sessions } as Omit<Rig, 'acceptor' | 'listener'>;
  const acceptor = new SessionAcceptor({
    connection: { keyPair: broker.keyPair, suite: getSuite('node'), role: 'broker', name: 'b', bootId: new Uint8Array(16).fill(0xbb), handshakeTimeout: 2000 },
    sessions,
    registry: () => registry,
    draining: () => r.draining,
    onSession: (session) => void partial.opened.push(session),
    onMessage: (session, message) => void partial.received.push([session, message]),
    onClose: (session, error) => {
      sessions.remove(session);
      partial.closed.push([session, error]);
    },
    onHandshakeFailed: (_remote, error) => void partial.failed.push(error),
    ...options,
  });
  const listener = await listen({ host: '127.0.0.1', port: 0 }, (socket) => acceptor.accept(socket));
  const r: Rig = { ...partial, acceptor, listener };
  return r;
}

function dial(r: Rig, who = worker, onMessage: (m: Message) => void = () => {}, onClose: (e: MeshError | undefined) => void = () => {}): Promise<Connection> {
  return Connection.connect(
    { host: '127.0.0.1', port: r.listener.port, remoteKey: broker.keyPair.publicKey, keyPair: who.keyPair, role: 'node', suite: getSuite('node'), handshakeTimeout: 2000 },
    { onMessage, onClose },
  );
}

/** A raw TCP socket that sends nothing; resolves with it once connected. */
function silentSocket(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port }, () => resolve(socket));
    socket.on('error', reject);
  });
}

function closedSoon(socket: net.Socket, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

test('a registered key gets a session, and messages sent with the handshake arrive in order after it opens', async () => {
  const r = await rig();
  try {
    const connection = await dial(r);
    // Sent in the same turn as message 3: they may reach the broker before the session exists.
    connection.send({ type: 'READY', service: 'echo', credits: 1 });
    connection.send({ type: 'READY', service: 'echo', credits: 2 });
    await until(() => r.received.length === 2, 3000, 'both READYs');
    assert.equal(r.opened.length, 1);
    assert.equal(r.opened[0]!.name, 'worker');
    assert.deepEqual(r.received.map(([s, m]) => [s.id, m.type === 'READY' && m.credits]), [[r.opened[0]!.id, 1], [r.opened[0]!.id, 2]]);
    assert.equal(r.acceptor.handshakes, 0);
    assert.equal(r.sessions.size, 1);
    connection.close();
    await until(() => r.closed.length === 1, 3000, 'the session to close');
    assert.equal(r.closed[0]![0], r.opened[0]);
  } finally {
    await r.listener.close();
  }
});

test('a key the registry does not list fails the handshake with MESH_ERR_UNAUTHORIZED and opens no session', async () => {
  const r = await rig();
  try {
    // The initiator is done after message 3; the verdict comes as an encrypted ERROR, then the close.
    const ended: Array<MeshError | undefined> = [];
    await dial(r, stranger, () => {}, (e) => void ended.push(e));
    await until(() => ended.length === 1, 3000, 'the connection to be closed');
    assert.equal(ended[0]?.code, 'MESH_ERR_UNAUTHORIZED');
    await until(() => r.failed.length === 1, 3000, 'the failure to be reported');
    assert.equal(r.failed[0]!.code, 'MESH_ERR_UNAUTHORIZED');
    assert.equal(r.opened.length, 0);
    assert.equal(r.acceptor.handshakes, 0);
  } finally {
    await r.listener.close();
  }
});

/** A raw TCP socket from `localAddress` that sends nothing; resolves with it once connected. */
function silentFrom(port: number, localAddress: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port, localAddress }, () => resolve(socket));
    socket.on('error', reject);
  });
}

/** Lets the event loop go round a few times (the acceptor counts turns with setImmediate). */
const turns = (): Promise<void> => new Promise((r) => setTimeout(r, 20));

test('at maxHandshakes a newcomer evicts the oldest silent connection, and a node that dials in still gets its session', async () => {
  const evicted: string[] = [];
  const r = await rig({ maxHandshakes: 2, firstMessageTimeout: 10_000, onEvicted: (remote) => void evicted.push(remote) });
  const sockets: net.Socket[] = [];
  try {
    sockets.push(await silentSocket(r.listener.port), await silentSocket(r.listener.port));
    await until(() => r.acceptor.handshakes === 2, 3000, 'two silent sockets in the table');
    await turns();
    const firstClosed = closedSoon(sockets[0]!, 2000);
    sockets.push(await silentSocket(r.listener.port));
    assert.equal(await firstClosed, true, 'the oldest silent socket is evicted');
    assert.equal(r.acceptor.handshakes, 2);
    assert.equal(evicted.length, 1);
    assert.deepEqual(r.failed, [], 'an eviction is not reported as a failed handshake');
    await turns();
    // A real node: its message 1 comes at once, so it is not the next one out.
    const connection = await dial(r);
    await until(() => r.opened.length === 1, 3000, 'the session');
    assert.equal(evicted.length, 2, 'the node took the place of the next oldest silent socket');
    assert.equal(sockets[2]!.destroyed, false, 'the newest silent socket is still open');
    connection.close();
  } finally {
    for (const s of sockets) s.destroy();
    await r.listener.close();
  }
});

test('a newcomer accepted in the same turn as the table filled up is closed instead: nothing new is evicted', async () => {
  const r = await rig({ maxHandshakes: 1, firstMessageTimeout: 10_000 });
  const sockets: net.Socket[] = [];
  try {
    // Both connects complete before the broker accepts either: they are accepted in one turn.
    const both = await Promise.all([silentSocket(r.listener.port), silentSocket(r.listener.port)]);
    sockets.push(...both);
    const closed = await Promise.all(both.map((s) => closedSoon(s, 1000)));
    assert.deepEqual(closed.filter(Boolean).length, 1, 'one of the two is closed at once');
    assert.equal(r.acceptor.handshakes, 1);
  } finally {
    for (const s of sockets) s.destroy();
    await r.listener.close();
  }
});

test('a connection that sends nothing within firstMessageTimeout is closed with MESH_ERR_HANDSHAKE_TIMEOUT', async () => {
  const r = await rig({ firstMessageTimeout: 100 });
  const silent = await silentSocket(r.listener.port);
  try {
    const started = performance.now();
    assert.equal(await closedSoon(silent, 3000), true, 'the silent socket is closed');
    const ms = performance.now() - started;
    assert.ok(ms >= 90, `closed after ${Math.round(ms)} ms, not before its 100 ms`);
    await until(() => r.failed.length === 1, 3000, 'the failure to be reported');
    assert.equal(r.failed[0]!.code, 'MESH_ERR_HANDSHAKE_TIMEOUT');
    assert.equal(r.acceptor.handshakes, 0);
    // A real node is well within it.
    const connection = await dial(r);
    await until(() => r.opened.length === 1, 3000, 'the session');
    connection.close();
  } finally {
    silent.destroy();
    await r.listener.close();
  }
});

test('a connection that sent its preamble but no message 1 is closed before the broker answers with its own (so the initiator does not take it for a wrong key)', async () => {
  const r = await rig({ firstMessageTimeout: 100 });
  const socket = await silentSocket(r.listener.port);
  const received: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => void received.push(chunk));
  try {
    socket.write(encodePreamble());
    assert.equal(await closedSoon(socket, 3000), true, 'closed for want of message 1');
    assert.equal(Buffer.concat(received).length, 0, 'no byte from the broker, its preamble included');
    await until(() => r.failed.length === 1, 3000, 'the failure to be reported');
    assert.equal(r.failed[0]!.code, 'MESH_ERR_HANDSHAKE_TIMEOUT');
    // A real initiator gets the preamble and message 2 together.
    const connection = await dial(r);
    await until(() => r.opened.length === 1, 3000, 'the session');
    connection.close();
  } finally {
    socket.destroy();
    await r.listener.close();
  }
});

test('at maxHandshakesPerSource a source evicts only its own oldest silent connection', async () => {
  const evicted: string[] = [];
  const r = await rig({ maxHandshakes: 10, maxHandshakesPerSource: 2, firstMessageTimeout: 10_000, onEvicted: (remote) => void evicted.push(remote) });
  const sockets: net.Socket[] = [];
  try {
    const other = await silentFrom(r.listener.port, '127.0.0.3');
    sockets.push(other);
    await until(() => r.acceptor.handshakes === 1, 3000, 'the other source in the table');
    await turns();
    const a = await silentFrom(r.listener.port, '127.0.0.2');
    const b = await silentFrom(r.listener.port, '127.0.0.2');
    sockets.push(a, b);
    await until(() => r.acceptor.handshakes === 3, 3000, 'two from 127.0.0.2');
    await turns();
    const aClosed = closedSoon(a, 2000);
    sockets.push(await silentFrom(r.listener.port, '127.0.0.2'));
    assert.equal(await aClosed, true, "127.0.0.2's oldest is evicted");
    assert.equal(other.destroyed, false, 'the older connection from 127.0.0.3 stays');
    assert.equal(evicted.length, 1);
    assert.match(evicted[0]!, /^127\.0\.0\.2:/);
    assert.equal(r.acceptor.handshakes, 3);
  } finally {
    for (const s of sockets) s.destroy();
    await r.listener.close();
  }
});

test('close() ends every handshake in progress and admits no one after', async () => {
  const r = await rig({ firstMessageTimeout: 10_000 });
  const silent = await silentSocket(r.listener.port);
  try {
    await until(() => r.acceptor.handshakes === 1, 3000, 'the silent socket in the table');
    r.acceptor.close();
    r.acceptor.close();
    assert.equal(await closedSoon(silent, 2000), true, 'the silent socket is closed');
    assert.equal(r.acceptor.handshakes, 0);
    const late = await silentSocket(r.listener.port);
    assert.equal(await closedSoon(late, 2000), true, 'a later connection is closed at once');
  } finally {
    silent.destroy();
    await r.listener.close();
  }
});

test('while draining, new connections are closed and open sessions are left alone', async () => {
  const r = await rig();
  try {
    const received: Message[] = [];
    const first = await dial(r, worker, (m) => void received.push(m));
    await until(() => r.opened.length === 1, 3000, 'the first session');
    r.draining = true;
    const late = await silentSocket(r.listener.port);
    assert.equal(await closedSoon(late, 2000), true, 'a connection during drain is closed');
    assert.equal(first.closed, false);
    assert.equal(r.sessions.size, 1);
    first.close();
  } finally {
    await r.listener.close();
  }
});
