// A fake set of broker links for the requester and the service runner: plain
// objects that record what is sent (lib/node/link.ts is the boundary).
import type { ClientLink, ClientPool, WorkerLink, WorkerPool } from '../../lib/node/link.ts';
import type { Message, RequestMessage } from '../../lib/protocol/messages.ts';

/** What was sent, on which link, in order across all links. */
export interface Sent<M extends Message = Message> {
  readonly link: FakeLink;
  readonly message: M;
}

/** One broker link: up and healthy until told otherwise; `send` records and succeeds while up. */
export class FakeLink implements ClientLink, WorkerLink {
  readonly key: string;
  readonly url: string;
  up = true;
  healthy = true;
  /** Whether its outbound backlog is over the node's mark (requests then wait in the requester). */
  congested = false;
  peerMaxPayload = 1024 * 1024;
  /** Whether send() accepts a message while up (false: as if the connection refused it). */
  accepts = true;
  readonly sent: Message[] = [];
  /** retain() minus release(). */
  active = 0;
  readonly #journal: Sent[];

  constructor(key: string, journal: Sent[] = []) {
    this.key = key;
    this.url = `mesh://${key}@127.0.0.1:4222`;
    this.#journal = journal;
  }

  send(message: Message): boolean {
    if (!this.up || !this.accepts) return false;
    this.sent.push(message);
    this.#journal.push({ link: this, message });
    return true;
  }

  retain(): void {
    this.active++;
  }

  release(): void {
    this.active--;
  }

  /** The REQUESTs sent on this link. */
  requests(): RequestMessage[] {
    return this.sent.filter((m): m is RequestMessage => m.type === 'REQUEST');
  }

  /** Sent messages as short strings: `READY echo 3`, `CANCEL echo`, `REPLY`, `ERROR MESH_ERR_X`, `REFUSED`, `REQUEST`. */
  log(): string[] {
    return this.sent.map((m) => {
      switch (m.type) {
        case 'READY':
          return `READY ${m.service} ${m.credits}`;
        case 'CANCEL':
          return `CANCEL ${m.service}`;
        case 'ERROR':
          return `ERROR ${m.code}`;
        default:
          return m.type;
      }
    });
  }

  /** Forgets what was sent so far. */
  clear(): void {
    this.sent.length = 0;
  }
}

/** The node's links, as the requester and the runner see them through MeshNode. */
export class FakePool implements ClientPool, WorkerPool {
  readonly links: FakeLink[];
  /** Everything sent on any link, in order. */
  readonly journal: Sent[] = [];
  readonly #waiters = new Set<() => void>();

  constructor(...keys: string[]) {
    this.links = keys.map((k) => new FakeLink(k, this.journal));
  }

  /** The REQUESTs sent on any link, in order. */
  requests(): Array<Sent<RequestMessage>> {
    return this.journal.filter((s): s is Sent<RequestMessage> => s.message.type === 'REQUEST');
  }

  /** The last REQUEST sent. */
  last(): Sent<RequestMessage> {
    const all = this.requests();
    const l = all[all.length - 1];
    if (!l) throw new Error('no REQUEST sent');
    return l;
  }

  /** The link of broker `key`. */
  link(key: string): FakeLink {
    const l = this.links.find((x) => x.key === key);
    if (!l) throw new Error(`no link ${key}`);
    return l;
  }

  healthy(): FakeLink[] {
    return this.links.filter((l) => l.healthy);
  }

  up(): FakeLink[] {
    return this.links.filter((l) => l.up);
  }

  find(broker: string): FakeLink | undefined {
    return this.links.find((l) => l.key === broker || l.url === broker);
  }

  whenHealthy(callback: () => void): () => void {
    this.#waiters.add(callback);
    return () => this.#waiters.delete(callback);
  }

  /** Callers waiting for a healthy link. */
  get waiting(): number {
    return this.#waiters.size;
  }

  /** The link is down: neither up nor healthy, sends fail. */
  down(link: FakeLink): void {
    link.up = false;
    link.healthy = false;
  }

  /** The link (re)connected and was welcomed: up and healthy, and the waiters are called, as MeshNode does. */
  bringUp(link: FakeLink): void {
    link.up = true;
    link.healthy = true;
    for (const w of [...this.#waiters]) {
      this.#waiters.delete(w);
      w();
    }
  }

  /** Adds a link (a broker learned later), down until bringUp. */
  add(key: string): FakeLink {
    const l = new FakeLink(key, this.journal);
    l.up = false;
    l.healthy = false;
    this.links.push(l);
    return l;
  }
}
