// @ts-check
// A CPU-bound "model" for the worker-pool benchmark (bench/src/pool-bench.ts): per window it runs a
// fixed number of iterations of a deterministic numeric loop, about 10 ms of pure CPU (no sleep,
// no I/O). The iteration count is calibrated once by the main thread and handed over through the
// environment variable below: a worker thread starts with a copy of its parent's process.env, so
// the main thread (inline run) and every worker run the very same amount of work per window.
//
// Plain JavaScript so that the same file runs inline (dynamic import) and in the pool's workers,
// whether the benchmark runs from bench/src or bench/dist.

export const ITERATIONS_ENV = 'EDDY_POOL_BENCH_CPU_ITERATIONS';

/** @type {number | undefined} */
let iterations;

/**
 * The work itself: an LCG driving a sum of square roots. Math.imul and Math.sqrt are exact
 * (IEEE-754, correctly rounded), so the result is the same in every thread and every run.
 * @param {number} count loop iterations
 * @param {number} seed any 32-bit integer
 * @returns {number}
 */
export function burn(count, seed) {
  let x = seed | 0;
  let acc = 0;
  for (let i = 0; i < count; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) | 0;
    acc += Math.sqrt((x >>> 0) + i);
  }
  return acc;
}

/** Reads the calibrated iteration count and warms the loop up (so the first window is not slower). */
export function init() {
  const raw = process.env[ITERATIONS_ENV];
  const count = Number(raw);
  if (!Number.isInteger(count) || count < 1) {
    throw new Error(`cpu-model: ${ITERATIONS_ENV} must be a positive integer, got ${JSON.stringify(raw)}`);
  }
  iterations = count;
  for (let round = 0; round < 5; round++) burn(Math.min(count, 200_000), round);
}

/**
 * @typedef {{ readonly sensor: string, readonly value: number, readonly ts: number }} Reading
 * @typedef {{ readonly key: string, readonly start: number, readonly end: number, readonly value: readonly Reading[] }} Window
 * @typedef {{ readonly sensor: string, readonly start: number, readonly n: number, readonly mean: number, readonly score: number }} Score
 */

/**
 * @param {Window} window
 * @returns {Score}
 */
export default function score(window) {
  if (iterations === undefined) throw new Error('cpu-model: init() was not called');
  let sum = 0;
  for (const reading of window.value) sum += reading.value;
  const mean = window.value.length === 0 ? 0 : sum / window.value.length;
  // The seed depends on the window, so nothing can be hoisted or cached across windows.
  const seed = (window.start / 1000) ^ Math.round(mean * 100) ^ window.value.length;
  const acc = burn(iterations, seed);
  return { sensor: window.key, start: window.start, n: window.value.length, mean, score: acc / iterations };
}
