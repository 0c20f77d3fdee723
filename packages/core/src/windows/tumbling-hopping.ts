import { toMs, type Duration } from '../duration.js';
import { ConfigError } from '../errors.js';
import { decodeBucket, encodeBucket } from './bucket-codec.js';
import { graceMs, type WindowOptions } from './options.js';
import { floorTo, gcd, windowsHolding, type Bucket, type Buckets, type KeyState, type WindowDefinition, type WindowStrategy, type WindowView } from './strategy.js';

/** `tumbling(size)`: hopping windows whose slide is their size. */
export function tumblingWindows(size: Duration, options?: WindowOptions): WindowDefinition {
  const sizeMs = toMs(size, 'tumbling window size');
  const grace = graceMs(options, 'tumbling window');
  return {
    kind: 'tumbling',
    graceMs: grace,
    lateFrom: (timestamp) => floorTo(timestamp, sizeMs) + sizeMs + grace,
    description: `tumbling(${sizeMs}ms, grace ${grace}ms)`,
    defaultStoreName: (aggregation) => `tumbling-${sizeMs}ms-grace-${grace}ms-${aggregation}`,
    createStrategy: (buckets) => new HoppingWindows(sizeMs, sizeMs, grace, buckets),
  };
}

/** `hopping(size, slide)`: windows `[k*slide, k*slide + size)`. */
export function hoppingWindows(size: Duration, slide: Duration, options?: WindowOptions): WindowDefinition {
  const sizeMs = toMs(size, 'hopping window size');
  const slideMs = toMs(slide, 'hopping window slide');
  if (slideMs > sizeMs) {
    throw new ConfigError(`hopping window: slide ${JSON.stringify(slide)} is larger than size ${JSON.stringify(size)} (records would fall between windows)`);
  }
  const grace = graceMs(options, 'hopping window');
  return {
    kind: 'hopping',
    graceMs: grace,
    // Its first window closes first: the one starting at the first slide after timestamp - size.
    lateFrom: (timestamp) => floorTo(timestamp - sizeMs, slideMs) + slideMs + sizeMs + grace,
    description: `hopping(${sizeMs}ms, ${slideMs}ms, grace ${grace}ms)`,
    defaultStoreName: (aggregation) => `hopping-${sizeMs}ms-${slideMs}ms-grace-${grace}ms-${aggregation}`,
    createStrategy: (buckets) => new HoppingWindows(sizeMs, slideMs, grace, buckets),
  };
}

/** A key of tumbling or hopping windows: its slices, and where its open windows begin. */
export interface HoppingKeyState extends KeyState {
  /** Windows starting before this are closed for this key. */
  nextStart: number;
}

/**
 * Tumbling and hopping windows `[k*slide, k*slide + size)` on slices of gcd(size, slide): a record
 * updates exactly one slice, and a window combines its size/gcd slices when it closes. So the
 * per-record state work is O(1) whatever the overlap, and `collect()` stores each record once.
 */
export class HoppingWindows implements WindowStrategy<HoppingKeyState> {
  readonly sliceMs: number;

  constructor(
    readonly sizeMs: number,
    readonly slideMs: number,
    readonly graceMs: number,
    readonly buckets: Buckets,
  ) {
    this.sliceMs = gcd(sizeMs, slideMs);
  }

  createKeyState(key: unknown, id: unknown): HoppingKeyState {
    // One literal, not a spread: the cursor read on every record lives in the object itself.
    return { key, id, buckets: [], due: undefined, bytes: 0, lastUsed: 0, evicted: false, nextStart: -Infinity };
  }

  /** The first window start that is still open at `streamTime` (closes at start + size + grace). */
  openFrom(streamTime: number): number {
    if (streamTime === -Infinity) return -Infinity;
    return floorTo(streamTime - this.sizeMs - this.graceMs, this.slideMs) + this.slideMs;
  }

  add(state: HoppingKeyState, value: unknown, timestamp: number, sequence: number, streamTime: number, missed: (start: number, end: number) => void): boolean {
    const { sizeMs, slideMs } = this;
    const openFrom = this.openFrom(streamTime);
    if (state.nextStart < openFrom) state.nextStart = openFrom;
    const lastWindow = floorTo(timestamp, slideMs);
    if (state.nextStart > floorTo(timestamp - sizeMs, slideMs) + slideMs) {
      for (let start = floorTo(timestamp - sizeMs, slideMs) + slideMs; start < state.nextStart && start <= lastWindow; start += slideMs) {
        missed(start, start + sizeMs);
      }
      if (lastWindow < state.nextStart) return false;
    }
    const sliceStart = floorTo(timestamp, this.sliceMs);
    this.buckets.addAt(state, sliceStart, sliceStart + this.sliceMs, value, timestamp, sequence);
    return true;
  }

  /** The next window of this key that has records: at or after the cursor, containing the first slice. */
  #nextWindowStart(state: HoppingKeyState): number | undefined {
    const first = state.buckets[0];
    if (!first) return undefined;
    const firstContaining = floorTo(first.start - this.sizeMs, this.slideMs) + this.slideMs;
    return Math.max(state.nextStart, firstContaining);
  }

  due(state: HoppingKeyState): number | undefined {
    const start = this.#nextWindowStart(state);
    return start === undefined ? undefined : start + this.sizeMs + this.graceMs;
  }

  fire(state: HoppingKeyState, closed: (window: WindowView) => void): void {
    const start = this.#nextWindowStart(state);
    if (start === undefined) return;
    const end = start + this.sizeMs;
    const buckets = state.buckets;
    let to = 0;
    while (to < buckets.length && buckets[to]!.start < end) to++;
    if (to > 0) closed({ start, end, partial: this.buckets.combine(buckets, 0, to) });
    state.nextStart = start + this.slideMs;
    // Slices before the next window start belong to no window that is still open.
    let expired = 0;
    while (expired < buckets.length && buckets[expired]!.start < state.nextStart) expired++;
    this.buckets.dropFirst(state, expired);
  }

  openWindows(state: HoppingKeyState): WindowView[] {
    const views: WindowView[] = [];
    const buckets = state.buckets;
    const first = this.#nextWindowStart(state);
    const last = buckets[buckets.length - 1];
    if (first === undefined || !last) return views;
    for (let start = first; start <= last.start; start += this.slideMs) {
      const end = start + this.sizeMs;
      let from = 0;
      while (from < buckets.length && buckets[from]!.start < start) from++;
      let to = from;
      while (to < buckets.length && buckets[to]!.start < end) to++;
      if (to > from) views.push({ start, end, partial: this.buckets.combine(buckets, from, to) });
    }
    return views;
  }

  updatedWindows(state: HoppingKeyState, timestamp: number): WindowView[] {
    return windowsHolding(this.openWindows(state), timestamp);
  }

  countOpen(state: HoppingKeyState): number {
    // The windows holding a slice are those starting in (slice - size, slice]; counted as a union
    // of those ranges (slices are in order), in arithmetic only: metrics polls this for every key.
    const { sizeMs, slideMs } = this;
    const first = this.#nextWindowStart(state);
    if (first === undefined) return 0;
    let open = 0;
    let counted = first - slideMs;
    for (const bucket of state.buckets) {
      const from = Math.max(counted + slideMs, floorTo(bucket.start - sizeMs, slideMs) + slideMs);
      const to = floorTo(bucket.start, slideMs);
      if (to < from) continue;
      open += (to - from) / slideMs + 1;
      counted = to;
    }
    return open;
  }

  restored(state: HoppingKeyState, streamTime: number): void {
    state.nextStart = this.openFrom(streamTime);
  }

  encode(bucket: Bucket): Uint8Array {
    return encodeBucket(bucket, null, null);
  }

  decode(bytes: Uint8Array): Bucket {
    return decodeBucket(bytes).bucket;
  }
}
