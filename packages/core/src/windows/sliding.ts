import { lowerBound, type Bucket, type Buckets, type KeyState, type WindowStrategy, type WindowView } from './strategy.js';

/**
 * Sliding windows: one window per key and distinct timestamp t, covering `(t - size, t]`, closing
 * at `t + 1 + grace`. Each bucket holds the partial of one timestamp (a 1 ms slice); a record
 * touches one bucket, and a window combines the buckets it covers when it closes.
 */
export class SlidingWindows implements WindowStrategy {
  constructor(
    readonly sizeMs: number,
    readonly graceMs: number,
    readonly buckets: Buckets,
  ) {}

  #closeTime(timestamp: number): number {
    return timestamp + 1 + this.graceMs;
  }

  add(state: KeyState, value: unknown, timestamp: number, sequence: number, streamTime: number, missed: (start: number, end: number) => void): boolean {
    const ownOpen = this.#closeTime(timestamp) > streamTime;
    const buckets = state.buckets;
    if (!ownOpen) {
      // Later windows can only have closed if this record's own window has.
      missed(timestamp - this.sizeMs + 1, timestamp + 1);
      let stillOpen = false;
      for (let index = lowerBound(buckets, timestamp + 1); index < buckets.length && buckets[index]!.start < timestamp + this.sizeMs; index++) {
        const bucket = buckets[index]!;
        if (bucket.own === 'emitted') missed(bucket.start - this.sizeMs + 1, bucket.start + 1);
        else if (bucket.own === 'pending') stillOpen = true;
      }
      if (!stillOpen) return false;
    }
    const bucket = this.buckets.upsert(state, timestamp, timestamp + 1);
    if (bucket.own === undefined) {
      bucket.own = ownOpen ? 'pending' : 'none';
      if (ownOpen) insertSorted((state.pending ??= []), timestamp);
    }
    this.buckets.add(state, bucket, value, timestamp, sequence);
    return true;
  }

  /** The first bucket whose own window is still to be emitted. */
  #firstPending(state: KeyState): Bucket | undefined {
    const timestamp = state.pending?.[0];
    return timestamp === undefined ? undefined : state.buckets[lowerBound(state.buckets, timestamp)];
  }

  due(state: KeyState): number | undefined {
    const first = state.buckets[0];
    if (!first) return undefined;
    // A bucket expires when no window that could still be open covers it.
    const expiry = first.start + this.sizeMs + this.graceMs;
    const pending = this.#firstPending(state);
    return pending ? Math.min(expiry, this.#closeTime(pending.start)) : expiry;
  }

  fire(state: KeyState, closed: (window: WindowView) => void): void {
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
      pending.own = 'emitted';
      state.pending!.shift();
      this.buckets.changes.changed(state, pending);
    } else {
      this.buckets.dropFirst(state, 1);
    }
  }

  openWindows(state: KeyState): WindowView[] {
    const buckets = state.buckets;
    const views: WindowView[] = [];
    for (const bucket of buckets) {
      if (bucket.own !== 'pending') continue;
      const end = bucket.start + 1;
      const from = lowerBound(buckets, end - this.sizeMs);
      const to = lowerBound(buckets, end);
      views.push({ start: end - this.sizeMs, end, partial: this.buckets.combine(buckets, from, to) });
    }
    return views;
  }

  countOpen(state: KeyState): number {
    let open = 0;
    for (const bucket of state.buckets) if (bucket.own === 'pending') open++;
    return open;
  }

  restored(state: KeyState): void {
    state.pending = state.buckets.filter((bucket) => bucket.own === 'pending').map((bucket) => bucket.start);
  }
}

function insertSorted(values: number[], value: number): void {
  let index = values.length;
  while (index > 0 && values[index - 1]! > value) index--;
  values.splice(index, 0, value);
}
