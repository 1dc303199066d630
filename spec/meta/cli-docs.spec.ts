// Every flag of the meshd command line is documented in docs/cli.md, in the
// section of its command, and every flag that section's option tables list
// exists. The commands and their flags come from the compiled CLI itself
// (`meshd --help`, then `meshd COMMAND --help` for each command and
// subcommand it lists), so a new command or flag is checked as soon as it
// exists.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { meshdArgs, root } from '../helpers/meshd-bin.ts';

/** Flags every command has; documented once, under "Global behaviour". */
const GLOBAL_FLAGS = ['help', 'version'];

function help(words: readonly string[]): string {
  const r = spawnSync(process.execPath, meshdArgs([...words, '--help']), { cwd: root, encoding: 'utf8', timeout: 60_000, env: { ...process.env, NODE_OPTIONS: '' } });
  assert.equal(r.status, 0, `meshd ${words.join(' ')} --help: ${r.stderr}`);
  return r.stdout;
}

/** The indented lines of one section of a yargs help text ("Commands:", "Options:"). */
function helpSection(text: string, title: string): string[] {
  const lines = text.split('\n');
  const start = lines.indexOf(`${title}:`);
  if (start < 0) return [];
  const out: string[] = [];
  for (const line of lines.slice(start + 1)) {
    if (line !== '' && !line.startsWith(' ')) break;
    out.push(line);
  }
  return out;
}

/** Subcommands listed by `meshd ...words --help`: `  meshd registry add  ...` → `add`. */
function subcommands(text: string, words: readonly string[]): string[] {
  const prefix = ['meshd', ...words].join(' ');
  return helpSection(text, 'Commands')
    .map((l) => new RegExp(`^ {2}${prefix} ([a-z][a-z0-9-]*)`).exec(l)?.[1])
    .filter((c): c is string => c !== undefined);
}

/** Long flags listed under "Options:": `  --key-file  ...` or `  -o, --out  ...` → `key-file`, `out`. */
function flags(text: string): string[] {
  return helpSection(text, 'Options')
    .map((l) => /^ {2}(?:-[a-zA-Z0-9], )?--([a-z0-9][a-z0-9-]*)/.exec(l)?.[1])
    .filter((f): f is string => f !== undefined);
}

interface Command {
  readonly words: readonly string[];
  readonly flags: readonly string[];
}

/** Every command and subcommand of the CLI with its flags. */
function commands(): Command[] {
  const out: Command[] = [];
  const visit = (words: string[], depth: number): void => {
    const text = help(words);
    if (words.length > 0) out.push({ words, flags: flags(text) });
    if (depth < 3) for (const sub of subcommands(text, words)) visit([...words, sub], depth + 1);
  };
  visit([], 0);
  return out;
}

interface Section {
  readonly level: number;
  readonly title: string;
  readonly start: number;
  /** Line after the section: the next heading of the same or a higher level, or the end. */
  readonly end: number;
}

const docLines = readFileSync(join(root, 'docs', 'cli.md'), 'utf8').split('\n');

const sections: Section[] = (() => {
  const heads: Array<{ level: number; title: string; start: number }> = [];
  let fenced = false;
  docLines.forEach((line, i) => {
    if (line.startsWith('```')) fenced = !fenced;
    const m = fenced ? null : /^(#{1,6})\s+(.*)$/.exec(line);
    if (m) heads.push({ level: m[1]!.length, title: m[2]!.trim(), start: i });
  });
  return heads.map((h, i) => {
    const next = heads.slice(i + 1).find((n) => n.level <= h.level);
    return { ...h, end: next?.start ?? docLines.length };
  });
})();

/** The section headed `meshd WORDS` (the command's reference section). */
function sectionOf(words: readonly string[]): Section | undefined {
  const title = `meshd ${words.join(' ')}`;
  return sections.find((s) => s.title === title || s.title === `\`${title}\``);
}

/** The text of a command's section without the sections of its subcommands. */
function ownText(words: readonly string[], all: readonly Command[]): string {
  const own = sectionOf(words);
  if (!own) return '';
  const nested = all
    .filter((c) => c.words.length > words.length && words.every((w, i) => c.words[i] === w))
    .map((c) => sectionOf(c.words))
    .filter((s): s is Section => s !== undefined && s.start > own.start && s.start < own.end);
  return docLines
    .slice(own.start, own.end)
    .filter((_, i) => !nested.some((s) => own.start + i >= s.start && own.start + i < s.end))
    .join('\n');
}

/** `--flag` as a whole flag (so `--key` is not found in `--key-file`). */
function mentions(text: string, flag: string): boolean {
  return new RegExp(`(^|[^a-z0-9-])--${flag}(?![a-z0-9-])`).test(text);
}

const all = commands();

test('the CLI lists its commands, subcommands and their flags', () => {
  const names = all.map((c) => c.words.join(' '));
  for (const expected of ['broker', 'serve', 'request', 'registry', 'registry add', 'registry remove', 'registry list', 'keygen', 'pubkey', 'address']) {
    assert.ok(names.includes(expected), `meshd ${expected} found in the help texts: ${names.join(', ')}`);
  }
  const broker = all.find((c) => c.words.join(' ') === 'broker')!;
  for (const f of ['listen', 'key', 'registry', 'peer', 'config']) assert.ok(broker.flags.includes(f), `broker --${f}: ${broker.flags.join(', ')}`);
});

test('every command has its section in docs/cli.md, headed `meshd COMMAND`', () => {
  const missing = all.filter((c) => sectionOf(c.words) === undefined).map((c) => `meshd ${c.words.join(' ')}`);
  assert.deepEqual(missing, [], 'add a heading "## meshd COMMAND" (or "### meshd COMMAND SUB") to docs/cli.md');
});

test('every flag of every command is documented in its section of docs/cli.md (or its parent command\'s)', () => {
  const undocumented: string[] = [];
  for (const c of all) {
    const texts = c.words.map((_, i) => ownText(c.words.slice(0, i + 1), all));
    for (const flag of c.flags) {
      if (GLOBAL_FLAGS.includes(flag)) continue;
      if (!texts.some((t) => mentions(t, flag))) undocumented.push(`meshd ${c.words.join(' ')} --${flag}`);
    }
  }
  assert.deepEqual(undocumented, []);
});

test('--help and --version are documented under "Global behaviour"', () => {
  const global = sections.find((s) => s.title === 'Global behaviour');
  assert.ok(global, 'docs/cli.md has a "Global behaviour" section');
  const text = docLines.slice(global.start, global.end).join('\n');
  for (const flag of GLOBAL_FLAGS) assert.ok(mentions(text, flag), `--${flag}`);
});

test('every flag an option table of docs/cli.md lists exists on that command', () => {
  const stale: string[] = [];
  for (const c of all) {
    for (const line of ownText(c.words, all).split('\n')) {
      const flag = /^\| `--([a-z0-9][a-z0-9-]*)/.exec(line)?.[1];
      // `--no-X` is yargs' negation of the boolean option `--X`.
      const known = flag !== undefined && (c.flags.includes(flag) || (flag.startsWith('no-') && c.flags.includes(flag.slice(3))));
      if (flag !== undefined && !known) stale.push(`meshd ${c.words.join(' ')}: --${flag}`);
    }
  }
  assert.deepEqual(stale, []);
});
