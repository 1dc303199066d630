// A party that talks to a real Broker in raw protocol messages over a real
// Connection (no MeshNode): the broker specs send exactly the messages they
// mean to, and see exactly what the broker answers.
import type { Broker } from '../../lib/broker/broker.ts';
import { parseBrokerAddress } from '../../lib/protocol/broker-address.ts';
import type { KeyPair } from '../../lib/crypto/crypto-suite.ts';
import { getSuite } from '../../lib/crypto/suites.ts';
import type { MeshError } from '../../lib/errors.ts';
import { Connection } from '../../lib/protocol/connection.ts';
import type { RoleName } from '../../lib/protocol/hello.ts';
import type { Message, MessageTypeName } from '../../lib/protocol/messages.ts';

type MessageOf<K extends MessageTypeName> = Extract<Message, { readonly type: K }>;

/** One connection to a broker, recording what arrives. */
export class WireParty {
  readonly connection: Connection;
  /** Messages received and not yet taken by {@link WireParty.take}. */
  readonly inbox: Message[];
  readonly #closed: { error: MeshError | undefined; done: boolean };

  private constructor(connection: Connection, inbox: Message[], closed: { error: MeshError | undefined; done: boolean }) {
    this.connection = connection;
    this.inbox = inbox;
    this.#closed = closed;
  }

  /** Connects with this key pair and role (a node then receives WELCOME first). */
  static async connect(broker: Broker, keyPair: KeyPair, role: RoleName): Promise<WireParty> {
    const address = parseBrokerAddress(broker.address);
    const inbox: Message[] = [];
    const closed = { error: undefined as MeshError | undefined, done: false };
    const connection = await Connection.connect(
      { host: address.host, port: address.port, remoteKey: address.publicKey, keyPair, role, name: role, suite: getSuite('node'), bootId: role === 'broker' ? new Uint8Array(16).fill(7) : undefined },
      {
        onMessage: (message) => inbox.push(message),
        onClose: (error) => {
          closed.error = error;
          closed.done = true;
        },
      },
    );
    return new WireParty(connection, inbox, closed);
  }

  /** Sends one message (flushed at the end of the turn). */
  send(message: Message): void {
    this.connection.send(message);
  }

  /** Waits for the first message of this type not taken yet, and takes it. */
  async take<K extends MessageTypeName>(type: K, ms = 5000): Promise<MessageOf<K>> {
    const isType = (m: Message): m is MessageOf<K> => m.type === type;
    await waitFor(() => this.inbox.some(isType) || this.#closed.done, ms, `${type}`);
    const i = this.inbox.findIndex(isType);
    const found = this.inbox[i];
    if (found === undefined || !isType(found)) throw new Error(`connection closed (${String(this.#closed.error)}) before a ${type} arrived; got ${this.inbox.map((m) => m.type).join(', ')}`);
    this.inbox.splice(i, 1);
    return found;
  }

  /** Waits until the connection is closed and returns the error it closed with. */
  async closedWith(ms = 5000): Promise<MeshError | undefined> {
    await waitFor(() => this.#closed.done, ms, 'the connection to close');
    return this.#closed.error;
  }

  /** Whether the connection is still up. */
  get open(): boolean {
    return !this.#closed.done;
  }

  close(): void {
    this.connection.close();
  }
}

/** Waits until pred() holds (bounded; throws naming `what`). */
export async function waitFor(pred: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}
