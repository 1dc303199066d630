/**
 * `meshd demo`: starts a local mesh (brokers, echo workers and a client, each
 * its own process, keys and registry in a temporary directory), drives load
 * through it with a live view, SIGKILLs a broker and restarts it, and ends
 * with a summary; exit code 0 only if no request was lost. The work is in
 * bin/demo/, imported only when the command runs, so that other commands
 * start as fast as before.
 */

import { contextOf, docsEpilogue } from '../context.ts';
import type { MeshdCommand } from '../context.ts';
import { LINGER_MS, integerProblem } from '../options.ts';

export interface DemoArgs {
  readonly duration: number;
  readonly brokers: number;
  readonly workers: number;
  readonly fault: boolean;
  readonly json: boolean;
}

/** Bounds of the options (each broker, worker and the client is a process on this machine). */
const MAX_DURATION_S = 3600;
const MAX_BROKERS = 9;
const MAX_WORKERS = 8;
/** Shortest --duration with the broker kill and restart, s: the kill comes at 30 % of it (not before 1 s), the restart at 60 %. */
const MIN_FAULT_DURATION_S = 3;

export const demo: MeshdCommand<DemoArgs> = {
  command: 'demo',
  describe: 'Run a local mesh (3 brokers, 2 workers, a client) under load, kill and restart a broker, print a summary',
  builder: (y) =>
    y
      .usage(
        '$0 demo [--duration S] [--brokers N] [--workers N] [--no-fault] [--json]\n\n' +
          'Start a mesh on 127.0.0.1, every party its own process: brokers (meshd broker), echo workers and a client, with keys and a registry in a temporary directory. The client keeps 8 requests in flight (at most 500/s) and checks every reply. A few seconds in, one broker is SIGKILLed; a few seconds later it is started again. A live view shows requests/s per broker and latency (redrawn in place on a terminal, one line per second otherwise); then a summary: requests sent, replied, failed, lost, duplicates, latency, per-broker and per-worker counts. Every process is stopped and the directory removed at the end, or on Ctrl-C / SIGTERM (partial summary).\n\n' +
          'Exit code: 0 if no request was lost, 1 otherwise or if the mesh could not start, 2 for a usage error.',
      )
      .option('duration', {
        type: 'number',
        requiresArg: true,
        default: 14,
        describe: `Seconds of load, 1 to ${MAX_DURATION_S} (at least ${MIN_FAULT_DURATION_S} with the broker kill). Env: MESHD_DURATION`,
      })
      .option('brokers', {
        type: 'number',
        requiresArg: true,
        default: 3,
        describe: `Brokers, 1 to ${MAX_BROKERS} (with 1 no broker is killed). Env: MESHD_BROKERS`,
      })
      .option('workers', {
        type: 'number',
        requiresArg: true,
        default: 2,
        describe: `Echo workers, 1 to ${MAX_WORKERS}. Env: MESHD_WORKERS`,
      })
      .option('fault', {
        type: 'boolean',
        default: true,
        describe: 'Kill and restart a broker during the load; --no-fault: leave them alone. Env: MESHD_FAULT',
      })
      .option('json', {
        type: 'boolean',
        default: false,
        describe: 'Print the summary as one JSON line on stdout; the live view goes to stderr. Env: MESHD_JSON',
      })
      .check((argv) => {
        const problem = integerProblem('duration', argv.duration, 1, MAX_DURATION_S) ?? integerProblem('brokers', argv.brokers, 1, MAX_BROKERS) ?? integerProblem('workers', argv.workers, 1, MAX_WORKERS);
        if (problem !== undefined) return problem;
        if (argv.fault && argv.brokers > 1 && argv.duration < MIN_FAULT_DURATION_S) {
          return `--duration must be at least ${MIN_FAULT_DURATION_S} to kill and restart a broker; give a longer one or --no-fault`;
        }
        return true;
      })
      .example('$0 demo', '3 brokers, 2 workers, a client; broker-2 is killed and restarted; about 18 s')
      .example('$0 demo --duration 30 --brokers 5 --workers 4', 'a bigger mesh, for longer')
      .example('$0 demo --no-fault --json | jq .latencyMs', 'no fault; the summary as JSON')
      .epilogue(docsEpilogue('meshd-demo')),
  handler: async (argv) => {
    const ctx = contextOf(argv);
    const { runDemo } = await import('../demo/run-demo.ts');
    ctx.exitCode = await runDemo(ctx, { durationS: argv.duration, brokers: argv.brokers, workers: argv.workers, fault: argv.fault, json: argv.json });
    ctx.host.exitAfter(LINGER_MS, ctx.exitCode);
  },
};
