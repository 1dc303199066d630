// The container files, proven without a container runtime (this machine has
// none): the Dockerfile, .dockerignore and docker-compose.yml are checked the
// way `docker build` and `docker compose config` would check them, and then
// every compose service's command runs as a local process with the same
// arguments: `init` first (its shell script, against a directory standing for
// the named volume), then the three brokers, which must form one mesh, the two
// workers and the client's loop. Requests go through the mesh while the first
// broker is SIGKILLed, and must all succeed through the others.
// docs/deploy.md describes the files.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { describe, test } from 'node:test';
import { MeshNode } from '../../lib/index.ts';
import { MESHD_NODE_FLAGS, root } from '../helpers/meshd-bin.ts';
import {
  argvOf,
  composeProblems,
  dependsOn,
  dockerfileProblems,
  dockerignore,
  interpolate,
  interpolateAll,
  isMapping,
  parseCompose,
  parseDockerfile,
  servicePorts,
  serviceVolumes,
  shellWords,
  stageLayout,
} from './compose-check.ts';
import type { Mapping } from './compose-check.ts';
import { LocalCompose } from './local-compose.ts';
import { describeProc, killAll, start } from './processes.ts';
import type { Proc } from './processes.ts';

const read = (file: string): string => readFileSync(join(root, file), 'utf8');
const DOCKERFILE = read('Dockerfile');
const DOCKERIGNORE = read('.dockerignore');
const COMPOSE = read('docker-compose.yml');
/** The final image must be Node 22. */
const NODE_22 = /^node:22(?:[.-]|$)/;
const included = dockerignore(DOCKERIGNORE);

/** docker-compose.yml as compose sees it: merge keys applied, `$$` unescaped; no variable comes from the environment. */
function composeConfig(text = COMPOSE): { doc: Mapping; services: Mapping; problems: string[] } {
  const problems: string[] = [];
  const doc = interpolateAll(parseCompose(text), {}, problems);
  assert.ok(isMapping(doc) && isMapping(doc.services), 'docker-compose.yml has services');
  return { doc, services: doc.services, problems };
}

function service(services: Mapping, name: string): Mapping {
  const s = services[name];
  assert.ok(isMapping(s), `service ${name}`);
  return s;
}

/** The script of a service run as `/bin/sh -c SCRIPT`. */
function script(s: Mapping): string {
  const argv = [...(argvOf(s.entrypoint) ?? []), ...(argvOf(s.command) ?? [])];
  assert.deepEqual(argv.slice(0, 2), ['/bin/sh', '-c'], JSON.stringify(argv));
  assert.equal(argv.length, 3, `one script after sh -c: ${JSON.stringify(argv)}`);
  return argv[2]!;
}

/** The words of a `meshd ...` command line in a script (quotes removed, `$(...)` kept as written). */
function meshdWords(text: string): string[] {
  const at = text.indexOf('meshd ');
  assert.ok(at >= 0, text);
  return shellWords(text.slice(at).split('\n')[0]!);
}

/** The values of `--flag` in words. */
function flagValues(words: readonly string[], flag: string): string[] {
  return words.flatMap((w, i) => (w === flag && words[i + 1] !== undefined ? [words[i + 1]!] : []));
}

function facts() {
  return dockerfileProblems(parseDockerfile(DOCKERFILE), root, included, NODE_22);
}

void describe('the Dockerfile and .dockerignore', () => {
  void test('stages: npm ci and the build, then Node 22 with the production tree and dist/ only, as a user other than root', () => {
    const df = parseDockerfile(DOCKERFILE);
    const f = facts();
    assert.deepEqual(f.problems, []);
    assert.ok(df.stages.length >= 2, 'multi-stage');
    const last = df.stages[df.stages.length - 1]!;
    assert.match(last.from, NODE_22);
    const user = last.instructions.filter((i) => i.keyword === 'USER').pop()?.args;
    assert.equal(user, 'node', 'the node image user (uid 1000), not root');
    // The ENTRYPOINT runs the compiled CLI with the Node flags of its shebang, as `meshd` does.
    const script = f.entrypoint[f.entrypoint.length - 1]!;
    assert.deepEqual(f.entrypoint, ['node', ...MESHD_NODE_FLAGS, script]);
    assert.equal(f.runs.get(script), 'dist/bin/meshd.js', 'the ENTRYPOINT is the file the build compiles from bin/meshd.ts');
    const pkg = JSON.parse(read('package.json')) as { bin: Record<string, string> };
    assert.equal(pkg.bin.meshd, 'dist/bin/meshd.js');
    assert.ok(existsSync(join(root, 'bin', 'meshd.ts')) && existsSync(join(root, 'dist', 'bin', 'meshd.js')));
    // The HEALTHCHECK runs the script of docker/ under node.
    assert.deepEqual(f.healthcheck, ['node', '/app/docker/healthcheck.mjs']);
    assert.equal(f.runs.get('/app/docker/healthcheck.mjs'), 'docker/healthcheck.mjs');
    // Shell commands (docker-compose.yml) call `meshd`: the image links it to the ENTRYPOINT's script.
    const runs = last.instructions.filter((i) => i.keyword === 'RUN').map((i) => i.args);
    assert.ok(runs.some((r) => r.includes(`ln -s ${script} /usr/local/bin/meshd`)), runs.join('\n'));
    // The volume's mount point is the working directory and belongs to the user.
    assert.equal(stageLayout(last).workdir, '/var/lib/meshd');
    assert.ok(runs.some((r) => r.includes('chown node:node /var/lib/meshd')), runs.join('\n'));
    assert.equal(last.instructions.filter((i) => i.keyword === 'EXPOSE').map((i) => i.args).join(' '), '4222 9090');
  });

  void test('the production tree (npm ci --omit=dev) has no TypeScript, tsx or esbuild', () => {
    const lock = JSON.parse(read('package-lock.json')) as { packages: Record<string, { dev?: boolean }> };
    const production = Object.entries(lock.packages)
      .filter(([path, p]) => path !== '' && p.dev !== true)
      .map(([path]) => path.replace(/^.*node_modules\//, ''));
    assert.ok(production.includes('yargs') && production.includes('yaml'), production.join(' '));
    assert.deepEqual(production.filter((name) => /^(typescript|tsx|esbuild|@esbuild\/.*|@types\/.*)$/.test(name)), []);
  });

  void test('.dockerignore lets in what the image is built from and keeps out keys, node_modules, dist/, tests and git', () => {
    const walk = (dir: string): string[] =>
      readdirSync(join(root, dir)).flatMap((name) => {
        const rel = `${dir}/${name}`;
        return statSync(join(root, rel)).isDirectory() ? walk(rel) : [rel];
      });
    const needed = ['package.json', 'package-lock.json', 'tsconfig.json', 'tsconfig.build.json', 'LICENSE', 'scripts/build.js', 'docker/healthcheck.mjs', ...walk('lib'), ...walk('bin')];
    assert.deepEqual(needed.filter((p) => !included(p)), []);
    const kept = ['node_modules/yaml/package.json', 'dist/bin/meshd.js', '.git/HEAD', 'spec/deploy/compose.spec.ts', 'demo/broker.key', 'lib/stray.key', 'registry.yaml', 'docker-compose.yml', 'coverage/index.html', 'bench/mesh.ts'];
    assert.deepEqual(kept.filter((p) => included(p)), []);
    // The matcher itself: last match wins, parents count, ** spans directories.
    const m = dockerignore('*\n!lib\nlib/secret\n**/*.key\n!keep.key');
    assert.deepEqual(['lib/a.ts', 'lib/secret/x', 'a/b/c.key', 'keep.key', 'other'].map(m), [true, false, false, true, false]);
  });

  void test('the checks catch a broken Dockerfile', () => {
    const broken = (edit: (text: string) => string): string[] => dockerfileProblems(parseDockerfile(edit(DOCKERFILE)), root, included, NODE_22).problems;
    assert.match(broken((t) => t.replace('USER node', 'USER root')).join('\n'), /runs as root/);
    assert.match(broken((t) => t.replace(/^USER node$/m, '')).join('\n'), /no USER/);
    assert.match(broken((t) => t.replace(/HEALTHCHECK [^]*?\.mjs"\]\n/, '')).join('\n'), /no HEALTHCHECK/);
    assert.match(broken((t) => t.replace('/app/dist/bin/meshd.js"]', '/app/dist/bin/nope.js"]')).join('\n'), /ENTRYPOINT runs \/app\/dist\/bin\/nope\.js, built as dist\/bin\/nope\.js, which the build does not produce/);
    assert.match(broken((t) => t.replace('COPY --from=deps', 'COPY --from=build')).join('\n'), /node_modules comes from stage build, which does not run npm ci --omit=dev/);
    assert.match(broken((t) => t.replace('--from=deps', '--from=nowhere')).join('\n'), /COPY --from=nowhere names no earlier stage/);
    assert.match(broken((t) => t.replace('COPY docker/healthcheck.mjs', 'COPY docker/missing.mjs')).join('\n'), /docker\/missing\.mjs does not exist/);
    assert.match(broken((t) => t.replace('COPY lib lib', 'COPY spec spec')).join('\n'), /COPY source spec is left out of the build context/);
    assert.match(broken((t) => t.replace(/FROM \$\{NODE_IMAGE\} AS runtime/, 'FROM node:20-slim AS runtime')).join('\n'), /FROM node:20-slim/);
    assert.match(broken((t) => t.replace('RUN node scripts/build.js', '')).join('\n'), /no stage runs `npm ci` and then the build/);
  });

  void test('the HEALTHCHECK script exits 0 on 200 from /healthz, 1 on another status, no answer or no listener', async () => {
    const servers: http.Server[] = [];
    const serve = async (handler: http.RequestListener): Promise<number> => {
      const server = http.createServer(handler);
      servers.push(server);
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      return (server.address() as AddressInfo).port;
    };
    const paths: string[] = [];
    try {
      const ok = await serve((req, res) => {
        paths.push(req.url ?? '');
        res.writeHead(req.url === '/healthz' ? 200 : 404).end('ok');
      });
      const sick = await serve((_req, res) => res.writeHead(503).end('draining'));
      const mute = await serve(() => undefined); // accepts, never answers
      const closed = await serve(() => undefined);
      await new Promise<void>((resolve) => servers.pop()!.close(() => resolve()));
      const check = (admin: string): Promise<{ status: number | null; stderr: string; ms: number }> =>
        new Promise((resolve, reject) => {
          const started = Date.now();
          const child = spawn(process.execPath, [join(root, 'docker', 'healthcheck.mjs')], { env: { PATH: process.env.PATH ?? '', MESHD_ADMIN: admin }, stdio: ['ignore', 'ignore', 'pipe'] });
          let stderr = '';
          child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
          const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
          child.on('error', reject);
          child.on('close', (status) => {
            clearTimeout(timer);
            resolve({ status, stderr, ms: Date.now() - started });
          });
        });
      const [up, wildcard, down, silent, refused, bad] = await Promise.all([
        check(`127.0.0.1:${ok}`),
        check(`0.0.0.0:${ok}`), // a wildcard listen address is asked on loopback
        check(`127.0.0.1:${sick}`),
        check(`127.0.0.1:${mute}`),
        check(`127.0.0.1:${closed}`),
        check('not-an-address'),
      ]);
      assert.equal(up.status, 0, up.stderr);
      assert.equal(wildcard.status, 0, wildcard.stderr);
      assert.deepEqual(paths, ['/healthz', '/healthz']);
      assert.equal(down.status, 1);
      assert.match(down.stderr, /HTTP 503/);
      assert.equal(silent.status, 1);
      assert.match(silent.stderr, /no answer within 3000 ms/);
      assert.ok(silent.ms < 10_000, `${silent.ms} ms`);
      assert.equal(refused.status, 1);
      assert.match(refused.stderr, /ECONNREFUSED/);
      assert.equal(bad.status, 1);
      assert.match(bad.stderr, /is not HOST:PORT/);
    } finally {
      for (const s of servers) {
        s.closeAllConnections();
        s.close();
      }
    }
  });
});

void describe('docker-compose.yml: what docker compose config checks', () => {
  void test('it parses, interpolates and has no problem', () => {
    const { doc, problems } = composeConfig();
    assert.deepEqual(problems, []);
    assert.deepEqual(composeProblems(doc, root, { healthcheck: facts().healthcheck !== undefined }), []);
  });

  void test('init makes the keys, registry and addresses; three brokers with one --peer each; two echo workers; a bounded client; all wait for init', () => {
    const { doc, services } = composeConfig();
    assert.deepEqual(Object.keys(services).sort(), ['broker-1', 'broker-2', 'broker-3', 'client', 'init', 'worker-1', 'worker-2']);
    assert.deepEqual(Object.keys(doc.volumes as Mapping), ['meshd-data']);
    const mounts = (name: string): string[] => serviceVolumes(service(services, name), [], name).map((v) => `${v.type}:${v.source}:${v.target}`);
    for (const name of Object.keys(services)) {
      assert.deepEqual(mounts(name), ['volume:meshd-data:/var/lib/meshd'], name);
      if (name === 'init') continue;
      assert.equal(dependsOn(service(services, name)).get('init'), 'service_completed_successfully', name);
    }

    // init: one shot; keygen, registry add and address for every party; idempotent.
    const init = service(services, 'init');
    assert.ok(init.build !== undefined, 'init builds the image the others use');
    assert.equal(init.restart, 'no');
    const setup = script(init);
    assert.match(setup, /^set -eu$/m);
    assert.match(setup, /if \[ -f ready \]; then[^]*exit 0/);
    for (const verb of ['meshd keygen --out', 'meshd registry add --registry registry.yaml', 'meshd address --key']) assert.ok(setup.includes(verb), verb);

    // Brokers: a ring of --peer (each told one other), advertised under their service names, admin on 9090 published.
    const peers = new Map<string, string>();
    const hostPorts = new Set<number>();
    for (const name of ['broker-1', 'broker-2', 'broker-3']) {
      const s = service(services, name);
      const words = meshdWords(script(s));
      assert.deepEqual(words.slice(0, 2), ['meshd', 'broker'], name);
      assert.ok(script(s).startsWith('exec '), `${name}: exec, so the broker is the container's PID 1 and gets its signals`);
      assert.deepEqual(flagValues(words, '--listen'), ['0.0.0.0:4222'], name);
      assert.deepEqual(flagValues(words, '--advertise'), [`${name}:4222`], name);
      assert.deepEqual(flagValues(words, '--admin'), ['0.0.0.0:9090'], name);
      assert.deepEqual(flagValues(words, '--key'), [`/var/lib/meshd/${name}.key`], name);
      const peer = flagValues(words, '--peer');
      assert.equal(peer.length, 1, `${name} knows one peer`);
      const m = /^\$\(cat \/var\/lib\/meshd\/(broker-\d)\.addr\)$/.exec(peer[0]!);
      assert.ok(m && m[1] !== name, `${name} --peer ${peer[0]}`);
      peers.set(name, m[1]!);
      assert.ok(setup.includes(`meshd address --key ${m[1]}.key --host ${m[1]} --port 4222 > ${m[1]}.addr`), `init writes ${m[1]}.addr`);
      const ports = servicePorts(s, [], name);
      assert.equal(ports.length, 1, name);
      assert.equal(ports[0]!.target, 9090);
      hostPorts.add(ports[0]!.published!);
      assert.equal(s.healthcheck, undefined, `${name} keeps the image's HEALTHCHECK`);
    }
    assert.equal(hostPorts.size, 3);
    // Following --peer from any broker reaches the other two.
    for (const from of peers.keys()) {
      const seen = new Set([from]);
      for (let at = peers.get(from)!; !seen.has(at); at = peers.get(at)!) seen.add(at);
      assert.equal(seen.size, 3, `from ${from}`);
    }

    // Workers: the demo echo worker, each told one broker.
    for (const name of ['worker-1', 'worker-2']) {
      const s = service(services, name);
      const words = meshdWords(script(s));
      assert.deepEqual(words.slice(0, 2), ['meshd', 'serve'], name);
      assert.deepEqual(words.slice(-2), ['echo', '--echo'], name);
      assert.deepEqual(flagValues(words, '--key'), [`/var/lib/meshd/${name}.key`]);
      assert.deepEqual((s.healthcheck as Mapping).disable, true, `${name} has no admin endpoint to check`);
    }

    // The client: a bounded loop of meshd request, after the brokers are healthy.
    const client = service(services, 'client');
    assert.equal(client.restart, 'no');
    const requests = (client.environment as Mapping).REQUESTS;
    assert.ok(typeof requests === 'string' && /^[1-9]\d{0,3}$/.test(requests), `REQUESTS: ${JSON.stringify(requests)}`);
    assert.match(script(client), /while \[ "\$n" -le "\$REQUESTS" \]/);
    assert.match(script(client), /meshd request "\$@"/);
    for (const b of ['broker-1', 'broker-2', 'broker-3']) assert.equal(dependsOn(client).get(b), 'service_healthy');
  });

  void test('the checks catch what docker compose config would refuse', () => {
    const problemsOf = (edit: (doc: Mapping) => void, text = COMPOSE): string[] => {
      const problems: string[] = [];
      const doc = interpolateAll(parseCompose(text), {}, problems) as Mapping;
      edit(doc);
      return [...problems, ...composeProblems(doc, root, { healthcheck: true })];
    };
    const svc = (doc: Mapping, name: string): Mapping => (doc.services as Mapping)[name] as Mapping;
    assert.match(problemsOf((d) => (svc(d, 'worker-1').volumes = ['elsewhere:/data'])).join('\n'), /uses volume 'elsewhere', which is not declared/);
    assert.match(problemsOf((d) => (svc(d, 'worker-1').depends_on = { ghost: { condition: 'service_started' } })).join('\n'), /depends on 'ghost', which is not a service/);
    assert.match(problemsOf((d) => (svc(d, 'worker-1').depends_on = { init: { condition: 'service_done' } })).join('\n'), /invalid condition "service_done"/);
    assert.match(problemsOf((d) => (svc(d, 'client').depends_on = { 'worker-1': { condition: 'service_healthy' } })).join('\n'), /'worker-1' has no health check/);
    assert.match(problemsOf((d) => (svc(d, 'init').depends_on = ['client'])).join('\n'), /depends_on cycle/);
    assert.match(problemsOf((d) => (svc(d, 'broker-1').ports = ['127.0.0.1:70000:9090'])).join('\n'), /out of range/);
    assert.match(problemsOf((d) => (svc(d, 'broker-2').ports = ['127.0.0.1:9091:9090'])).join('\n'), /already published by broker-1/);
    assert.match(problemsOf((d) => delete svc(d, 'client').image).join('\n'), /client: needs image or build/);
    assert.match(problemsOf((d) => (svc(d, 'client').restart = false)).join('\n'), /invalid value false/);
    assert.match(problemsOf((d) => (svc(d, 'client').volume = [])).join('\n'), /unknown key 'volume'/);
    assert.match(problemsOf(() => undefined, COMPOSE.replace('"$$(cat /var/lib/meshd/broker-2.addr)"', '"$(cat /var/lib/meshd/broker-2.addr)"')).join('\n'), /invalid template/);
    assert.deepEqual(interpolate('$$x ${A:-d} ${B-e} $A', { A: 'a' }), { value: '$x a e a' });
    assert.match(JSON.stringify(interpolate('${NOPE}', {})), /not set/);
    assert.deepEqual(shellWords(`a "b c" 'd e' f\\ g "h\\"i"`), ['a', 'b c', 'd e', 'f g', 'h"i']);
  });
});

/** The public key in a `mesh://KEY@HOST:PORT` file. */
function keyOf(addressFile: string): string {
  const m = /^mesh:\/\/([A-Za-z0-9_-]{43})@127\.0\.0\.1:\d+$/.exec(readFileSync(addressFile, 'utf8').trim());
  assert.ok(m, `${addressFile}: ${readFileSync(addressFile, 'utf8')}`);
  return m[1]!;
}

/** The last `brokers` log line's `live` keys, sorted. */
function liveBrokers(p: Proc): string[] | undefined {
  const lines = p.logs().filter((l) => l.event === 'brokers');
  const live = lines[lines.length - 1]?.live;
  return Array.isArray(live) ? (live as string[]).slice().sort() : undefined;
}

/** Resolves once `check()` is true, polling every 50 ms; rejects after `ms`. */
async function poll(what: string, ms: number, check: () => boolean): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Runs the HEALTHCHECK script against an admin address; resolves with its exit code. */
function healthcheck(admin: string): Promise<number | null> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(root, 'docker', 'healthcheck.mjs')], { env: { PATH: process.env.PATH ?? '', MESHD_ADMIN: admin }, stdio: 'ignore' });
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    child.on('error', reject);
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve(status);
    });
  });
}

void describe('docker-compose.yml run as local processes', () => {
  void test('init, three brokers that form one mesh, two workers, the client loop; SIGKILL broker-1 and requests still succeed', { timeout: 170_000 }, async (t) => {
    const { services } = composeConfig();
    const df = parseDockerfile(DOCKERFILE);
    const last = df.stages[df.stages.length - 1]!;
    const cmd = last.instructions.filter((i) => i.keyword === 'CMD').pop();
    const dir = await mkdtemp(join(tmpdir(), 'meshd-compose-'));
    let node: MeshNode | undefined;
    try {
      const local = await LocalCompose.create(services, { entrypoint: facts().entrypoint, cmd: cmd === undefined ? [] : JSON.parse(cmd.args) as string[], workdir: stageLayout(last).workdir }, dir);
      const run = (name: string, env: Record<string, string> = {}): Proc => {
        const l = local.local(name, env);
        return start(name, l.command, l.args, l.env, l.cwd);
      };
      const volume = local.volumes.get('meshd-data')!;

      // 1. init, to completion: keys (0600), registry, addresses; run again, it leaves them alone.
      const init = run('init');
      assert.equal((await init.exited(120_000)).status, 0, describeProc(init));
      for (const who of ['broker-1', 'broker-2', 'broker-3', 'worker-1', 'worker-2', 'client']) {
        assert.equal(statSync(join(volume, `${who}.key`)).mode & 0o777, 0o600, who);
      }
      const brokerKeys = ['broker-1', 'broker-2', 'broker-3'].map((b) => keyOf(join(volume, `${b}.addr`)));
      assert.match(init.stdout(), /broker-1\s+broker[\s\S]*worker-2\s+worker[\s\S]*client\s+client/);
      const again = run('init');
      assert.equal((await again.exited(60_000)).status, 0, describeProc(again));
      assert.match(again.stdout(), /already/);
      assert.deepEqual(['broker-1', 'broker-2', 'broker-3'].map((b) => keyOf(join(volume, `${b}.addr`))), brokerKeys);

      // 2. The brokers: each listens, then each agrees on all three.
      const brokers = ['broker-1', 'broker-2', 'broker-3'].map((name) => run(name));
      for (const [i, b] of brokers.entries()) {
        const port = local.port(b.name, 4222);
        await b.until('the listening line', 60_000, () => (b.stdout().includes(`listening mesh://${brokerKeys[i]}@127.0.0.1:${port}\n`) ? true : undefined));
      }
      const all = [...brokerKeys].sort();
      for (const b of brokers) await b.until('brokers with all three keys', 60_000, () => (JSON.stringify(liveBrokers(b)) === JSON.stringify(all) ? true : undefined));

      // The admin endpoint: when this build serves it, the image's HEALTHCHECK passes against every broker.
      for (const b of brokers) {
        const ignored = b.logs().some((l) => l.event === 'option-ignored' && l.option === 'admin');
        if (ignored) t.diagnostic(`${b.name}: --admin accepted but not served by this build; HEALTHCHECK not run against it`);
        else assert.equal(await healthcheck(`127.0.0.1:${local.port(b.name, 9090)}`), 0, `${b.name} /healthz`);
      }

      // 3. The workers: ready, and connected to all three brokers (each was given one).
      const workers = ['worker-1', 'worker-2'].map((name) => run(name));
      for (const w of workers) {
        await w.until('ready', 60_000, () => (/^ready$/m.test(w.stdout()) ? true : undefined));
        // Its seed is in the `ready` line; the two it learned come as broker-up.
        const linked = (): Set<unknown> => new Set(w.logs().flatMap((l) => (l.event === 'ready' && Array.isArray(l.brokers) ? (l.brokers as unknown[]) : l.event === 'broker-up' ? [l.broker] : [])));
        await w.until('links to all three brokers', 60_000, () => (linked().size === 3 ? true : undefined));
      }

      // 4. The client's loop, shortened (as `docker compose run -e REQUESTS=4 -e INTERVAL=0 client`).
      const client = run('client', { REQUESTS: '4', INTERVAL: '0' });
      assert.equal((await client.exited(120_000)).status, 0, describeProc(client));
      assert.equal(client.stdout(), 'request 1\nrequest 2\nrequest 3\nrequest 4\nclient: 4 replies, 0 failed\n');

      // 5. Requests in flight through the mesh, from a node with the client's key seeded with broker-3 only; broker-1 is SIGKILLed midway.
      const seed = readFileSync(join(volume, 'broker-3.addr'), 'utf8').trim();
      node = await MeshNode.connect({ brokers: [seed], key: join(volume, 'client.key'), timeout: 30_000 });
      const connected = node;
      await poll('the client node on all three brokers', 30_000, () => connected.healthyBrokers.length === 3);
      const TOTAL = 120;
      const IN_FLIGHT = 4;
      const KILL_AFTER = 30;
      let next = 0;
      let done = 0;
      let killedAt: number | undefined;
      const failures: string[] = [];
      const lane = async (): Promise<void> => {
        while (next < TOTAL) {
          const n = next++;
          try {
            const reply = await connected.request('echo', `n${n}`, { timeout: 20_000, retries: 4 });
            if (reply.toString() !== `n${n}`) failures.push(`n${n}: got ${reply.toString()}`);
          } catch (err) {
            failures.push(`n${n}: ${String(err)}`);
          }
          done++;
          if (done === KILL_AFTER) {
            killedAt = done;
            process.kill(brokers[0]!.pid, 'SIGKILL');
          }
        }
      };
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        Promise.all(Array.from({ length: IN_FLIGHT }, lane)),
        new Promise((_r, reject) => (timer = setTimeout(() => reject(new Error(`requests still running after 90 s: ${done} of ${TOTAL} done`)), 90_000))),
      ]).finally(() => clearTimeout(timer));
      assert.equal(killedAt, KILL_AFTER);
      assert.equal((await brokers[0]!.exited(10_000)).signal, 'SIGKILL');
      assert.deepEqual(failures, [], `${failures.length} of ${TOTAL} requests failed after broker-1 was killed`);

      // 6. The other two brokers agree it is gone; the client's loop still succeeds (its first --broker is the dead one).
      const two = [brokerKeys[1]!, brokerKeys[2]!].sort();
      for (const b of brokers.slice(1)) await b.until('brokers without broker-1', 30_000, () => (JSON.stringify(liveBrokers(b)) === JSON.stringify(two) ? true : undefined));
      const after = run('client', { REQUESTS: '3', INTERVAL: '0' });
      assert.equal((await after.exited(120_000)).status, 0, describeProc(after));
      assert.equal(after.stdout(), 'request 1\nrequest 2\nrequest 3\nclient: 3 replies, 0 failed\n');
      assert.equal(await healthcheck(`127.0.0.1:${local.port('broker-1', 9090)}`), 1, 'the killed broker is unhealthy');
      for (const p of [...brokers.slice(1), ...workers]) assert.equal(p.exit(), undefined, `${p.name} still runs: ${describeProc(p)}`);
      t.diagnostic(`volume: ${relative(dir, volume)}; ports: ${['broker-1', 'broker-2', 'broker-3'].map((b) => `${b} ${local.port(b, 4222)}/${local.port(b, 9090)}`).join(', ')}`);
    } finally {
      killAll();
      await node?.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
