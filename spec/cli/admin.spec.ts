// The admin endpoint of `meshd broker --admin`, and `meshd status` and
// `meshd top` reading it. First with real processes: the compiled CLI broker
// on 127.0.0.1 port 0 with `--admin 127.0.0.1:0`, a `meshd serve` worker,
// requests from a client in this process; then /healthz, /readyz, /status,
// /metrics (parsed as Prometheus text), 404/405/413, and the two commands as
// children. Then in this process, through main(): `meshd top` on a terminal
// (redrawn in place) and stopped by SIGTERM, and /readyz while a broker
// drains.
import assert from 'node:assert/strict';
import { request } from 'node:http';
import type { IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Broker, MeshNode, encodeKey, generateKeyPair, writeKeyFileSync } from '../../lib/index.ts';
import { main } from '../../bin/cli.ts';
import type { CliHost, HostSignal } from '../../bin/context.ts';
import { jsonLogger } from '../../bin/log.ts';
import { AdminServer } from '../../bin/admin/admin-server.ts';
import { MESHD_METRICS } from '../../bin/admin/admin-metrics.ts';
import type { StatusDocument } from '../../bin/admin/admin-status.ts';
import { closedPort } from '../helpers/ports.ts';
import { Children, describeRun, logLines } from './children.ts';
import type { Daemon } from './children.ts';

const START_MS = 30_000;
/** The quorum round of the child broker: long enough that /readyz is seen at 503 before the first one ends. */
const ROUND_MS = 1500;
const ECHO_REQUESTS = 5;

interface HttpAnswer {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

/** One HTTP request to 127.0.0.1 (no keep-alive), bounded in time. */
function http(url: string, options: { method?: string; body?: string } = {}): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const headers = options.body === undefined ? {} : { 'Content-Length': String(Buffer.byteLength(options.body)) };
    const req = request(url, { method: options.method ?? 'GET', headers, agent: false, timeout: 10_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer from ${url} within 10 s`)));
    req.on('error', reject);
    req.end(options.body);
  });
}


/** One sample of the Prometheus text format. */
interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

/**
 * Parses the Prometheus text format 0.0.4 strictly: every line is a HELP, a
 * TYPE, or a sample of a metric whose TYPE came before (with the _bucket,
 * _sum and _count series of histograms and summaries), with well-formed
 * labels and a float value. Throws on anything else.
 */
function parsePrometheus(text: string): { types: Map<string, string>; samples: Sample[] } {
  const types = new Map<string, string>();
  const samples: Sample[] = [];
  const name = '[a-zA-Z_:][a-zA-Z0-9_:]*';
  const sampleLine = new RegExp(`^(${name})(?:\\{(.*)\\})? (\\S+)$`);
  const label = /^([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(?:,|$)/;
  assert.ok(text.endsWith('\n'), 'ends with a newline');
  for (const line of text.slice(0, -1).split('\n')) {
    if (line === '') continue;
    const help = new RegExp(`^# HELP (${name}) .*$`).exec(line);
    if (help) continue;
    const type = new RegExp(`^# TYPE (${name}) (counter|gauge|histogram|summary|untyped)$`).exec(line);
    if (type) {
      assert.ok(!types.has(type[1]!), `one TYPE line for ${type[1]}`);
      types.set(type[1]!, type[2]!);
      continue;
    }
    const m = sampleLine.exec(line);
    assert.ok(m, `a sample line: ${line}`);
    const labels: Record<string, string> = {};
    let rest = m[2] ?? '';
    while (rest !== '') {
      const l = label.exec(rest);
      assert.ok(l, `labels of ${line}`);
      labels[l[1]!] = l[2]!;
      rest = rest.slice(l[0].length);
    }
    // Go's ParseFloat, which Prometheus uses, takes NaN in any case (prom-client writes `Nan`).
    const value = m[3] === '+Inf' ? Infinity : m[3] === '-Inf' ? -Infinity : /^nan$/i.test(m[3]!) ? NaN : Number(m[3]);
    assert.ok(/^nan$/i.test(m[3]!) || !Number.isNaN(value), `a value: ${line}`);
    const family = [m[1]!, m[1]!.replace(/_(bucket|sum|count)$/, '')].find((n) => types.has(n));
    assert.ok(family, `${m[1]} has a TYPE line before it`);
    if (family !== m[1]) assert.ok(['histogram', 'summary'].includes(types.get(family)!), `${m[1]}: a suffix of a histogram or summary`);
    samples.push({ name: m[1]!, labels, value });
  }
  return { types, samples };
}

/** The value of the one sample with this name and these labels (undefined: none). */
function valueOf(samples: readonly Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  const found = samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v) && Object.keys(s.labels).length === Object.keys(labels).length);
  assert.ok(found.length <= 1, `one ${name} ${JSON.stringify(labels)}`);
  return found[0]?.value;
}

void describe('meshd broker --admin: the endpoint, meshd status and meshd top (child processes)', () => {
  const children = new Children();
  let dir = '';
  let broker: Daemon | undefined;
  let worker: Daemon | undefined;
  let client: MeshNode | undefined;
  let url = '';
  let admin = '';
  let brokerKey = '';
  /** The first /readyz answer, and how long after the `listening` line it came. */
  let firstReadyz: { answer: HttpAnswer; afterMs: number } | undefined;
  const file = (name: string): string => join(dir, name);

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'meshd-admin-'));
    const keys = { broker: generateKeyPair(), worker: generateKeyPair(), client: generateKeyPair() };
    for (const [who, pair] of Object.entries(keys)) writeKeyFileSync(file(`${who}.key`), pair);
    brokerKey = encodeKey(keys.broker.publicKey);
    await writeFile(
      file('registry.yaml'),
      [
        `- { key: ${brokerKey}, name: broker-1, role: broker }`,
        `- { key: ${encodeKey(keys.worker.publicKey)}, name: echo-worker, role: worker, serve: [echo] }`,
        `- { key: ${encodeKey(keys.client.publicKey)}, name: client, role: client, call: [echo, nobody.*] }`,
        '',
      ].join('\n'),
    );
    broker = children.start(['broker', '--listen', '127.0.0.1:0', '--key', file('broker.key'), '--registry', file('registry.yaml'), '--name', 'broker-1', '--admin', '127.0.0.1:0', '--gossip-interval', String(ROUND_MS)]);
    const listening = await broker.line(/^listening /, START_MS);
    const seen = performance.now();
    url = listening.slice('listening '.length);
    const logged = logLines(broker.stderr()).find((l) => l.event === 'admin-listening');
    assert.ok(logged, `admin-listening logged before listening: ${broker.stderr()}`);
    admin = String(logged.address);
    assert.match(admin, /^http:\/\/127\.0\.0\.1:[1-9][0-9]*$/, 'the real port, not 0');
    firstReadyz = { answer: await http(`${admin}/readyz`), afterMs: performance.now() - seen };
    worker = children.start(['serve', '--broker', url, '--key', file('worker.key'), 'echo', '--echo']);
    await worker.line(/^ready$/, START_MS);
    client = await MeshNode.connect({ brokers: [url], key: keys.client, timeout: 10_000 });
  });

  after(async () => {
    await client?.close();
    children.killAll();
    if (dir !== '') await rm(dir, { recursive: true, force: true });
  });

  void test('/healthz is 200; /readyz is 503 starting before the first quorum round, then 200 ready', async () => {
    const health = await http(`${admin}/healthz`);
    assert.deepEqual([health.status, health.body, health.headers['content-type'], health.headers['cache-control']], [200, 'ok\n', 'text/plain; charset=utf-8', 'no-store']);
    const first = firstReadyz!;
    if (first.afterMs < ROUND_MS - 500) {
      // Read well within the first round (which began before the `listening` line): not ready yet.
      assert.deepEqual([first.answer.status, first.answer.body], [503, 'starting\n'], `read ${Math.round(first.afterMs)} ms after listening`);
    } else {
      assert.ok([200, 503].includes(first.answer.status), `a slow machine: read ${Math.round(first.afterMs)} ms after listening`);
    }
    const deadline = Date.now() + 10_000;
    let ready = await http(`${admin}/readyz`);
    while (ready.status !== 200 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
      ready = await http(`${admin}/readyz`);
    }
    assert.deepEqual([ready.status, ready.body], [200, 'ready\n']);
    const status = JSON.parse((await http(`${admin}/status`)).body) as StatusDocument;
    assert.ok(status.broker.gossipRounds >= 1, 'ready after a completed round');
  });

  void test('/status: the broker, its state, connections by role, services with workers, queues, in flight and replies', async () => {
    for (let i = 0; i < ECHO_REQUESTS; i++) assert.equal((await client!.request('echo', `m${i}`, { timeout: 5000 })).toString(), `m${i}`);
    await assert.rejects(client!.request('nobody.home', 'x', { retries: 0 }), { code: 'MESH_ERR_NO_SERVICE' });
    const answer = await http(`${admin}/status`);
    assert.equal(answer.status, 200);
    assert.equal(answer.headers['content-type'], 'application/json; charset=utf-8');
    assert.equal(answer.body.split('\n').length, 2, 'one line');
    const s = JSON.parse(answer.body) as StatusDocument;
    assert.deepEqual([s.type, s.version, s.state], ['meshd-broker-status', 1, 'ready']);
    assert.deepEqual([s.broker.name, s.broker.key, s.broker.address], ['broker-1', brokerKey, url]);
    assert.ok(s.broker.uptimeMs > 0);
    assert.deepEqual(s.brokers, [brokerKey]);
    assert.deepEqual(s.peers, []);
    assert.deepEqual(s.connections, { broker: 0, client: 1, worker: 1, node: 0 });
    assert.equal(s.pending, 0);
    const echo = s.services.find((x) => x.name === 'echo');
    assert.ok(echo, JSON.stringify(s.services));
    assert.deepEqual((({ workers, queued, inFlight, requests, resends }) => ({ workers, queued, inFlight, requests, resends }))(echo), {
      workers: 1,
      queued: 0,
      inFlight: 0,
      requests: { replied: ECHO_REQUESTS },
      resends: 0,
    });
    assert.equal(echo.credits, 16, "the worker's default concurrency, all free");
    assert.equal(echo.latency.count, ECHO_REQUESTS);
    assert.deepEqual(s.services.find((x) => x.name === 'nobody.home')?.requests, { MESH_ERR_NO_SERVICE: 1 });
    assert.equal(typeof s.eventLoop.p99Ms, 'number');
  });

  void test('/metrics: Prometheus text with every meshd metric; the request counter equals the requests sent', async () => {
    const answer = await http(`${admin}/metrics`);
    assert.equal(answer.status, 200);
    assert.match(String(answer.headers['content-type']), /^text\/plain; version=0\.0\.4; charset=utf-8$/);
    const { types, samples } = parsePrometheus(answer.body);
    for (const [name, type] of MESHD_METRICS) assert.equal(types.get(name), type, name);
    for (const name of ['process_cpu_seconds_total', 'process_resident_memory_bytes', 'nodejs_eventloop_lag_seconds', 'nodejs_heap_size_used_bytes']) assert.ok(types.has(name), `default metric ${name}`);
    const echoOutcomes = samples.filter((s) => s.name === 'meshd_requests_total' && s.labels.service === 'echo');
    assert.deepEqual(echoOutcomes.map((s) => [s.labels.outcome, s.value]), [['replied', ECHO_REQUESTS]]);
    assert.equal(valueOf(samples, 'meshd_requests_total', { service: 'nobody.home', outcome: 'MESH_ERR_NO_SERVICE' }), 1);
    assert.equal(valueOf(samples, 'meshd_request_duration_seconds_count', { service: 'echo' }), ECHO_REQUESTS);
    assert.equal(valueOf(samples, 'meshd_request_duration_seconds_bucket', { service: 'echo', le: '+Inf' }), ECHO_REQUESTS);
    const buckets = samples.filter((s) => s.name === 'meshd_request_duration_seconds_bucket' && s.labels.service === 'echo').map((s) => s.value);
    assert.deepEqual(buckets, [...buckets].sort((a, b) => a - b), 'cumulative buckets');
    assert.equal(valueOf(samples, 'meshd_connections', { role: 'worker' }), 1);
    assert.equal(valueOf(samples, 'meshd_connections', { role: 'client' }), 1);
    assert.equal(valueOf(samples, 'meshd_service_workers', { service: 'echo' }), 1);
    assert.equal(valueOf(samples, 'meshd_queue_depth', { service: 'echo' }), 0);
    assert.equal(valueOf(samples, 'meshd_requests_in_flight', { service: 'echo' }), 0);
    assert.equal(valueOf(samples, 'meshd_redispatches_total', { service: 'echo', reason: 'worker-lost' }), 0);
    assert.equal(valueOf(samples, 'meshd_brokers'), 1);
    assert.equal(valueOf(samples, 'meshd_ready'), 1);
    assert.ok((valueOf(samples, 'meshd_gossip_rounds_total') ?? 0) >= 1);
    assert.ok((valueOf(samples, 'meshd_uptime_seconds') ?? 0) > 0);
    assert.ok((valueOf(samples, 'meshd_event_loop_lag_seconds', { stat: 'max' }) ?? -1) >= 0);
  });

  void test('other paths are 404, other methods 405, a GET with a body 413', async () => {
    const missing = await http(`${admin}/nope`);
    assert.equal(missing.status, 404);
    assert.match(missing.body, /\/healthz, \/readyz, \/status, \/metrics/);
    assert.equal((await http(`${admin}/`)).status, 404);
    assert.equal((await http(`${admin}/metrics?name=x`)).status, 200, 'the query string is ignored');
    for (const method of ['POST', 'PUT', 'DELETE', 'HEAD']) {
      const r = await http(`${admin}/status`, { method });
      assert.equal(r.status, 405, method);
      assert.equal(r.headers.allow, 'GET');
    }
    const withBody = await http(`${admin}/status`, { body: 'x'.repeat(100) });
    assert.equal(withBody.status, 413);
    assert.equal(withBody.headers.connection, 'close');
  });

  void test('meshd status URL prints tables; --json the document', async () => {
    const [table, json] = await Promise.all([children.run(['status', admin]), children.run(['status', admin.replace('http://', ''), '--json'])]);
    assert.equal(table.status, 0, describeRun(table));
    assert.equal(table.stderr, '');
    const lines = table.stdout.split('\n');
    assert.match(lines[0]!, /^BROKER +broker-1$/);
    assert.match(lines[1]!, /^STATE +ready$/);
    assert.ok(lines.includes(`ADDRESS            ${url}`) || lines.some((l) => l.startsWith('ADDRESS') && l.endsWith(url)), table.stdout);
    assert.ok(lines.some((l) => /^worker +1$/.test(l)), table.stdout);
    assert.ok(lines.includes('PEERS  none'), table.stdout);
    const header = lines.find((l) => l.startsWith('SERVICE'));
    assert.match(header ?? '', /^SERVICE +WORKERS +CREDITS +QUEUED +IN-FLIGHT +REPLIED +FAILED +P50 +P99$/);
    const echo = lines.find((l) => l.startsWith('echo '))?.split(/ +/);
    assert.deepEqual(echo?.slice(0, 7), ['echo', '1', '16', '0', '0', String(ECHO_REQUESTS), '0'], table.stdout);
    assert.match(echo?.[7] ?? '', /^[0-9.]+m?s$/);

    assert.equal(json.status, 0, describeRun(json));
    assert.equal(json.stdout.split('\n').length, 2, 'one line');
    const doc = JSON.parse(json.stdout) as StatusDocument;
    assert.deepEqual([doc.type, doc.version, doc.broker.name], ['meshd-broker-status', 1, 'broker-1']);
    assert.equal(doc.services.find((s) => s.name === 'echo')?.requests.replied, ECHO_REQUESTS);
  });

  void test('meshd top --count 2: one plain line per broker per refresh, then exit 0', async () => {
    const started = Date.now();
    const r = await children.run(['top', admin, `${admin}/status`, '--count', '2', '--interval', '300']);
    assert.equal(r.status, 0, describeRun(r));
    assert.equal(r.stderr, '');
    const lines = r.stdout.split('\n');
    assert.equal(lines.pop(), '');
    assert.equal(lines.length, 4, r.stdout);
    const line = new RegExp(`^\\d{4}-\\d\\d-\\d\\dT[0-9:.]+Z ${admin.replace(/\./g, '\\.')} broker=broker-1 state=ready req/s=[0-9.]+ p50=\\S+ p99=\\S+ queued=0 inflight=0 nodes=2$`);
    for (const l of lines) assert.match(l, line);
    assert.ok(Date.now() - started >= 600, 'two intervals');
  });

  void test('errors: nothing there is MESH_ERR_CONNECTION, another server MESH_ERR_PROTOCOL, a bad URL a usage error', async () => {
    const port = await closedPort();
    const other = (await import('node:http')).createServer((_req, res) => res.writeHead(404).end('nope'));
    await new Promise<void>((resolve) => other.listen(0, '127.0.0.1', resolve));
    const otherUrl = `http://127.0.0.1:${(other.address() as AddressInfo).port}`;
    try {
      const [down, notMeshd, meshPort, usage, topNotMeshd, topDown] = await Promise.all([
        children.run(['status', `http://127.0.0.1:${port}`]),
        children.run(['status', otherUrl]),
        children.run(['status', url.replace(/^mesh:\/\/[^@]+@/, 'http://')]),
        children.run(['status', 'https://127.0.0.1:9090']),
        children.run(['top', admin, otherUrl, '--count', '1', '--interval', '100']),
        children.run(['top', `http://127.0.0.1:${port}`, '--count', '1', '--interval', '100']),
      ]);
      const meshError = (r: typeof down, code: string, fragment: RegExp): void => {
        assert.equal(r.status, 1, describeRun(r));
        assert.equal(r.stdout, '');
        assert.ok(r.stderr.startsWith(`${code}: `), r.stderr);
        assert.match(r.stderr, fragment);
        assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
      };
      meshError(down, 'MESH_ERR_CONNECTION', /cannot reach the admin endpoint http:\/\/127\.0\.0\.1:\d+: connect ECONNREFUSED/);
      meshError(notMeshd, 'MESH_ERR_PROTOCOL', /is not a meshd admin endpoint: GET \/status answered 404/);
      meshError(meshPort, 'MESH_ERR_PROTOCOL', /is not a meshd admin endpoint: GET \/status got no HTTP answer/);
      meshError(topNotMeshd, 'MESH_ERR_PROTOCOL', /is not a meshd admin endpoint/);
      assert.equal(usage.status, 2, describeRun(usage));
      assert.match(usage.stderr, /^meshd status: 'https:\/\/127\.0\.0\.1:9090': the admin endpoint speaks plain http:\/\//);
      assert.equal(topDown.status, 0, describeRun(topDown));
      assert.match(topDown.stdout, /^\S+ http:\/\/127\.0\.0\.1:\d+ broker=- state=down req\/s=- .* error=MESH_ERR_CONNECTION\n$/);
    } finally {
      await new Promise<void>((resolve) => other.close(() => resolve()));
    }
  });

  void test('SIGTERM: the broker drains and exits 0, and its admin endpoint is closed', async () => {
    await client?.close();
    client = undefined;
    process.kill(worker!.pid, 'SIGTERM');
    assert.deepEqual(await worker!.exited(10_000), { status: 0, signal: null }, worker!.stderr());
    process.kill(broker!.pid, 'SIGTERM');
    assert.deepEqual(await broker!.exited(10_000), { status: 0, signal: null }, broker!.stderr());
    await assert.rejects(http(`${admin}/healthz`), { code: 'ECONNREFUSED' });
    const events = logLines(broker!.stderr()).map((l) => l.event);
    assert.ok(!events.includes('option-ignored'));
    assert.equal(logLines(broker!.stderr()).find((l) => l.event === 'listening')?.admin, admin);
    assert.ok(events.indexOf('admin-listening') < events.indexOf('listening'));
  });
});

/** A host whose signals the test sends. */
function fakeHost(): CliHost & { send(signal: HostSignal): void } {
  const listeners = new Map<HostSignal, Set<() => void>>();
  return {
    stdin: (async function* () {})(),
    onSignal(signal, listener) {
      let set = listeners.get(signal);
      if (!set) listeners.set(signal, (set = new Set()));
      set.add(listener);
      return () => set.delete(listener);
    },
    exit: () => undefined,
    exitAfter: () => undefined,
    send(signal) {
      for (const l of [...(listeners.get(signal) ?? [])]) l();
    },
  };
}

void describe('the admin endpoint and meshd top in this process', () => {
  const keys = { broker: generateKeyPair(), worker: generateKeyPair(), client: generateKeyPair() };
  let dir = '';
  let broker: Broker | undefined;
  let server: AdminServer | undefined;
  const nodes: MeshNode[] = [];
  let logs = '';

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'meshd-admin-inproc-'));
    await writeFile(
      join(dir, 'registry.yaml'),
      [
        `- { key: ${encodeKey(keys.broker.publicKey)}, name: broker-1, role: broker }`,
        `- { key: ${encodeKey(keys.worker.publicKey)}, name: worker, role: worker, serve: ['*'] }`,
        `- { key: ${encodeKey(keys.client.publicKey)}, name: client, role: client, call: ['*'] }`,
        '',
      ].join('\n'),
    );
    server = await AdminServer.listen('127.0.0.1', 0, jsonLogger({ write: (s) => (logs += String(s)) }));
    broker = await Broker.start({ key: keys.broker, registry: join(dir, 'registry.yaml'), gossipInterval: 100, drainTimeout: 5000, name: 'broker-1' });
    server.attach(broker);
  });

  after(async () => {
    await Promise.all(nodes.map((n) => n.close()));
    await broker?.close();
    await server?.close();
    if (dir !== '') await rm(dir, { recursive: true, force: true });
    assert.equal(logs, '', 'no admin-error logged');
  });

  void test('on a terminal, meshd top redraws its table in place; requests between refreshes show as a rate and latency', async () => {
    const w = await MeshNode.connect({ brokers: [broker!.address], key: keys.worker });
    nodes.push(w);
    w.serve('echo', (req) => req.payload);
    const c = await MeshNode.connect({ brokers: [broker!.address], key: keys.client });
    nodes.push(c);
    let out = '';
    let writes = 0;
    let sent: Promise<unknown> | undefined;
    const stdout = {
      isTTY: true,
      write: (s: string | Uint8Array) => {
        out += String(s);
        // After the first refresh: requests the second refresh must count.
        if (++writes === 1) sent = Promise.all(Array.from({ length: 10 }, (_, i) => c.request('echo', `r${i}`, { timeout: 5000 })));
        return true;
      },
    };
    const code = await main(['top', server!.url, '--count', '2', '--interval', '1500'], { stdout, stderr: { write: (s) => (out += `[stderr] ${String(s)}`) } }, fakeHost());
    await sent;
    assert.equal(code, 0, out);
    const drawings = out.split('meshd top: 1 broker, every 1500 ms');
    assert.equal(drawings.length, 3, out);
    assert.ok(!drawings[0]!.includes('\x1b['), 'the first drawing starts where the cursor is');
    assert.ok(drawings[1]!.endsWith('\x1b[4F\x1b[J'), 'the second goes back up over the 4 lines of the first and clears');
    const row = drawings[2]!.split('\n').find((l) => l.startsWith(server!.url));
    const cells = row?.split(/ +/);
    assert.equal(cells?.[1], 'broker-1');
    assert.equal(cells?.[2], 'ready');
    assert.ok(Number(cells?.[3]) > 0, `a rate: ${row}`);
    assert.match(cells?.[4] ?? '', /^[0-9.]+m?s$/, `a p50: ${row}`);
  });

  void test('without --count, meshd top runs until SIGTERM and exits 0', async () => {
    const host = fakeHost();
    let out = '';
    const stdout = {
      write: (s: string | Uint8Array) => {
        out += String(s);
        host.send('SIGTERM');
        return true;
      },
    };
    const code = await main(['top', server!.url, '--interval', '100'], { stdout, stderr: stdout }, host);
    assert.equal(code, 0);
    assert.equal(out.split('\n').filter((l) => l !== '').length, 1, out);
  });

  void test('/readyz is 503 draining while the broker drains; the endpoint still answers until it is closed', async () => {
    const w = await MeshNode.connect({ brokers: [broker!.address], key: keys.worker });
    nodes.push(w);
    let release: () => void = () => undefined;
    const held = new Promise<void>((r) => (release = r));
    w.serve('hold', async () => {
      await held;
      return 'done';
    });
    const c = await MeshNode.connect({ brokers: [broker!.address], key: keys.client });
    nodes.push(c);
    assert.equal((await http(`${server!.url}/readyz`)).status, 200);
    const reply = c.request('hold', 'x', { timeout: 5000, retries: 0 });
    const deadline = Date.now() + 5000;
    while (broker!.stats().services.find((s) => s.name === 'hold')?.inFlight !== 1) {
      assert.ok(Date.now() < deadline, 'the request in flight');
      await new Promise((r) => setTimeout(r, 10));
    }
    const closing = broker!.close();
    const draining = await http(`${server!.url}/readyz`);
    assert.deepEqual([draining.status, draining.body], [503, 'draining\n']);
    const status = JSON.parse((await http(`${server!.url}/status`)).body) as StatusDocument;
    assert.equal(status.state, 'draining');
    assert.match((await http(`${server!.url}/metrics`)).body, /^meshd_ready 0$/m);
    release();
    assert.equal((await reply).toString(), 'done');
    await closing;
    await server!.close();
    await assert.rejects(http(`${server!.url}/healthz`), { code: 'ECONNREFUSED' });
  });
});
