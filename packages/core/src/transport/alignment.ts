import type { Alignment, IncomingRecord } from './types.js';

/** The next record of a partition waiting to be delivered in step, and how its group is aligned. */
export interface WaitingNext {
  readonly next: IncomingRecord;
  readonly alignment: Alignment;
}

/**
 * Up to what timestamp a delivery pass of one alignment group (see {@link Alignment}) delivers
 * each waiting partition, given their next records: the horizon of the smallest next timestamp
 * (each topic with its own extractor: sources of one sub-topology may differ), and at least that
 * timestamp, so the partition that has it delivers at least that record and every pass moves on.
 * A partition alone in its group is delivered whole (Infinity). Each partition is cut at its
 * first record past the horizon, so offset order holds.
 */
export function passHorizon(group: readonly WaitingNext[]): number {
  if (group.length < 2) return Infinity;
  let smallest = Infinity;
  for (const { next, alignment } of group) smallest = Math.min(smallest, alignment.timestamp(next));
  return Math.max(smallest, group[0]!.alignment.horizon(smallest));
}

