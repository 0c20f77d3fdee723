import type { Collected } from '../aggregations.js';
import { ConfigError } from '../errors.js';
import { decodeBucket, encodeBucket } from './bucket-codec.js';
import type { WindowOptions } from './options.js';
import { newKeyState, type Bucket, type Buckets, type KeyState, type WindowDefinition, type WindowStrategy, type WindowView } from './strategy.js';

/** `countWindow(size, step)`: per key, every `step` records, the last `size`. */
export function countWindows(size: number, step: number | undefined, _options?: WindowOptions): WindowDefinition {
  if (!Number.isInteger(size) || size < 1) throw new ConfigError(`countWindow: size must be a positive integer, got ${String(size)}`);
  const resolvedStep = step ?? size;
  if (!Number.isInteger(resolvedStep) || resolvedStep < 1) {
    throw new ConfigError(`countWindow: step must be a positive integer, got ${String(step)}`);
  }
  return {
    kind: 'count',
    description: `countWindow(${size}, step ${resolvedStep})`,
    defaultStoreName: (aggregation) => `count-${size}-${resolvedStep}-${aggregation}`,
    createStrategy: (buckets) => new CountWindows(size, resolvedStep, buckets),
  };
}

/**
 * A key's one bucket: its last `size` records as `[timestamp, sequence, value]` in arrival order
 * (whatever the aggregation, which runs when a window is reported), and how many it has seen.
 */
export interface CountBucket extends Bucket {
  partial: Collected<unknown>[];
  /** Records seen since the key's state was created. */
  count: number;
}

export type CountKeyState = KeyState<CountBucket>;

/**
 * Count windows: per key, every `step` records in arrival order, a window of the last `size`
 * records (fewer while a key has seen fewer). A window's bounds are its records' timestamps:
 * `[earliest, latest + 1)`. Time plays no part, so nothing is ever late.
 */
export class CountWindows implements WindowStrategy<CountKeyState> {
  constructor(
    readonly size: number,
    readonly step: number,
    readonly buckets: Buckets,
  ) {}

  createKeyState(key: unknown, id: unknown): CountKeyState {
    return newKeyState(key, id);
  }

  add(
    state: CountKeyState,
    value: unknown,
    timestamp: number,
    sequence: number,
    _streamTime: number,
    _missed: (start: number, end: number) => void,
    closed: (window: WindowView) => void,
  ): boolean {
    // The aggregation runs when a window is reported; it must take this value now, or the record
    // is dead-lettered here instead of failing every window that would hold it.
    const aggregation = this.buckets.aggregation;
    aggregation.add(aggregation.init(), value, timestamp, sequence);
    let bucket = state.buckets[0];
    if (!bucket) {
      bucket = { start: 0, end: 0, partial: [], count: 0 };
      state.buckets.push(bucket);
    }
    const recent = bucket.partial;
    recent.push([timestamp, sequence, value]);
    if (recent.length > this.size) recent.shift();
    bucket.count++;
    if (!bucket.dirty) this.buckets.changes.changed(state, bucket);
    if (bucket.count % this.step === 0) closed(this.#view(recent));
    return true;
  }

  #view(recent: readonly Collected<unknown>[]): WindowView {
    const aggregation = this.buckets.aggregation;
    let partial = aggregation.init();
    let earliest = Infinity;
    let latest = -Infinity;
    for (const [timestamp, sequence, value] of recent) {
      partial = aggregation.add(partial, value, timestamp, sequence);
      if (timestamp < earliest) earliest = timestamp;
      if (timestamp > latest) latest = timestamp;
    }
    return { start: earliest, end: latest + 1, partial };
  }

  due(): number | undefined {
    return undefined;
  }

  fire(): void {}

  openWindows(state: CountKeyState): WindowView[] {
    const recent = state.buckets[0]?.partial;
    return recent && recent.length > 0 ? [this.#view(recent)] : [];
  }

  /** A record completes or extends the key's one window, whatever its timestamp. */
  updatedWindows(state: CountKeyState): WindowView[] {
    return this.openWindows(state);
  }

  countOpen(state: CountKeyState): number {
    const recent = state.buckets[0]?.partial;
    return recent && recent.length > 0 ? 1 : 0;
  }

  restored(): void {}

  encode(bucket: CountBucket): Uint8Array {
    return encodeBucket(bucket, null, bucket.count);
  }

  decode(bytes: Uint8Array): CountBucket {
    const { bucket, count } = decodeBucket(bytes);
    // Every count bucket was written with its count; 0 only stands in for a corrupt value.
    return Object.assign(bucket as CountBucket, { count: count ?? 0 });
  }
}
