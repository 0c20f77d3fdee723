/**
 * mulberry32: a tiny seeded pseudo-random generator, uniform in [0, 1). Property tests, simulators
 * and benchmarks use it so that a run reproduces from its seed.
 *
 * @example
 * const next = mulberry32(42);
 * const jitterMs = Math.floor(next() * 250);
 */
export function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let mixed = state;
    mixed = Math.imul(mixed ^ (mixed >>> 15), mixed | 1);
    mixed ^= mixed + Math.imul(mixed ^ (mixed >>> 7), mixed | 61);
    return ((mixed ^ (mixed >>> 14)) >>> 0) / 4_294_967_296;
  };
}
