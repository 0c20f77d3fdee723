// Fails the first `value.failTimes` calls for each key, then succeeds. Calls are counted in a file
// per key under `value.countsDir`, since a worker whose handler threw is replaced.
import { appendFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export default function flaky(window) {
  const countFile = join(window.value.countsDir, window.key);
  appendFileSync(countFile, 'x');
  const calls = readFileSync(countFile, 'utf8').length;
  if (calls <= window.value.failTimes) throw new Error(`attempt ${calls} of ${window.key} fails`);
  return { key: window.key, calls };
}
