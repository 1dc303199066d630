import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { isMeshError } from '../../lib/errors.ts';
import { decodeKey, encodeKey, generateKeyPair } from '../../lib/crypto/keys.ts';
import { globMatches, mayCall, mayServe, Registry } from '../../lib/broker/registry.ts';
import type { RegistryEntry } from '../../lib/broker/registry.ts';

const newKey = (): string => encodeKey(generateKeyPair().publicKey);
const K1 = newKey();
const K2 = newKey();
const K3 = newKey();
const K4 = newKey();

/** Asserts `fn` throws MESH_ERR_CONFIG whose message contains every fragment. */
function assertConfig(fn: () => unknown, ...fragments: string[]): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(isMeshError(err, 'MESH_ERR_CONFIG'), `expected MESH_ERR_CONFIG, got ${String(err)}`);
    for (const f of fragments) assert.ok(err.message.includes(f), `"${err.message}" should mention "${f}"`);
    return true;
  });
}

const EXAMPLE = `# The mesh registry.

# Brokers of the mesh.
- key: ${K1}
  name: broker-1
  role: broker

- key: ${K2}   # the web front end
  name: web
  role: client
  call: [billing.*, "*.read", users.get]

- key: ${K3}
  name: billing-worker
  role: worker
  serve:
    - billing.*

- key: ${K4}
  name: "ops node"
  role: node
  call: ['*']
  serve: [ops.status]
`;

void describe('Registry.parse', () => {
  void test('parses a valid registry with comments, flow and block lists', () => {
    const r = Registry.parse(EXAMPLE, 'example.yaml');
    assert.equal(r.size, 4);
    assert.equal(r.source, 'example.yaml');
    assert.deepEqual(
      r.entries.map((e) => [e.key, e.name, e.role, [...e.call], [...e.serve]]),
      [
        [K1, 'broker-1', 'broker', [], []],
        [K2, 'web', 'client', ['billing.*', '*.read', 'users.get'], []],
        [K3, 'billing-worker', 'worker', [], ['billing.*']],
        [K4, 'ops node', 'node', ['*'], ['ops.status']],
      ],
    );
    const web = r.getByKey(K2)!;
    assert.deepEqual(web.publicKey, decodeKey(K2));
    assert.equal(r.get(decodeKey(K2)), web);
    assert.equal(r.getByName('web'), web);
    assert.equal(r.get(decodeKey(newKey())), undefined);
    assert.equal(r.getByKey('nope'), undefined);
    assert.equal(r.get(new Uint8Array(31)), undefined, 'a key of the wrong length is simply unknown');
  });

  void test('looks keys up from a subarray view (byteOffset respected)', () => {
    const r = Registry.parse(EXAMPLE);
    const buf = new Uint8Array(40);
    buf.set(decodeKey(K3), 5);
    assert.equal(r.get(buf.subarray(5, 37))?.name, 'billing-worker');
  });

  void test('an empty file, a comment-only file and [] are empty registries', () => {
    for (const text of ['', '\n', '# nobody yet\n', '[]\n', '---\n']) {
      const r = Registry.parse(text);
      assert.equal(r.size, 0, JSON.stringify(text));
      assert.equal(r.get(decodeKey(K1)), undefined);
    }
    assert.equal(Registry.empty().size, 0);
  });

  void test('YAML anchors and aliases for shared glob lists work', () => {
    const r = Registry.parse(`
- key: ${K2}
  name: a
  role: client
  call: &reads ["*.read", users.get]
- key: ${K4}
  name: b
  role: node
  call: *reads
`);
    assert.deepEqual([...r.getByName('b')!.call], ['*.read', 'users.get']);
  });

  void test('entries and their lists are immutable', () => {
    const r = Registry.parse(EXAMPLE);
    assert.ok(Object.isFrozen(r.entries));
    assert.ok(Object.isFrozen(r.getByName('web')!.call));
  });

  const entry = (body: string, key = K1): string => `- key: ${key}\n${body}`;
  const invalid: [string, string, string[]][] = [
    ['top level map', 'key: x\nname: y\n', ['top level must be a list', 'got a map']],
    ['top level scalar', 'hello\n', ['top level must be a list']],
    ['YAML syntax error', '- key: [unclosed\n', ['invalid YAML', 'line']],
    ['two documents', '- a\n---\n- b\n', ['invalid YAML', 'multiple documents']],
    ['unquoted * in a flow list', entry('  name: a\n  role: client\n  call: [*]\n'), ['invalid YAML', 'must be quoted']],
    ['unquoted *.read', entry('  name: a\n  role: client\n  call: *.read\n'), ['entry 1', 'line 4', 'must be quoted']],
    ['entry not a map', '- just a string\n', ['entry 1 (line 1)', 'must be a map']],
    ['unknown field', entry('  name: a\n  role: client\n  calls: [x]\n'), ['entry 1 ("a") (line 4)', 'unknown field "calls"', 'key, name, role, call, serve']],
    ['duplicate field', entry('  name: a\n  name: b\n  role: client\n'), ['invalid YAML', 'unique']],
    ['missing key', '- name: a\n  role: client\n', ['entry 1', 'missing `key`']],
    ['missing name', entry('  role: client\n'), ['missing `name`']],
    ['missing role', entry('  name: a\n'), ['missing `role`']],
    ['bad key (standard base64)', `- key: ${K1.slice(0, 42)}+\n  name: a\n  role: client\n`, ['entry 1 ("a") (line 1)', 'standard base64']],
    ['key too long', `- key: ${K1}A\n  name: a\n  role: client\n`, ['`key` must be 43 base64url characters']],
    ['key not a string', '- key: 12\n  name: a\n  role: client\n', ['`key` must be a 43-character base64url public key', 'number 12']],
    ['name a number', entry('  name: 42\n  role: client\n'), ['`name` must be a string', 'quote it: "42"']],
    ['name empty', entry('  name: ""\n  role: client\n'), ['1 to 128 UTF-8 bytes']],
    ['name too long', entry(`  name: ${'n'.repeat(129)}\n  role: client\n`), ['1 to 128 UTF-8 bytes', 'got 129']],
    ['name with control character', entry('  name: "a\\tb"\n  role: client\n'), ['control character']],
    ['name with outer spaces', entry('  name: " a"\n  role: client\n'), ['starts or ends with whitespace']],
    ['unknown role', entry('  name: a\n  role: admin\n'), ['line 3', '`role` must be one of broker, client, worker, node', '"admin"']],
    ['client with serve', entry('  name: a\n  role: client\n  serve: [x]\n'), ['line 4', 'role client may only call', 'role node']],
    ['client with empty serve', entry('  name: a\n  role: client\n  serve: []\n'), ['role client may only call']],
    ['worker with call', entry('  name: a\n  role: worker\n  call: [x]\n'), ['role worker may only serve']],
    ['broker with call', entry('  name: a\n  role: broker\n  call: [x]\n'), ['neither `call` nor `serve`']],
    ['broker with serve', entry('  name: a\n  role: broker\n  serve: [x]\n'), ['neither `call` nor `serve`']],
    ['call not a list', entry('  name: a\n  role: node\n  call: billing.x\n'), ['`call` must be a list of service globs', '"billing.x"']],
    ['call null', entry('  name: a\n  role: node\n  call:\n'), ['`call` must be a list', 'null']],
    ['glob with a space', entry('  name: a\n  role: node\n  call: [ok, "b c"]\n'), ['`call` item 2', '"b c" contains " "']],
    ['glob with a regex character', entry('  name: a\n  role: node\n  serve: ["a+"]\n'), ['`serve` item 1', 'contains "+"']],
    ['glob not a string', entry('  name: a\n  role: node\n  serve: [1]\n'), ['`serve` item 1 must be a string', 'number 1']],
    ['empty glob', entry('  name: a\n  role: node\n  serve: [""]\n'), ['`serve` item 1 is empty']],
    ['glob that can never match', entry('  name: a\n  role: node\n  serve: [".x"]\n'), ['can never match']],
    ['glob too long', entry(`  name: a\n  role: node\n  serve: ["${'x'.repeat(129)}*"]\n`), ['more than 128 characters']],
    ['duplicate key', `${entry('  name: a\n  role: client\n')}${entry('  name: b\n  role: client\n')}`, ['entry 2 ("b") (line 4)', `duplicate key ${K1}`, 'entry 1 ("a") (line 1)']],
    ['duplicate name', `${entry('  name: a\n  role: client\n')}${entry('  name: a\n  role: client\n', K2)}`, ['entry 2 ("a") (line 4)', 'duplicate name', 'entry 1']],
  ];
  for (const [label, text, fragments] of invalid) {
    void test(`refuses ${label}`, () => {
      assertConfig(() => Registry.parse(text, 'reg.yaml'), 'reg.yaml', ...fragments);
    });
  }

  void test('names the 1-based index of a later entry', () => {
    const text = `${entry('  name: a\n  role: client\n')}${entry('  name: b\n  role: wizard\n', K2)}`;
    assertConfig(() => Registry.parse(text), 'registry: entry 2 ("b") (line 6)');
  });

  void test('a bad key error keeps the key error as its cause', () => {
    try {
      Registry.parse(`- key: abc\n  name: a\n  role: client\n`);
      assert.fail('should throw');
    } catch (err) {
      assert.ok(isMeshError(err, 'MESH_ERR_CONFIG'));
      assert.ok(isMeshError(err.cause, 'MESH_ERR_BAD_KEY'));
    }
  });
});

void describe('Registry.fromEntries', () => {
  void test('validates entries given in code like a file', () => {
    const r = Registry.fromEntries([
      { key: K1, name: 'c', role: 'client', call: ['x.*'] },
      { key: K2, name: 'w', role: 'worker', serve: ['x.*'] },
    ]);
    assert.equal(r.size, 2);
    assert.ok(r.mayCall(r.getByName('c')!, 'x.y'));
    assertConfig(() => Registry.fromEntries([{ key: K1, name: 'c', role: 'client', serve: ['x'] }]), 'entry 1 ("c")', 'role client may only call');
    assertConfig(() => Registry.fromEntries([{ key: K1, name: 'c', role: 'client' }, { key: K1, name: 'd', role: 'client' }]), 'duplicate key');
    assertConfig(() => Registry.fromEntries([{ key: K1, name: 'c', role: 'client', extra: 1 } as never]), 'unknown field "extra"');
    assertConfig(() => Registry.fromEntries([null as never]), 'must be an object');
  });
});

void describe('glob semantics', () => {
  const cases: [string, string, boolean][] = [
    ['*', 'anything', true],
    ['*', 'a.b.c', true],
    ['*', 'x', true],
    ['billing.*', 'billing.invoice', true],
    ['billing.*', 'billing.invoice.create', true],
    ['billing.*', 'billing.', true],
    ['billing.*', 'billing', false],
    ['billing.*', 'billingXinvoice', false],
    ['billing.*', 'xbilling.invoice', false],
    ['*.read', 'users.read', true],
    ['*.read', 'a.b.read', true],
    ['*.read', 'read', false],
    ['*.read', 'users.reader', false],
    ['users.get', 'users.get', true],
    ['users.get', 'users.getx', false],
    ['users.get', 'usersXget', false],
    ['a*b*c', 'abc', true],
    ['a*b*c', 'aXbYc', true],
    ['a*b*c', 'acb', false],
    ['a*a', 'a', false],
    ['a*a', 'aa', true],
    ['ab*ba', 'aba', false],
    ['a**b', 'ab', true],
    ['a*', 'b', false],
    ['a.c', 'abc', false],
    ['x/y:z-1_2', 'x/y:z-1_2', true],
  ];
  for (const [glob, service, expected] of cases) {
    void test(`${JSON.stringify(glob)} ${expected ? 'matches' : 'does not match'} ${JSON.stringify(service)}`, () => {
      assert.equal(globMatches(glob, service), expected);
    });
  }

  void test('a glob with many stars is fast on a hostile name (no regex backtracking)', () => {
    const glob = `${'*a'.repeat(20)}*b`;
    const service = 'a'.repeat(128);
    const start = performance.now();
    for (let i = 0; i < 1000; i++) assert.equal(globMatches(glob, service), false);
    assert.ok(performance.now() - start < 500, 'took too long');
  });
});

void describe('role rules', () => {
  const r = Registry.parse(`
- key: ${K1}
  name: broker-2
  role: broker
- key: ${K2}
  name: client
  role: client
  call: ["*"]
- key: ${K3}
  name: worker
  role: worker
  serve: ["*"]
- key: ${K4}
  name: node
  role: node
  call: [billing.*]
  serve: [users.*]
`);
  const e = (name: string): RegistryEntry => r.getByName(name)!;

  void test('a client may call and never serve', () => {
    assert.ok(r.mayCall(e('client'), 'billing.invoice'));
    assert.ok(!r.mayServe(e('client'), 'billing.invoice'));
  });

  void test('a worker may serve and never call', () => {
    assert.ok(r.mayServe(e('worker'), 'billing.invoice'));
    assert.ok(!r.mayCall(e('worker'), 'billing.invoice'));
  });

  void test('a node may call and serve, each by its own globs', () => {
    assert.ok(r.mayCall(e('node'), 'billing.invoice'));
    assert.ok(!r.mayCall(e('node'), 'users.get'));
    assert.ok(r.mayServe(e('node'), 'users.get'));
    assert.ok(!r.mayServe(e('node'), 'billing.invoice'));
  });

  void test('a broker may do neither', () => {
    assert.ok(!r.mayCall(e('broker-2'), 'billing.invoice'));
    assert.ok(!r.mayServe(e('broker-2'), 'billing.invoice'));
  });

  void test('no entry, not even with "*", is allowed an invalid service name', () => {
    for (const bad of ['', '.hidden', 'a b', 'x'.repeat(129), 'é']) {
      assert.ok(!r.mayCall(e('client'), bad), bad);
      assert.ok(!r.mayServe(e('worker'), bad), bad);
    }
  });

  void test('mayCall/mayServe accept an entry built elsewhere (plain object)', () => {
    const plain: RegistryEntry = { key: K2, publicKey: decodeKey(K2), name: 'p', role: 'node', call: ['a.*'], serve: ['b'] };
    assert.ok(mayCall(plain, 'a.x'));
    assert.ok(!mayCall(plain, 'b'));
    assert.ok(mayServe(plain, 'b'));
    assert.ok(!mayServe(plain, 'a.x'));
  });

  void test('an entry with no call or serve may do nothing', () => {
    const bare = Registry.parse(`- key: ${K1}\n  name: n\n  role: node\n`).getByName('n')!;
    assert.ok(!mayCall(bare, 'x'));
    assert.ok(!mayServe(bare, 'x'));
  });
});

void describe('Registry.diff', () => {
  const base = `
- key: ${K1}
  name: a
  role: client
  call: [x.*, y]
- key: ${K2}
  name: b
  role: worker
  serve: [x.*]
- key: ${K3}
  name: c
  role: node
`;
  void test('the same registry has no changes', () => {
    assert.deepEqual(Registry.parse(base).diff(Registry.parse(base)), { removed: [], changed: [], added: [] });
  });

  void test('reordered or repeated globs and comments are not changes', () => {
    const next = `# a comment\n- key: ${K3}\n  name: c\n  role: node\n- key: ${K1}\n  name: a\n  role: client\n  call: [y, x.*, y]\n- key: ${K2}\n  name: b\n  role: worker\n  serve: [x.*]\n`;
    assert.deepEqual(Registry.parse(base).diff(Registry.parse(next)), { removed: [], changed: [], added: [] });
  });

  void test('reports removed, changed and added keys', () => {
    const next = `
- key: ${K1}
  name: a
  role: client
  call: [x.*]
- key: ${K3}
  name: c2
  role: node
- key: ${K4}
  name: d
  role: client
`;
    assert.deepEqual(Registry.parse(base).diff(Registry.parse(next)), { removed: [K2], changed: [K1, K3], added: [K4] });
  });

  void test('a role change is a change', () => {
    const a = Registry.parse(`- key: ${K1}\n  name: a\n  role: client\n`);
    const b = Registry.parse(`- key: ${K1}\n  name: a\n  role: node\n`);
    assert.deepEqual(a.diff(b).changed, [K1]);
  });

  void test('everything is removed when the next registry is empty', () => {
    assert.deepEqual(Registry.parse(base).diff(Registry.empty()), { removed: [K1, K2, K3], changed: [], added: [] });
  });
});

void describe('docs/registry.md', () => {
  const doc = readFileSync(new URL('../../docs/registry.md', import.meta.url), 'utf8');

  void test('the example registry parses', () => {
    const example = /```yaml\n([\s\S]*?)```/.exec(doc)?.[1];
    assert.ok(example !== undefined, 'no yaml block found');
    const r = Registry.parse(example, 'docs example');
    assert.deepEqual(r.entries.map((e) => e.role), ['broker', 'client', 'worker', 'node']);
    assert.ok(r.mayCall(r.getByName('web')!, 'users.read'));
    assert.ok(r.mayServe(r.getByName('billing-worker')!, 'billing.invoice'));
  });

  void test('the glob table agrees with the code', () => {
    const section = doc.slice(doc.indexOf('## Service globs'), doc.indexOf('## Checks at the broker'));
    const rows = [...section.matchAll(/^\| `([^`]+)` \|(.*?)\|(.*?)\|$/gm)];
    assert.ok(rows.length >= 5, `found ${rows.length} glob rows`);
    const names = (cell: string): string[] => [...cell.matchAll(/`([^`]+)`/g)].map((m) => m[1]!);
    for (const [, glob, yes, no] of rows) {
      for (const s of names(yes!)) assert.ok(globMatches(glob!, s), `${glob} should match ${s}`);
      for (const s of names(no!)) assert.ok(!globMatches(glob!, s), `${glob} should not match ${s}`);
    }
  });
});
