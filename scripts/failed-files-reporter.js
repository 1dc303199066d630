// A node:test reporter for scripts/run-specs.js: writes the path of every
// spec file with a failure, one per line, each once. run-specs compares
// them with the files it killed for hanging: a run whose only failures are
// those files passes if they pass when run again.
export default async function* failedFiles(source) {
  const seen = new Set();
  for await (const event of source) {
    if (event.type !== 'test:fail') continue;
    const file = event.data.file ?? '(no file)';
    if (seen.has(file)) continue;
    seen.add(file);
    yield `${file}\n`;
  }
}
