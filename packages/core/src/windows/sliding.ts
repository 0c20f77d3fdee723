import { toMs, type Duration } from '../duration.js';
import { decodeBucket, encodeBucket } from './bucket-codec.js';
import { graceMs, type WindowOptions } from './options.js';
import { lowerBound, windowsHolding, type Bucket, type Buckets, type KeyState, type WindowDefinition, type WindowStrategy, type WindowView } from './strategy.js';

/** `sliding(size)`: one window per key and distinct timestamp t, covering `(t - size, t]`. */
export function slidingWindows(size: Duration, options?: WindowOptions): WindowDefinition {
  const sizeMs = toMs(size, 'sliding window size');
  const grace = graceMs(options, 'sliding window');
  return {
    kind: 'sliding',
    graceMs: grace,
    lateFrom: (timestamp) => timestamp + 1 + grace,
    description: `sliding(${sizeMs}ms, grace ${grace}ms)`,
    defaultStoreName: (aggregation) => `sliding-${sizeMs}ms-grace-${grace}ms-${aggregation}`,
    createStrategy: (buckets) => new SlidingWindows(sizeMs, grace, buckets),
  };
}

/** The records of one timestamp t of a key. */
export interface SlidingBucket extends Bucket {
  /**
   * The window ending at t, `(t - size, t]`: still to be emitted, emitted, or none (it had closed
   * when t's first record came, which still counted for later windows). Set when the bucket is made.
   */
  endingWindow?: 'pending' | 'emitted' | 'none';
}

export interface SlidingKeyState extends KeyState<SlidingBucket> {
  /** Timestamps whose ending window is still to be emitted, ascending. */
  pending: number[];
}

/**
 * Sliding windows: one window per key and distinct timestamp t, covering `(t - size, t]`, closing
 * at `t + 1 + grace`. Each bucket holds the partial of one timestamp (a 1 ms slice); a record
 * touches one bucket, and a window combines the buckets it covers when it closes.
 */
export class SlidingWindows implements WindowStrategy<SlidingKeyState> {
  constructor(
    readonly sizeMs: number,
    readonly graceMs: number,
    readonly buckets: Buckets,
  ) {}

  createKeyState(key: unknown, id: unknown): SlidingKeyState {
    return { key, id, buckets: [], due: undefined, bytes: 0, lastUsed: 0, evicted: false, pending: [] };
  }

  #closeTime(timestamp: number): number {
    return timestamp + 1 + this.graceMs;
  }

  add(state: SlidingKeyState, value: unknown, timestamp: number, sequence: number, streamTime: number, missed: (start: number, end: number) => void): boolean {
    const endingWindowOpen = this.#closeTime(timestamp) > streamTime;
    const buckets = state.buckets;
    if (!endingWindowOpen) {
      // Later windows can only have closed if this record's ending window has.
      missed(timestamp - this.sizeMs + 1, timestamp + 1);
      for (let index = lowerBound(buckets, timestamp + 1); index < buckets.length && buckets[index]!.start < timestamp + this.sizeMs; index++) {
        const bucket = buckets[index]!;
        if (bucket.endingWindow === 'emitted') missed(bucket.start - this.sizeMs + 1, bucket.start + 1);
      }
      // It still counts for the windows of later timestamps up to t + size - 1 that are open,
      // and for those yet to come: whether a record counts must not hang on which windows a
      // record of the key happened to open before it. Once stream time reaches t + size + grace,
      // every window that could hold it has closed.
      if (timestamp + this.sizeMs + this.graceMs <= streamTime) return false;
    }
    const bucket = this.buckets.addAt(state, timestamp, timestamp + 1, value, timestamp, sequence);
    if (bucket.endingWindow === undefined) {
      bucket.endingWindow = endingWindowOpen ? 'pending' : 'none';
      if (endingWindowOpen) insertSorted(state.pending, timestamp);
    }
    return true;
  }

  /** The first bucket whose ending window is still to be emitted. */
  #firstPending(state: SlidingKeyState): SlidingBucket | undefined {
    const timestamp = state.pending[0];
    return timestamp === undefined ? undefined : state.buckets[lowerBound(state.buckets, timestamp)];
  }

  due(state: SlidingKeyState): number | undefined {
    const first = state.buckets[0];
    if (!first) return undefined;
    // A bucket expires when no window that could still be open covers it.
    const expiry = first.start + this.sizeMs + this.graceMs;
    const pending = this.#firstPending(state);
    return pending ? Math.min(expiry, this.#closeTime(pending.start)) : expiry;
  }

  fire(state: SlidingKeyState, closed: (window: WindowView) => void): void {
    const buckets = state.buckets;
    const first = buckets[0];
    if (!first) return;
    const pending = this.#firstPending(state);
    const expiry = first.start + this.sizeMs + this.graceMs;
    if (pending && this.#closeTime(pending.start) <= expiry) {
      const end = pending.start + 1;
      const from = lowerBound(buckets, end - this.sizeMs);
      const to = lowerBound(buckets, end);
      closed({ start: end - this.sizeMs, end, partial: this.buckets.combine(buckets, from, to) });
      pending.endingWindow = 'emitted';
      state.pending.shift();
      this.buckets.changes.changed(state, pending);
    } else {
      this.buckets.dropFirst(state, 1);
    }
  }

  openWindows(state: SlidingKeyState): WindowView[] {
    const buckets = state.buckets;
    const views: WindowView[] = [];
    for (const bucket of buckets) {
      if (bucket.endingWindow !== 'pending') continue;
      const end = bucket.start + 1;
      const from = lowerBound(buckets, end - this.sizeMs);
      const to = lowerBound(buckets, end);
      views.push({ start: end - this.sizeMs, end, partial: this.buckets.combine(buckets, from, to) });
    }
    return views;
  }

  updatedWindows(state: SlidingKeyState, timestamp: number): WindowView[] {
    return windowsHolding(this.openWindows(state), timestamp);
  }

  countOpen(state: SlidingKeyState): number {
    let open = 0;
    for (const bucket of state.buckets) if (bucket.endingWindow === 'pending') open++;
    return open;
  }

  restored(state: SlidingKeyState): void {
    state.pending = state.buckets.filter((bucket) => bucket.endingWindow === 'pending').map((bucket) => bucket.start);
  }

  encode(bucket: SlidingBucket): Uint8Array {
    return encodeBucket(bucket, bucket.endingWindow ?? null, null);
  }

  decode(bytes: Uint8Array): SlidingBucket {
    const { bucket, endingWindow } = decodeBucket(bytes);
    const sliding: SlidingBucket = bucket;
    if (endingWindow !== null) sliding.endingWindow = endingWindow as SlidingBucket['endingWindow'];
    return sliding;
  }
}

function insertSorted(values: number[], value: number): void {
  let index = values.length;
  while (index > 0 && values[index - 1]! > value) index--;
  values.splice(index, 0, value);
}
