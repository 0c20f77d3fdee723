import type { Origin } from './signals.js';

/**
 * Where a repartition record comes from: the input partition (`source`), the input record's
 * offset, and its index among that record's outputs. A replay after a crash writes the same
 * records again with the same origins; the reading task drops what it has already applied
 * (at-least-once without counting a record twice in state). Over Kafka the origin travels in this
 * header; on the embedded broker, as numbers beside the value.
 */
export const ORIGIN_HEADER = 'eddy.origin';

export type RecordOrigin = readonly [source: string, offset: number, index: number];

/** The key of an input partition in the high-water marks. */
export const originSource = (origin: Origin): string => `${origin.topic}:${origin.partition}`;

export function encodeOrigin([source, offset, index]: RecordOrigin): string {
  return `${offset}:${index}:${source}`;
}

/** The origin of a header we wrote, or undefined. */
export function decodeOrigin(header: string | undefined): RecordOrigin | undefined {
  if (header === undefined) return undefined;
  const first = header.indexOf(':');
  const second = header.indexOf(':', first + 1);
  if (first < 0 || second < 0) return undefined;
  const offset = Number(header.slice(0, first));
  const index = Number(header.slice(first + 1, second));
  if (!Number.isFinite(offset) || !Number.isFinite(index)) return undefined;
  return [header.slice(second + 1), offset, index];
}
