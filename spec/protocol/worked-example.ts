// The worked example of docs/protocol.md: one handshake and one REQUEST with
// fixed keys, computed by the same code Connection runs. The spec checks the
// document byte for byte; `node --import tsx spec/protocol/worked-example.ts`
// prints the blocks for the document.
import { getSuite } from '../../lib/crypto/suites.ts';
import type { KeyPair } from '../../lib/crypto/crypto-suite.ts';
import { InitiatorHandshake, ResponderHandshake } from '../../lib/protocol/handshake.ts';
import { encodeHello } from '../../lib/protocol/hello.ts';
import type { Hello } from '../../lib/protocol/hello.ts';
import { EnvelopeCodec } from '../../lib/protocol/envelope-codec.ts';
import { packSegments } from '../../lib/protocol/segments.ts';
import { encodeFrame } from '../../lib/framing/frame-encoder.ts';
import type { Message, RequestMessage } from '../../lib/protocol/messages.ts';

const suite = getSuite('noble');

function keyPair(fill: number): KeyPair {
  const privateKey = new Uint8Array(32).fill(fill);
  return { privateKey, publicKey: suite.publicKey(privateKey) };
}

export const exampleKeys = {
  initiatorStatic: keyPair(0x01),
  initiatorEphemeral: keyPair(0x02),
  responderStatic: keyPair(0x03),
  responderEphemeral: keyPair(0x04),
};

export const responderHello: Hello = { role: 'broker', name: 'broker-1', bootId: new Uint8Array(16).fill(0xbb), version: { major: 1, minor: 0 }, heartbeat: { idleMs: 5000, activeMs: 200, deadMs: 600 }, maxPayload: 1048576 };
export const initiatorHello: Hello = { role: 'node', name: 'node-1', version: { major: 1, minor: 0 }, heartbeat: { idleMs: 5000, activeMs: 200, deadMs: 600 }, maxPayload: 1048576 };
export const exampleRequest: RequestMessage = { type: 'REQUEST', id: new Uint8Array(16).fill(0x11), service: 'echo', attempt: 1, dup: false, ttl: 1000, payload: new TextEncoder().encode('hello') };

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

const fill = (n: number, byte: number): Uint8Array => new Uint8Array(n).fill(byte);

/** The message examples of docs/protocol.md#6-messages, built from the values their text states. */
export const messageExamples: Record<string, Message> = {
  'brokers-envelope': { type: 'BROKERS', brokers: [{ id: fill(32, 0xaa), addresses: ['127.0.0.1:4222'], bootId: fill(16, 0xbb), incarnation: 0 }] },
  'dispatched-envelope': { type: 'DISPATCHED', dispatched: [{ id: fill(16, 0x11), worker: fill(32, 0xcc) }] },
  'drain-envelope': { type: 'DRAIN' },
  'gossip-envelope': {
    type: 'GOSSIP',
    bootId: fill(16, 0xbb),
    incarnation: 1,
    view: [{ id: fill(32, 0xaa), addresses: ['127.0.0.1:4222'], bootId: fill(16, 0xbb), incarnation: 1, status: 'alive', reachable: true }],
  },
};

/** Every block of the worked example, by name, as hex. */
export function computeExample(): Record<string, string> {
  const k = exampleKeys;
  const initiator = new InitiatorHandshake({ suite, keyPair: k.initiatorStatic, ephemeral: k.initiatorEphemeral, remoteKey: k.responderStatic.publicKey, hello: initiatorHello });
  const responder = new ResponderHandshake({ suite, keyPair: k.responderStatic, ephemeral: k.responderEphemeral, hello: responderHello });
  const { preamble, message1 } = initiator.start();
  const { preamble: responderPreamble } = responder.readPreamble(preamble);
  const message2 = responder.readMessage1(message1);
  initiator.readPreamble(responderPreamble);
  const message3 = initiator.readMessage2(message2);
  const r = responder.readMessage3(message3);
  const i = initiator.result();
  const envelope = new EnvelopeCodec().encodeToBuffer(exampleRequest);
  const codec = new EnvelopeCodec();
  const [plaintext] = packSegments([codec.encode(exampleRequest)]);
  const sealed = i.send.encryptWithAd(new Uint8Array(0), plaintext!);
  // Check the responder opens it, so the example is self-consistent.
  r.receive.decryptWithAd(new Uint8Array(0), sealed);
  return {
    'initiator-static-private': hex(k.initiatorStatic.privateKey),
    'initiator-static-public': hex(k.initiatorStatic.publicKey),
    'initiator-ephemeral-private': hex(k.initiatorEphemeral.privateKey),
    'responder-static-private': hex(k.responderStatic.privateKey),
    'responder-static-public': hex(k.responderStatic.publicKey),
    'responder-ephemeral-private': hex(k.responderEphemeral.privateKey),
    'initiator-preamble': hex(preamble),
    'message-1-frame': hex(encodeFrame(message1)),
    'responder-preamble': hex(responderPreamble),
    'responder-hello': hex(encodeHello(responderHello)),
    'message-2-frame': hex(encodeFrame(message2)),
    'initiator-hello': hex(encodeHello(initiatorHello)),
    'message-3-frame': hex(encodeFrame(message3)),
    'handshake-hash': hex(i.handshakeHash),
    'request-envelope': hex(envelope),
    'request-plaintext': hex(plaintext!),
    'request-frame': hex(encodeFrame(sealed)),
    ...Object.fromEntries(Object.entries(messageExamples).map(([name, m]) => [name, hex(codec.encodeToBuffer(m))])),
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const [name, value] of Object.entries(computeExample())) {
    console.log(`<!-- example:${name} -->\n\`\`\`text\n${value.replace(/(.{64})/g, '$1\n').trim()}\n\`\`\`\n`);
  }
}
