/**
 * `HOST:PORT`, the one parser: for the host and port of a broker address
 * (`mesh://KEY@HOST:PORT`), the addresses brokers announce (GOSSIP,
 * WELCOME, BROKERS, `--advertise`), and the address a broker listens on
 * (`--listen`, where port 0 means any free port).
 *
 * HOST is a host name, an IPv4 address, or an IPv6 address in brackets
 * (returned without them). Pure code: no I/O, no name resolution.
 */
import { isIPv4, isIPv6 } from 'node:net';

/** A host and a port. */
export interface HostPort {
  /** Host name, IPv4 address, or IPv6 address without brackets. */
  readonly host: string;
  /** TCP port: 1..65535, or 0 where `allowPortZero` was given. */
  readonly port: number;
}

/** Options of {@link checkHostPort}. */
export interface HostPortOptions {
  /** Accept port 0 (any free port: a listen address). Default false. */
  readonly allowPortZero?: boolean;
}

/** Host names: dot-separated labels of letters, digits, `-` and `_` (not at either end), at most 253 characters. */
const HOST_NAME = /^(?=.{1,253}$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?$/;

/**
 * Parses `HOST:PORT` or `[IPV6]:PORT`. Returns the host and port, or a
 * sentence saying what is wrong (for the caller to put in its own error):
 * a missing host or port, an IPv6 address without brackets, a host that is
 * neither a name nor an IP address, a port that is not an integer in range.
 */
export function checkHostPort(text: string, options: HostPortOptions = {}): HostPort | string {
  let host: string;
  let portText: string;
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    if (close < 0) return "IPv6 host has '[' without a closing ']'";
    host = text.slice(1, close);
    if (host.length === 0) return 'missing host between [ and ]';
    if (!isIPv6(host)) return `'[${host}]' is not a valid IPv6 address`;
    const after = text.slice(close + 1);
    if (after.length === 0) return 'missing port after the host';
    if (!after.startsWith(':')) return `unexpected '${after}' after ']'; expected ':PORT'`;
    portText = after.slice(1);
  } else {
    const colon = text.lastIndexOf(':');
    if (colon < 0) return text.length === 0 ? 'missing host' : 'missing port after the host';
    host = text.slice(0, colon);
    portText = text.slice(colon + 1);
    if (host.length === 0) return 'missing host before the port';
    if (host.includes(':')) return `IPv6 host '${host}' must be in brackets, e.g. [${host}]:${portText}`;
    if (/^[0-9.]+$/.test(host)) {
      if (!isIPv4(host)) return `'${host}' is not a valid IPv4 address`;
    } else if (!HOST_NAME.test(host)) {
      return `'${host}' is not a valid host name`;
    }
  }
  const min = options.allowPortZero === true ? 0 : 1;
  if (portText.length === 0) return "missing port after ':'";
  if (!/^[0-9]{1,5}$/.test(portText)) return `port '${portText}' is not an integer from ${min} to 65535`;
  const port = Number(portText);
  if (port > 65535) return `port ${port} is out of range (${min} to 65535)`;
  if (port < min) return 'port 0 is not valid here (ports are 1 to 65535)';
  return { host, port };
}

/** `HOST:PORT` parsed, or undefined when it is not one (port 0 refused). */
export function parseHostPort(text: string): HostPort | undefined {
  const result = checkHostPort(text);
  return typeof result === 'string' ? undefined : result;
}

/** `HOST:PORT`, with an IPv6 host in brackets. */
export function formatHostPort(host: string, port: number): string {
  return `${host.includes(':') ? `[${host}]` : host}:${port}`;
}
