/**
 * What `meshd demo` shows: the live view (redrawn in place on a terminal,
 * one plain line per second otherwise) and the summary, human-readable or
 * JSON. Pure formatting, plus the one object that writes the view.
 */

import type { Output } from '../context.ts';
import type { BrokerCount, Latency, RequestCounts, WorkerCount } from './tally.ts';

/** The state of a broker in the view. */
export const BrokerState = { STARTING: 'starting', UP: 'up', KILLED: 'killed', RESTARTING: 'restarting', EXITED: 'exited' } as const;
export type BrokerState = (typeof BrokerState)[keyof typeof BrokerState];

/** One frame of the live view. */
export interface Frame {
  /** Seconds since the load started. */
  readonly t: number;
  readonly durationS: number;
  /** Requests settled per second, all brokers. */
  readonly rate: number;
  readonly sent: number;
  readonly replied: number;
  readonly failed: number;
  readonly inFlight: number;
  /** Latency of the replies of the last second, ms. */
  readonly p50: number;
  readonly p99: number;
  readonly brokers: ReadonlyArray<{ readonly name: string; readonly state: BrokerState; readonly rate: number }>;
  readonly workers: ReadonlyArray<{ readonly name: string; readonly rate: number }>;
  /** Brokers the client may send to now. */
  readonly clientLinks: number;
  /** What happened so far (`4.5 s  SIGKILL broker-2 (pid 123)`), oldest first. */
  readonly events: readonly string[];
}

/** A latency for people: 0.84, 12.3, 412. */
export function ms(value: number): string {
  if (value < 10) return value.toFixed(2);
  if (value < 100) return value.toFixed(1);
  return value.toFixed(0);
}

/** Seconds with one decimal. */
export function secs(value: number): string {
  return value.toFixed(1);
}

/** One plain line (stdout not a terminal): `t=3s req/s=998 ... broker-1=up:333/s ...`. */
export function plainLine(f: Frame): string {
  const brokers = f.brokers.map((b) => `${b.name}=${b.state}:${Math.round(b.rate)}/s`).join(' ');
  const workers = f.workers.map((w) => `${w.name}=${Math.round(w.rate)}/s`).join(' ');
  return `t=${Math.round(f.t)}s req/s=${Math.round(f.rate)} sent=${f.sent} replied=${f.replied} failed=${f.failed} in-flight=${f.inFlight} p50=${ms(f.p50)}ms p99=${ms(f.p99)}ms ${brokers} ${workers}`;
}

const ESC = '\u001b[';

/** Colours for a terminal, unless NO_COLOR is set. */
function paint(on: boolean): (code: number, text: string) => string {
  return on ? (code, text) => `${ESC}${code}m${text}${ESC}0m` : (_code, text) => text;
}

const STATE_COLOUR: Readonly<Record<BrokerState, number>> = { starting: 33, up: 32, killed: 31, restarting: 33, exited: 31 };

/** The lines of the live view on a terminal. */
export function terminalBlock(f: Frame, colour: boolean): string[] {
  const c = paint(colour);
  const bar = (rate: number, max: number): string => '#'.repeat(max <= 0 ? 0 : Math.round((Math.min(rate, max) / max) * 20));
  const max = Math.max(1, ...f.brokers.map((b) => b.rate));
  const width = Math.max(...f.brokers.map((b) => b.name.length), ...f.workers.map((w) => w.name.length), 6);
  const lines = [
    `${c(1, 'meshd demo')}  ${secs(f.t)} s / ${f.durationS} s    ${Math.round(f.rate)} req/s    p50 ${ms(f.p50)} ms  p99 ${ms(f.p99)} ms`,
    `  sent ${f.sent}  replied ${f.replied}  failed ${f.failed}  in flight ${f.inFlight}  client links ${f.clientLinks}/${f.brokers.length}`,
    '',
  ];
  for (const b of f.brokers) {
    lines.push(`  ${b.name.padEnd(width)}  ${c(STATE_COLOUR[b.state], b.state.padEnd(10))} ${String(Math.round(b.rate)).padStart(5)} req/s  ${bar(b.rate, max)}`);
  }
  for (const w of f.workers) lines.push(`  ${w.name.padEnd(width)}  ${'worker'.padEnd(10)} ${String(Math.round(w.rate)).padStart(5)} exec/s`);
  if (f.events.length > 0) {
    lines.push('');
    for (const e of f.events.slice(-4)) lines.push(`  ${e}`);
  }
  return lines;
}

/** A line without its colour codes. */
function plain(line: string): string {
  // eslint-disable-next-line no-control-regex
  return line.replace(/\u001b\[[0-9;]*m/g, '');
}

/** Writes the live view: in place on a terminal, else one line per call of `line`. */
export class LiveView {
  readonly #out: Output;
  readonly #terminal: boolean;
  readonly #colour: boolean;
  #drawn = 0;

  constructor(out: Output, env: NodeJS.ProcessEnv) {
    this.#out = out;
    this.#terminal = (out as { isTTY?: boolean }).isTTY === true;
    this.#colour = this.#terminal && (env.NO_COLOR === undefined || env.NO_COLOR === '') && env.TERM !== 'dumb';
  }

  /** Whether the view redraws in place. */
  get terminal(): boolean {
    return this.#terminal;
  }

  #columns(): number {
    return (this.#out as { columns?: number }).columns ?? 80;
  }

  /** A line of text above the view (start-up, an event in plain mode). */
  note(text: string): void {
    this.#out.write(`${text}\n`);
  }

  /** Redraws the block (terminal only). */
  draw(frame: Frame): void {
    if (!this.#terminal) return;
    const columns = this.#columns();
    // A line as wide as the terminal would wrap and throw the redraw off: shorten it (without colours).
    const lines = terminalBlock(frame, this.#colour).map((l) => (plain(l).length < columns ? l : plain(l).slice(0, columns - 1)));
    // Up to the first line of the last frame, clear to the end of the screen, draw anew: one write.
    const up = this.#drawn > 0 ? `${ESC}${this.#drawn}F${ESC}J` : '';
    this.#out.write(`${up}${lines.join('\n')}\n`);
    this.#drawn = lines.length;
  }

  /** A plain line (not a terminal). */
  line(frame: Frame): void {
    if (this.#terminal) return;
    this.#out.write(`${plainLine(frame)}\n`);
  }
}

/** The fault the demo injected. */
export interface FaultReport {
  readonly broker: string;
  /** When it was SIGKILLed, ms after the load started (null: not reached). */
  readonly killedAtMs: number | null;
  readonly killedPid: number | null;
  /** When it was started again. */
  readonly restartedAtMs: number | null;
  /** When it listened again. */
  readonly listeningAgainAtMs: number | null;
  readonly newPid: number | null;
}

/** The summary of a run (`--json` prints it as is). */
export interface DemoSummary {
  /** true when nothing was lost: the exit code is 0. */
  readonly ok: boolean;
  /** false when the demo was interrupted (SIGINT, SIGTERM, SIGHUP) before its end. */
  readonly complete: boolean;
  readonly interruptedBy: string | null;
  readonly durationS: number;
  /** How long the load ran, ms. */
  readonly loadMs: number;
  readonly brokers: number;
  readonly workers: number;
  readonly inFlight: number;
  readonly fault: FaultReport | null;
  readonly requests: RequestCounts;
  readonly latencyMs: Latency;
  /** First attempts per broker: the client picks the broker of each request's first attempt; which one carried a retry is not reported. */
  readonly perBroker: ReadonlyArray<BrokerCount & { readonly state: BrokerState; readonly pids: readonly number[] }>;
  readonly perWorker: ReadonlyArray<WorkerCount & { readonly pid: number | null }>;
  readonly client: { readonly pid: number | null };
  /** Requests settled whose first attempt found no healthy broker (not in perBroker). */
  readonly withoutBroker: number;
  /** The first lost requests (seqs), for a look. */
  readonly lostSeqs: readonly number[];
  /** Every child process the demo started, and those still running at its end (none). */
  readonly pids: readonly number[];
  readonly leftRunning: readonly number[];
  readonly tempDir: string;
  readonly tempDirRemoved: boolean;
}

/** The summary for people. */
export function summaryText(s: DemoSummary): string[] {
  const r = s.requests;
  const failedCodes = Object.entries(r.failedCodes).map(([code, n]) => `${code} ${n}`).join(', ');
  const f = s.fault;
  const fault =
    f === null
      ? 'no fault injected'
      : f.killedAtMs === null
        ? `${f.broker} was not killed (the demo ended first)`
        : `${f.broker} SIGKILLed at ${secs(f.killedAtMs / 1000)} s` + (f.listeningAgainAtMs === null ? (f.restartedAtMs === null ? ', not restarted' : ', restart not finished') : `, listening again at ${secs(f.listeningAgainAtMs / 1000)} s`);
  const width = Math.max(...s.perBroker.map((b) => b.name.length), ...s.perWorker.map((w) => w.name.length));
  const lines = [
    '',
    `summary${s.complete ? '' : ` (partial: interrupted by ${s.interruptedBy ?? 'a signal'})`}: ${secs(s.loadMs / 1000)} s of load through ${s.brokers} broker${s.brokers === 1 ? '' : 's'} to ${s.workers} worker${s.workers === 1 ? '' : 's'}; ${fault}`,
    `  requests  sent ${r.sent}, replied ${r.replied}, failed ${r.failed}${failedCodes === '' ? '' : ` (${failedCodes})`}, lost ${r.lost}${r.wrongReplies > 0 ? ` (${r.wrongReplies} wrong replies)` : ''}, duplicates ${r.duplicates}${r.extraExecutions > r.duplicates ? ` (${r.extraExecutions} extra executions)` : ''}`,
    `  latency   p50 ${ms(s.latencyMs.p50)} ms, p99 ${ms(s.latencyMs.p99)} ms, max ${ms(s.latencyMs.max)} ms`,
    `  failover  ${r.repliedAfterRetry} replies came from a retry (attempt 2 or later)`,
    `  brokers   first attempts sent through each (which broker carried a retry, the API does not say):`,
    ...s.perBroker.map((b) => `    ${b.name.padEnd(width)}  ${String(b.firstAttempts).padStart(7)} sent, ${String(b.repliedFromFirstAttempt).padStart(7)} replied from that attempt  (${b.state}, pid ${b.pids.join(' then ')})`),
    ...(s.withoutBroker > 0 ? [`    ${''.padEnd(width)}  ${String(s.withoutBroker).padStart(7)} sent when no broker was healthy`] : []),
    `  workers   executions each reported, replies the client got from each:`,
    ...s.perWorker.map((w) => `    ${w.name.padEnd(width)}  ${String(w.executions).padStart(7)} executed, ${String(w.replies).padStart(7)} replies  (pid ${w.pid ?? '-'})`),
    `  cleanup   ${s.pids.length} processes started, ${s.leftRunning.length === 0 ? 'none left running' : `still running: ${s.leftRunning.join(' ')}`}; ${s.tempDirRemoved ? 'temp dir removed' : `temp dir NOT removed: ${s.tempDir}`}`,
    s.ok ? 'result: nothing lost' : `result: ${r.lost} requests lost${s.lostSeqs.length > 0 ? ` (seq ${s.lostSeqs.join(', ')}${r.lost > s.lostSeqs.length ? ', ...' : ''})` : ''}`,
  ];
  return lines;
}
