/**
 * meshd: the public API. Everything an app may import from `meshd` is listed
 * here, and nothing else is supported; docs/api.md lists the same names
 * (a test keeps the two in step). Wire-level pieces (connections, codecs,
 * message types, membership, crypto suites) are under `meshd/internal`,
 * which may change in any release.
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
/** A static key pair: 32-byte X25519 public and private keys. */
export type { KeyPair } from './crypto/crypto-suite.ts';

/** Broker addresses: `mesh://<public key>@host:port`. */
export { parseBrokerAddress, formatBrokerAddress, BROKER_SCHEME } from './protocol/broker-address.ts';
/** A parsed broker address and the parts to format one. */
export type { BrokerAddress, BrokerAddressParts } from './protocol/broker-address.ts';
/** `HOST:PORT` (listen, advertised and announced addresses): the one parser. */
export { checkHostPort, parseHostPort, formatHostPort } from './protocol/host-port.ts';
/** A host and port, and the parser's options. */
export type { HostPort, HostPortOptions } from './protocol/host-port.ts';

/** The crypto suites a broker or node can be told to use (`suite` option): `node` (node:crypto) or `noble` (pure JS). */
export { SUITE_NAMES } from './crypto/suites.ts';
/** A crypto suite name. */
export type { SuiteName } from './crypto/suites.ts';

/** Roles a party announces, and the heartbeat timers it proposes (`heartbeat` option). */
export type { RoleName, HeartbeatSettings } from './protocol/hello.ts';
/** Default heartbeat timers: ping after 5 s idle or 200 ms with work in flight, dead after 600 ms of silence. */
export { DEFAULT_HEARTBEAT } from './protocol/hello.ts';
/** Default largest payload (1 MiB; `maxPayload` option). */
export { DEFAULT_MAX_PAYLOAD } from './protocol/envelope-codec.ts';
/** Default handshake deadline (5 s; `handshakeTimeout` option). */
export { DEFAULT_HANDSHAKE_TIMEOUT } from './protocol/connection.ts';

/** Broker: sessions, routing, registry enforcement, the broker mesh and drain (docs/api.md#broker). */
export { Broker, DEFAULT_DRAIN_TIMEOUT } from './broker/broker.ts';
/** Broker options, events and status. */
export type { BrokerOptions, BrokerEvent, BrokerEventType, BrokerSnapshot } from './broker/broker.ts';
/** Broker counters and gauges (`broker.stats()`): per service, how requests ended and their latency. */
export type { BrokerStats, BrokerServiceStats, LatencyHistogram, RequestOutcome } from './broker/broker.ts';
/** Every broker event type (to listen to all of them). */
export { BROKER_EVENT_TYPES } from './broker/broker.ts';
/** Events of a broker's connections to its peer brokers (part of BrokerEvent). */
export type { PeerEvent } from './broker/peer-mesh.ts';
/** Default per-service queue bounds (`queue` option). */
export { DEFAULT_QUEUE_LIMITS } from './broker/service-table.ts';
/** Default admission bounds of a broker (`maxHandshakes`, `maxHandshakesPerSource`, `firstMessageTimeout`). */
export { DEFAULT_MAX_HANDSHAKES, DEFAULT_MAX_HANDSHAKES_PER_SOURCE, DEFAULT_FIRST_MESSAGE_TIMEOUT } from './broker/session-acceptor.ts';
/** What a `handshake-flood` event sums up: unwanted connections over one window. */
export type { FloodSummary } from './broker/flood-log.ts';
/** Queue bounds. */
export type { QueueLimits } from './broker/service-table.ts';

/** The registry: who may connect, call and serve. */
export { Registry } from './broker/registry.ts';
/** Registry entry types. */
export type { RegistryEntry, RegistryEntryInit, RegistryDiff } from './broker/registry.ts';
/** Registry files: load, watch, and edit safely (atomic writes, comments kept). */
export { loadRegistry, RegistryWatcher, addRegistryEntry, removeRegistryEntry, listRegistry } from './broker/registry-file.ts';
/** Registry watcher options. */
export type { RegistryWatcherOptions } from './broker/registry-file.ts';

/** MeshNode: the client and worker apps embed (docs/api.md#meshnode). */
export { MeshNode } from './node/mesh-node.ts';
/** MeshNode options and events. */
export type { MeshNodeOptions, MeshNodeEvent, MeshNodeEventType } from './node/mesh-node.ts';
/** MeshNode counters (`node.stats()`). */
export type { MeshNodeStats } from './node/mesh-node.ts';
/** Request defaults: deadline 1000 ms, 2 retries. */
export { DEFAULT_REQUEST_TIMEOUT, DEFAULT_RETRIES } from './node/requester.ts';
/** Options of one request. */
export type { RequestOptions } from './node/requester.ts';
/** The diagnostics channel on which a client says which worker has each request (`meshd:request:dispatched`). */
export { DISPATCHED_CHANNEL } from './node/requester.ts';
/** What a client publishes on that channel. */
export type { DispatchedMessage } from './node/requester.ts';
/** Bounds of a node's requests awaiting an answer (`pending` option): 65,536 requests, 256 MiB of payload. */
export { DEFAULT_PENDING_LIMITS } from './node/requester.ts';
/** Bounds of a node's requests awaiting an answer, type. */
export type { PendingLimits } from './node/requester.ts';
/** Default handlers run at once per service (16). */
export { DEFAULT_CONCURRENCY } from './node/service-runner.ts';
/** Handler types of `serve` and `requests`. */
export type { Handler, HandlerResult, IncomingRequest, ServeOptions, ServiceHandle } from './node/service-runner.ts';
/** Reply cache bounds (`replyCache` option). */
export { DEFAULT_REPLY_CACHE_LIMITS } from './node/reply-cache.ts';
/** Reply cache bounds type. */
export type { ReplyCacheLimits } from './node/reply-cache.ts';
