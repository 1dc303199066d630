/**
 * `meshd top URL...`: a live view of one or more brokers, read from their
 * admin endpoints (`GET /status`) every --interval ms: requests per second,
 * latency p50/p99 of the interval, queue depth, requests in flight, nodes
 * and state (docs/cli.md#meshd-top). On a terminal the table is redrawn in
 * place; otherwise each refresh prints one plain line per broker. Runs
 * until --count refreshes or SIGINT/SIGTERM, and exits 0.
 */

import { isMeshError } from '../../lib/index.ts';
import type { MeshError } from '../../lib/index.ts';
import { contextOf, docsEpilogue, println } from '../context.ts';
import type { MeshdCommand, Output } from '../context.ts';
import { integerProblem } from '../options.ts';
import { endpointName, statusUrl } from '../admin/admin-url.ts';
import type { StatusAnswer } from '../admin/admin-client.ts';
import type { StatusDocument } from '../admin/admin-status.ts';
import { DEFAULT_ADMIN_TIMEOUT } from './status.ts';

/** Default time between refreshes, ms. */
export const DEFAULT_TOP_INTERVAL = 1000;

export interface TopArgs {
  readonly url: readonly string[];
  readonly interval: number;
  readonly count?: number | undefined;
  readonly timeout: number;
}

/** One reading of one broker: its status, or why there is none. */
interface Reading {
  readonly answer: StatusAnswer | undefined;
  readonly error: MeshError | undefined;
  /** When it was read, ms (performance.now). */
  readonly at: number;
}

/** Whether output goes to a terminal (redraw in place) or to a pipe or file (plain lines). */
function isTerminal(out: Output): boolean {
  return (out as { isTTY?: unknown }).isTTY === true;
}

/** Resolves true after `ms`, or false at once when `signal` aborts. */
function pause(ms: number, signal: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve(false);
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve(!signal.aborted);
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done);
  });
}

export const top: MeshdCommand<TopArgs> = {
  command: 'top <url..>',
  describe: 'Watch brokers live from their admin endpoints: requests/s, latency, queues, state',
  builder: (y) =>
    y
      .usage(
        '$0 top URL... [--interval MS] [--count N] [--timeout MS]\n\n' +
          "Read GET /status of each broker's admin endpoint every --interval ms and show, per broker: its name and state, requests ended per second, the latency p50 and p99 of the requests replied in the interval, requests queued and in flight, and the nodes connected. On a terminal the table is redrawn in place; otherwise (a pipe, a file) each refresh prints one line per broker. Runs until --count refreshes, or until Ctrl-C or SIGTERM, and exits 0.\n\n" +
          'A broker that does not answer is shown as down (with its error code) and read again next time; a URL that answers but is not a meshd admin endpoint stops the command at start (MESH_ERR_PROTOCOL, exit 1).',
      )
      .positional('url', {
        type: 'string',
        array: true,
        demandOption: true,
        describe: 'Admin endpoints, e.g. http://127.0.0.1:9090 http://127.0.0.1:9091',
      })
      .option('interval', {
        type: 'number',
        requiresArg: true,
        default: DEFAULT_TOP_INTERVAL,
        describe: 'Time between refreshes, ms (100 to 3600000). Env: MESHD_INTERVAL',
      })
      .option('count', {
        type: 'number',
        requiresArg: true,
        describe: 'Stop after this many refreshes (default: run until Ctrl-C or SIGTERM). Env: MESHD_COUNT',
      })
      .option('timeout', {
        type: 'number',
        requiresArg: true,
        default: DEFAULT_ADMIN_TIMEOUT,
        describe: 'Longest wait for one broker to answer, ms; never more than --interval. Env: MESHD_TIMEOUT',
      })
      .check((argv) => {
        for (const text of argv.url) {
          const url = statusUrl(String(text));
          if (typeof url === 'string') return url;
        }
        return integerProblem('interval', argv.interval, 100, 3_600_000) ?? integerProblem('count', argv.count, 1) ?? integerProblem('timeout', argv.timeout, 1, 600_000) ?? true;
      })
      .example('$0 top http://127.0.0.1:9090 http://127.0.0.1:9091', 'two brokers, refreshed every second')
      .example('$0 top :9090 --interval 5000 --count 12 > broker.log', 'one line every 5 s for a minute, into a file')
      .epilogue(docsEpilogue('meshd-top')),
  handler: async (argv) => {
    const { io, host } = contextOf(argv);
    const urls = argv.url.map((text) => {
      const url = statusUrl(text);
      if (typeof url === 'string') throw new Error(`unreachable: check() validates URL: ${url}`);
      return url;
    });
    const { fetchStatus, isRunning } = await import('../admin/admin-client.ts');
    const { formatMs, topSample } = await import('../admin/status-format.ts');
    const { formatTable } = await import('./registry.ts');
    const timeout = Math.min(argv.timeout, argv.interval);
    const stop = new AbortController();
    const offs = (['SIGINT', 'SIGTERM'] as const).map((signal) => host.onSignal(signal, () => stop.abort()));
    const read = async (url: URL): Promise<Reading> => {
      try {
        return { answer: await fetchStatus(url, timeout), error: undefined, at: performance.now() };
      } catch (error) {
        if (!isMeshError(error)) throw error;
        return { answer: undefined, error, at: performance.now() };
      }
    };
    try {
      let previous = await Promise.all(urls.map(read));
      // Not a meshd endpoint, or another version of it: a mistake in the command, not an outage.
      const wrong = previous.find((r) => r.error?.code === 'MESH_ERR_PROTOCOL' || r.error?.code === 'MESH_ERR_VERSION');
      if (wrong?.error) throw wrong.error;
      const terminal = isTerminal(io.stdout);
      let drawn = 0;
      for (let refresh = 0; argv.count === undefined || refresh < argv.count; refresh++) {
        if (!(await pause(argv.interval, stop.signal))) break;
        const current = await Promise.all(urls.map(read));
        const time = new Date().toISOString();
        const rows = current.map((now, i) => {
          const before = previous[i];
          const name = endpointName(urls[i]!);
          if (!now.answer) return { name, broker: '-', state: 'down', sample: undefined, error: now.error?.code };
          if (!isRunning(now.answer)) return { name, broker: '-', state: now.answer.state, sample: undefined, error: undefined };
          const was: StatusDocument | undefined = before?.answer && isRunning(before.answer) ? before.answer : undefined;
          return { name, broker: now.answer.broker.name, state: now.answer.state, sample: topSample(was, now.answer, now.at - (before?.at ?? now.at)), error: undefined };
        });
        const rate = (n: number | undefined): string => (n === undefined ? '-' : n.toFixed(1));
        if (terminal) {
          const lines = [
            `meshd top: ${urls.length} broker${urls.length === 1 ? '' : 's'}, every ${argv.interval} ms, ${time} (Ctrl-C to quit)`,
            '',
            ...formatTable([
              ['ENDPOINT', 'BROKER', 'STATE', 'REQ/S', 'P50', 'P99', 'QUEUED', 'IN-FLIGHT', 'NODES'],
              ...rows.map((r) => [
                r.name,
                r.broker,
                r.error === undefined ? r.state : `${r.state} (${r.error})`,
                rate(r.sample?.perSecond),
                formatMs(r.sample?.p50Ms),
                formatMs(r.sample?.p99Ms),
                String(r.sample?.queued ?? '-'),
                String(r.sample?.inFlight ?? '-'),
                String(r.sample?.nodes ?? '-'),
              ]),
            ]),
          ];
          // Back to the first line of the previous drawing, and clear from there down.
          io.stdout.write(`${drawn > 0 ? `\x1b[${drawn}F\x1b[J` : ''}${lines.join('\n')}\n`);
          drawn = lines.length;
        } else {
          for (const r of rows) {
            const s = r.sample;
            const fields = [time, r.name, `broker=${r.broker}`, `state=${r.state}`, `req/s=${rate(s?.perSecond)}`, `p50=${formatMs(s?.p50Ms)}`, `p99=${formatMs(s?.p99Ms)}`, `queued=${s?.queued ?? '-'}`, `inflight=${s?.inFlight ?? '-'}`, `nodes=${s?.nodes ?? '-'}`];
            if (r.error !== undefined) fields.push(`error=${r.error}`);
            println(io.stdout, fields.join(' '));
          }
        }
        // A broker that did not answer this time is compared with its last answer next time.
        previous = current.map((now, i) => (now.answer ? now : (previous[i] ?? now)));
      }
    } finally {
      for (const off of offs) off();
    }
  },
};
