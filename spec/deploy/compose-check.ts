// Static checks of docker-compose.yml, the Dockerfile and .dockerignore, for
// a machine without a container runtime: the rules `docker compose config`
// and `docker build` apply that a mistake in these files would break
// (interpolation, service keys, images, depends_on, volumes, ports, health
// checks; stages, COPY sources, the user, the entrypoint). Each check
// returns a list of problems, empty when the file is right.
import { existsSync, statSync } from 'node:fs';
import { join, posix } from 'node:path';
import { parse as parseYaml } from 'yaml';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type Mapping = Record<string, Json>;

export function isMapping(value: unknown): value is Mapping {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The YAML of a compose file as compose reads it: merge keys (`<<`) applied. */
export function parseCompose(text: string): unknown {
  return parseYaml(text, { merge: true });
}

// ---------------------------------------------------------------------------
// Interpolation

const NAME = '[_A-Za-z][_A-Za-z0-9]*';
const TEMPLATE = new RegExp(`\\$(?:(\\$)|(${NAME})|\\{(${NAME})(?:(:?[-?+])([^}]*))?\\}|)`, 'g');

/**
 * Compose's interpolation of one string: `$$` is a `$`; `$VAR`, `${VAR}`,
 * `${VAR:-default}`, `${VAR-default}`, `${VAR:?error}`, `${VAR:+alt}` take
 * `env`. Any other `$` (a shell's `$(...)` or `$((...))` written with one `$`)
 * is compose's "invalid template" error; so, here, is a variable that is not
 * set and has no default (compose would put an empty string there).
 */
export function interpolate(text: string, env: Readonly<Record<string, string | undefined>>): { value: string } | { error: string } {
  let error: string | undefined;
  const value = text.replace(TEMPLATE, (whole, dollar: string | undefined, bare: string | undefined, braced: string | undefined, op: string | undefined, arg: string | undefined) => {
    if (dollar !== undefined) return '$';
    const name = bare ?? braced;
    if (name === undefined) {
      error ??= `invalid template at ${JSON.stringify(text.slice(text.indexOf(whole), text.indexOf(whole) + 12))}: write $$ for a literal $`;
      return whole;
    }
    const set = env[name];
    const empty = set === undefined || set === '';
    switch (op) {
      case ':-':
        return empty ? (arg ?? '') : set;
      case '-':
        return set ?? arg ?? '';
      case ':?':
      case '?':
        if (op === ':?' ? empty : set === undefined) error ??= `required variable ${name} is missing: ${arg ?? ''}`;
        return set ?? '';
      case ':+':
        return empty ? '' : (arg ?? '');
      case '+':
        return set === undefined ? '' : (arg ?? '');
      default:
        if (set === undefined) error ??= `variable ${name} is not set and has no default (compose would use an empty string)`;
        return set ?? '';
    }
  });
  return error === undefined ? { value } : { error };
}

/** `value` with every string interpolated; problems go to `problems` with their path. */
export function interpolateAll(value: unknown, env: Readonly<Record<string, string | undefined>>, problems: string[], path = ''): unknown {
  if (typeof value === 'string') {
    const r = interpolate(value, env);
    if ('error' in r) {
      problems.push(`${path}: ${r.error}`);
      return value;
    }
    return r.value;
  }
  if (Array.isArray(value)) return value.map((v, i) => interpolateAll(v, env, problems, `${path}[${i}]`));
  if (isMapping(value)) {
    const out: Record<string, unknown> = {};
    // Extension fields (x-*) are not interpolated on their own: what they hold is checked where it is merged.
    for (const [k, v] of Object.entries(value)) out[k] = k.startsWith('x-') ? v : interpolateAll(v, env, problems, path === '' ? k : `${path}.${k}`);
    return out;
  }
  return value;
}

// ---------------------------------------------------------------------------
// Compose

const TOP_LEVEL = new Set(['name', 'services', 'volumes', 'networks', 'configs', 'secrets', 'include']);
/** The service keys of the compose specification this check knows (a subset: the ones a file like ours would use). */
const SERVICE_KEYS = new Set([
  'build', 'image', 'pull_policy', 'command', 'entrypoint', 'environment', 'env_file', 'volumes', 'ports', 'expose', 'depends_on',
  'healthcheck', 'restart', 'container_name', 'hostname', 'networks', 'stop_grace_period', 'stop_signal', 'init', 'user',
  'working_dir', 'labels', 'deploy', 'profiles', 'logging', 'read_only', 'tmpfs', 'cap_drop', 'cap_add', 'security_opt', 'ulimits',
]);
const CONDITIONS = new Set(['service_started', 'service_healthy', 'service_completed_successfully']);
const PULL_POLICIES = /^(always|never|missing|if_not_present|build|daily|weekly|every_\d+[smhdw])$/;
const RESTART = /^(no|always|unless-stopped|on-failure(:\d+)?)$/;
const DURATION = /^(\d+(\.\d+)?(us|ms|s|m|h))+$/;
const HEALTHCHECK_KEYS = new Set(['test', 'interval', 'timeout', 'retries', 'start_period', 'start_interval', 'disable']);
const VOLUME_MODES = /^(ro|rw|z|Z|nocopy|consistent|cached|delegated)(,(ro|rw|z|Z|nocopy|consistent|cached|delegated))*$/;

function isStringList(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((v) => typeof v === 'string');
}

/** The dependencies of a service: target → condition (the list form means service_started). */
export function dependsOn(service: Mapping): Map<string, string> {
  const out = new Map<string, string>();
  const d = service.depends_on;
  if (isStringList(d)) for (const t of d) out.set(t, 'service_started');
  else if (isMapping(d)) for (const [t, v] of Object.entries(d)) out.set(t, isMapping(v) && typeof v.condition === 'string' ? v.condition : 'service_started');
  return out;
}

/** A volume of a service: named (`source` a volume name), bind (a path) or anonymous. */
export interface ServiceVolume {
  readonly type: 'volume' | 'bind' | 'anonymous';
  readonly source: string | undefined;
  readonly target: string;
}

export function serviceVolumes(service: Mapping, problems: string[], where: string): ServiceVolume[] {
  const list = service.volumes;
  if (list === undefined) return [];
  if (!Array.isArray(list)) {
    problems.push(`${where}.volumes must be a list`);
    return [];
  }
  const out: ServiceVolume[] = [];
  for (const [i, v] of list.entries()) {
    if (typeof v === 'string') {
      const parts = v.split(':');
      if (parts.length > 3 || parts.some((p) => p === '')) {
        problems.push(`${where}.volumes[${i}] '${v}' is not SOURCE:TARGET[:MODE]`);
        continue;
      }
      if (parts.length === 1) {
        out.push({ type: 'anonymous', source: undefined, target: parts[0]! });
        continue;
      }
      const [source, target, mode] = parts as [string, string, string | undefined];
      if (mode !== undefined && !VOLUME_MODES.test(mode)) problems.push(`${where}.volumes[${i}] '${v}': unknown mode '${mode}'`);
      if (!target.startsWith('/')) problems.push(`${where}.volumes[${i}] '${v}': the target must be an absolute path`);
      out.push({ type: /^[./~]/.test(source) ? 'bind' : 'volume', source, target });
    } else if (isMapping(v)) {
      const type = v.type;
      if (type !== 'volume' && type !== 'bind') {
        problems.push(`${where}.volumes[${i}]: type must be volume or bind here, got ${JSON.stringify(type)}`);
        continue;
      }
      if (typeof v.target !== 'string' || !v.target.startsWith('/')) problems.push(`${where}.volumes[${i}]: target must be an absolute path`);
      out.push({ type: type === 'volume' && v.source === undefined ? 'anonymous' : type, source: typeof v.source === 'string' ? v.source : undefined, target: typeof v.target === 'string' ? v.target : JSON.stringify(v.target) });
    } else {
      problems.push(`${where}.volumes[${i}] must be a string or a map`);
    }
  }
  return out;
}

const PORT = '(\\d{1,5})(?:-(\\d{1,5}))?';
const SHORT_PORT = new RegExp(`^(?:(?:(\\[[0-9a-fA-F:.]+\\]|\\d{1,3}(?:\\.\\d{1,3}){3}):)?(?:${PORT})?:)?${PORT}(?:/(tcp|udp|sctp))?$`);

/** A published port: host address, host port (undefined: any), container port, protocol. */
export interface PublishedPort {
  readonly hostIp: string;
  readonly published: number | undefined;
  readonly target: number;
  readonly protocol: string;
}

export function servicePorts(service: Mapping, problems: string[], where: string): PublishedPort[] {
  const list = service.ports;
  if (list === undefined) return [];
  if (!Array.isArray(list)) {
    problems.push(`${where}.ports must be a list`);
    return [];
  }
  const out: PublishedPort[] = [];
  const inRange = (n: number): boolean => Number.isInteger(n) && n >= 1 && n <= 65535;
  for (const [i, p] of list.entries()) {
    if (typeof p === 'number') {
      problems.push(`${where}.ports[${i}]: write ports as strings ("${p}"): YAML reads some HOST:CONTAINER pairs as base-60 numbers`);
      continue;
    }
    if (typeof p === 'string') {
      const m = SHORT_PORT.exec(p);
      if (!m) {
        problems.push(`${where}.ports[${i}] '${p}' is not [[IP:]HOST:]CONTAINER[/PROTOCOL]`);
        continue;
      }
      const [, ip, hostLo, hostHi, lo, hi, protocol] = m;
      const numbers = [hostLo, hostHi, lo, hi].filter((x) => x !== undefined).map(Number);
      if (!numbers.every(inRange)) {
        problems.push(`${where}.ports[${i}] '${p}': a port is out of range (1 to 65535)`);
        continue;
      }
      if (hi !== undefined || hostHi !== undefined) {
        problems.push(`${where}.ports[${i}] '${p}': port ranges are not expected here`);
        continue;
      }
      out.push({ hostIp: ip ?? '0.0.0.0', published: hostLo === undefined ? undefined : Number(hostLo), target: Number(lo), protocol: protocol ?? 'tcp' });
    } else if (isMapping(p)) {
      const target = Number(p.target);
      const published = p.published === undefined ? undefined : Number(p.published);
      if (!inRange(target) || (published !== undefined && !inRange(published))) problems.push(`${where}.ports[${i}]: target and published must be ports (1 to 65535)`);
      else out.push({ hostIp: typeof p.host_ip === 'string' ? p.host_ip : '0.0.0.0', published, target, protocol: typeof p.protocol === 'string' ? p.protocol : 'tcp' });
    } else {
      problems.push(`${where}.ports[${i}] must be a string or a map`);
    }
  }
  return out;
}

/** What the compose check needs to know about the image a Dockerfile builds. */
export interface ImageFacts {
  readonly healthcheck: boolean;
}

/**
 * The problems `docker compose config` (and `up`) would find in a parsed,
 * interpolated compose file whose directory is `dir`. `image` tells whether
 * the image built from `dir`'s Dockerfile has a HEALTHCHECK.
 */
export function composeProblems(doc: unknown, dir: string, image: ImageFacts): string[] {
  const problems: string[] = [];
  if (!isMapping(doc)) return ['the file is not a YAML map'];
  for (const key of Object.keys(doc)) {
    if (key === 'version') problems.push('`version` is obsolete: compose ignores it, with a warning');
    else if (!TOP_LEVEL.has(key) && !key.startsWith('x-')) problems.push(`unknown top-level key '${key}'`);
  }
  if (doc.name !== undefined && (typeof doc.name !== 'string' || !/^[a-z0-9][a-z0-9_-]*$/.test(doc.name))) problems.push(`name ${JSON.stringify(doc.name)} must be lower case letters, digits, - and _`);
  const services = doc.services;
  if (!isMapping(services) || Object.keys(services).length === 0) return [...problems, 'services must be a non-empty map'];
  const declaredVolumes = doc.volumes === undefined ? {} : doc.volumes;
  if (!isMapping(declaredVolumes)) problems.push('volumes must be a map');
  const volumeNames = new Set(isMapping(declaredVolumes) ? Object.keys(declaredVolumes) : []);
  const usedVolumes = new Set<string>();
  const builtImages = new Set<string>();
  for (const s of Object.values(services)) if (isMapping(s) && s.build !== undefined && typeof s.image === 'string') builtImages.add(s.image);
  const published = new Map<string, string>();

  for (const [name, service] of Object.entries(services)) {
    const where = `services.${name}`;
    if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(name)) problems.push(`${where}: invalid service name`);
    if (!isMapping(service)) {
      problems.push(`${where} must be a map`);
      continue;
    }
    for (const key of Object.keys(service)) if (!SERVICE_KEYS.has(key) && !key.startsWith('x-')) problems.push(`${where}: unknown key '${key}'`);
    // Image and build.
    if (service.image === undefined && service.build === undefined) problems.push(`${where}: needs image or build`);
    if (service.image !== undefined && (typeof service.image !== 'string' || service.image === '')) problems.push(`${where}.image must be a string`);
    if (service.build !== undefined) {
      const build = typeof service.build === 'string' ? { context: service.build } : service.build;
      if (!isMapping(build) || typeof build.context !== 'string') problems.push(`${where}.build must be a path or a map with context`);
      else {
        const context = join(dir, build.context);
        const dockerfile = join(context, typeof build.dockerfile === 'string' ? build.dockerfile : 'Dockerfile');
        if (!existsSync(context) || !statSync(context).isDirectory()) problems.push(`${where}.build: context ${build.context} is not a directory`);
        else if (!existsSync(dockerfile)) problems.push(`${where}.build: ${dockerfile} does not exist`);
      }
    } else if (typeof service.image === 'string' && service.pull_policy === 'never' && !builtImages.has(service.image)) {
      problems.push(`${where}: image ${service.image} is never pulled and no service builds it`);
    }
    if (service.pull_policy !== undefined && (typeof service.pull_policy !== 'string' || !PULL_POLICIES.test(service.pull_policy))) problems.push(`${where}.pull_policy: invalid value ${JSON.stringify(service.pull_policy)}`);
    if (service.pull_policy === 'build' && service.build === undefined) problems.push(`${where}: pull_policy build needs a build section`);
    // Command and entrypoint.
    for (const key of ['command', 'entrypoint'] as const) {
      const v = service[key];
      if (v !== undefined && typeof v !== 'string' && !isStringList(v)) problems.push(`${where}.${key} must be a string or a list of strings`);
    }
    // Environment.
    const env = service.environment;
    if (env !== undefined) {
      if (isMapping(env)) {
        for (const [k, v] of Object.entries(env)) if (v !== null && typeof v === 'object') problems.push(`${where}.environment.${k} must be a scalar`);
      } else if (!isStringList(env)) problems.push(`${where}.environment must be a map or a list of NAME=VALUE`);
    }
    // Restart.
    if (service.restart !== undefined && (typeof service.restart !== 'string' || !RESTART.test(service.restart))) problems.push(`${where}.restart: invalid value ${JSON.stringify(service.restart)} (quote "no")`);
    // Health check.
    const hc = service.healthcheck;
    if (hc !== undefined) {
      if (!isMapping(hc)) problems.push(`${where}.healthcheck must be a map`);
      else {
        for (const key of Object.keys(hc)) if (!HEALTHCHECK_KEYS.has(key)) problems.push(`${where}.healthcheck: unknown key '${key}'`);
        if (hc.disable !== undefined && typeof hc.disable !== 'boolean') problems.push(`${where}.healthcheck.disable must be true or false`);
        if (hc.test !== undefined && typeof hc.test !== 'string' && !(isStringList(hc.test) && ['NONE', 'CMD', 'CMD-SHELL'].includes(hc.test[0] ?? ''))) {
          problems.push(`${where}.healthcheck.test must be a string or a list starting with NONE, CMD or CMD-SHELL`);
        }
        for (const key of ['interval', 'timeout', 'start_period', 'start_interval']) {
          const d = hc[key];
          if (d !== undefined && (typeof d !== 'string' || !DURATION.test(d))) problems.push(`${where}.healthcheck.${key}: ${JSON.stringify(d)} is not a duration such as 10s`);
        }
      }
    }
    // Volumes.
    for (const v of serviceVolumes(service, problems, where)) {
      if (v.type !== 'volume' || v.source === undefined) continue;
      usedVolumes.add(v.source);
      if (!volumeNames.has(v.source)) problems.push(`${where} uses volume '${v.source}', which is not declared under the top-level volumes`);
    }
    // Ports.
    for (const p of servicePorts(service, problems, where)) {
      if (p.published === undefined) continue;
      const key = `${p.hostIp}:${p.published}/${p.protocol}`;
      const other = published.get(key);
      if (other !== undefined) problems.push(`${where} publishes ${key}, already published by ${other}`);
      published.set(key, name);
    }
    // depends_on.
    const d = service.depends_on;
    if (d !== undefined && !isStringList(d) && !isMapping(d)) problems.push(`${where}.depends_on must be a list or a map`);
    if (isMapping(d)) {
      for (const [target, spec] of Object.entries(d)) {
        if (!isMapping(spec)) problems.push(`${where}.depends_on.${target} must be a map with a condition`);
        else if (spec.condition !== undefined && (typeof spec.condition !== 'string' || !CONDITIONS.has(spec.condition))) {
          problems.push(`${where}.depends_on.${target}: invalid condition ${JSON.stringify(spec.condition)}`);
        }
      }
    }
    for (const [target, condition] of dependsOn(service)) {
      const other = services[target];
      if (target === name) problems.push(`${where} depends on itself`);
      else if (!isMapping(other)) problems.push(`${where} depends on '${target}', which is not a service`);
      else if (condition === 'service_healthy') {
        const own = other.healthcheck;
        const disabled = isMapping(own) && own.disable === true;
        const hasOwn = isMapping(own) && !disabled && own.test !== undefined;
        const fromImage = image.healthcheck && (other.build !== undefined || (typeof other.image === 'string' && builtImages.has(other.image)));
        if (disabled || !(hasOwn || fromImage)) problems.push(`${where} waits for '${target}' to be healthy, but '${target}' has no health check`);
      }
    }
  }
  // Cycles in depends_on.
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (name: string, path: string[]): void => {
    if (state.get(name) === 'done') return;
    if (state.get(name) === 'visiting') {
      problems.push(`depends_on cycle: ${[...path, name].join(' -> ')}`);
      return;
    }
    state.set(name, 'visiting');
    const s = services[name];
    if (isMapping(s)) for (const t of dependsOn(s).keys()) if (t in services) visit(t, [...path, name]);
    state.set(name, 'done');
  };
  for (const name of Object.keys(services)) visit(name, []);
  for (const v of volumeNames) if (!usedVolumes.has(v)) problems.push(`volume '${v}' is declared but no service uses it`);
  return problems;
}

/**
 * The words of a compose `command:` or `entrypoint:` given as a string:
 * compose splits it as a POSIX shell would (quotes, backslashes), without
 * expanding anything.
 */
export function shellWords(text: string): string[] {
  const words: string[] = [];
  let word: string | undefined;
  let i = 0;
  const add = (c: string): void => {
    word = (word ?? '') + c;
  };
  while (i < text.length) {
    const c = text[i]!;
    if (/\s/.test(c)) {
      if (word !== undefined) words.push(word);
      word = undefined;
      i++;
    } else if (c === "'") {
      const end = text.indexOf("'", i + 1);
      if (end < 0) throw new Error(`unterminated ' in ${text}`);
      add(text.slice(i + 1, end));
      i = end + 1;
    } else if (c === '"') {
      i++;
      add('');
      while (i < text.length && text[i] !== '"') {
        if (text[i] === '\\' && i + 1 < text.length && '"\\$`\n'.includes(text[i + 1]!)) i++;
        add(text[i]!);
        i++;
      }
      if (i >= text.length) throw new Error(`unterminated " in ${text}`);
      i++;
    } else if (c === '\\' && i + 1 < text.length) {
      add(text[i + 1]!);
      i += 2;
    } else {
      add(c);
      i++;
    }
  }
  if (word !== undefined) words.push(word);
  return words;
}

/** A command or entrypoint as the argv compose hands the container. */
export function argvOf(value: unknown): string[] | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'string') return shellWords(value);
  if (isStringList(value)) return value;
  throw new Error(`not a command: ${JSON.stringify(value)}`);
}

// ---------------------------------------------------------------------------
// Dockerfile

export interface Instruction {
  readonly keyword: string;
  readonly args: string;
  readonly line: number;
}

export interface Stage {
  readonly index: number;
  readonly name: string | undefined;
  readonly from: string;
  readonly instructions: Instruction[];
}

export interface Dockerfile {
  /** ARGs before the first FROM, with their defaults. */
  readonly globalArgs: ReadonlyMap<string, string>;
  readonly stages: Stage[];
}

/** Parses a Dockerfile: instructions (continuation lines joined, comments dropped) grouped by stage. */
export function parseDockerfile(text: string): Dockerfile {
  const instructions: Instruction[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    let line = lines[i]!;
    const start = i + 1;
    if (/^\s*(#|$)/.test(line)) continue;
    while (/\\\s*$/.test(line) && i + 1 < lines.length) {
      line = line.replace(/\\\s*$/, ' ');
      i++;
      const next = lines[i]!;
      if (/^\s*#/.test(next)) continue;
      line += next;
    }
    const m = /^\s*([A-Za-z]+)\s+(.*)$/.exec(line);
    if (!m) throw new Error(`Dockerfile line ${start}: cannot parse ${JSON.stringify(line)}`);
    instructions.push({ keyword: m[1]!.toUpperCase(), args: m[2]!.trim().replace(/\s+/g, ' '), line: start });
  }
  const globalArgs = new Map<string, string>();
  const stages: Stage[] = [];
  for (const ins of instructions) {
    if (ins.keyword === 'FROM') {
      const m = /^(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?$/i.exec(ins.args);
      if (!m) throw new Error(`Dockerfile line ${ins.line}: FROM ${ins.args}`);
      const from = m[1]!.replace(/\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?/g, (w, n: string) => globalArgs.get(n) ?? w);
      stages.push({ index: stages.length, name: m[2]?.toLowerCase(), from, instructions: [] });
    } else if (stages.length === 0) {
      if (ins.keyword !== 'ARG') throw new Error(`Dockerfile line ${ins.line}: only ARG may come before the first FROM`);
      const [name, value] = ins.args.split('=', 2) as [string, string | undefined];
      globalArgs.set(name, value ?? '');
    } else {
      stages[stages.length - 1]!.instructions.push(ins);
    }
  }
  return { globalArgs, stages };
}

/** The JSON array of an exec-form instruction, or undefined for the shell form. */
export function execForm(args: string): string[] | undefined {
  if (!args.startsWith('[')) return undefined;
  const parsed: unknown = JSON.parse(args);
  return isStringList(parsed) ? parsed : undefined;
}

/** A COPY: its flags, sources and destination (resolved against the stage's WORKDIR). */
export interface Copy {
  readonly from: string | undefined;
  readonly sources: string[];
  /** Absolute; ends with `/` when it is a directory by its spelling. */
  readonly dest: string;
  readonly line: number;
}

/** The WORKDIR in force at each instruction of a stage, and the stage's COPYs. */
export function stageLayout(stage: Stage): { copies: Copy[]; workdirAt: Map<Instruction, string>; workdir: string } {
  let workdir = '/';
  const copies: Copy[] = [];
  const workdirAt = new Map<Instruction, string>();
  for (const ins of stage.instructions) {
    if (ins.keyword === 'WORKDIR') workdir = posix.resolve(workdir, ins.args);
    workdirAt.set(ins, workdir);
    if (ins.keyword === 'COPY' || ins.keyword === 'ADD') {
      const words = execForm(ins.args) ?? ins.args.split(' ');
      const flags = words.filter((w) => w.startsWith('--'));
      const rest = words.filter((w) => !w.startsWith('--'));
      const from = flags.find((f) => f.startsWith('--from='))?.slice('--from='.length).toLowerCase();
      const target = rest[rest.length - 1] ?? '';
      const dest = posix.resolve(workdir, target) + (target.endsWith('/') || target === '.' || target === './' ? '/' : '');
      copies.push({ from, sources: rest.slice(0, -1), dest, line: ins.line });
    }
  }
  return { copies, workdirAt, workdir };
}

/**
 * Where a file of a stage's filesystem comes from: `{ stage, path }` for a
 * file copied from another stage, `{ context, path }` for one copied from the
 * build context, undefined when no COPY put it there. The latest COPY wins.
 */
export function originOf(df: Dockerfile, stage: Stage, path: string): { stage: Stage; path: string } | { context: string } | undefined {
  const { copies } = stageLayout(stage);
  for (const copy of [...copies].reverse()) {
    for (const source of copy.sources) {
      // A single source to a destination not spelled as a directory: the destination is the source (file, or directory contents).
      const single = copy.sources.length === 1 && !copy.dest.endsWith('/');
      const landing = single ? copy.dest : posix.join(copy.dest, posix.basename(source));
      if (path !== landing && !path.startsWith(`${landing}/`)) continue;
      const rest = path.slice(landing.length);
      if (copy.from === undefined) return { context: posix.normalize(source + rest) };
      const from = df.stages.find((s) => s.name === copy.from || String(s.index) === copy.from);
      if (from === undefined || from.index >= stage.index) return undefined;
      return { stage: from, path: posix.normalize(source + rest) };
    }
  }
  return undefined;
}

// ---------------------------------------------------------------------------
// .dockerignore

/** A .dockerignore pattern as a regular expression over slash-separated relative paths. */
function ignoreRegex(pattern: string): RegExp {
  let re = '';
  const p = posix.normalize(pattern).replace(/^\/+/, '').replace(/\/+$/, '');
  for (let i = 0; i < p.length; i++) {
    const c = p[i]!;
    if (c === '*' && p[i + 1] === '*') {
      // `**/` matches any number of directories, `**` at the end anything.
      if (p[i + 2] === '/') {
        re += '(?:.*/)?';
        i += 2;
      } else {
        re += '.*';
        i += 1;
      }
    } else if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

/**
 * The rule of .dockerignore (moby/patternmatcher): patterns apply in order,
 * the last that matches a path or one of its parent directories wins, and a
 * `!` pattern lets the path back in. Returns a function telling whether a
 * relative path is in the build context.
 */
export function dockerignore(text: string): (path: string) => boolean {
  const rules = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => ({ exclude: !l.startsWith('!'), re: ignoreRegex(l.replace(/^!/, '')) }));
  return (path: string): boolean => {
    const parts = path.split('/');
    const prefixes = parts.map((_p, i) => parts.slice(0, i + 1).join('/'));
    let excluded = false;
    for (const rule of rules) if (prefixes.some((p) => rule.re.test(p))) excluded = rule.exclude;
    return !excluded;
  };
}

/** What the checks of a Dockerfile found out, besides its problems. */
export interface DockerfileFacts {
  readonly problems: string[];
  /** The final stage's ENTRYPOINT (exec form). */
  readonly entrypoint: string[];
  /** The final stage's HEALTHCHECK command (exec form), if any. */
  readonly healthcheck: string[] | undefined;
  /** The file of the build context each file the image's entrypoint and health check run comes from, e.g. dist/bin/meshd.js. */
  readonly runs: Map<string, string>;
}

/**
 * Checks a multi-stage Dockerfile for a Node CLI: a build stage that runs
 * `npm ci` and the build; a final stage on `finalImage` that takes
 * node_modules from a stage that ran `npm ci --omit=dev`, copies no sources,
 * runs as a user other than root, has a HEALTHCHECK and an exec-form
 * ENTRYPOINT running a file the build stage produced under `dist/`.
 * `included` says whether a context path is in the build context
 * (.dockerignore); `root` is the context directory.
 */
export function dockerfileProblems(df: Dockerfile, root: string, included: (path: string) => boolean, finalImage: RegExp): DockerfileFacts {
  const problems: string[] = [];
  const runs = new Map<string, string>();
  const last = df.stages[df.stages.length - 1];
  if (df.stages.length < 2 || last === undefined) return { problems: ['a multi-stage build needs at least two stages'], entrypoint: [], healthcheck: undefined, runs };
  const names = df.stages.map((s) => s.name).filter((n) => n !== undefined);
  if (new Set(names).size !== names.length) problems.push('two stages have the same name');
  const runText = (s: Stage): string[] => s.instructions.filter((i) => i.keyword === 'RUN').map((i) => i.args);
  const npmCi = (s: Stage): string[] => runText(s).filter((r) => /\bnpm ci\b/.test(r));

  // Every COPY: --from names an earlier stage; context sources exist and are in the build context.
  for (const stage of df.stages) {
    for (const copy of stageLayout(stage).copies) {
      if (copy.from !== undefined) {
        const from = df.stages.find((s) => s.name === copy.from || String(s.index) === copy.from);
        if (from === undefined || from.index >= stage.index) problems.push(`line ${copy.line}: COPY --from=${copy.from} names no earlier stage`);
        continue;
      }
      for (const source of copy.sources) {
        const path = join(root, source);
        if (!existsSync(path)) problems.push(`line ${copy.line}: COPY source ${source} does not exist`);
        else if (!included(source)) problems.push(`line ${copy.line}: COPY source ${source} is left out of the build context by .dockerignore`);
      }
    }
  }

  // The build stage.
  const builder = df.stages.find((s) => npmCi(s).some((r) => !/--omit=dev/.test(r)) && runText(s).some((r) => /\b(node scripts\/build\.js|npm run build)\b/.test(r)));
  if (builder === undefined) problems.push('no stage runs `npm ci` and then the build (node scripts/build.js or npm run build)');
  if (builder === last) problems.push('the final stage must not be the build stage');

  // The final stage.
  if (!finalImage.test(last.from)) problems.push(`the final stage is FROM ${last.from}, expected ${finalImage}`);
  for (const r of npmCi(last)) if (!/--omit=dev/.test(r)) problems.push(`the final stage runs \`${r}\`, which installs dev dependencies`);
  const { copies } = stageLayout(last);
  for (const copy of copies) {
    if (copy.from !== undefined) continue;
    for (const source of copy.sources) {
      if (/(^|\/)(lib|bin|spec|node_modules)(\/|$)/.test(source) || source.endsWith('.ts')) problems.push(`line ${copy.line}: the final stage copies ${source} from the sources`);
    }
  }
  const users = last.instructions.filter((i) => i.keyword === 'USER');
  const user = users[users.length - 1]?.args;
  if (user === undefined) problems.push('the final stage has no USER: it would run as root');
  else if (/^(root|0)(:.*)?$/.test(user)) problems.push(`the final stage runs as ${user}`);

  // The file an exec-form command runs, traced back to the build context or the build.
  const trace = (what: string, argv: string[]): void => {
    const script = argv.find((a, i) => i > 0 && a.startsWith('/') && /\.(m?js)$/.test(a));
    if (argv[0] !== 'node' || script === undefined) {
      problems.push(`${what} should run a script with node: ${JSON.stringify(argv)}`);
      return;
    }
    const origin = originOf(df, last, script);
    if (origin === undefined) problems.push(`${what} runs ${script}, which no COPY of the final stage puts there`);
    else if ('context' in origin) {
      if (!existsSync(join(root, origin.context))) problems.push(`${what} runs ${script}, copied from ${origin.context}, which does not exist`);
      runs.set(script, origin.context);
    } else {
      const stageWorkdir = stageLayout(origin.stage).workdir;
      const rel = posix.relative(stageWorkdir, origin.path);
      if (origin.stage !== builder || !rel.startsWith('dist/')) problems.push(`${what} runs ${script}, which the build stage does not produce under dist/ (${origin.path} in stage ${origin.stage.name ?? origin.stage.index})`);
      else if (!existsSync(join(root, rel))) problems.push(`${what} runs ${script}, built as ${rel}, which the build does not produce`);
      runs.set(script, rel);
    }
  };

  const entry = last.instructions.filter((i) => i.keyword === 'ENTRYPOINT');
  const entrypoint = entry.length === 0 ? undefined : execForm(entry[entry.length - 1]!.args);
  if (entrypoint === undefined) problems.push('the final stage needs an exec-form ENTRYPOINT (a JSON array)');
  else {
    trace('ENTRYPOINT', entrypoint);
    // The package around the script (the directory that holds dist/): its package.json and production node_modules.
    const script = entrypoint.find((a) => /\/dist\//.test(a));
    const pkg = script?.slice(0, script.indexOf('/dist/'));
    if (pkg === undefined || pkg === '') problems.push('the ENTRYPOINT does not run a script under a dist/ directory');
    else {
      const manifest = originOf(df, last, `${pkg}/package.json`);
      if (manifest === undefined || !('context' in manifest) || manifest.context !== 'package.json') problems.push(`${pkg}/package.json is not the project's package.json (it makes dist/*.js ES modules)`);
      const modules = originOf(df, last, `${pkg}/node_modules`);
      if (modules === undefined || !('stage' in modules)) problems.push(`the final stage does not copy ${pkg}/node_modules from another stage`);
      else if (!npmCi(modules.stage).some((r) => /--omit=dev/.test(r))) problems.push(`node_modules comes from stage ${modules.stage.name ?? modules.stage.index}, which does not run npm ci --omit=dev`);
    }
  }

  const checks = last.instructions.filter((i) => i.keyword === 'HEALTHCHECK');
  let healthcheck: string[] | undefined;
  const hc = checks[checks.length - 1];
  if (hc === undefined) problems.push('the final stage has no HEALTHCHECK');
  else {
    const m = /^((?:--[a-z-]+=\S+\s+)*)(CMD|NONE)\s*(.*)$/.exec(hc.args);
    if (!m || m[2] === 'NONE') problems.push(`HEALTHCHECK ${hc.args}: expected [OPTIONS] CMD [...]`);
    else {
      for (const option of (m[1] ?? '').trim().split(/\s+/).filter((o) => o !== '')) {
        const [name, value] = option.slice(2).split('=') as [string, string];
        if (!['interval', 'timeout', 'start-period', 'start-interval', 'retries'].includes(name)) problems.push(`HEALTHCHECK: unknown option --${name}`);
        else if (name === 'retries' ? !/^\d+$/.test(value) : !DURATION.test(value)) problems.push(`HEALTHCHECK --${name}=${value} is not valid`);
      }
      healthcheck = execForm(m[3] ?? '');
      if (healthcheck === undefined) problems.push('HEALTHCHECK CMD should be in exec form (a JSON array)');
      else trace('HEALTHCHECK', healthcheck);
    }
  }
  return { problems, entrypoint: entrypoint ?? [], healthcheck, runs };
}
