import type { Origin } from './signals.js';

/**
 * Three words for where records come from, kept apart:
 * - {@link Origin} (signals.ts): the input record a signal derives from, named in dead letters.
 * - {@link ReplayStamp}: what a repartition record carries so that a replay of it is recognised.
 * - {@link ReplayMark}: per upstream input partition, the last stamp a reading task applied.
 */

/**
 * The header that carries a repartition record's {@link ReplayStamp} over Kafka; on the embedded
 * broker the stamp travels as numbers beside the value. Its name is on the wire: it stays.
 */
export const ORIGIN_HEADER = 'eddy.origin';

/**
 * Which output of which input record a repartition record is: the input partition (`source`),
 * the input record's offset, and its index among that record's outputs. A replay after a crash
 * writes the same records again with the same stamps; the reading task drops what it has already
 * applied (at-least-once without counting a record twice in state).
 */
export type ReplayStamp = readonly [source: string, offset: number, index: number];

/** The highest stamp applied from one upstream input partition: its offset and output index. */
export type ReplayMark = [offset: number, index: number];

/** The key of an input partition in replay stamps and marks. */
export const replaySourceOf = (origin: Origin): string => `${origin.topic}:${origin.partition}`;

export function encodeReplayStamp([source, offset, index]: ReplayStamp): string {
  return `${offset}:${index}:${source}`;
}

/** The stamp of a header we wrote, or undefined. */
export function decodeReplayStamp(header: string | undefined): ReplayStamp | undefined {
  if (header === undefined) return undefined;
  const first = header.indexOf(':');
  const second = header.indexOf(':', first + 1);
  if (first < 0 || second < 0) return undefined;
  const offset = Number(header.slice(0, first));
  const index = Number(header.slice(first + 1, second));
  if (!Number.isFinite(offset) || !Number.isFinite(index)) return undefined;
  return [header.slice(second + 1), offset, index];
}

