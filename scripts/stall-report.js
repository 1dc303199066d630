// What run-specs.js prints when a test run has gone quiet for too long (a
// test file hangs): every process of the run's process group, from /proc,
// with its state and where its threads sleep in the kernel, and for each
// Node.js process a diagnostic report (JavaScript stack, native stack,
// libuv handles: the sockets, pipes, timers and child processes that keep
// its event loop alive). The test processes run with NODE_OPTIONS
// --report-on-signal, so SIGUSR2 makes them write a report instead of
// ending them; a process without that option is not signalled.
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/** The NODE_OPTIONS flags that let stallReport ask a test process for a report (written into `dir`). */
export function reportOptions(dir) {
  return `--report-on-signal --report-signal=SIGUSR2 --report-directory=${dir}`;
}

function read(path) {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

/** pid, state and process group of /proc/PID/stat (the command name may hold spaces and parentheses). */
function statOf(pid) {
  const stat = read(`/proc/${pid}/stat`);
  if (!stat) return undefined;
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { state: rest[0], ppid: Number(rest[1]), pgrp: Number(rest[2]) };
}

function threadsOf(pid) {
  let tids;
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return [];
  }
  return tids.map((tid) => {
    const name = (read(`/proc/${pid}/task/${tid}/comm`) ?? '?').trim();
    const state = statOf(`${pid}/task/${tid}`)?.state ?? '?';
    const wchan = (read(`/proc/${pid}/task/${tid}/wchan`) ?? '?').trim() || '-';
    return `${name}:${state}:${wchan}`;
  });
}

/** Every process whose process group is `pgid`. */
function groupMembers(pgid) {
  const out = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = statOf(entry);
    if (stat?.pgrp !== pgid) continue;
    const cmdline = (read(`/proc/${entry}/cmdline`) ?? '').split('\0').filter(Boolean).join(' ');
    const environ = read(`/proc/${entry}/environ`) ?? '';
    out.push({ pid: Number(entry), ...stat, cmdline, reports: environ.includes('--report-on-signal') });
  }
  return out;
}

/**
 * The test-file processes of a run: the children of its runner (`node
 * --test`, pid `runnerPid`, which leads the process group), each running
 * one spec file, the last argument of its command line. With each, the
 * pids of its whole process tree (the brokers and workers its tests
 * started), children first.
 */
export function fileProcesses(runnerPid) {
  const members = groupMembers(runnerPid);
  const tree = (pid) => members.filter((m) => m.ppid === pid).flatMap((m) => [...tree(m.pid), m.pid]);
  return members
    .filter((m) => m.ppid === runnerPid)
    .map((m) => {
      const args = (read(`/proc/${m.pid}/cmdline`) ?? '').split('\0').filter(Boolean);
      return { pid: m.pid, file: args.at(-1) ?? '?', pids: [...tree(m.pid), m.pid] };
    });
}

function summarizeReport(path) {
  let report;
  try {
    report = JSON.parse(readFileSync(path, 'utf8'));
  } catch (error) {
    return [`  (unreadable report ${path}: ${error.message})`];
  }
  const lines = [];
  const js = report.javascriptStack?.stack ?? [];
  lines.push(`  javascript stack: ${report.javascriptStack?.message ?? '?'}`);
  for (const frame of js.slice(0, 8)) lines.push(`    ${frame}`);
  const native = report.nativeStack ?? [];
  lines.push('  native stack (top):');
  for (const frame of native.slice(0, 8)) lines.push(`    ${frame.symbol ?? frame.pc}`);
  // The handles that keep the event loop alive.
  const handles = (report.libuv ?? []).filter((h) => h.is_referenced && h.type !== 'loop');
  lines.push(`  libuv handles keeping the event loop alive: ${handles.length}`);
  for (const h of handles.slice(0, 40)) {
    const where = [h.localEndpoint && `${h.localEndpoint.host}:${h.localEndpoint.port}`, h.remoteEndpoint && `-> ${h.remoteEndpoint.host}:${h.remoteEndpoint.port}`, h.fd !== undefined && `fd ${h.fd}`, h.pid !== undefined && `pid ${h.pid}`, h.timeout !== undefined && `timeout ${h.timeout}`].filter(Boolean).join(' ');
    lines.push(`    ${h.type}${h.is_active ? '' : ' (inactive)'}${where ? ` ${where}` : ''}`);
  }
  lines.push(`  report: ${path}`);
  return lines;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Describes the process group `pgid` (a test run gone quiet for `quietMs`),
 * asking its Node.js processes for reports written into `dir`. Resolves with
 * the lines to print. Bounded: waits at most 5 s for the reports.
 */
export async function stallReport(pgid, quietMs, dir) {
  mkdirSync(dir, { recursive: true });
  const before = new Set(existsSync(dir) ? readdirSync(dir) : []);
  const members = groupMembers(pgid);
  const lines = [`run-specs: no test output for ${Math.round(quietMs / 1000)} s. Processes of the run (pid ppid state cmdline; threads name:state:wchan):`];
  for (const m of members) {
    lines.push(`  ${m.pid} ${m.ppid} ${m.state} ${m.cmdline.slice(0, 300)}`);
    lines.push(`    threads: ${threadsOf(m.pid).join(' ')}`);
  }
  const asked = members.filter((m) => m.reports);
  for (const m of asked) {
    try {
      process.kill(m.pid, 'SIGUSR2');
    } catch {
      // gone meanwhile
    }
  }
  const deadline = Date.now() + 5000;
  let fresh = [];
  while (Date.now() < deadline) {
    fresh = readdirSync(dir).filter((f) => !before.has(f) && f.endsWith('.json'));
    if (fresh.length >= asked.length) break;
    await sleep(100);
  }
  await sleep(200); // let the last report finish writing
  for (const f of fresh) {
    const pid = /^report\.\d+\.\d+\.(\d+)\./.exec(f)?.[1] ?? '?';
    lines.push(`node report of pid ${pid}:`);
    lines.push(...summarizeReport(join(dir, f)));
  }
  return lines;
}
