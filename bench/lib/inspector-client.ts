/**
 * A minimal Chrome DevTools Protocol client for a node process started with
 * `--inspect=127.0.0.1:PORT`: enough to force a full garbage collection and
 * read what the heap retains afterwards. Uses the global WebSocket (Node 22
 * and later, or Node 20 with --experimental-websocket).
 */

/** process.memoryUsage() of the inspected process, read right after a full garbage collection, in bytes. */
export interface RetainedMemory {
  readonly heapUsed: number;
  readonly external: number;
  readonly arrayBuffers: number;
  readonly rss: number;
}

interface Pending {
  resolve: (value: unknown) => void;
  reject: (error: Error) => void;
}

/** One DevTools session with an inspected process. */
export class InspectorClient {
  readonly #ws: WebSocket;
  readonly #pending = new Map<number, Pending>();
  #nextId = 1;

  private constructor(ws: WebSocket) {
    this.#ws = ws;
    ws.addEventListener('message', (event: MessageEvent) => {
      const msg = JSON.parse(String(event.data)) as { id?: number; result?: unknown; error?: { message: string } };
      if (msg.id === undefined) return;
      const p = this.#pending.get(msg.id);
      if (!p) return;
      this.#pending.delete(msg.id);
      if (msg.error) p.reject(new Error(`inspector: ${msg.error.message}`));
      else p.resolve(msg.result);
    });
    ws.addEventListener('close', () => {
      for (const p of this.#pending.values()) p.reject(new Error('inspector: connection closed'));
      this.#pending.clear();
    });
  }

  /** Connects to the first target of the inspector listening on 127.0.0.1:port (bounded by `timeoutMs`). */
  static async connect(port: number, timeoutMs = 10_000): Promise<InspectorClient> {
    if (typeof WebSocket !== 'function') throw new Error('no global WebSocket: run on Node 22 or later, or with --experimental-websocket');
    const targets = (await (await fetch(`http://127.0.0.1:${port}/json/list`, { signal: AbortSignal.timeout(timeoutMs) })).json()) as Array<{ webSocketDebuggerUrl?: string }>;
    const url = targets[0]?.webSocketDebuggerUrl;
    if (url === undefined) throw new Error(`inspector on port ${port} lists no target`);
    const ws = new WebSocket(url);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`inspector: no connection to ${url} within ${timeoutMs} ms`)), timeoutMs);
      ws.addEventListener('open', () => (clearTimeout(timer), resolve()), { once: true });
      ws.addEventListener('error', () => (clearTimeout(timer), reject(new Error(`inspector: cannot connect to ${url}`))), { once: true });
    });
    return new InspectorClient(ws);
  }

  /** Sends one command and waits (bounded) for its result. */
  call(method: string, params: Record<string, unknown> = {}, timeoutMs = 60_000): Promise<unknown> {
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new Error(`inspector: ${method} did not answer within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#pending.set(id, {
        resolve: (v) => (clearTimeout(timer), resolve(v)),
        reject: (e) => (clearTimeout(timer), reject(e)),
      });
      this.#ws.send(JSON.stringify({ id, method, params }));
    });
  }

  /** Runs two full garbage collections in the inspected process, then reads its process.memoryUsage(). */
  async retained(): Promise<RetainedMemory> {
    await this.call('HeapProfiler.collectGarbage');
    await this.call('HeapProfiler.collectGarbage');
    const r = (await this.call('Runtime.evaluate', { expression: 'JSON.stringify(process.memoryUsage())', returnByValue: true })) as { result?: { value?: unknown } };
    const value = r.result?.value;
    if (typeof value !== 'string') throw new Error('inspector: process.memoryUsage() gave no value');
    return JSON.parse(value) as RetainedMemory;
  }

  close(): void {
    this.#ws.close();
  }
}
