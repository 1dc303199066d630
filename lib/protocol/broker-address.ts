/**
 * Broker addresses: `mesh://<public key>@<host>:<port>`. The key (43
 * base64url characters) is the broker's X25519 static public key, so an
 * address alone is enough to authenticate the broker in the XK handshake.
 */

import { MeshError } from '../errors.ts';
import { decodeKey, encodeKey } from '../crypto/keys.ts';
import { checkHostPort, formatHostPort } from './host-port.ts';

/** A parsed broker address. */
export interface BrokerAddress {
  /** The broker's 32-byte X25519 static public key. */
  readonly publicKey: Uint8Array;
  /** The same key as 43 base64url characters. */
  readonly key: string;
  /** Host name, IPv4 address, or IPv6 address without brackets. */
  readonly host: string;
  /** TCP port, 1..65535. */
  readonly port: number;
  /** The address in canonical form, `mesh://KEY@HOST:PORT` (IPv6 in brackets). */
  readonly url: string;
}

/** What {@link formatBrokerAddress} needs: the key (as bytes or text), host and port. */
export type BrokerAddressParts =
  | { readonly publicKey: Uint8Array; readonly key?: undefined; readonly host: string; readonly port: number }
  | { readonly key: string; readonly publicKey?: undefined; readonly host: string; readonly port: number };

/** The URL scheme of broker addresses. */
export const BROKER_SCHEME = 'mesh';

const EXAMPLE = 'mesh://KEY@HOST:PORT';

function bad(url: string, problem: string, cause?: unknown): MeshError {
  const shown = url.length > 200 ? `${url.slice(0, 200)}...` : url;
  return new MeshError('MESH_ERR_BAD_ADDRESS', `invalid broker address ${JSON.stringify(shown)}: ${problem}; expected ${EXAMPLE}`, cause === undefined ? {} : { cause });
}

/**
 * Parses `mesh://<43-char base64url key>@<host>:<port>`. The host may be a
 * name, an IPv4 address or a bracketed IPv6 address (`[::1]`, returned
 * without brackets). Throws MESH_ERR_BAD_ADDRESS naming the problem: empty
 * or not a string, whitespace, wrong or missing scheme, missing `//`,
 * missing or malformed key (with its length), a password part, missing host,
 * missing or invalid port (an integer 1..65535), or a path, query or
 * fragment.
 */
export function parseBrokerAddress(url: string): BrokerAddress {
  if (typeof url !== 'string') {
    throw new MeshError('MESH_ERR_BAD_ADDRESS', `a broker address must be a string like ${EXAMPLE}, got ${url === null ? 'null' : typeof url}`);
  }
  if (url.length === 0) throw new MeshError('MESH_ERR_BAD_ADDRESS', `broker address is empty; expected ${EXAMPLE}`);
  const ws = /\s/.exec(url);
  if (ws !== null) throw bad(url, `contains whitespace at position ${ws.index}`);

  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):/.exec(url);
  if (scheme === null) throw bad(url, `missing scheme '${BROKER_SCHEME}://'`);
  const schemeName = scheme[1] ?? '';
  if (schemeName.toLowerCase() !== BROKER_SCHEME) throw bad(url, `wrong scheme '${schemeName}:', expected '${BROKER_SCHEME}:'`);
  let rest = url.slice(scheme[0].length);
  if (!rest.startsWith('//')) throw bad(url, `missing '//' after '${schemeName}:'`);
  rest = rest.slice(2);

  const at = rest.indexOf('@');
  const userinfo = at < 0 ? '' : rest.slice(0, at);
  const hostPort = at < 0 ? rest : rest.slice(at + 1);
  // The key is checked on its own below, so a standard-base64 key with '/' gets a key error.
  const tail = /[/?#]/.exec(hostPort);
  if (tail !== null) {
    const what = tail[0] === '/' ? 'a path' : tail[0] === '?' ? 'a query' : 'a fragment';
    throw bad(url, `has ${what} ('${hostPort.slice(tail.index)}'); a broker address ends after the port`);
  }
  if (at < 0) throw bad(url, "missing the broker's public key before '@'");
  if (hostPort.includes('@')) throw bad(url, "contains more than one '@'");
  if (userinfo.includes(':')) throw bad(url, "has a password part (':' before '@'); only the broker's public key goes before '@'");
  if (userinfo.length === 0) throw bad(url, "missing the broker's public key before '@'");
  let publicKey: Uint8Array;
  try {
    publicKey = decodeKey(userinfo, 'broker public key');
  } catch (err) {
    throw bad(url, err instanceof Error ? err.message : String(err), err);
  }

  if (hostPort.length === 0) throw bad(url, "missing host after '@'");
  const checked = checkHostPort(hostPort);
  if (typeof checked === 'string') throw bad(url, checked === 'missing host before the port' ? "missing host after '@'" : checked);
  const { host, port } = checked;
  return Object.freeze({ publicKey, key: userinfo, host, port, url: formatUrl(userinfo, host, port) });
}

function formatUrl(key: string, host: string, port: number): string {
  return `${BROKER_SCHEME}://${key}@${formatHostPort(host, port)}`;
}

/**
 * `mesh://KEY@HOST:PORT` from its parts (IPv6 hosts are bracketed). Throws
 * MESH_ERR_BAD_ADDRESS (or MESH_ERR_BAD_KEY for a key of the wrong length)
 * when the result would not parse.
 */
export function formatBrokerAddress(parts: BrokerAddressParts): string {
  const key = parts.publicKey !== undefined ? encodeKey(parts.publicKey) : parts.key;
  const host = parts.host.startsWith('[') && parts.host.endsWith(']') ? parts.host.slice(1, -1) : parts.host;
  if (!Number.isInteger(parts.port)) {
    throw new MeshError('MESH_ERR_BAD_ADDRESS', `port must be an integer from 1 to 65535, got ${String(parts.port)}`);
  }
  return parseBrokerAddress(formatUrl(key, host, parts.port)).url;
}
