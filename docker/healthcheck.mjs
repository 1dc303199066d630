// The image's HEALTHCHECK: asks the broker's admin endpoint for GET /healthz
// and exits 0 on 200, 1 on anything else (another status, no answer within
// 3 s, a refused connection). The endpoint is the one of MESHD_ADMIN when it is
// set (the variable `meshd broker` reads for --admin), else 127.0.0.1:9090,
// the port docker-compose.yml gives every broker's --admin; a wildcard host
// (0.0.0.0, [::]) is asked on loopback. Plain Node, no dependency: the image
// has neither curl nor wget. docs/deploy.md#health-checks
import http from 'node:http';

const DEADLINE_MS = 3000;

/** HOST and PORT of `HOST:PORT` or `[IPV6]:PORT`, wildcards as loopback. */
function target(text) {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(text.trim());
  if (!m) return undefined;
  const host = m[1] ?? m[2];
  const loopback = host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '::1' : host;
  return { host: loopback, port: Number(m[3]) };
}

const setting = process.env.MESHD_ADMIN;
const admin = setting === undefined || setting === '' ? { host: '127.0.0.1', port: 9090 } : target(setting);
if (admin === undefined) {
  console.error(`healthcheck: MESHD_ADMIN='${setting}' is not HOST:PORT`);
  process.exit(1);
}
const url = `http://${admin.host.includes(':') ? `[${admin.host}]` : admin.host}:${admin.port}/healthz`;
const fail = (why) => {
  console.error(`healthcheck: ${url}: ${why}`);
  process.exit(1);
};
setTimeout(() => fail(`no answer within ${DEADLINE_MS} ms`), DEADLINE_MS);
http
  .get(url, (response) => {
    response.resume();
    if (response.statusCode === 200) process.exit(0);
    fail(`HTTP ${response.statusCode}`);
  })
  .on('error', (error) => fail(error.message));
