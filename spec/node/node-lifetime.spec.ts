// How long a MeshNode keeps its process alive: an open node does (its links
// redial forever), a closed one or one whose connect() failed does not, even
// while a connection attempt is stuck in its handshake; and connect() refuses
// a timeout it cannot honour.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import net from 'node:net';
import { MeshNode } from '../../lib/node/mesh-node.ts';
import { generateKeyPair, encodeKey } from '../../lib/crypto/keys.ts';
import { formatBrokerAddress } from '../../lib/protocol/broker-address.ts';
import { isMeshError } from '../../lib/errors.ts';
import { root } from '../helpers/meshd-bin.ts';

/** A TCP server that accepts and never answers: a handshake to it waits for its timeout. */
async function silentServer(): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen({ host: '127.0.0.1', port: 0 }, resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** Runs a script in a child process; resolves with its stdout and the ms from its `failed` line to its exit. */
function runChild(script: string): Promise<{ code: number | null; stdout: string; stderr: string; lingerMs: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], timeout: 60_000, killSignal: 'SIGKILL' });
    let stdout = '';
    let stderr = '';
    let failedAt: number | undefined;
    child.stdout.setEncoding('utf8').on('data', (c: string) => {
      stdout += c;
      if (failedAt === undefined && stdout.includes('failed')) failedAt = performance.now();
    });
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr, lingerMs: failedAt === undefined ? NaN : performance.now() - failedAt }));
  });
}

test('a node whose connect() failed does not hold the process while an attempt waits in its handshake', async () => {
  const server = await silentServer();
  try {
    const broker = formatBrokerAddress({ key: encodeKey(generateKeyPair().publicKey), host: '127.0.0.1', port: server.port });
    // The handshake would wait 30 s; connect() gives up after 300 ms and must take the attempt with it.
    const script = `
      import { MeshNode, generateKeyPair } from './lib/index.ts';
      try {
        await MeshNode.connect({ brokers: [${JSON.stringify(broker)}], key: generateKeyPair(), timeout: 300, handshakeTimeout: 30000 });
        console.log('connected?');
      } catch (error) {
        console.log('failed ' + error.code);
      }
    `;
    const r = await runChild(script);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /failed MESH_ERR_TIMEOUT/);
    assert.ok(r.lingerMs < 10_000, `the process lived ${Math.round(r.lingerMs)} ms after connect() failed (the handshake timeout is 30 s)`);
  } finally {
    await server.close();
  }
});

test('connect() refuses a timeout that is not a whole number of ms in timer range, or Infinity', async () => {
  const brokers = [formatBrokerAddress({ key: encodeKey(generateKeyPair().publicKey), host: '127.0.0.1', port: 1 })];
  for (const timeout of [NaN, 0, -5, 1.5, 2 ** 31, '5000' as unknown as number]) {
    await assert.rejects(
      MeshNode.connect({ brokers, key: generateKeyPair(), timeout }),
      (e: unknown) => isMeshError(e, 'MESH_ERR_CONFIG') && /timeout must be/.test(e.message),
      String(timeout),
    );
  }
  // Infinity waits (aborted here), a plain number times out.
  const controller = new AbortController();
  const waiting = MeshNode.connect({ brokers, key: generateKeyPair(), timeout: Infinity, signal: controller.signal });
  setTimeout(() => controller.abort(), 300);
  await assert.rejects(waiting, (e: unknown) => isMeshError(e, 'MESH_ERR_ABORTED'));
  await assert.rejects(MeshNode.connect({ brokers, key: generateKeyPair(), timeout: 200 }), (e: unknown) => isMeshError(e, 'MESH_ERR_TIMEOUT'));
});
