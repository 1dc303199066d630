/**
 * meshd: the public API. Everything a user may import is listed here, and
 * nothing else is supported. Each export is documented where it is defined;
 * the summaries below say what each group is for.
 *
 * @packageDocumentation
 */

/** Errors: the one error type, its stable codes and their retry semantics (docs/errors.md). */
export { MeshError, ErrorCodes, isMeshError, isErrorCode } from './errors.ts';
/** Error types: a code, its description and MeshError options. */
export type { ErrorCode, ErrorCodeInfo, MeshErrorOptions } from './errors.ts';

/** Keys: X25519 key pairs, base64url public keys (43 characters) and 0600 key files. */
export {
  generateKeyPair,
  encodeKey,
  decodeKey,
  readKeyFile,
  readKeyFileSync,
  writeKeyFile,
  writeKeyFileSync,
  ENCODED_KEY_LEN,
} from './crypto/keys.ts';
/** Key file options. */
export type { ReadKeyFileOptions, WriteKeyFileOptions } from './crypto/keys.ts';

/** Broker addresses: `mesh://<public key>@host:port`. */
export { parseBrokerAddress, formatBrokerAddress, BROKER_SCHEME } from './crypto/broker-address.ts';
/** A parsed broker address and the parts to format one. */
export type { BrokerAddress, BrokerAddressParts } from './crypto/broker-address.ts';

/** Crypto suites: node:crypto (default where available) and the portable @noble suite. */
export { getSuite, defaultSuite, nodeCryptoSupport, SUITE_NAMES } from './crypto/suites.ts';
/** Crypto suite types. */
export type { CryptoSuite, KeyPair, HashName } from './crypto/crypto-suite.ts';
/** A suite name: `node` or `noble`. */
export type { SuiteName } from './crypto/suites.ts';

/** Wire protocol: version, message type numbers and limits (docs/protocol.md). */
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
} from './protocol/messages.ts';
/** Envelope codec: header CBOR + raw payload. */
export { EnvelopeCodec, DEFAULT_MAX_PAYLOAD } from './protocol/envelope-codec.ts';
/** An encoded envelope and the decoding limits. */
export type { EncodedEnvelope, EnvelopeLimits } from './protocol/envelope-codec.ts';
/** HELLO roles and default heartbeat timers. */
export { Role, DEFAULT_HEARTBEAT } from './protocol/hello.ts';
/** HELLO payload, role and heartbeat types. */
export type { Hello, RoleName, HeartbeatSettings } from './protocol/hello.ts';

/** Connection: an authenticated, encrypted message channel over TCP (Noise XK). */
export { Connection, DEFAULT_HANDSHAKE_TIMEOUT } from './protocol/connection.ts';
/** Connection options, handlers and counters. */
export type { ConnectOptions, AcceptOptions, ConnectionOptions, ChannelOptions, ConnectionHandlers, ConnectionStats } from './protocol/connection.ts';

/** Broker: sessions, routing, registry enforcement, drain (DESIGN §4, §5). */
export { Broker, DEFAULT_DRAIN_TIMEOUT } from './broker/broker.ts';
/** Broker options, events and status. */
export type { BrokerOptions, BrokerEvent, BrokerSnapshot } from './broker/broker.ts';
/** The registry: who may connect, call and serve. */
export { Registry } from './broker/registry.ts';
/** Registry entry types. */
export type { RegistryEntry, RegistryEntryInit, RegistryDiff } from './broker/registry.ts';
/** Registry files: load, watch, and edit safely (atomic writes, comments kept). */
export { loadRegistry, RegistryWatcher, addRegistryEntry, removeRegistryEntry, listRegistry } from './broker/registry-file.ts';
/** Registry watcher options. */
export type { RegistryWatcherOptions } from './broker/registry-file.ts';
/** Broker membership (DESIGN §7): the pure quorum-round state machine and its view merge, with their defaults. */
export { Membership, mergeViews, mergeEntry, compareEntries, makeBootId, DEFAULT_ROUND_MS, DEFAULT_TOMBSTONE_MS, DEFAULT_UNREACHABLE_AFTER_MS } from './broker/membership.ts';
/** Membership view entries and settings. */
export type { MemberEntry, MembershipOptions } from './broker/membership.ts';
/** Events of a broker's connections to its peer brokers. */
export type { PeerEvent } from './broker/peer-mesh.ts';
/** The heartbeat a broker proposes to its peer brokers (500 ms pings, dead after 3 missed). */
export { PEER_HEARTBEAT } from './broker/peer-mesh.ts';
/** Default per-service queue bounds. */
export { DEFAULT_QUEUE_LIMITS } from './broker/service-table.ts';
/** Queue bounds. */
export type { QueueLimits } from './broker/service-table.ts';

/** MeshNode: the client and worker apps embed (DESIGN §6). */
export { MeshNode } from './node/mesh-node.ts';
/** MeshNode options and events. */
export type { MeshNodeOptions, MeshNodeEvents } from './node/mesh-node.ts';
/** Request options and defaults. */
export { DEFAULT_REQUEST_TIMEOUT, DEFAULT_RETRIES } from './node/requester.ts';
/** Options of one request. */
export type { RequestOptions } from './node/requester.ts';
/** Default handlers run at once per service. */
export { DEFAULT_CONCURRENCY } from './node/service-runner.ts';
/** Handler types of `serve`. */
export type { Handler, HandlerResult, IncomingRequest, ServeOptions } from './node/service-runner.ts';
/** Reply cache bounds. */
export { DEFAULT_REPLY_CACHE_LIMITS } from './node/reply-cache.ts';
/** Reply cache bounds type. */
export type { ReplyCacheLimits } from './node/reply-cache.ts';
