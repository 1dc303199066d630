// docs/protocol.md: the worked example and every other hex example, checked
// byte for byte against the code and decoded back to what the text states.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { computeExample, messageExamples } from './worked-example.ts';
import { EnvelopeCodec } from '../../lib/protocol/envelope-codec.ts';
import { decodeHello } from '../../lib/protocol/hello.ts';

const doc = readFileSync(new URL('../../docs/protocol.md', import.meta.url), 'utf8');

function blocks(): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of doc.matchAll(/<!-- example:([a-z0-9-]+) -->\s*```text\n([\s\S]*?)```/g)) out.set(m[1]!, m[2]!.replace(/\s+/g, ''));
  return out;
}

test('every block of the worked example matches what the code produces', () => {
  const expected = computeExample();
  const found = blocks();
  assert.deepEqual([...found.keys()].sort(), Object.keys(expected).sort());
  for (const [name, value] of Object.entries(expected)) assert.equal(found.get(name), value, `block ${name}`);
});

test('the documented request envelope and HELLOs decode to what the text says', () => {
  const found = blocks();
  const msg = new EnvelopeCodec().decode(Buffer.from(found.get('request-envelope')!, 'hex'));
  assert.ok(msg.type === 'REQUEST');
  assert.equal(msg.service, 'echo');
  assert.equal(Buffer.from(msg.payload).toString(), 'hello');
  assert.equal(decodeHello(Buffer.from(found.get('responder-hello')!, 'hex')).name, 'broker-1');
  assert.equal(decodeHello(Buffer.from(found.get('initiator-hello')!, 'hex')).role, 'node');
});

test('every hex block of protocol.md is a named example that a test checks', () => {
  // A ```text block of hex digits only is an example; each must carry a name the spec knows.
  const unnamed: string[] = [];
  for (const m of doc.matchAll(/(<!-- example:[a-z0-9-]+ -->\s*)?```text\n([\s\S]*?)```/g)) {
    const body = m[2]!.replace(/\s+/g, '');
    if (/^[0-9a-f]+$/.test(body) && m[1] === undefined) unnamed.push(body.slice(0, 32));
  }
  assert.deepEqual(unnamed, [], 'hex blocks without <!-- example:NAME -->');
});

test('the message examples of §6 decode to the values their text states', () => {
  const found = blocks();
  const codec = new EnvelopeCodec();
  for (const [name, message] of Object.entries(messageExamples)) {
    const decoded = codec.decode(Buffer.from(found.get(name)!, 'hex'));
    assert.deepEqual(normalize(decoded), normalize(message), name);
  }
});

/** Byte strings as hex, so decoded copies and built arrays compare equal. */
function normalize(value: unknown): unknown {
  if (value instanceof Uint8Array) return Buffer.from(value).toString('hex');
  if (Array.isArray(value)) return value.map(normalize);
  if (value !== null && typeof value === 'object') return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined).map(([k, v]) => [k, normalize(v)]));
  return value;
}
