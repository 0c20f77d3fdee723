import type { Alignment, IncomingRecord } from './types.js';

/** The records of one partition waiting to be delivered in step: `records` from index `start` on. */
export interface WaitingRun {
  readonly records: readonly IncomingRecord[];
  readonly start: number;
  readonly alignment: Alignment;
}

/**
 * Where this delivery pass cuts each waiting run of one alignment group (see {@link Alignment}):
 * for each run, the index after its last record to deliver now. The horizon is that of the
 * smallest next timestamp among the runs; each run is cut at its first record past it, so offset
 * order holds, and the run that has the smallest keeps at least that record, so every pass moves
 * on. A run alone in its group is delivered whole. Runs must not be empty.
 */
export function alignedEnds(group: readonly WaitingRun[]): number[] {
  if (group.length < 2) return group.map(({ records }) => records.length);
  // Each topic of the group with its own timestamps (sources of one sub-topology may have different extractors).
  let horizon = Infinity;
  for (const { records, start, alignment } of group) horizon = Math.min(horizon, alignment.timestamp(records[start]!));
  horizon = Math.max(horizon, group[0]!.alignment.horizon(horizon));
  return group.map(({ records, start, alignment }) => {
    let end = start;
    while (end < records.length && alignment.timestamp(records[end]!) <= horizon) end++;
    return end;
  });
}
