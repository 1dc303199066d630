// Child process: an attacker without a registered key, for the flood specs
// and bench/flood.ts. Config (JSON, FloodConfig below) comes from the
// MESHD_TEST_FLOOD env var. It keeps `sockets` TCP connections open to the
// broker from each of the `sources` addresses (127.0.0.x) and opens a new
// one as soon as one is closed, for at most `durationMs`:
//   - silent: connects and sends nothing;
//   - garbage: sends a few random bytes, then nothing;
//   - unregistered: completes the Noise handshake with a key the registry
//     does not list, over and over (one at a time per slot).
// Prints `flooding` once every slot has been opened, then
// `stats {json}` every 500 ms and when stdin says `stats`, and exits when
// the time is up, stdin closes, or on SIGTERM. Every loop is bounded by
// the deadline and by a cap on connections opened.
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { createInterface } from 'node:readline';
import { decodeKey, generateKeyPair } from '../../lib/crypto/keys.ts';
import { getSuite } from '../../lib/crypto/suites.ts';
import { Connection } from '../../lib/protocol/connection.ts';

/** What child-flood.ts reads from MESHD_TEST_FLOOD. */
export interface FloodConfig {
  readonly port: number;
  readonly mode: 'silent' | 'garbage' | 'unregistered';
  /** Source addresses to bind (127.0.0.x). */
  readonly sources: readonly string[];
  /** Connections kept open per source. */
  readonly sockets: number;
  /** Longest run, ms. */
  readonly durationMs: number;
  /** The broker's public key (mode unregistered). */
  readonly brokerKey?: string | undefined;
}

const raw = process.env.MESHD_TEST_FLOOD;
if (!raw) {
  process.stderr.write('child-flood: MESHD_TEST_FLOOD is not set\n');
  process.exit(2);
}
const config = JSON.parse(raw) as FloodConfig;
const deadline = performance.now() + config.durationMs;
/** Hard cap on connections opened in one run (about 20,000 a second for the longest run). */
const MAX_OPENED = Math.ceil(config.durationMs * 20) + config.sockets * config.sources.length;
const stats = { opened: 0, closed: 0, errors: 0, handshakes: 0, refused: 0, open: 0 };
let stopping = false;

function line(text: string): void {
  process.stdout.write(`${text}\n`);
}

function more(): boolean {
  return !stopping && performance.now() < deadline && stats.opened < MAX_OPENED;
}

/** One slot: a raw socket, replaced when the broker closes it. */
function rawSlot(source: string, onFirst: () => void): void {
  let first = true;
  const open = (): void => {
    if (!more()) return;
    stats.opened++;
    const socket = net.connect({ host: '127.0.0.1', port: config.port, localAddress: source });
    let connected = false;
    socket.on('connect', () => {
      connected = true;
      stats.open++;
      if (first) {
        first = false;
        onFirst();
      }
      if (config.mode === 'garbage') socket.write(randomBytes(1 + (stats.opened % 7)));
    });
    socket.on('data', () => {});
    socket.on('error', () => void stats.errors++);
    socket.on('close', (hadError) => {
      if (connected) stats.open--;
      stats.closed++;
      // Back at once, as an attacker would; on an error (e.g. ECONNREFUSED), a short pause.
      if (hadError) setTimeout(open, 5);
      else setImmediate(open);
    });
  };
  open();
}

/** One slot: full handshakes with an unregistered key, one after the other. */
function handshakeSlot(onFirst: () => void): void {
  const suite = getSuite('node');
  const keyPair = generateKeyPair();
  const remoteKey = decodeKey(config.brokerKey ?? '', 'broker key');
  let first = true;
  const again = (): void => {
    if (!more()) return;
    stats.opened++;
    Connection.connect(
      { host: '127.0.0.1', port: config.port, remoteKey, keyPair, role: 'client', suite, handshakeTimeout: 5000 },
      {
        onMessage: () => {},
        onClose: (error) => {
          if (error?.code === 'MESH_ERR_UNAUTHORIZED') stats.refused++;
          stats.closed++;
          setImmediate(again);
        },
      },
    ).then(
      () => {
        stats.handshakes++;
        if (first) {
          first = false;
          onFirst();
        }
      },
      () => {
        stats.errors++;
        stats.closed++;
        setTimeout(again, 5);
      },
    );
  };
  again();
}

let started = 0;
const slots = config.sources.length * config.sockets;
const onFirst = (): void => {
  if (++started === slots) line('flooding');
};
for (const source of config.sources) {
  for (let i = 0; i < config.sockets; i++) {
    if (config.mode === 'unregistered') handshakeSlot(onFirst);
    else rawSlot(source, onFirst);
  }
}

const report = (): void => line(`stats ${JSON.stringify(stats)}`);
const ticker = setInterval(report, 500);
const input = createInterface({ input: process.stdin });
input.on('line', (text) => {
  if (text.trim() === 'stats') report();
});
const stop = (): void => {
  if (stopping) return;
  stopping = true;
  clearInterval(ticker);
  report();
  process.exit(0);
};
input.on('close', stop);
process.on('SIGTERM', stop);
setTimeout(stop, config.durationMs + 1000).unref();
setTimeout(stop, config.durationMs);
