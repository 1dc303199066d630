/**
 * Reads a broker's admin endpoint for `meshd status` and `meshd top`: the
 * endpoint's URL as the user typed it, `GET /status` over node:http with a
 * deadline and a size bound, and the MeshError that says what went wrong
 * (docs/cli.md#meshd-status).
 */

import { request } from 'node:http';
import { MeshError } from '../../lib/index.ts';
import { STATUS_TYPE, STATUS_VERSION } from './admin-status.ts';
import type { StartingDocument, StatusDocument } from './admin-status.ts';
import { endpointName } from './admin-url.ts';

/** Largest /status answer read, bytes. */
export const MAX_STATUS_BYTES = 8 * 1024 * 1024;

/** What a /status read gives: a running broker's document, or the answer of one still starting. */
export type StatusAnswer = StatusDocument | StartingDocument;

/**
 * GET the /status of an admin endpoint. Rejects with MESH_ERR_CONNECTION
 * (no connection: nothing listens there), MESH_ERR_TIMEOUT (no full answer
 * within `timeoutMs`), MESH_ERR_PROTOCOL (no HTTP answer, or one that is not
 * a meshd broker's status) or MESH_ERR_VERSION (a meshd status of another
 * version).
 */
export function fetchStatus(url: URL, timeoutMs: number): Promise<StatusAnswer> {
  const where = endpointName(url);
  return new Promise<StatusAnswer>((resolve, reject) => {
    let settled = false;
    const fail = (error: MeshError): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      req.destroy();
      reject(error);
    };
    const timer = setTimeout(() => fail(new MeshError('MESH_ERR_TIMEOUT', `no answer from the admin endpoint ${where} within ${timeoutMs} ms`)), timeoutMs);
    const req = request(url, { method: 'GET', headers: { Accept: 'application/json' }, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_STATUS_BYTES) fail(new MeshError('MESH_ERR_PROTOCOL', `${where} is not a meshd admin endpoint: GET ${url.pathname} answered over ${MAX_STATUS_BYTES} bytes`));
        else chunks.push(chunk);
      });
      res.on('error', (error) => fail(new MeshError('MESH_ERR_CONNECTION', `reading the answer of the admin endpoint ${where} failed: ${error.message}`, { cause: error })));
      res.on('end', () => {
        if (settled) return;
        try {
          const answer = parseStatus(where, url.pathname, res.statusCode ?? 0, res.statusMessage ?? '', Buffer.concat(chunks).toString('utf8'));
          settled = true;
          clearTimeout(timer);
          resolve(answer);
        } catch (error) {
          fail(error as MeshError);
        }
      });
    });
    // Connected, then no HTTP answer (closed, reset, or bytes that are not HTTP): something else listens there.
    let connected = false;
    req.on('socket', (socket) => socket.once('connect', () => (connected = true)));
    req.on('error', (error: NodeJS.ErrnoException) =>
      fail(
        connected
          ? new MeshError('MESH_ERR_PROTOCOL', `${where} is not a meshd admin endpoint: GET ${url.pathname} got no HTTP answer (${error.message})`, { cause: error })
          : new MeshError('MESH_ERR_CONNECTION', `cannot reach the admin endpoint ${where}: ${error.message}`, { cause: error }),
      ),
    );
    req.end();
  });
}

/** Checks an answer of GET /status: a meshd status document of this version, or MeshError. */
export function parseStatus(where: string, path: string, status: number, statusText: string, body: string): StatusAnswer {
  const notMeshd = (why: string): MeshError => new MeshError('MESH_ERR_PROTOCOL', `${where} is not a meshd admin endpoint: GET ${path} ${why}`);
  if (status !== 200 && status !== 503) throw notMeshd(`answered ${status} ${statusText}`.trimEnd());
  let doc: unknown;
  try {
    doc = JSON.parse(body);
  } catch {
    throw notMeshd(`answered ${status} with something that is not JSON`);
  }
  const d = doc as Partial<StatusDocument> | null;
  if (typeof d !== 'object' || d === null || d.type !== STATUS_TYPE) throw notMeshd(`answered JSON that is not a meshd broker status (no "type": "${STATUS_TYPE}")`);
  if (d.version !== STATUS_VERSION) throw new MeshError('MESH_ERR_VERSION', `${where} serves meshd status version ${JSON.stringify(d.version)}; this meshd reads version ${STATUS_VERSION}`);
  if (d.state === 'starting' && status === 503) return { type: STATUS_TYPE, version: STATUS_VERSION, state: 'starting' };
  if (status !== 200 || typeof d.broker !== 'object' || !Array.isArray(d.services)) throw notMeshd(`answered ${status} with an incomplete status`);
  return d as StatusDocument;
}

/** Whether an answer is a running broker's full status. */
export function isRunning(answer: StatusAnswer): answer is StatusDocument {
  return 'broker' in answer;
}
