// The config file reference of docs/cli.md ("Config file reference") against
// the code: every option of `meshd broker` (its yargs options) but --config
// has a row with its name, type, default and MESHD_* variable, and nothing
// else does; readBrokerConfig accepts exactly those keys, each with a value
// of its documented type. Then docs/broker.example.yaml, the complete example
// file, starts a real broker (`meshd broker --config`, on 127.0.0.1 port 0
// with a fresh key and registry), which reports the file's values.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import yargs from 'yargs';
import type { Argv } from 'yargs';
import { parse as parseYaml } from 'yaml';
import { envVariable } from '../../bin/cli.ts';
import { broker, readBrokerConfig } from '../../bin/commands/broker.ts';
import { MeshError, encodeKey, generateKeyPair, writeKeyFileSync } from '../../lib/index.ts';
import { freePort } from '../helpers/ports.ts';
import { Children, describeRun, logLines, root } from './children.ts';

const CLI_MD = readFileSync(join(root, 'docs', 'cli.md'), 'utf8');
const EXAMPLE = join(root, 'docs', 'broker.example.yaml');
const START_MS = 30_000;

/** A row of the reference table. */
interface Row {
  readonly key: string;
  readonly type: string;
  readonly default: string;
  readonly env: string;
  readonly meaning: string;
}

/** The table under "#### Config file reference" in docs/cli.md. */
function referenceTable(): Row[] {
  const start = CLI_MD.indexOf('\n#### Config file reference\n');
  assert.ok(start >= 0, 'docs/cli.md has a "Config file reference" heading');
  const section = CLI_MD.slice(start + 1).split(/\n#{1,4} /)[0]!;
  const lines = section.split('\n').filter((l) => l.startsWith('|'));
  assert.equal(lines[0], '| key | type | default | env | meaning |');
  return lines.slice(2).map((line) => {
    const cells = line.slice(1, -1).split(' | ').map((c) => c.trim());
    assert.equal(cells.length, 5, line);
    const [key, type, dflt, env, meaning] = cells as [string, string, string, string, string];
    const unquote = (cell: string): string => /^`([^`]+)`$/.exec(cell)?.[1] ?? assert.fail(`${line}: ${cell} should be in backticks`);
    return { key: unquote(key), type, default: dflt, env: unquote(env), meaning };
  });
}

/** A default or choice as the table writes it. */
function text(value: unknown): string {
  return typeof value === 'string' ? value : JSON.stringify(value);
}

/** The part of yargs' instance API that @types/yargs does not declare. */
interface YargsOptions {
  key: Record<string, unknown>;
  number: string[];
  string: string[];
  array: string[];
  boolean: string[];
  default: Record<string, unknown>;
  choices: Record<string, unknown[]>;
  demandedOptions: Record<string, unknown>;
  config: Record<string, unknown>;
}

/** The options `meshd broker` declares, from its own builder. */
function brokerOptions(): YargsOptions {
  const builder = broker.builder as (y: Argv) => Argv;
  return (builder(yargs()) as unknown as { getOptions(): YargsOptions }).getOptions();
}

/** The option names of `meshd broker` a config file may set: all but help, version and the config option itself. */
function configurable(options: YargsOptions): string[] {
  return Object.keys(options.key).filter((name) => name !== 'help' && name !== 'version' && !(name in options.config));
}

void describe('the config file reference in docs/cli.md', () => {
  let dir = '';
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'meshd-config-ref-'));
  });
  after(async () => {
    if (dir !== '') await rm(dir, { recursive: true, force: true });
  });

  void test('one row per option of meshd broker but --config, in the order of its --help', () => {
    const options = brokerOptions();
    assert.deepEqual(Object.keys(options.config), ['config'], 'the file is named by --config');
    const rows = referenceTable();
    assert.deepEqual(rows.map((r) => r.key), configurable(options));
  });

  void test('types and defaults are those of the yargs options', () => {
    const options = brokerOptions();
    for (const row of referenceTable()) {
      const type = options.array.includes(row.key) ? 'list of strings' : options.number.includes(row.key) ? 'whole number' : options.string.includes(row.key) ? 'string' : 'unknown';
      assert.equal(row.type, type, `${row.key}: type`);
      const expected = row.key in options.demandedOptions ? 'required' : row.key in options.default ? `\`${text(options.default[row.key])}\`` : 'none';
      assert.equal(row.default, expected, `${row.key}: default`);
      // A choice option names its choices.
      for (const choice of (options.choices[row.key] ?? []).map(text)) assert.ok(row.meaning.includes(`\`${choice}\``), `${row.key}: the meaning names the choice ${choice}`);
    }
  });

  void test('each env name is MESHD_ + the option name in upper snake case, the variable the CLI reads', () => {
    for (const row of referenceTable()) {
      const upperSnake = row.key.toUpperCase().replace(/-/g, '_');
      assert.equal(row.env, `MESHD_${upperSnake}`, row.key);
      assert.equal(row.env, envVariable(row.key), row.key);
      assert.match(upperSnake, /^[A-Z]+(_[A-Z]+)*$/);
    }
    assert.equal(envVariable('config'), 'MESHD_CONFIG');
  });

  void test('readBrokerConfig takes exactly the documented keys, each with a value of its documented type', () => {
    const rows = referenceTable();
    // The unknown-key error lists the keys the reader knows.
    const bogus = join(dir, 'bogus.yaml');
    writeFileSync(bogus, 'listen-port: 4222\n');
    const listed = /the keys are the long option names of meshd broker: (.*)$/.exec(errorOf(() => readBrokerConfig(bogus)))?.[1]?.split(', ');
    assert.deepEqual([...(listed ?? [])].sort(), rows.map((r) => r.key).sort());
    const file = join(dir, 'one.yaml');
    const accepts = (yaml: string): Record<string, unknown> => {
      writeFileSync(file, yaml);
      return readBrokerConfig(file);
    };
    const refuses = (yaml: string): string => {
      writeFileSync(file, yaml);
      return errorOf(() => readBrokerConfig(file));
    };
    for (const { key, type } of rows) {
      if (type === 'string') {
        assert.deepEqual(accepts(`${key}: some-value\n`), { [key]: 'some-value' });
        assert.deepEqual(accepts(`${key}: 42\n`), { [key]: '42' });
        assert.match(refuses(`${key}: [a, b]\n`), new RegExp(`'${key}' must be a single value`));
      } else if (type === 'whole number') {
        assert.deepEqual(accepts(`${key}: 1234\n`), { [key]: 1234 });
        assert.deepEqual(accepts(`${key}: "1234"\n`), { [key]: 1234 });
        assert.match(refuses(`${key}: 1.5\n`), new RegExp(`'${key}' must be a whole number`));
        assert.match(refuses(`${key}: lots\n`), new RegExp(`'${key}' must be a whole number`));
      } else {
        assert.equal(type, 'list of strings', key);
        assert.deepEqual(accepts(`${key}: one\n`), { [key]: ['one'] });
        assert.deepEqual(accepts(`${key}: [one, two]\n`), { [key]: ['one', 'two'] });
        assert.match(refuses(`${key}: {a: 1}\n`), new RegExp(`'${key}' must be a string or a list of strings`));
      }
      assert.deepEqual(accepts(`${key}:\n`), {}, `${key}: an empty value counts as absent`);
    }
    assert.match(refuses('config: other.yaml\n'), /unknown key 'config'/);
  });

  void test('the short example of the section is a valid file', () => {
    const start = CLI_MD.indexOf('\n### The config file\n');
    const block = /```yaml\n([^]*?)```/.exec(CLI_MD.slice(start))?.[1];
    assert.ok(block !== undefined);
    const file = join(dir, 'short.yaml');
    writeFileSync(file, block);
    assert.deepEqual(Object.keys(readBrokerConfig(file)).sort(), Object.keys(parseYaml(block) as object).sort());
  });
});

function errorOf(f: () => unknown): string {
  try {
    f();
  } catch (err) {
    assert.ok(err instanceof MeshError && err.code === 'MESH_ERR_CONFIG', String(err));
    return err.message;
  }
  return assert.fail('expected MESH_ERR_CONFIG');
}


void describe('docs/broker.example.yaml', () => {
  const children = new Children();
  let dir = '';
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'meshd-example-'));
  });
  after(async () => {
    children.killAll();
    if (dir !== '') await rm(dir, { recursive: true, force: true });
  });

  void test('sets every documented key', () => {
    const example = readBrokerConfig(EXAMPLE);
    assert.deepEqual(Object.keys(example).sort(), referenceTable().map((r) => r.key).sort());
  });

  void test('meshd broker --config starts with it (on 127.0.0.1 port 0, a fresh key and registry) and reports its values', async () => {
    const example = readBrokerConfig(EXAMPLE);
    const keyPair = generateKeyPair();
    writeKeyFileSync(join(dir, 'broker.key'), keyPair);
    // An empty registry: the example's peers are not registered brokers, so they are not dialled (no traffic leaves loopback).
    writeFileSync(join(dir, 'registry.yaml'), '[]\n');
    // The file's listen, key, registry and admin are overridden, the first by a flag, the others by their MESHD_* variables.
    const admin = `127.0.0.1:${await freePort()}`;
    const d = children.start(['broker', '--config', EXAMPLE, '--listen', '127.0.0.1:0'], {
      env: { MESHD_KEY: join(dir, 'broker.key'), MESHD_REGISTRY: join(dir, 'registry.yaml'), MESHD_ADMIN: admin },
    });
    try {
      await d.line(new RegExp(`^listening mesh://${encodeKey(keyPair.publicKey)}@127\\.0\\.0\\.1:[1-9]\\d*$`), START_MS);
      const peers = example.peer as string[];
      await d.stderrMatch(/"event":"peer-not-registered"[^\n]*\n[^]*"event":"peer-not-registered"/, START_MS);
      const logs = logLines(d.stderr());
      const listening = logs.find((l) => l.event === 'listening');
      assert.ok(listening, d.stderr());
      assert.deepEqual(
        {
          name: listening.name,
          suite: listening.suite,
          maxPayload: listening.maxPayload,
          queueMax: listening.queueMax,
          drainTimeout: listening.drainTimeout,
          gossipInterval: listening.gossipInterval,
          peers: listening.peers,
        },
        {
          name: example.name,
          suite: example.suite,
          maxPayload: example['max-payload'],
          queueMax: example['queue-max'],
          drainTimeout: example['drain-timeout'],
          gossipInterval: example['gossip-interval'],
          peers,
        },
      );
      const notDialled = logs.filter((l) => l.event === 'peer-not-registered').map((l) => l.key);
      assert.deepEqual(notDialled.sort(), peers.map((p) => /^mesh:\/\/([^@]+)@/.exec(p)![1]).sort());
      assert.equal(logs.filter((l) => l.level === 'error').length, 0, d.stderr());
      process.kill(d.pid, 'SIGTERM');
      assert.deepEqual(await d.exited(15_000), { status: 0, signal: null }, describeRun({ status: null, signal: null, stderr: d.stderr() }));
    } finally {
      children.killAll();
    }
  });
});
