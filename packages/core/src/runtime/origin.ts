import type { Origin } from './signals.js';

/**
 * The header a repartition record carries: the input record it comes from and its index among
 * that record's outputs. A replay after a crash writes the same records again with the same
 * origins; the reading task drops what it has already applied (at-least-once without counting a
 * record twice in state).
 */
export const ORIGIN_HEADER = 'eddy.origin';

export function encodeOrigin(origin: Origin, index: number): string {
  return `${origin.partition}:${origin.offset}:${index}:${origin.topic}`;
}

/** The origin as `[source partition key, offset, index]`, or undefined for a header we did not write. */
export function decodeOrigin(header: string | undefined): [source: string, offset: number, index: number] | undefined {
  if (header === undefined) return undefined;
  const first = header.indexOf(':');
  const second = header.indexOf(':', first + 1);
  const third = header.indexOf(':', second + 1);
  if (first < 0 || second < 0 || third < 0) return undefined;
  const offset = Number(header.slice(first + 1, second));
  const index = Number(header.slice(second + 1, third));
  if (!Number.isFinite(offset) || !Number.isFinite(index)) return undefined;
  return [`${header.slice(third + 1)}:${header.slice(0, first)}`, offset, index];
}
