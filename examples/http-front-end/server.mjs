// An HTTP front end (node:http) whose handler calls a pool of workers
// through the mesh. One MeshNode per process, connected once at start and
// shared by every HTTP request.
//
//   MESHD_BROKER=mesh://KEY@127.0.0.1:4222 MESHD_KEY=front-end.key PORT=8080 node server.mjs
//   curl 'http://127.0.0.1:8080/upper?text=hello'     # {"text":"HELLO","worker":"w1"}
//
// Prints `listening http://HOST:PORT` once it takes HTTP requests.
// SIGTERM or Ctrl-C stops taking HTTP requests, then closes the node.
import { createServer } from 'node:http';
import { MeshNode, isMeshError } from 'meshd';

const brokers = (process.env.MESHD_BROKER ?? '').split(/[\s,]+/).filter((url) => url !== '');
const node = await MeshNode.connect({ brokers, key: process.env.MESHD_KEY ?? 'front-end.key', name: 'http-front-end' });

/** HTTP status for the mesh's errors; anything else is a 502 (the work failed downstream). */
const STATUS = {
  MESH_ERR_NO_SERVICE: 503, // no worker offers the service right now
  MESH_ERR_BUSY: 503, // every worker busy and the broker's queue full
  MESH_ERR_DRAINING: 503,
  MESH_ERR_TIMEOUT: 504, // no reply within the deadline, retries included
};

function send(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(`${JSON.stringify(body)}\n`);
}

const server = createServer((req, res) => {
  const url = new URL(req.url ?? '/', 'http://front-end');
  if (req.method === 'GET' && url.pathname === '/healthz') {
    // Healthy while at least one broker takes requests from this node.
    return send(res, node.healthyBrokers.length > 0 ? 200 : 503, { brokers: node.healthyBrokers.length });
  }
  if (req.method !== 'GET' || url.pathname !== '/upper') return send(res, 404, { error: 'not found' });

  const text = url.searchParams.get('text') ?? '';
  node
    // Deadline of the whole call, retries through other brokers included.
    .request('text.upper', text, { timeout: 2000 })
    .then((reply) => send(res, 200, JSON.parse(reply.toString('utf8'))))
    .catch((error) => {
      if (isMeshError(error)) send(res, STATUS[error.code] ?? 502, { error: error.code, message: error.message });
      else send(res, 500, { error: 'internal' });
    });
});

server.listen(Number(process.env.PORT ?? 8080), process.env.HOST ?? '127.0.0.1', () => {
  const { address, port } = server.address();
  console.log(`listening http://${address}:${port}`);
});

const stop = () => {
  server.close(() => void node.close()); // answers the HTTP requests in flight first
  server.closeIdleConnections();
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
