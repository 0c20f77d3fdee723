import type { Aggregation } from '../aggregations.js';

/**
 * A stored unit of window state for one key: a slice (tumbling, hopping), the records of one
 * timestamp (sliding), a session, or the last records (count). Windows are computed from buckets.
 */
export interface Bucket {
  start: number;
  end: number;
  partial: unknown;
  /** Sliding windows: the state of the window ending at this bucket's timestamp. */
  own?: 'pending' | 'emitted' | 'none';
  /** Count windows: records seen since the key's state was created. */
  count?: number;
  /** Serialized size at the last flush (cache accounting). */
  bytes?: number;
  /** Changed since the last flush. */
  dirty?: boolean;
  /** Its storage key holds it (a flush wrote it, or it was read back): removing it needs a tombstone. */
  stored?: boolean;
}

/** The state of one key in one window operator. */
export interface KeyState {
  readonly key: unknown;
  /** The key's identity in the operator's map. */
  readonly id: unknown;
  /** Sorted by start; disjoint. */
  readonly buckets: Bucket[];
  /** Tumbling and hopping: windows starting before this are closed for this key. */
  nextStart: number;
  /** The stream time of this key's next event (a window closing, a bucket expiring). */
  due: number | undefined;
  /** Sliding windows: timestamps whose own window is still to be emitted, ascending. */
  pending?: number[];
  /** Cache accounting: serialized size of the buckets at the last flush, and the last use. */
  bytes: number;
  lastUsed: number;
  /** The buckets are on disk only (evicted); everything else stays to keep deadlines. */
  evicted: boolean;
}

/** A window ready to be reported: its bounds and the combined partial. */
export interface WindowView {
  readonly start: number;
  readonly end: number;
  readonly partial: unknown;
}

/**
 * Receives bucket changes so that the commit can write them: `changed` for a bucket updated in
 * place (cheap: called per record), `removed` for a bucket whose storage key goes away (`stored`:
 * whether that key was ever written; a bucket born and gone between two flushes leaves nothing).
 */
export interface ChangeSink {
  changed(state: KeyState, bucket: Bucket): void;
  removed(state: KeyState, start: number, stored: boolean): void;
}

/**
 * One window kind's rules, behind one interface: where a record goes, which windows it missed,
 * when the next window of a key closes and what it contains. Adding a window kind touches no
 * aggregation and no operator.
 */
export interface WindowStrategy {
  /**
   * Adds a record at `timestamp` when the task's stream time is `streamTime`. Calls `missed` for
   * each closed window the record belongs to, `closed` for windows the record itself completes
   * (count windows). Returns false when the record belongs to no open window.
   */
  add(
    state: KeyState,
    value: unknown,
    timestamp: number,
    sequence: number,
    streamTime: number,
    missed: (start: number, end: number) => void,
    closed: (window: WindowView) => void,
  ): boolean;
  /** The stream time at which `fire` has work for this key, or undefined. */
  due(state: KeyState): number | undefined;
  /** Does the work due: emits at most one closed window through `closed`, expires buckets. */
  fire(state: KeyState, closed: (window: WindowView) => void): void;
  /** The open windows of a key with their current partials, in window order. */
  openWindows(state: KeyState): WindowView[];
  /** How many windows `openWindows` would give, without combining partials (for metrics). */
  countOpen(state: KeyState): number;
  /** After a restore: re-derives cursors from the stream time. */
  restored(state: KeyState, streamTime: number): void;
}

/** Shared bucket helpers. */
export class Buckets {
  constructor(
    readonly aggregation: Aggregation<unknown, unknown, unknown>,
    readonly changes: ChangeSink,
  ) {}

  /** The bucket starting at `start`, created (in order) with `end` if missing. */
  upsert(state: KeyState, start: number, end: number): Bucket {
    const buckets = state.buckets;
    const last = buckets[buckets.length - 1];
    // In-order data appends; only out-of-order records pay for the search.
    if (last === undefined || last.start < start) {
      const bucket: Bucket = { start, end, partial: this.aggregation.init() };
      buckets.push(bucket);
      return bucket;
    }
    if (last.start === start) return last;
    const index = lowerBound(buckets, start);
    const found = buckets[index];
    if (found && found.start === start) return found;
    const bucket: Bucket = { start, end, partial: this.aggregation.init() };
    buckets.splice(index, 0, bucket);
    return bucket;
  }

  add(state: KeyState, bucket: Bucket, value: unknown, timestamp: number, sequence: number): void {
    bucket.partial = this.aggregation.add(bucket.partial, value, timestamp, sequence);
    if (!bucket.dirty) this.changes.changed(state, bucket);
  }

  /** Merges the partials of buckets [from, to) in order into a fresh partial. */
  combine(buckets: readonly Bucket[], from: number, to: number): unknown {
    const aggregation = this.aggregation;
    let partial = aggregation.clone(buckets[from]!.partial);
    for (let index = from + 1; index < to; index++) partial = aggregation.merge(partial, buckets[index]!.partial);
    return partial;
  }

  /** Removes the first `count` buckets. */
  dropFirst(state: KeyState, count: number): void {
    if (count <= 0) return;
    for (let index = 0; index < count; index++) {
      const bucket = state.buckets[index]!;
      this.changes.removed(state, bucket.start, bucket.stored === true);
    }
    state.buckets.splice(0, count);
  }
}

/** The index of the first bucket whose start is ≥ `start`. */
export function lowerBound(buckets: readonly Bucket[], start: number): number {
  let low = 0;
  let high = buckets.length;
  while (low < high) {
    const middle = (low + high) >> 1;
    if (buckets[middle]!.start < start) low = middle + 1;
    else high = middle;
  }
  return low;
}

/** Rounds down to a multiple of `step`, correctly for negative times too. */
export const floorTo = (time: number, step: number) => Math.floor(time / step) * step;

export function gcd(a: number, b: number): number {
  while (b !== 0) [a, b] = [b, a % b];
  return a;
}
