/**
 * What `meshd demo` (the parent) and its client and worker processes
 * (bin/demo/demo-client.ts, bin/demo/demo-worker.ts) say to each other over
 * the Node IPC channel each child is started with, and what they share: the
 * service name, the payload and reply formats, and the configuration a child
 * gets as its one command-line argument (JSON).
 *
 * A child exits as soon as its IPC channel closes: if the demo dies without
 * cleaning up (SIGKILL), its clients and workers do not outlive it.
 */

/** The service the demo workers offer and the demo client calls. */
export const DEMO_SERVICE = 'echo';

/**
 * The configuration of a demo child (argv[2], JSON). The brokers come later,
 * in a `connect` message: the children start (load Node and meshd) while the
 * brokers do.
 */
export interface ChildConfig {
  /** The party's registry name: `client`, `worker-1`, ... */
  readonly name: string;
  /** Its key file, in the demo's temporary directory. */
  readonly keyFile: string;
}

/** The client's configuration. */
export interface ClientConfig extends ChildConfig {
  /** Most requests in flight at once (one loop each). */
  readonly inFlight: number;
  /** Least time between two sends of one loop, ms (caps the request rate). */
  readonly pacingMs: number;
  /** Deadline of each request, ms. */
  readonly timeoutMs: number;
  /** Retries of each request. */
  readonly retries: number;
}

/**
 * One settled request: [seq, broker, ms, outcome, worker, attempt].
 * `broker` is the index of the broker the client sent the first attempt
 * through (-1: none was healthy, the node picked); `ms` the latency;
 * `outcome` is `ok`, `wrong` (a reply that is not the request's) or the
 * MESH_ERR_* code of the failure; `worker` the name of the worker that
 * replied and `attempt` the attempt that reached it ('' and 0 on failure).
 */
export type ResultTuple = [seq: number, broker: number, ms: number, outcome: string, worker: string, attempt: number];

/** Parent → child. */
export type ToChild =
  /** Broker: run `meshd broker` with these options. */
  | { readonly type: 'run'; readonly args: readonly string[] }
  /** Connect to the mesh: every broker's mesh:// URL, in broker order (all of them seeds). */
  | { readonly type: 'connect'; readonly brokers: readonly string[] }
  /** Client: start the load. */
  | { readonly type: 'start' }
  /** Client: stop sending, report the last requests (`done`); worker: report the last executions (`stopped`). */
  | { readonly type: 'stop' };

/** Child → parent. */
export type FromChild =
  /** Connected (a worker: and serving). */
  | { readonly type: 'ready' }
  /** The brokers (indexes) this node may send to or take work from now, on every change. */
  | { readonly type: 'links'; readonly healthy: readonly number[] }
  /**
   * Client: when (ms since `start`, by its clock), requests started so far
   * (seq 0 to sent - 1), of those the first attempts sent through each
   * broker (by index), the requests in flight now, and those settled since
   * the last batch.
   */
  | { readonly type: 'batch'; readonly at: number; readonly sent: number; readonly perBroker: readonly number[]; readonly inFlight: number; readonly results: readonly ResultTuple[] }
  /** Client, after `stop`: every loop has ended; `unsettled` never settled within its deadline and a grace. */
  | { readonly type: 'done'; readonly unsettled: readonly number[] }
  /** Worker: the seqs of the requests it started executing since the last report. */
  | { readonly type: 'execs'; readonly seqs: readonly number[] }
  /** Worker, after `stop`: every execution has been reported. */
  | { readonly type: 'stopped' }
  /** A child failed (before exiting 1). */
  | { readonly type: 'failed'; readonly message: string };

/** The payload of request `seq`: unique, so a reply can be checked against it. */
export function requestPayload(seq: number, nonce: string): string {
  return `demo:${seq}:${nonce}`;
}

/** The seq of a request payload, or undefined if it is not one. */
export function seqOfPayload(payload: string): number | undefined {
  const m = /^demo:(\d{1,15}):/.exec(payload);
  return m === null ? undefined : Number(m[1]);
}

/** A worker's reply: who ran the request, from which attempt, and the request payload echoed. */
export interface DemoReply {
  readonly worker: string;
  readonly attempt: number;
  readonly payload: string;
}

/** Parses a reply; undefined if it is not a demo reply. */
export function parseReply(text: string): DemoReply | undefined {
  try {
    const r = JSON.parse(text) as Partial<DemoReply>;
    if (typeof r.worker === 'string' && typeof r.attempt === 'number' && typeof r.payload === 'string') return { worker: r.worker, attempt: r.attempt, payload: r.payload };
  } catch {
    // not JSON: not a demo reply
  }
  return undefined;
}

/** The key of a mesh:// URL (the text between `mesh://` and `@`). */
export function keyOfUrl(url: string): string {
  return /^mesh:\/\/([^@]+)@/.exec(url)?.[1] ?? url;
}

/** The indexes in `brokers` of the URLs in `healthy` (matched by key), sorted. */
export function brokerIndexes(brokers: readonly string[], healthy: readonly string[]): number[] {
  const keys = brokers.map(keyOfUrl);
  return healthy
    .map((url) => keys.indexOf(keyOfUrl(url)))
    .filter((i) => i >= 0)
    .sort((a, b) => a - b);
}

/** The child side of the channel. */
export interface ChildChannel<C extends ChildConfig> {
  /** The config from argv[2]. */
  readonly config: C;
  /** The brokers of the `connect` message. */
  readonly brokers: Promise<readonly string[]>;
  /** Sends a message to the demo (nothing if it is gone). */
  readonly send: (message: FromChild) => void;
  /** Calls `listener` with every later message of the demo. */
  readonly onMessage: (listener: (message: ToChild) => void) => void;
}

/**
 * The child side of the channel, with an exit as soon as the parent is gone.
 * Exits with code 2 if the process was not started by `meshd demo`.
 */
export function childChannel<C extends ChildConfig>(): ChildChannel<C> {
  const raw = process.argv[2];
  if (raw === undefined || typeof process.send !== 'function') {
    process.stderr.write('this script is a child process of `meshd demo`; run `meshd demo` instead\n');
    process.exit(2);
  }
  const config = JSON.parse(raw) as C;
  // The parent is gone (it exited or was killed): so is the demo.
  process.on('disconnect', () => process.exit(0));
  const brokers = new Promise<readonly string[]>((resolve) => {
    const onConnect = (message: ToChild): void => {
      if (message.type !== 'connect') return;
      process.off('message', onConnect);
      resolve(message.brokers);
    };
    process.on('message', onConnect);
  });
  return {
    config,
    brokers,
    send: (message) => {
      if (process.connected) process.send?.(message);
    },
    onMessage: (listener) => {
      process.on('message', listener);
    },
  };
}
