/** A workerPool model that fails in the way the window's records ask for (their `mode`). */
export function init() {}
export default async function model(window) {
  const mode = window.value.find?.((v) => v.mode)?.mode;
  if (mode === 'throw-error') throw new RangeError(`bad window ${window.key}`);
  if (mode === 'throw-string') throw `string thrown ${window.key}`;
  if (mode === 'throw-undefined') throw undefined;
  if (mode === 'throw-object') throw { weird: true };
  if (mode === 'reject') return Promise.reject(new Error('rejected'));
  if (mode === 'function') return { f: () => 1 };
  if (mode === 'undefined') return undefined;
  return { key: window.key, start: window.start, n: window.value.length };
}
export function badInit() {}
