// HELLO rules of docs/protocol.md#hello on the pure handshake machines: the
// boot id is a broker's alone, and a HELLO's version must be the one its
// sender's preamble gave (both sides check). Every failure is
// MESH_ERR_HANDSHAKE, and nothing more is written after it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { getSuite } from '../../lib/crypto/suites.ts';
import { MeshError } from '../../lib/errors.ts';
import { InitiatorHandshake, ResponderHandshake } from '../../lib/protocol/handshake.ts';
import { decodeHello, encodeHello } from '../../lib/protocol/hello.ts';
import type { Hello } from '../../lib/protocol/hello.ts';
import { encodePreamble } from '../../lib/protocol/preamble.ts';

const suite = getSuite('noble');
const heartbeat = { idleMs: 5000, activeMs: 200, deadMs: 600 };
const broker: Hello = { role: 'broker', name: 'b', bootId: new Uint8Array(16).fill(0xbb), version: { major: 1, minor: 0 }, heartbeat, maxPayload: 1024 };
const node: Hello = { role: 'node', name: 'n', version: { major: 1, minor: 0 }, heartbeat, maxPayload: 1024 };

function rejects(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (e: unknown) => e instanceof MeshError && e.code === 'MESH_ERR_HANDSHAKE' && pattern.test(e.message));
}

test('a broker HELLO carries its boot id; any other role must not', () => {
  assert.equal(decodeHello(encodeHello(broker)).bootId?.length, 16);
  assert.equal(decodeHello(encodeHello(node)).bootId, undefined);
  rejects(() => decodeHello(encodeHello({ ...broker, bootId: undefined })), /broker HELLO must carry its boot id/);
  for (const role of ['node', 'client', 'worker'] as const) {
    rejects(() => decodeHello(encodeHello({ ...node, role, bootId: new Uint8Array(16) })), new RegExp(`a ${role} HELLO must not carry a boot id`));
  }
});

/** Runs a handshake up to the HELLO check with the given HELLOs; returns what each side threw. */
function handshake(initiatorHello: Hello, responderHello: Hello): { initiator?: unknown; responder?: unknown } {
  const rs = suite.generateKeyPair();
  const initiator = new InitiatorHandshake({ suite, keyPair: suite.generateKeyPair(), remoteKey: rs.publicKey, hello: initiatorHello });
  const responder = new ResponderHandshake({ suite, keyPair: rs, hello: responderHello });
  const { message1 } = initiator.start();
  const { preamble } = responder.readPreamble(encodePreamble());
  initiator.readPreamble(preamble);
  const message2 = responder.readMessage1(message1);
  let message3: Uint8Array;
  try {
    message3 = initiator.readMessage2(message2);
  } catch (error) {
    return { initiator: error };
  }
  try {
    responder.readMessage3(message3);
  } catch (error) {
    return { responder: error };
  }
  return {};
}

test('matching versions complete the handshake', () => {
  assert.deepEqual(handshake(node, broker), {});
});

test("the responder's HELLO version must match its preamble: the initiator refuses it", () => {
  const { initiator } = handshake(node, { ...broker, version: { major: 1, minor: 3 } });
  assert.ok(initiator instanceof MeshError && initiator.code === 'MESH_ERR_HANDSHAKE');
  assert.match(initiator.message, /responder's HELLO says version 1\.3 but its preamble says 1\.0/);
});

test("the initiator's HELLO version must match its preamble: the responder refuses it", () => {
  const { responder } = handshake({ ...node, version: { major: 2, minor: 0 } }, broker);
  assert.ok(responder instanceof MeshError && responder.code === 'MESH_ERR_HANDSHAKE');
  assert.match(responder.message, /initiator's HELLO says version 2\.0 but its preamble says 1\.0/);
});
