/**
 * The systems `npm run bench:compare` puts side by side, each started fresh
 * as its users run it: NATS (`nats-server` from the distribution, the npm
 * `nats` client) and meshd (`meshd broker` as the CLI starts it, workers and
 * client as plain-JS apps that import the compiled package). Every process is
 * a child watched by pid; `close()` stops them all, SIGKILL if needed.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FaultProcess } from '../../spec/faults/processes.ts';
import { freePorts } from '../../spec/faults/harness.ts';
import { startMeshdBrokers } from './meshd-mesh.ts';
import { PACKAGE_ROOT } from './child.ts';
import type { BenchChild, ChildGroup } from './child.ts';

/** The systems of a round. */
export const SYSTEMS = ['nats', 'meshd-1', 'meshd-3'] as const;
export type SystemName = (typeof SYSTEMS)[number];

/** A started system: its servers (for CPU and RSS), its workers and its client. */
export interface RunningSystem {
  readonly name: SystemName;
  /** nats-server or meshd broker processes, in order (the client uses the first). */
  readonly servers: readonly FaultProcess[];
  readonly workers: readonly BenchChild[];
  readonly client: BenchChild;
  /** Stops every process of the system (bounded). Idempotent. */
  close(): Promise<void>;
}

export interface SystemOptions {
  /** A private temporary directory for keys and the registry. */
  readonly dir: string;
  readonly group: ChildGroup;
  /** Echo worker processes. */
  readonly workers: number;
  /** Servers for NATS (1 or a cluster of 3); meshd-N has N. */
  readonly natsServers?: number;
  /** The client's per-request timeout, ms. */
  readonly timeoutMs: number;
  /** Write a `--cpu-prof` profile of every meshd process into DIR/ROLE/ (brokers, workers, client). */
  readonly profileDir?: string;
}

/** Node flags that write a CPU profile into `dir/role` (none without a dir). */
const profileFlags = (profileDir: string | undefined, role: string): string[] =>
  profileDir === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${path.join(profileDir, role)}`];

const NATS_DIR = path.join(PACKAGE_ROOT, 'bench', 'peers', 'nats');
const READY_MS = 30_000;

/**
 * Checks what the comparison needs and installs what the project can: the
 * compiled package (`npm run build`) and the NATS client (`npm ci` in
 * bench/peers/nats). Throws with the exact missing step otherwise.
 */
export function preflight(log: (text: string) => void): { natsServer: string; natsVersion: string } {
  if (!existsSync(path.join(PACKAGE_ROOT, 'dist', 'lib', 'index.js')) || !existsSync(path.join(PACKAGE_ROOT, 'dist', 'bin', 'meshd.js'))) {
    log('dist/ is missing: running npm run build');
    execFileSync('npm', ['run', 'build'], { cwd: PACKAGE_ROOT, stdio: ['ignore', 'ignore', 'inherit'] });
  }
  if (!existsSync(path.join(NATS_DIR, 'node_modules', 'nats', 'package.json'))) {
    log('bench/peers/nats/node_modules is missing: running npm ci there');
    execFileSync('npm', ['ci', '--no-audit', '--no-fund'], { cwd: NATS_DIR, stdio: ['ignore', 'ignore', 'inherit'] });
  }
  const natsServer = process.env.NATS_SERVER_BIN ?? findOnPath('nats-server');
  if (natsServer === undefined) {
    throw new Error('nats-server is not installed: run `apt-get install nats-server` (Debian/Ubuntu) or put a nats-server binary on PATH (or set NATS_SERVER_BIN)');
  }
  const version = spawnSync(natsServer, ['--version'], { encoding: 'utf8' });
  return { natsServer, natsVersion: (version.stdout || version.stderr).trim() };
}

function findOnPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(':').concat(['/usr/sbin', '/usr/local/sbin', '/sbin'])) {
    if (dir !== '' && existsSync(path.join(dir, name))) return path.join(dir, name);
  }
  return undefined;
}

/** The machine line under the table: what the figures were measured on. */
export function machine(natsVersion: string): string {
  const cpus = os.cpus();
  const pkg = JSON.parse(readFileSync(path.join(PACKAGE_ROOT, 'bench', 'peers', 'nats', 'node_modules', 'nats', 'package.json'), 'utf8')) as { version: string };
  return `${cpus.length} × ${cpus[0]?.model.trim() ?? 'unknown CPU'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Linux ${os.release()}, Node ${process.version}, ${natsVersion}, nats.js ${pkg.version}`;
}

/** CPU time of a process so far (user + system by default), ms, from /proc (Linux). */
export function cpuMsOf(pid: number, which: 'all' | 'user' | 'system' = 'all'): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Fields 14 and 15 of stat (utime, stime), in clock ticks of 10 ms.
  const user = Number(fields[11]) * 10;
  const system = Number(fields[12]) * 10;
  return which === 'user' ? user : which === 'system' ? system : user + system;
}

/** Resident set size of a process, bytes, from /proc (Linux). */
export function rssOf(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

/** Starts one system and resolves once its client has had an answer (bounded). */
export async function startSystem(name: SystemName, options: SystemOptions, natsServer: string): Promise<RunningSystem> {
  const servers: FaultProcess[] = [];
  const children: BenchChild[] = [];
  let closed: Promise<void> | undefined;
  const close = (): Promise<void> =>
    (closed ??= (async () => {
      await Promise.all(children.map((c) => options.group.stop(c, 3000)));
      for (const s of servers) s.signal('SIGCONT');
      await Promise.all(servers.map(async (s) => (s.signal('SIGTERM') ? s.waitExit(5000) : undefined)));
      await Promise.all(servers.map(async (s) => (s.alive ? s.kill() : undefined)));
    })());
  try {
    const spawnPeer = async (role: string, script: string, args: string[]): Promise<BenchChild> => {
      const profileDir = name === 'nats' ? undefined : options.profileDir;
      const child = await options.group.spawn({ name: `${name}-${role}`, script, args, loader: false, nodeFlags: profileFlags(profileDir, role), readyTimeoutMs: READY_MS });
      children.push(child);
      return child;
    };
    if (name === 'nats') {
      const urls = await startNats(options.natsServers ?? 1, natsServer, servers);
      const workers = [];
      for (let i = 0; i < options.workers; i++) workers.push(await spawnPeer(`worker-${i + 1}`, 'bench/peers/nats/worker.mjs', ['--servers', urls.join(','), '--name', `worker-${i + 1}`]));
      const client = await spawnPeer('client', 'bench/peers/nats/client.mjs', ['--servers', urls.join(','), '--timeout', String(options.timeoutMs)]);
      return { name, servers, workers, client, close };
    }
    const brokers = name === 'meshd-3' ? 3 : 1;
    const { urls, workerKeys, clientKey } = await startMeshd(brokers, options, servers);
    const workers = [];
    for (let i = 0; i < options.workers; i++) workers.push(await spawnPeer(`worker-${i + 1}`, 'bench/peers/meshd/worker.mjs', ['--brokers', urls.join(','), '--key', workerKeys[i]!, '--name', `worker-${i + 1}`]));
    const client = await spawnPeer('client', 'bench/peers/meshd/client.mjs', ['--brokers', urls.join(','), '--key', clientKey, '--timeout', String(options.timeoutMs)]);
    return { name, servers, workers, client, close };
  } catch (error) {
    await close();
    throw error;
  }
}

/** Starts `count` nats-server processes (a cluster when more than one) and resolves with their client URLs once ready (bounded). */
export async function startNats(count: number, natsServer: string, servers: FaultProcess[]): Promise<string[]> {
  const ports = await freePorts(count * 2);
  const clientPorts = ports.slice(0, count);
  const routePorts = ports.slice(count);
  for (let i = 0; i < count; i++) {
    const args = ['-a', '127.0.0.1', '-p', String(clientPorts[i])];
    if (count > 1) {
      const routes = routePorts.filter((_, j) => j !== i).map((p) => `nats://127.0.0.1:${p}`);
      args.push('--cluster_name', 'bench', '--cluster', `nats://127.0.0.1:${routePorts[i]}`, '--routes', routes.join(','));
    }
    servers.push(new FaultProcess(`nats-server-${i + 1}`, args, { executable: natsServer }));
  }
  await Promise.all(servers.map((s) => s.until('Server is ready', READY_MS, () => (s.stderrTail.includes('Server is ready') ? true : undefined))));
  if (count > 1) {
    // Every server has a route to each of the others.
    await Promise.all(servers.map((s) => s.until('its routes', READY_MS, () => ((s.stderrTail.match(/Route connection created/g) ?? []).length >= count - 1 ? true : undefined))));
  }
  return clientPorts.map((p) => `nats://127.0.0.1:${p}`);
}

async function startMeshd(count: number, options: SystemOptions, servers: FaultProcess[]): Promise<{ urls: string[]; workerKeys: string[]; clientKey: string }> {
  const dir = mkdtempSync(path.join(options.dir, `meshd-${count}-`));
  const workers = Array.from({ length: options.workers }, (_, i) => `worker-${i + 1}`);
  const mesh = await startMeshdBrokers({
    dir,
    brokers: count,
    parties: [...workers.map((name) => ({ name, entry: '  role: worker\n  serve: [echo]\n' })), { name: 'client', entry: '  role: client\n  call: [echo]\n' }],
    nodeFlags: (i) => profileFlags(options.profileDir, `broker-${i + 1}`),
    readyMs: READY_MS,
  });
  for (const h of mesh.handles) servers.push(h.proc!);
  return { urls: mesh.urls, workerKeys: workers.map((w) => mesh.parties.get(w)!.file), clientKey: mesh.parties.get('client')!.file };
}
