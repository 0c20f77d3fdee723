import type { Aggregation } from '../aggregations.js';

/**
 * A validated window definition: one window kind's parameters (all times in milliseconds) and the
 * rules that run it. The DSL records it in the graph; the window operator asks it for a strategy.
 * Adding a window kind is one file that exports a function returning this, and one line in
 * `definitions.ts`.
 */
export interface WindowDefinition {
  /** The kind, as its DSL method names it: `tumbling`, `hopping`, `sliding`, `session`, `count`. */
  readonly kind: string;
  /** How `describe()` shows it, e.g. `hopping(10000ms, 1000ms, grace 0ms)`. */
  readonly description: string;
  /** How far behind stream time a record may be and still count; undefined where time plays no part (count windows). */
  readonly graceMs?: number;
  /**
   * The smallest stream time at which a record stamped `timestamp` may miss a window it belongs to
   * (late), or one it would have joined (a session that closed); with `graceMs`.
   */
  readonly lateFrom?: (timestamp: number) => number;
  /** The default store name: derived from parameters only, never from the position in the chain. */
  defaultStoreName(aggregation: string): string;
  /** The rules for one window operator, keeping its buckets through `buckets`. */
  createStrategy(buckets: Buckets): WindowStrategy;
}

/**
 * A stored unit of window state for one key: a slice (tumbling, hopping), the records of one
 * timestamp (sliding), a session, or the last records (count). Windows are computed from buckets.
 * A kind adds its own fields in its own file.
 */
export interface Bucket {
  start: number;
  end: number;
  partial: unknown;
  /** Serialized size at the last flush (cache accounting). */
  bytes?: number;
  /** Changed since the last flush. */
  dirty?: boolean;
  /** Its storage key holds it (a flush wrote it, or it was read back): removing it needs a tombstone. */
  stored?: boolean;
}

/** The state of one key in one window operator; a kind adds its own cursors in its own file. */
export interface KeyState<B extends Bucket = Bucket> {
  readonly key: unknown;
  /** The key's identity in the operator's map. */
  readonly id: unknown;
  /** Sorted by start; disjoint. */
  readonly buckets: B[];
  /** The stream time of this key's next event (a window closing, a bucket expiring). */
  due: number | undefined;
  /** Cache accounting: serialized size of the buckets at the last flush, and the last use. */
  bytes: number;
  lastUsed: number;
  /** The buckets are on disk only (evicted); everything else stays to keep deadlines. */
  evicted: boolean;
}

/** The key state of a kind that keeps nothing beyond its buckets. */
export function newKeyState<B extends Bucket = Bucket>(key: unknown, id: unknown): KeyState<B> {
  return { key, id, buckets: [], due: undefined, bytes: 0, lastUsed: 0, evicted: false };
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
 * when the next window of a key closes and what it contains, and how its buckets are stored.
 * Adding a window kind touches no aggregation and no operator.
 */
export interface WindowStrategy<State extends KeyState = KeyState> {
  /** A key seen for the first time (or read back by a restore), with no buckets yet. */
  createKeyState(key: unknown, id: unknown): State;
  /**
   * Adds a record at `timestamp` when the task's stream time is `streamTime`. Calls `missed` for
   * each closed window the record belongs to, `closed` for windows the record itself completes
   * (count windows). Returns false when the record belongs to no open window.
   */
  add(
    state: State,
    value: unknown,
    timestamp: number,
    sequence: number,
    streamTime: number,
    missed: (start: number, end: number) => void,
    closed: (window: WindowView) => void,
  ): boolean;
  /** The stream time at which `fire` has work for this key, or undefined. */
  due(state: State): number | undefined;
  /** Does the work due: emits at most one closed window through `closed`, expires buckets. */
  fire(state: State, closed: (window: WindowView) => void): void;
  /** The open windows of a key with their current partials, in window order. */
  openWindows(state: State): WindowView[];
  /** The open windows a record at `timestamp`, just added, updated (for `onUpdate`), in window order. */
  updatedWindows(state: State, timestamp: number): WindowView[];
  /** How many windows `openWindows` would give, without combining partials (for metrics). */
  countOpen(state: State): number;
  /** After a restore put the buckets back: re-derives cursors from them and the stream time. */
  restored(state: State, streamTime: number): void;
  /** The stored value of a bucket; `decode` must read back what every earlier version wrote. */
  encode(bucket: BucketOf<State>): Uint8Array;
  /** A bucket read from its storage key (so marked `stored`). */
  decode(bytes: Uint8Array): BucketOf<State>;
}

export type BucketOf<State extends KeyState> = State['buckets'][number];

/** The open windows that hold `timestamp`: what a record there updated. */
export function windowsHolding(views: WindowView[], timestamp: number): WindowView[] {
  return views.filter((view) => view.start <= timestamp && timestamp < view.end);
}

/** Shared bucket helpers. */
export class Buckets {
  constructor(
    readonly aggregation: Aggregation<unknown, unknown, unknown>,
    readonly changes: ChangeSink,
  ) {}

  /**
   * Adds a record to the bucket starting at `start`, created (in order) with `end` if missing. A
   * new bucket exists only once the aggregation has taken its first value: a value it refuses
   * (the record is dead-lettered) leaves no empty window behind.
   */
  addAt<B extends Bucket>(state: KeyState<B>, start: number, end: number, value: unknown, timestamp: number, sequence: number): B {
    const buckets = state.buckets;
    const last = buckets[buckets.length - 1];
    // In-order data appends; only out-of-order records pay for the search.
    let index = buckets.length;
    if (last !== undefined && last.start >= start) {
      index = last.start === start ? buckets.length - 1 : lowerBound(buckets, start);
      const found = buckets[index];
      if (found && found.start === start) {
        this.add(state, found, value, timestamp, sequence);
        return found;
      }
    }
    const bucket = { start, end, partial: this.aggregation.add(this.aggregation.init(), value, timestamp, sequence) } as B;
    if (index === buckets.length) buckets.push(bucket);
    else buckets.splice(index, 0, bucket);
    this.changes.changed(state, bucket);
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
