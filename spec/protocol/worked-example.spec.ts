// docs/protocol.md's worked example, checked byte for byte against the code.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { computeExample } from './worked-example.ts';
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
