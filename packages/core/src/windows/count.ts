import type { Collected } from '../aggregations.js';
import type { Buckets, KeyState, WindowStrategy, WindowView } from './strategy.js';

/**
 * Count windows: per key, every `step` records in arrival order, a window of the last `size`
 * records (fewer while a key has seen fewer). A window's bounds are its records' timestamps:
 * `[earliest, latest + 1)`. Time plays no part, so nothing is ever late.
 */
export class CountWindows implements WindowStrategy {
  constructor(
    readonly size: number,
    readonly step: number,
    readonly buckets: Buckets,
  ) {}

  add(
    state: KeyState,
    value: unknown,
    timestamp: number,
    sequence: number,
    _streamTime: number,
    _missed: (start: number, end: number) => void,
    closed: (window: WindowView) => void,
  ): boolean {
    let bucket = state.buckets[0];
    if (!bucket) {
      bucket = { start: 0, end: 0, partial: [], count: 0 };
      state.buckets.push(bucket);
    }
    const recent = bucket.partial as Collected<unknown>[];
    recent.push([timestamp, sequence, value]);
    if (recent.length > this.size) recent.shift();
    bucket.count = (bucket.count ?? 0) + 1;
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

  openWindows(state: KeyState): WindowView[] {
    const bucket = state.buckets[0];
    const recent = bucket?.partial as Collected<unknown>[] | undefined;
    return recent && recent.length > 0 ? [this.#view(recent)] : [];
  }

  countOpen(state: KeyState): number {
    const recent = state.buckets[0]?.partial as Collected<unknown>[] | undefined;
    return recent && recent.length > 0 ? 1 : 0;
  }

  restored(): void {}
}
