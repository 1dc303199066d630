/**
 * meshd/internal: the wire-level pieces under the public API, for tools,
 * tests and other implementations of the protocol: connections, the envelope
 * codec and message types, broker membership, crypto suites. Unstable: any
 * of it may change in any release, minor ones included. Apps import `meshd`
 * (lib/index.ts), which this module re-exports in full.
 *
 * @packageDocumentation
 */

/** Everything in the public API. */
export * from './index.ts';

/** Crypto suites: node:crypto (default where available) and the portable @noble suite. */
export { getSuite, defaultSuite, resolveSuite, nodeCryptoSupport } from './crypto/suites.ts';
/** Crypto suite types. */
export type { CryptoSuite, HashName } from './crypto/crypto-suite.ts';
/** Whether the node suite works on this runtime. */
export type { NodeCryptoSupport } from './crypto/suites.ts';

/** Wire protocol: version (docs/protocol.md). */
export { PROTOCOL_VERSION } from './protocol/preamble.ts';
/** Message type numbers, header keys and field limits of wire protocol v1. */
export { MessageType, HeaderKey, BrokerStatus, SERVICE_NAME, REQUEST_ID_LENGTH, MAX_NAME_LENGTH } from './protocol/messages.ts';
/** The wire messages as a tagged union. */
export type {
  Message,
  MessageTypeName,
  WelcomeMessage,
  ReadyMessage,
  CancelMessage,
  RequestMessage,
  DispatchedMessage,
  ReplyMessage,
  ErrorMessage,
  RefusedMessage,
  PingMessage,
  PongMessage,
  BrokersMessage,
  DrainMessage,
  GossipMessage,
  BrokerInfo,
  ViewEntry,
  Dispatch,
  BrokerStatusName,
} from './protocol/messages.ts';
/** Envelope codec: header CBOR + raw payload. */
export { EnvelopeCodec } from './protocol/envelope-codec.ts';
/** An encoded envelope and the decoding limits. */
export type { EncodedEnvelope, EnvelopeLimits } from './protocol/envelope-codec.ts';
/** Header CBOR: the strict codec for the header subset. */
export { HeaderCodec, decodeHeader, MAX_DEPTH, MAX_ITEMS } from './protocol/strict-cbor.ts';
/** A value in a header. */
export type { HeaderValue } from './protocol/strict-cbor.ts';
/** HELLO roles. */
export { Role } from './protocol/hello.ts';
/** HELLO payload. */
export type { Hello } from './protocol/hello.ts';

/** Connection: an authenticated, encrypted message channel over TCP (Noise XK). */
export { Connection } from './protocol/connection.ts';
/** Connection options, handlers and counters. */
export type { ConnectOptions, AcceptOptions, ConnectionOptions, ChannelOptions, ConnectionHandlers, ConnectionStats } from './protocol/connection.ts';

/** Broker membership (docs/architecture.md#quorum-rounds): the pure quorum-round state machine and its view merge, with their defaults. */
export { Membership, mergeViews, mergeEntry, compareEntries, makeBootId, DEFAULT_ROUND_MS, DEFAULT_TOMBSTONE_MS, DEFAULT_UNREACHABLE_AFTER_MS } from './broker/membership.ts';
/** Membership view entries and settings. */
export type { MemberEntry, MembershipOptions } from './broker/membership.ts';
/** The heartbeat a broker proposes to its peer brokers (500 ms pings, dead after 3 missed). */
export { PEER_HEARTBEAT } from './broker/peer-mesh.ts';
