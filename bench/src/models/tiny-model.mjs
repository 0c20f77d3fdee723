// @ts-check
// A trivial "model" for the worker-pool overhead benchmark (bench/src/pool-bench.ts): it does no
// work and returns a tiny object, so what is measured is the pool's own cost per window
// (structured cloning, messages, comlink, progress reports, outcome bookkeeping).

/**
 * @param {{ readonly key: string, readonly start: number }} window
 * @returns {{ readonly k: string, readonly s: number }}
 */
export default function tiny(window) {
  return { k: window.key, s: window.start };
}
