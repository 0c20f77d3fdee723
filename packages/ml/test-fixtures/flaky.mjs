// Fails the first `value.failTimes` calls for each key, then succeeds. Counts live in the worker,
// so tests use a single-worker pool.
const callsByKey = new Map();

export default function flaky(window) {
  const calls = (callsByKey.get(window.key) ?? 0) + 1;
  callsByKey.set(window.key, calls);
  if (calls <= window.value.failTimes) throw new Error(`attempt ${calls} of ${window.key} fails`);
  return { key: window.key, calls };
}
