import { toMs, type Duration } from '../duration.js';
import { decodeBucket, encodeBucket } from './bucket-codec.js';
import { graceMs, type WindowOptions } from './options.js';
import { newKeyState, windowsHolding, type Bucket, type Buckets, type KeyState, type WindowDefinition, type WindowStrategy, type WindowView } from './strategy.js';

/** `session(gap)`: records of one key at most `gap` apart form a session. */
export function sessionWindows(gap: Duration, options?: WindowOptions): WindowDefinition {
  const gapMs = toMs(gap, 'session gap');
  const grace = graceMs(options, 'session window');
  return {
    kind: 'session',
    graceMs: grace,
    // The session it would extend may have ended at timestamp - gap, and closes at timestamp + grace.
    lateFrom: (timestamp) => timestamp + grace,
    description: `session(gap ${gapMs}ms, grace ${grace}ms)`,
    defaultStoreName: (aggregation) => `session-${gapMs}ms-grace-${grace}ms-${aggregation}`,
    createStrategy: (buckets) => new SessionWindows(gapMs, grace, buckets),
  };
}

/**
 * Session windows: records of one key at most `gap` apart form a session `[first, last + 1)`,
 * closing at `last + gap + grace`. A record that bridges sessions merges them.
 */
export class SessionWindows implements WindowStrategy {
  constructor(
    readonly gapMs: number,
    readonly graceMs: number,
    readonly buckets: Buckets,
  ) {}

  createKeyState(key: unknown, id: unknown): KeyState {
    return newKeyState(key, id);
  }

  add(state: KeyState, value: unknown, timestamp: number, sequence: number, streamTime: number, missed: (start: number, end: number) => void): boolean {
    const { gapMs } = this;
    const sessions = state.buckets;
    let from = 0;
    while (from < sessions.length && sessions[from]!.end - 1 + gapMs < timestamp) from++;
    let to = from;
    while (to < sessions.length && sessions[to]!.start - gapMs <= timestamp) to++;
    if (from === to) {
      if (timestamp + gapMs + this.graceMs <= streamTime) {
        missed(timestamp, timestamp + 1);
        return false;
      }
      this.buckets.addAt(state, timestamp, timestamp + 1, value, timestamp, sequence);
      return true;
    }
    // The record's value first: one the aggregation refuses (the record is dead-lettered) must
    // not have bridged the sessions around it.
    const { aggregation, changes } = this.buckets;
    const merged = sessions[from]!;
    const partial = aggregation.add(to - from > 1 ? this.buckets.combine(sessions, from, to) : merged.partial, value, timestamp, sequence);
    if (to - from > 1) {
      merged.end = sessions[to - 1]!.end;
      for (let index = from + 1; index < to; index++) changes.removed(state, sessions[index]!.start, sessions[index]!.stored === true);
      sessions.splice(from + 1, to - from - 1);
    }
    if (timestamp < merged.start) {
      // The session's storage key is its start: the old one becomes a tombstone.
      changes.removed(state, merged.start, merged.stored === true);
      merged.start = timestamp;
      merged.stored = false;
    }
    if (timestamp + 1 > merged.end) merged.end = timestamp + 1;
    merged.partial = partial;
    if (!merged.dirty) changes.changed(state, merged);
    return true;
  }

  due(state: KeyState): number | undefined {
    const first = state.buckets[0];
    return first ? first.end - 1 + this.gapMs + this.graceMs : undefined;
  }

  fire(state: KeyState, closed: (window: WindowView) => void): void {
    const first = state.buckets[0];
    if (!first) return;
    closed({ start: first.start, end: first.end, partial: this.buckets.aggregation.clone(first.partial) });
    this.buckets.dropFirst(state, 1);
  }

  openWindows(state: KeyState): WindowView[] {
    return state.buckets.map((session) => ({ start: session.start, end: session.end, partial: this.buckets.aggregation.clone(session.partial) }));
  }

  updatedWindows(state: KeyState, timestamp: number): WindowView[] {
    return windowsHolding(this.openWindows(state), timestamp);
  }

  countOpen(state: KeyState): number {
    return state.buckets.length;
  }

  restored(): void {}

  encode(bucket: Bucket): Uint8Array {
    return encodeBucket(bucket, null, null);
  }

  decode(bytes: Uint8Array): Bucket {
    return decodeBucket(bytes).bucket;
  }
}
