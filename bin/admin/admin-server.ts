/**
 * The admin HTTP endpoint of `meshd broker --admin HOST:PORT`
 * (docs/cli.md#the-admin-endpoint): node:http, no framework. It listens
 * before the broker starts, so /healthz answers from the first moment;
 * `attach(broker)` gives it the broker once that listens.
 *
 * - `GET /healthz`: 200 while the process serves;
 * - `GET /readyz`: 200 once the broker listens and completed its first
 *   quorum round, 503 before and while draining;
 * - `GET /status`: the broker's status as JSON (admin-status.ts);
 * - `GET /metrics`: Prometheus text (admin-metrics.ts);
 * - any other path 404, any other method 405.
 *
 * Bounded: request headers of at most 8 KiB, no request body (413), idle
 * keep-alive connections closed after 5 s, a request that is not complete
 * within 10 s dropped, at most 64 connections. Every answer is computed from
 * the broker's tables in one synchronous pass (no I/O, nothing that waits on
 * the broker), so the endpoint never holds the broker up for longer than
 * reading them.
 */

import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { MeshError, formatHostPort } from '../../lib/index.ts';
import type { Broker } from '../../lib/index.ts';
import type { Logger } from '../log.ts';
import { AdminMetrics } from './admin-metrics.ts';
import { STATUS_TYPE, STATUS_VERSION, brokerState, statusDocument } from './admin-status.ts';
import type { StartingDocument } from './admin-status.ts';
import { EventLoopLag } from './event-loop-lag.ts';

/** Bounds of the admin endpoint (docs/limits.md#admin-endpoint). */
export const ADMIN_LIMITS = {
  /** Largest request head (request line and headers), bytes. */
  maxHeaderBytes: 8192,
  /** Idle keep-alive connections are closed after this, ms. */
  keepAliveMs: 5000,
  /** A request's headers must arrive within this, ms. */
  headersTimeoutMs: 5000,
  /** A whole request must arrive within this, ms. */
  requestTimeoutMs: 10_000,
  /** Most requests on one connection. */
  maxRequestsPerSocket: 100,
  /** Most open connections; more are refused. */
  maxConnections: 64,
} as const;

/** The paths the endpoint answers. */
export const ADMIN_PATHS = ['/healthz', '/readyz', '/status', '/metrics'] as const;

/** A running admin endpoint. */
export class AdminServer {
  readonly #server: Server;
  readonly #logger: Logger;
  readonly #lag = new EventLoopLag();
  /** Made with the server: prom-client's default metrics start measuring now, not at the first scrape. */
  readonly #metrics = new AdminMetrics();
  #url = '';
  #broker: Broker | undefined;
  /** The broker completed a quorum round (once true, stays true). */
  #rounded = false;
  #closing: Promise<void> | undefined;

  private constructor(server: Server, logger: Logger) {
    this.#server = server;
    this.#logger = logger;
  }

  /**
   * Listens on `host:port` (port 0: any free port). Rejects with
   * MESH_ERR_CONFIG when the address cannot be bound.
   */
  static async listen(host: string, port: number, logger: Logger): Promise<AdminServer> {
    const server = createServer({ maxHeaderSize: ADMIN_LIMITS.maxHeaderBytes });
    server.keepAliveTimeout = ADMIN_LIMITS.keepAliveMs;
    server.headersTimeout = ADMIN_LIMITS.headersTimeoutMs;
    server.requestTimeout = ADMIN_LIMITS.requestTimeoutMs;
    server.maxRequestsPerSocket = ADMIN_LIMITS.maxRequestsPerSocket;
    server.maxConnections = ADMIN_LIMITS.maxConnections;
    const admin = new AdminServer(server, logger);
    server.on('request', (req: IncomingMessage, res: ServerResponse) => admin.#serve(req, res));
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen({ host, port }, () => {
          server.off('error', reject);
          resolve();
        });
      });
    } catch (error) {
      admin.#lag.stop();
      const code = (error as NodeJS.ErrnoException).code ?? String(error);
      throw new MeshError('MESH_ERR_CONFIG', `cannot listen on ${formatHostPort(host, port)} for --admin: ${code}`, { cause: error });
    }
    server.on('error', (error) => logger.log('error', 'admin-error', `admin endpoint: ${error.message}`, { error: error.message }));
    const address = server.address();
    if (address === null || typeof address === 'string') throw new Error('the admin endpoint is not listening on TCP');
    admin.#url = `http://${formatHostPort(address.address, address.port)}`;
    return admin;
  }

  /** `http://HOST:PORT` with the real port. */
  get url(): string {
    return this.#url;
  }

  /** The broker is up: /readyz, /status and /metrics report it from now on. */
  attach(broker: Broker): void {
    this.#broker = broker;
  }

  /** Stops listening and closes every connection (idempotent). */
  close(): Promise<void> {
    this.#closing ??= new Promise<void>((resolve) => {
      this.#lag.stop();
      this.#server.close(() => resolve());
      this.#server.closeAllConnections();
    });
    return this.#closing;
  }

  #serve(req: IncomingMessage, res: ServerResponse): void {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    if (req.method !== 'GET') {
      res.setHeader('Allow', 'GET');
      this.#text(res, 405, `method ${req.method ?? '?'} not allowed: the admin endpoint answers GET only\n`, true);
      return;
    }
    const length = req.headers['content-length'];
    if ((length !== undefined && length !== '0') || req.headers['transfer-encoding'] !== undefined) {
      // Never read: the connection closes after the answer.
      this.#text(res, 413, 'a GET to the admin endpoint takes no body\n', true);
      return;
    }
    switch (path) {
      case '/healthz':
        this.#text(res, 200, 'ok\n');
        return;
      case '/readyz': {
        const state = this.#state();
        this.#text(res, state === 'ready' ? 200 : 503, `${state}\n`);
        return;
      }
      case '/status':
        this.#status(res);
        return;
      case '/metrics':
        this.#metricsText(res);
        return;
      default:
        this.#text(res, 404, `not found: ${path}; the admin endpoint answers GET ${ADMIN_PATHS.join(', ')}\n`);
    }
  }

  #state(): 'starting' | 'ready' | 'draining' {
    const broker = this.#broker;
    if (!broker) return 'starting';
    if (!this.#rounded && !broker.draining) this.#rounded = broker.stats().gossipRounds > 0;
    return brokerState(broker, this.#rounded ? 1 : 0);
  }

  #status(res: ServerResponse): void {
    const broker = this.#broker;
    if (!broker) {
      const starting: StartingDocument = { type: STATUS_TYPE, version: STATUS_VERSION, state: 'starting' };
      this.#json(res, 503, starting);
      return;
    }
    this.#json(res, 200, statusDocument(broker, this.#lag.current()));
  }

  #metricsText(res: ServerResponse): void {
    const broker = this.#broker;
    if (!broker) {
      this.#text(res, 503, 'starting\n');
      return;
    }
    const metrics = this.#metrics;
    metrics.text(broker, this.#state() === 'ready', this.#lag.current()).then(
      (text) => this.#send(res, 200, metrics.contentType, text),
      (error: unknown) => {
        const message = error instanceof Error ? error.message : String(error);
        this.#logger.log('error', 'admin-error', `collecting metrics failed: ${message}`, { error: message });
        this.#text(res, 500, 'collecting metrics failed\n');
      },
    );
  }

  #json(res: ServerResponse, status: number, body: unknown): void {
    this.#send(res, status, 'application/json; charset=utf-8', `${JSON.stringify(body)}\n`);
  }

  #text(res: ServerResponse, status: number, body: string, close = false): void {
    if (close) res.setHeader('Connection', 'close');
    this.#send(res, status, 'text/plain; charset=utf-8', body);
  }

  #send(res: ServerResponse, status: number, type: string, body: string): void {
    res.writeHead(status, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(body), 'Cache-Control': 'no-store' });
    res.end(body);
  }
}
