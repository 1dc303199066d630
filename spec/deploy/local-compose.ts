// Runs the services of docker-compose.yml as local processes, the way their
// containers would run them: each service's entrypoint and command (the
// image's ENTRYPOINT and CMD where the service sets none), its environment,
// `meshd` on the PATH as the image has it (a link to the compiled CLI, run
// through its shebang). What only a container network would give is mapped:
// every service host name becomes 127.0.0.1 with a free port per service and
// container port (`broker-1:4222`, `--host broker-1 --port 4222`, and a
// service's own `0.0.0.0:4222`), and every path under a named volume's mount
// point becomes a directory standing for the volume. A host name or wildcard
// address left unmapped is an error, so no child ever dials outside
// 127.0.0.0/8.
import { mkdirSync, symlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { childEnv } from '../cli/children.ts';
import { MESHD_BIN } from '../helpers/meshd-bin.ts';
import { freePort } from '../helpers/ports.ts';
import { argvOf, isMapping, serviceVolumes } from './compose-check.ts';
import type { Mapping } from './compose-check.ts';

/** What the image supplies when a service does not override it. */
export interface ImageDefaults {
  /** The exec-form ENTRYPOINT, e.g. [node, --flag, /app/dist/bin/meshd.js]. */
  readonly entrypoint: readonly string[];
  readonly cmd: readonly string[];
  readonly workdir: string;
}

/** A service ready to start: the local argv, environment and working directory. */
export interface LocalService {
  readonly command: string;
  readonly args: string[];
  readonly env: NodeJS.ProcessEnv;
  readonly cwd: string;
}


const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

export class LocalCompose {
  readonly #services: Mapping;
  readonly #names: string[];
  readonly #image: ImageDefaults;
  readonly #dir: string;
  readonly #bin: string;
  /** Local port of `service:containerPort`. */
  readonly #ports = new Map<string, number>();
  /** Directory standing for each named volume. */
  readonly volumes = new Map<string, string>();

  private constructor(services: Mapping, image: ImageDefaults, dir: string) {
    this.#services = services;
    this.#names = Object.keys(services);
    this.#image = image;
    this.#dir = dir;
    this.#bin = join(dir, 'bin');
    mkdirSync(this.#bin, { recursive: true });
    // The image's /usr/local/bin/meshd: a link to the compiled CLI, run through its shebang.
    symlinkSync(MESHD_BIN, join(this.#bin, 'meshd'));
  }

  /** Maps `services` (interpolated) into `dir`: volume directories, `meshd` on a PATH, a free port for every service port the commands name. */
  static async create(services: Mapping, image: ImageDefaults, dir: string): Promise<LocalCompose> {
    const local = new LocalCompose(services, image, dir);
    const needed = new Set<string>();
    for (const name of local.#names) {
      const service = local.#service(name);
      for (const v of serviceVolumes(service, [], name)) {
        if (v.type === 'volume' && v.source !== undefined && !local.volumes.has(v.source)) {
          const path = join(dir, 'volumes', v.source);
          mkdirSync(path, { recursive: true });
          local.volumes.set(v.source, path);
        }
      }
      for (const word of local.#rawArgv(name)) local.#rewrite(name, word, (s, p) => (needed.add(`${s}:${p}`), 0));
    }
    const taken = new Set<number>();
    for (const key of needed) {
      let port = await freePort();
      while (taken.has(port)) port = await freePort();
      taken.add(port);
      local.#ports.set(key, port);
    }
    return local;
  }

  /** The local port standing for `containerPort` of `service`. */
  port(service: string, containerPort: number): number {
    const port = this.#ports.get(`${service}:${containerPort}`);
    if (port === undefined) throw new Error(`no command names port ${containerPort} of ${service}`);
    return port;
  }

  /** The directory standing for `path` inside `service`'s container, if a volume is mounted there. */
  hostPath(service: string, path: string): string | undefined {
    for (const v of serviceVolumes(this.#service(service), [], service)) {
      if (v.type !== 'volume' || v.source === undefined) continue;
      if (path === v.target || path.startsWith(`${v.target}/`)) return this.volumes.get(v.source)! + path.slice(v.target.length);
    }
    return undefined;
  }

  #service(name: string): Mapping {
    const s = this.#services[name];
    if (!isMapping(s)) throw new Error(`no service ${name}`);
    return s;
  }

  /** The argv compose gives the container: entrypoint (the service's, else the image's) and command (the service's, else the image's CMD unless the service sets an entrypoint). */
  #rawArgv(name: string): string[] {
    const service = this.#service(name);
    const entrypoint = argvOf(service.entrypoint);
    const command = argvOf(service.command) ?? (entrypoint === undefined ? [...this.#image.cmd] : []);
    return [...(entrypoint ?? this.#image.entrypoint), ...command];
  }

  /** `text` of service `self` with volume paths, service host names and wildcard addresses mapped. */
  #rewrite(self: string, text: string, port: (service: string, containerPort: number) => number): string {
    let out = text;
    for (const v of serviceVolumes(this.#service(self), [], self)) {
      if (v.type === 'volume' && v.source !== undefined) out = out.split(v.target).join(this.volumes.get(v.source) ?? `<volume ${v.source}>`);
    }
    const services = new Set(this.#names);
    out = out.replace(/--host\s+(\S+)\s+--port\s+(\d{1,5})\b/g, (w, host: string, p: string) => (services.has(host) ? `--host 127.0.0.1 --port ${port(host, Number(p))}` : w));
    out = out.replace(/(?<![\w./@-])([A-Za-z0-9][A-Za-z0-9_.-]*):(\d{1,5})\b/g, (w, host: string, p: string) => (services.has(host) ? `127.0.0.1:${port(host, Number(p))}` : w));
    out = out.replace(/(?<![\w.:])(?:0\.0\.0\.0|\[::\]):(\d{1,5})\b/g, (_w, p: string) => `127.0.0.1:${port(self, Number(p))}`);
    if (/0\.0\.0\.0|\[::\]/.test(out)) throw new Error(`${self}: a wildcard address is left unmapped in ${out}`);
    for (const name of this.#names) {
      const left = new RegExp(`--host\\s+${escape(name)}\\b|(?<![\\w./@-])${escape(name)}:\\d`).exec(out);
      if (left) throw new Error(`${self}: host name ${name} is left unmapped ('${left[0]}') in ${out}`);
    }
    return out;
  }

  /** The local process for `name`, with `overrides` added to its environment (as `docker compose run -e`). */
  local(name: string, overrides: Record<string, string> = {}): LocalService {
    const service = this.#service(name);
    const argv = this.#rawArgv(name);
    const map = (word: string): string => this.#rewrite(name, word, (s, p) => this.port(s, p));
    const env: Record<string, string> = {};
    const declared = service.environment;
    const scalar = (v: unknown): string => (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean' ? String(v) : '');
    if (isMapping(declared)) for (const [k, v] of Object.entries(declared)) env[k] = scalar(v);
    else if (Array.isArray(declared)) {
      for (const item of declared) {
        const [k = '', ...v] = scalar(item).split('=');
        env[k] = v.join('=');
      }
    }
    const path = `${this.#bin}:${dirname(process.execPath)}:${process.env.PATH ?? ''}`;
    const full = childEnv({ ...env, ...overrides, PATH: path });
    const cwd = this.hostPath(name, this.#image.workdir) ?? this.#dir;
    const entry = this.#image.entrypoint;
    if ((argv[0] === '/bin/sh' || argv[0] === 'sh') && argv[1] === '-c' && argv[2] !== undefined) {
      return { command: '/bin/sh', args: ['-c', map(argv[2]), ...argv.slice(3).map(map)], env: full, cwd };
    }
    if (entry.length > 0 && entry.every((w, i) => argv[i] === w)) {
      // The image's ENTRYPOINT: node, its flags, the CLI.
      return { command: process.execPath, args: [...entry.slice(1, -1), MESHD_BIN, ...argv.slice(entry.length).map(map)], env: full, cwd };
    }
    throw new Error(`${name}: cannot run ${JSON.stringify(argv)} locally: expected /bin/sh -c SCRIPT or the image's ENTRYPOINT`);
  }
}
