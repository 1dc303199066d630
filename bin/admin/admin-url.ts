/**
 * The URL of a broker's admin endpoint, as `meshd status` and `meshd top`
 * take it (docs/cli.md#meshd-status). No I/O: the commands check their
 * arguments with it before anything loads.
 */

/**
 * The base URL of an admin endpoint from what the user typed:
 * `http://HOST:PORT` (with a path prefix when the endpoint is behind a
 * proxy), `HOST:PORT`, or `PORT` / `:PORT` for 127.0.0.1. A URL that ends in
 * `/status` is taken as the endpoint's. Returns the URL of its /status, or a
 * message saying what is wrong.
 */
export function statusUrl(text: string): URL | string {
  const trimmed = text.trim();
  const portOnly = /^:?([0-9]{1,5})$/.exec(trimmed);
  const withScheme = portOnly ? `http://127.0.0.1:${portOnly[1]}` : /^[a-z][a-z0-9+.-]*:\/\//i.test(trimmed) ? trimmed : `http://${trimmed}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    return `'${text}' is not a URL; expected the admin endpoint of a broker, e.g. http://127.0.0.1:9090`;
  }
  if (url.protocol !== 'http:') return `'${text}': the admin endpoint speaks plain http://, not ${url.protocol}//`;
  if (url.username !== '' || url.password !== '' || url.search !== '' || url.hash !== '') return `'${text}': give the admin endpoint as http://HOST:PORT, without user, query or fragment`;
  const base = url.pathname.replace(/\/+$/, '').replace(/\/status$/, '');
  url.pathname = `${base}/status`;
  return url;
}

/** The endpoint's URL for messages: the base, without /status. */
export function endpointName(url: URL): string {
  return `${url.origin}${url.pathname.replace(/\/status$/, '')}`;
}
