// Opens many connections from one process, at most `parallel` at a time,
// for the idle-node peers of `npm run bench:compare -- --scale`.

/**
 * Calls `dial(i)` for i = 0 … count-1, at most `parallel` at once. Resolves
 * with what the dials resolved with (in completion order), the failures by
 * error code, and the time it took in ms.
 */
export async function dialAll(count, parallel, dial) {
  const start = performance.now();
  const opened = [];
  const failures = {};
  let next = 0;
  const lane = async () => {
    while (next < count) {
      const i = next++;
      try {
        opened.push(await dial(i));
      } catch (error) {
        const code = String(error?.code ?? error);
        failures[code] = (failures[code] ?? 0) + 1;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, parallel) }, lane));
  return { opened, failures, ms: Math.round(performance.now() - start) };
}
