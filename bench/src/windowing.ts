/** What the contenders agree on: window shapes, aggregations, the result record and its checksum. */

export interface WindowShape {
  readonly kind: 'hopping' | 'tumbling';
  readonly sizeMs: number;
  readonly slideMs: number;
  readonly graceMs: number;
}

export type AggregationKind = 'count' | 'collect';

export const HOPPING_10S_1S: WindowShape = { kind: 'hopping', sizeMs: 10_000, slideMs: 1_000, graceMs: 0 };
export const TUMBLING_10S: WindowShape = { kind: 'tumbling', sizeMs: 10_000, slideMs: 10_000, graceMs: 0 };

/**
 * The record every contender produces per closed window (JSON-encoded, keyed by the sensor):
 * `count` is the window's count, or the length of the collected list for `collect()`.
 */
export interface WindowSummary {
  readonly sensor: string;
  readonly start: number;
  readonly count: number;
}

/** What came out of a run: enough to tell that two contenders produced the same windows. */
export interface RunOutput {
  /** Result records produced (one per non-empty closed window). */
  windows: number;
  /** Sum of `count` over the results: the number of (record, window) memberships. */
  total: number;
  /** Sum of `start` over the results, mod 2^32 (catches windows shifted in time). */
  startHash: number;
  /** Records that missed at least one closed window. */
  lateRecords: number;
}

export function emptyOutput(): RunOutput {
  return { windows: 0, total: 0, startHash: 0, lateRecords: 0 };
}

export function addSummary(output: RunOutput, summary: WindowSummary): void {
  output.windows++;
  output.total += summary.count;
  output.startHash = (output.startHash + (summary.start % 0x100000000)) >>> 0;
}

/** Rounds down to a multiple of `step` (also for negative numbers). */
export const floorTo = (time: number, step: number): number => Math.floor(time / step) * step;

export function gcd(a: number, b: number): number {
  while (b !== 0) [a, b] = [b, a % b];
  return a;
}

/** The first window start still open at stream time `streamTime` (Eddy's rule: closes at end + grace). */
export function openFrom(shape: WindowShape, streamTime: number): number {
  if (streamTime === -Infinity) return -Infinity;
  return floorTo(streamTime - shape.sizeMs - shape.graceMs, shape.slideMs) + shape.slideMs;
}
