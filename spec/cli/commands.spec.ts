// The broker, serve, request and registry commands in-process, through main()
// with captured output and a fake host: help texts, usage errors, config file
// errors, registry errors, and the pieces (listen addresses, signals, logs).
// No network: every run here fails or finishes before a handler connects.
import assert from 'node:assert/strict';
import { chmodSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { MeshError, encodeKey, generateKeyPair, writeKeyFileSync } from '../../lib/index.ts';
import { main, protectDashKeys } from '../../bin/cli.ts';
import type { CliHost, HostSignal } from '../../bin/context.ts';
import { createLogger, jsonLogger, logBrokerEvent } from '../../bin/log.ts';
import { brokerList, parseAdminAddress, parseListen, signalExitCode, stopSignals } from '../../bin/options.ts';
import { statusUrl } from '../../bin/admin/admin-url.ts';
import { parseStatus } from '../../bin/admin/admin-client.ts';
import { formatMs, formatUptime, quantileMs, topSample } from '../../bin/admin/status-format.ts';
import type { StatusDocument } from '../../bin/admin/admin-status.ts';
import { formatTable } from '../../bin/commands/registry.ts';

/** A host whose signals the test sends and whose exits it records. */
function fakeHost(): CliHost & { send(signal: HostSignal): void; exits: number[] } {
  const listeners = new Map<HostSignal, Set<() => void>>();
  const exits: number[] = [];
  return {
    stdin: (async function* () {})(),
    exits,
    onSignal(signal, listener) {
      let set = listeners.get(signal);
      if (!set) listeners.set(signal, (set = new Set()));
      set.add(listener);
      return () => set.delete(listener);
    },
    exit: (code) => void exits.push(code),
    exitAfter: () => undefined,
    send(signal) {
      for (const l of [...(listeners.get(signal) ?? [])]) l();
    },
  };
}

async function run(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const io = { stdout: { write: (s: string | Uint8Array) => ((out += String(s)), true) }, stderr: { write: (s: string | Uint8Array) => ((err += String(s)), true) } };
  const code = await main(args, io, fakeHost());
  return { code, out, err };
}

function assertUsage(r: { code: number; out: string; err: string }, command: string, fragment: RegExp): void {
  assert.equal(r.code, 2, r.err);
  assert.equal(r.out, '');
  assert.ok(r.err.startsWith(`meshd ${command}: `), r.err);
  assert.match(r.err, fragment);
  assert.match(r.err, new RegExp(`Run 'meshd ${command} --help'`));
}

void describe('help of the broker, serve, request and registry commands', () => {
  const commands: Array<[string[], string]> = [
    [['broker'], 'meshd-broker'],
    [['serve'], 'meshd-serve'],
    [['request'], 'meshd-request'],
    [['status'], 'meshd-status'],
    [['top'], 'meshd-top'],
    [['registry'], 'meshd-registry'],
    [['registry', 'add'], 'meshd-registry-add'],
    [['registry', 'remove'], 'meshd-registry-remove'],
    [['registry', 'list'], 'meshd-registry-list'],
  ];
  for (const [words, anchor] of commands) {
    void test(`meshd ${words.join(' ')} --help: usage, options, examples, docs link`, async () => {
      const r = await run([...words, '--help']);
      assert.equal(r.code, 0, r.err);
      assert.equal(r.err, '');
      assert.ok(r.out.startsWith(`meshd ${words.join(' ')}`), r.out);
      assert.match(r.out, /Examples:\n {2}meshd /);
      assert.ok(r.out.includes(`docs/cli.md#${anchor}`), r.out);
    });
  }

  void test('broker --help names every option with its MESHD_* variable and the precedence', async () => {
    const r = await run(['broker', '--help']);
    for (const option of ['listen', 'key', 'registry', 'name', 'suite', 'max-payload', 'queue-max', 'drain-timeout', 'peer', 'admin', 'config']) {
      assert.match(r.out, new RegExp(`--${option}\\b[\\s\\S]*?Env:\\s+MESHD_${option.toUpperCase().replace(/-/g, '_')}`), option);
    }
    assert.match(r.out, /SIGHUP/);
    assert.match(r.out, /second SIGTERM or SIGINT exits at once/);
    assert.match(r.out, /flag, else from its MESHD_\* variable[\s\S]*else from the --config\s+file, else from its default/);
  });
});

void describe('usage errors (exit 2, nothing done)', () => {
  const base = ['broker', '--key', 'broker.key', '--registry', 'registry.yaml', '--listen'];

  void test('--listen must be HOST:PORT or [IPV6]:PORT with a port from 0 to 65535', async () => {
    const cases: Array<[string, RegExp]> = [
      ['::1:4222', /IPv6 host '::1' must be in brackets, e\.g\. \[::1\]:4222/],
      ['localhost', /missing port after the host/],
      [':4222', /missing host before the port/],
      ['127.0.0.1:65536', /port 65536 is out of range \(0 to 65535\)/],
      ['127.0.0.1:x', /port 'x' is not an integer/],
      ['[nope]:4222', /'\[nope\]' is not a valid IPv6 address/],
      ['a b:1', /'a b' is not a valid host name/],
    ];
    const results = await Promise.all(cases.map(([listen]) => run([...base, listen])));
    results.forEach((r, i) => assertUsage(r, 'broker', cases[i]![1]));
  });

  void test('broker needs --listen, --key and --registry; numbers must be whole', async () => {
    assertUsage(await run(['broker', '--key', 'k', '--registry', 'r']), 'broker', /--listen HOST:PORT/);
    assertUsage(await run(['broker', '--listen', '127.0.0.1:0', '--registry', 'r']), 'broker', /--key FILE/);
    assertUsage(await run([...base, '127.0.0.1:0', '--max-payload', 'lots']), 'broker', /--max-payload must be a whole number from 1/);
    assertUsage(await run([...base, '127.0.0.1:0', '--queue-max', '0']), 'broker', /--queue-max must be a whole number at least 1, got '0'/);
    assertUsage(await run([...base, '127.0.0.1:0', '--suite', 'fast']), 'broker', /suite[\s\S]*Choices: "node", "noble"/);
  });

  void test('--admin must be HOST:PORT, [IPV6]:PORT, PORT or :PORT', async () => {
    assertUsage(await run([...base, '127.0.0.1:0', '--admin', 'localhost']), 'broker', /--admin 'localhost': missing port after the host; expected HOST:PORT, \[IPV6\]:PORT, or PORT alone for 127\.0\.0\.1/);
    assertUsage(await run([...base, '127.0.0.1:0', '--admin', ':99999']), 'broker', /--admin ':99999'/);
  });

  void test('status and top: a URL, whole numbers in range', async () => {
    assertUsage(await run(['status']), 'status', /Not enough non-option arguments/);
    assertUsage(await run(['status', 'ftp://h:1']), 'status', /the admin endpoint speaks plain http:\/\/, not ftp:/);
    assertUsage(await run(['status', 'http://h:1/?x=1']), 'status', /without user, query or fragment/);
    assertUsage(await run(['status', ':9090', '--timeout', '0']), 'status', /--timeout must be a whole number from 1 to 600000/);
    assertUsage(await run(['top']), 'top', /Not enough non-option arguments/);
    assertUsage(await run(['top', ':9090', '--interval', '50']), 'top', /--interval must be a whole number from 100 to 3600000/);
    assertUsage(await run(['top', ':9090', '--count', '0']), 'top', /--count must be a whole number at least 1/);
    assertUsage(await run(['top', ':9090', 'https://h:1']), 'top', /plain http:\/\//);
  });

  void test('serve needs --echo (its only handler) and a broker', async () => {
    assertUsage(await run(['serve', '--broker', 'mesh://x@h:1', '--key', 'w.key', 'echo']), 'serve', /--echo/);
    assertUsage(await run(['serve', '--key', 'w.key', 'echo', '--echo']), 'serve', /--broker URL/);
    assertUsage(await run(['serve', '--broker', 'mesh://x@h:1', '--key', 'w.key', '--echo']), 'serve', /Not enough non-option arguments/);
  });

  void test('request: whole numbers, one DATA', async () => {
    const r = ['request', '--broker', 'mesh://x@h:1', '--key', 'c.key', 'echo'];
    assertUsage(await run([...r, '--timeout', '0']), 'request', /--timeout must be a whole number at least 1/);
    assertUsage(await run([...r, '--retries', '1.5']), 'request', /--retries must be a whole number from 0 to 100/);
    assertUsage(await run([...r, 'a', 'b']), 'request', /Unknown argument: b/);
    assertUsage(await run([...r, '--', '-a', '-b']), 'request', /one DATA argument at most/);
  });

  void test('registry: a subcommand is needed and must exist; add takes one of --key/--key-file', async () => {
    assertUsage(await run(['registry']), 'registry', /needs a subcommand: add, remove or list/);
    assertUsage(await run(['registry', 'frob']), 'registry', /unknown subcommand 'frob'; the subcommands are add, remove, list/);
    const add = ['registry', 'add', '--registry', 'r.yaml', '--name', 'n', '--role', 'client'];
    assertUsage(await run(add), 'registry add', /--key KEY or --key-file FILE/);
    assertUsage(await run([...add, '--key', 'k', '--key-file', 'f']), 'registry add', /either --key KEY or --key-file FILE, not both/);
    assertUsage(await run(['registry', 'add', '--registry', 'r.yaml', '--key', 'k', '--role', 'client']), 'registry add', /needs --name/);
    assertUsage(await run([...add, '--key', 'k', '--role', 'admin']), 'registry add', /Choices: "broker", "client", "worker", "node"/);
  });
});

void describe('files: config errors, registry errors', () => {
  let dir = '';
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'meshd-commands-'));
  });
  after(async () => {
    if (dir !== '') await rm(dir, { recursive: true, force: true });
  });

  void test('a bad --config file is a usage error naming the file and the problem', async () => {
    const write = (name: string, text: string): string => {
      const path = join(dir, name);
      writeFileSync(path, text);
      return path;
    };
    const cases: Array<[string, RegExp]> = [
      [join(dir, 'missing.yaml'), /config file .*missing\.yaml: does not exist/],
      [write('typo.yaml', 'listen: 127.0.0.1:0\nlisten-port: 1\n'), /config file .*typo\.yaml: unknown key 'listen-port'; the keys are the long option names of meshd broker: listen, key, registry/],
      [write('yaml.yaml', 'listen: [oops\n'), /config file .*yaml\.yaml: is not valid YAML/],
      [write('list.yaml', '- listen\n'), /config file .*list\.yaml: must be a YAML map/],
      [write('number.yaml', 'queue-max: lots\n'), /config file .*number\.yaml: 'queue-max' must be a whole number, got "lots"/],
      [write('nested.yaml', 'name: { a: 1 }\n'), /config file .*nested\.yaml: 'name' must be a single value/],
    ];
    for (const [path, fragment] of cases) {
      const r = await run(['broker', '--listen', '127.0.0.1:0', '--key', 'k', '--registry', 'r', '--config', path]);
      assertUsage(r, 'broker', fragment);
      assert.doesNotMatch(r.err, /\n\n/, 'one line of message');
    }
  });

  void test('registry add keeps MESHD_NAME out of the entry; remove of a missing entry is MESH_ERR_CONFIG (exit 1)', async () => {
    const registry = join(dir, 'registry.yaml');
    const key = encodeKey(generateKeyPair().publicKey);
    const saved = process.env.MESHD_NAME;
    process.env.MESHD_NAME = 'from-env';
    try {
      const r = await run(['registry', 'add', '--registry', registry, '--key', key, '--role', 'client']);
      assertUsage(r, 'registry add', /needs --name \(flags only/);
    } finally {
      if (saved === undefined) delete process.env.MESHD_NAME;
      else process.env.MESHD_NAME = saved;
    }
    const added = await run(['registry', 'add', '--registry', registry, '--key', key, '--name', 'web', '--role', 'client', '--call', '*']);
    assert.equal(added.code, 0, added.err);
    assert.equal(added.out, '');
    assert.equal(added.err, `added "web" (client, key ${key}) to ${registry}\n`);

    const dupe = await run(['registry', 'add', '--registry', registry, '--key', key, '--name', 'web2', '--role', 'client']);
    assert.equal(dupe.code, 1);
    assert.match(dupe.err, /^MESH_ERR_CONFIG: .*already registered as "web"/);

    const missing = await run(['registry', 'remove', '--registry', registry, 'nobody']);
    assert.equal(missing.code, 1);
    assert.equal(missing.out, '');
    assert.match(missing.err, /^MESH_ERR_CONFIG: registry .* has no entry with key or name "nobody"/);

    const byKey = await run(['registry', 'remove', '--registry', registry, key]);
    assert.equal(byKey.code, 0, byKey.err);
    const empty = await run(['registry', 'list', '--registry', registry, '--json']);
    assert.equal(empty.out, '[]\n');
    const table = await run(['registry', 'list', '--registry', registry]);
    assert.equal(table.out, 'NAME  ROLE  KEY  CALL  SERVE\n', 'an empty registry: the header only');

    const noFile = await run(['registry', 'list', '--registry', join(dir, 'none.yaml')]);
    assert.equal(noFile.code, 1);
    assert.match(noFile.err, /^MESH_ERR_CONFIG: registry file .*none\.yaml does not exist/);
  });

  void test('a public key that starts with - works as --key KEY and as KEY_OR_NAME', async () => {
    const registry = join(dir, 'dash.yaml');
    let key = '';
    while (!key.startsWith('-')) key = encodeKey(generateKeyPair().publicKey);
    const added = await run(['registry', 'add', '--registry', registry, '--key', key, '--name', 'dash', '--role', 'node', '--call', 'a', '--serve', 'b']);
    assert.equal(added.code, 0, added.err);
    const listed = await run(['registry', 'list', '--registry', registry, '--json']);
    assert.equal((JSON.parse(listed.out) as Array<{ key: string }>)[0]?.key, key);
    const removed = await run(['registry', 'remove', key, '--registry', registry]);
    assert.equal(removed.code, 0, removed.err);
    assert.equal((await run(['registry', 'list', '--registry', registry, '--json'])).out, '[]\n');
    assertUsage(await run(['registry', 'remove', '--registry', registry]), 'registry remove', /needs KEY_OR_NAME/);
    assertUsage(await run(['registry', 'remove', '--registry', registry, 'a', '--', 'b']), 'registry remove', /takes one KEY_OR_NAME/);
  });

  void test('registry add --key-file reads the public key (and refuses an open key file)', async () => {
    const registry = join(dir, 'from-file.yaml');
    const keyPair = generateKeyPair();
    const keyFile = join(dir, 'worker.key');
    writeKeyFileSync(keyFile, keyPair);
    const r = await run(['registry', 'add', '--registry', registry, '--key-file', keyFile, '--name', 'w', '--role', 'worker', '--serve', 'echo', '--serve', 'billing.*']);
    assert.equal(r.code, 0, r.err);
    const list = await run(['registry', 'list', '--registry', registry, '--json']);
    assert.deepEqual(JSON.parse(list.out), [{ key: encodeKey(keyPair.publicKey), name: 'w', role: 'worker', call: [], serve: ['echo', 'billing.*'] }]);
    const wrongRole = await run(['registry', 'add', '--registry', registry, '--key', encodeKey(generateKeyPair().publicKey), '--name', 'x', '--role', 'worker', '--call', 'echo']);
    assert.equal(wrongRole.code, 1);
    assert.match(wrongRole.err, /^MESH_ERR_CONFIG: .*`call` is not allowed/);
    if (process.platform !== 'win32') {
      const open = join(dir, 'open.key');
      writeKeyFileSync(open, generateKeyPair());
      chmodSync(open, 0o644);
      const refused = await run(['registry', 'add', '--registry', registry, '--key-file', open, '--name', 'o', '--role', 'client']);
      assert.equal(refused.code, 1);
      assert.match(refused.err, /^MESH_ERR_KEY_FILE: .*chmod 600/);
    }
  });
});

void describe('pieces', () => {
  void test('parseListen accepts host names, IPv4, bracketed IPv6 and port 0', () => {
    assert.deepEqual(parseListen('127.0.0.1:4222'), { host: '127.0.0.1', port: 4222 });
    assert.deepEqual(parseListen('localhost:0'), { host: 'localhost', port: 0 });
    assert.deepEqual(parseListen('broker-1.example:65535'), { host: 'broker-1.example', port: 65535 });
    assert.deepEqual(parseListen('[::1]:4222'), { host: '::1', port: 4222 });
    assert.deepEqual(parseListen('[::]:0'), { host: '::', port: 0 });
    assert.equal(typeof parseListen('[::1]'), 'string');
    assert.equal(typeof parseListen('host:-1'), 'string');
  });

  void test('parseAdminAddress: a port alone is on 127.0.0.1; port 0 is allowed', () => {
    assert.deepEqual(parseAdminAddress('9090'), { host: '127.0.0.1', port: 9090 });
    assert.deepEqual(parseAdminAddress(':0'), { host: '127.0.0.1', port: 0 });
    assert.deepEqual(parseAdminAddress('0.0.0.0:9090'), { host: '0.0.0.0', port: 9090 });
    assert.deepEqual(parseAdminAddress('[::1]:9090'), { host: '::1', port: 9090 });
    assert.equal(typeof parseAdminAddress('65536'), 'string');
    assert.equal(typeof parseAdminAddress('::1:9090'), 'string');
  });

  void test('statusUrl: http:// is added, a port alone is 127.0.0.1, /status is appended once, a path prefix is kept', () => {
    const href = (t: string): string => {
      const u = statusUrl(t);
      return typeof u === 'string' ? `error: ${u}` : u.href;
    };
    assert.equal(href('http://127.0.0.1:9090'), 'http://127.0.0.1:9090/status');
    assert.equal(href('127.0.0.1:9090/'), 'http://127.0.0.1:9090/status');
    assert.equal(href(':9090'), 'http://127.0.0.1:9090/status');
    assert.equal(href('9090'), 'http://127.0.0.1:9090/status');
    assert.equal(href('http://[::1]:9090/status'), 'http://[::1]:9090/status');
    assert.equal(href('http://gw.example/meshd/b1/'), 'http://gw.example/meshd/b1/status');
    assert.match(href('https://h:1'), /^error: .*plain http/);
    assert.match(href('http://user:pw@h:1'), /^error: .*without user/);
    assert.match(href('http://[nope'), /^error: .*is not a URL/);
  });

  void test('parseStatus tells a meshd status from anything else', () => {
    const ok = JSON.stringify({ type: 'meshd-broker-status', version: 1, state: 'ready', broker: {}, services: [] });
    assert.equal((parseStatus('E', '/status', 200, 'OK', ok) as { state: string }).state, 'ready');
    assert.deepEqual(parseStatus('E', '/status', 503, 'Service Unavailable', '{"type":"meshd-broker-status","version":1,"state":"starting"}'), { type: 'meshd-broker-status', version: 1, state: 'starting' });
    const code = (status: number, body: string): string => {
      try {
        parseStatus('E', '/status', status, 'X', body);
        return 'none';
      } catch (error) {
        return (error as MeshError).code;
      }
    };
    assert.equal(code(404, ok), 'MESH_ERR_PROTOCOL');
    assert.equal(code(200, '<html>'), 'MESH_ERR_PROTOCOL');
    assert.equal(code(200, '{"status":"ok"}'), 'MESH_ERR_PROTOCOL');
    assert.equal(code(200, 'null'), 'MESH_ERR_PROTOCOL');
    assert.equal(code(200, JSON.stringify({ type: 'meshd-broker-status', version: 2 })), 'MESH_ERR_VERSION');
    assert.equal(code(503, ok), 'MESH_ERR_PROTOCOL', 'a 503 is only for a broker still starting');
  });

  void test('quantileMs interpolates within the bucket; the overflow bucket gives the last bound', () => {
    const bounds = [1, 2, 5, 10];
    assert.equal(quantileMs(bounds, [0, 0, 0, 0, 0], 0.5), undefined);
    assert.equal(quantileMs(bounds, [10, 0, 0, 0, 0], 0.5), 0.5);
    assert.equal(quantileMs(bounds, [0, 0, 4, 0, 0], 0.5), 3.5);
    assert.equal(quantileMs(bounds, [50, 0, 0, 50, 0], 0.99), 9.9);
    assert.equal(quantileMs(bounds, [0, 0, 0, 0, 3], 0.5), 10);
    assert.deepEqual([formatMs(undefined), formatMs(0.42), formatMs(12.4), formatMs(2500), formatMs(25_000)], ['-', '0.4ms', '12ms', '2.5s', '25s']);
    assert.deepEqual([formatUptime(42_000), formatUptime(303_000), formatUptime(7_500_000), formatUptime(300_000_000)], ['42s', '5m 3s', '2h 5m', '3d 11h']);
  });

  void test('topSample: rate and latency over the interval; none without an earlier reading; a restart counts from zero', () => {
    const doc = (uptimeMs: number, replied: number, counts: number[], key = 'K'): StatusDocument =>
      ({
        broker: { name: 'b', key, address: '', uptimeMs, gossipRounds: 1 },
        connections: { broker: 1, client: 2, worker: 1, node: 0 },
        services: [{ name: 'echo', queued: 3, inFlight: 2, requests: { replied, MESH_ERR_BUSY: 1 }, latency: { boundsMs: [1, 2, 5], counts, count: 0, sumMs: 0 } }],
      }) as unknown as StatusDocument;
    const first = doc(1000, 10, [10, 0, 0, 0]);
    const none = topSample(undefined, first, 1000);
    assert.deepEqual(none, { perSecond: undefined, p50Ms: undefined, p99Ms: undefined, queued: 3, inFlight: 2, nodes: 3 });
    const later = topSample(first, doc(2000, 30, [10, 0, 20, 0]), 500);
    assert.equal(later.perSecond, 40, '20 more in 0.5 s');
    assert.equal(later.p50Ms, 3.5, 'only the 20 of the interval, all between 2 and 5 ms');
    const restarted = topSample(first, doc(300, 4, [4, 0, 0, 0], 'K'), 1000);
    assert.equal(restarted.perSecond, 5, 'from zero: 4 replied + 1 busy');
  });

  void test('protectDashKeys joins a dash key to its option, moves a positional one after --, leaves the rest', () => {
    const key = `-${'A'.repeat(42)}`;
    assert.deepEqual(protectDashKeys(['registry', 'add', '--key', key, '--name', 'n']), ['registry', 'add', `--key=${key}`, '--name', 'n']);
    assert.deepEqual(protectDashKeys(['registry', 'remove', key, '--registry', 'f']), ['registry', 'remove', '--registry', 'f', '--', key]);
    assert.deepEqual(protectDashKeys(['request', 'echo', '--', '-x']), ['request', 'echo', '--', '-x']);
    assert.deepEqual(protectDashKeys(['keygen', '--out', 'k', '-h']), ['keygen', '--out', 'k', '-h']);
  });

  void test('brokerList takes repeated flags and space or comma separated lists', () => {
    assert.deepEqual(brokerList(['mesh://a@h:1', 'mesh://b@h:2']), ['mesh://a@h:1', 'mesh://b@h:2']);
    assert.deepEqual(brokerList('mesh://a@h:1 mesh://b@h:2,mesh://c@h:3'), ['mesh://a@h:1', 'mesh://b@h:2', 'mesh://c@h:3']);
    assert.deepEqual(brokerList(undefined), []);
  });

  void test('the first SIGTERM/SIGINT asks for a graceful stop; a second exits at once with 128 + its number', async () => {
    const host = fakeHost();
    const stop = stopSignals(host);
    host.send('SIGINT');
    assert.equal(await stop.stopped, 'SIGINT');
    assert.deepEqual(host.exits, []);
    host.send('SIGTERM');
    assert.deepEqual(host.exits, [signalExitCode('SIGTERM')]);
    assert.equal(signalExitCode('SIGTERM'), 143);
    assert.equal(signalExitCode('SIGINT'), 130);
    stop.dispose();
    host.send('SIGTERM');
    assert.deepEqual(host.exits, [143], 'disposed: no longer listening');
  });

  void test('--log-level drops lower lines; pretty is one readable line; auto follows the terminal', () => {
    let text = '';
    const out = { write: (s: string | Uint8Array) => (text += String(s)) };
    const warnOnly = createLogger(out, { level: 'warn', format: 'json', now: () => new Date(0) });
    warnOnly.log('info', 'connected', 'hidden');
    warnOnly.log('error', 'registry-error', 'shown', { code: 'MESH_ERR_CONFIG' });
    assert.deepEqual(text.trim().split('\n').map((l) => JSON.parse(l) as unknown), [{ time: '1970-01-01T00:00:00.000Z', level: 'error', event: 'registry-error', msg: 'shown', code: 'MESH_ERR_CONFIG' }]);
    text = '';
    createLogger(out, { level: 'silent', format: 'json' }).log('error', 'x', 'never');
    assert.equal(text, '');
    createLogger(out, { format: 'pretty', now: () => new Date(Date.UTC(2026, 0, 5, 9, 30, 0, 123)) }).log('warn', 'handshake-failed', 'handshake failed', { remote: '127.0.0.1:6', code: 'MESH_ERR_UNAUTHORIZED' });
    assert.equal(text, '09:30:00.123 WARN  handshake-failed: handshake failed  remote=127.0.0.1:6 code=MESH_ERR_UNAUTHORIZED\n');
    text = '';
    createLogger({ ...out, isTTY: true }).log('info', 'closed', 'broker closed');
    assert.match(text, /^\d\d:\d\d:\d\d\.\d{3} INFO {2}closed: broker closed\n$/);
    text = '';
    createLogger(out).log('info', 'closed', 'broker closed');
    assert.equal((JSON.parse(text) as { event: string }).event, 'closed', 'not a terminal: JSON');
  });

  void test('broker events become one JSON line each, with the error code and no payload', () => {
    let text = '';
    const logger = jsonLogger({ write: (s) => (text += String(s)) }, () => new Date(0));
    logBrokerEvent(logger, { type: 'connected', key: 'K', name: 'web', role: 'client', remote: '127.0.0.1:5' });
    logBrokerEvent(logger, { type: 'handshake-failed', remote: '127.0.0.1:6', error: new MeshError('MESH_ERR_UNAUTHORIZED', 'key X is not in the registry') });
    const lines = text.split('\n');
    assert.equal(lines.pop(), '');
    assert.deepEqual(JSON.parse(lines[0]!), { time: '1970-01-01T00:00:00.000Z', level: 'info', event: 'connected', msg: 'web (client) connected from 127.0.0.1:5', key: 'K', name: 'web', role: 'client', remote: '127.0.0.1:5' });
    assert.deepEqual(JSON.parse(lines[1]!), {
      time: '1970-01-01T00:00:00.000Z',
      level: 'warn',
      event: 'handshake-failed',
      msg: 'handshake with 127.0.0.1:6 failed: MESH_ERR_UNAUTHORIZED',
      remote: '127.0.0.1:6',
      code: 'MESH_ERR_UNAUTHORIZED',
      error: 'key X is not in the registry',
    });
  });

  void test('formatTable pads columns and trims the last', () => {
    assert.deepEqual(
      formatTable([
        ['A', 'BB', 'C'],
        ['aaa', 'b', ''],
      ]),
      ['A    BB  C', 'aaa  b'],
    );
  });
});
