// lib/errors.ts, docs/errors.md and docs/protocol.md's error table stay in step.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { ErrorCodes, MeshError, isMeshError, isErrorCode } from '../../lib/errors.ts';

const doc = (name: string): string => readFileSync(new URL(`../../docs/${name}`, import.meta.url), 'utf8');

/** Rows `| \`MESH_ERR_X\` | a | b | ...` of the first table that has them. */
function tableRows(markdown: string): Map<string, string[]> {
  const rows = new Map<string, string[]>();
  for (const line of markdown.split('\n')) {
    const m = /^\|\s*`(MESH_ERR_[A-Z0-9_]+)`\s*\|(.*)\|\s*$/.exec(line);
    if (m) rows.set(m[1]!, m[2]!.split('|').map((c) => c.trim()));
  }
  return rows;
}

test('docs/errors.md lists every code with its retryable, wire, closes and refusal flags, and nothing else', () => {
  const rows = tableRows(doc('errors.md'));
  assert.deepEqual([...rows.keys()].sort(), Object.keys(ErrorCodes).sort());
  for (const [code, info] of Object.entries(ErrorCodes)) {
    const [retryable, wire, closes, refusal] = rows.get(code)!;
    assert.equal(retryable, info.retryable ? 'yes' : 'no', `${code} retryable`);
    assert.equal(wire, info.wire ? 'yes' : 'no', `${code} wire`);
    assert.equal(closes, info.closesLink ? 'yes' : 'no', `${code} closes`);
    assert.equal(refusal, info.refusal ? 'yes' : 'no', `${code} refusal`);
  }
});

test('a refusal is never retryable', () => {
  for (const [code, info] of Object.entries(ErrorCodes)) {
    if (info.refusal) assert.equal(info.retryable, false, `${code} is a refusal, so it is not retryable`);
  }
});

test("docs/protocol.md's error table lists exactly the wire codes", () => {
  const protocol = doc('protocol.md');
  const section = protocol.slice(protocol.indexOf('## Error codes'));
  assert.ok(section.length > 20, 'protocol.md has an "## Error codes" section');
  const rows = tableRows(section.slice(0, section.indexOf('\n## ', 5) > 0 ? section.indexOf('\n## ', 5) : undefined));
  const wire = Object.entries(ErrorCodes).filter(([, i]) => i.wire).map(([c]) => c);
  assert.deepEqual([...rows.keys()].sort(), wire.sort());
  for (const code of wire) {
    const info = ErrorCodes[code as keyof typeof ErrorCodes];
    assert.equal(rows.get(code)![0], info.retryable ? 'yes' : 'no', `${code} retryable`);
    assert.equal(rows.get(code)![1], info.closesLink ? 'yes' : 'no', `${code} closes`);
  }
});

test('MeshError carries code, retryable default, override and cause', () => {
  const cause = new Error('econnreset');
  const e = new MeshError('MESH_ERR_CONNECTION', 'lost', { cause });
  assert.equal(e.code, 'MESH_ERR_CONNECTION');
  assert.equal(e.retryable, true);
  assert.equal(e.cause, cause);
  assert.equal(e.name, 'MeshError');
  assert.equal(String(e), 'MESH_ERR_CONNECTION: lost');
  assert.equal(new MeshError('MESH_ERR_BUSY', 'x', { retryable: false }).retryable, false);
  assert.ok(isMeshError(e, 'MESH_ERR_CONNECTION'));
  assert.ok(!isMeshError(e, 'MESH_ERR_BUSY'));
  assert.ok(!isMeshError(new Error('x')));
  assert.ok(isErrorCode('MESH_ERR_PROTOCOL'));
  assert.ok(!isErrorCode('MESH_ERR_NOPE'));
  assert.ok(!isErrorCode('toString'));
});
