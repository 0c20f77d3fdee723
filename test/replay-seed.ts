/**
 * The seed of a test's random choices (the kill times of the crash tests). A test names its seed
 * in its title, so a failure shows it; `EDDY_SEED=<seed>` runs the test again with that seed.
 *
 * @example
 * const seed = replaySeed(7);
 * it(`survives repeated kills (seed ${seed})`, async () => {
 *   const random = mulberry32(seed);
 * });
 */
export function replaySeed(fallback: number): number {
  const given = process.env.EDDY_SEED;
  if (given === undefined || given === '') return fallback;
  const seed = Number(given);
  if (!Number.isSafeInteger(seed)) throw new Error(`EDDY_SEED must be an integer, got ${JSON.stringify(given)}`);
  return seed;
}
