import type { OperatorFunction } from 'rxjs';
import type { Aggregation } from '../../aggregations.js';
import type { StoreEntry } from '../../state/backend.js';
import { decodeWindowKey, encodeWindowKey } from '../../state/keys.js';
import { CountWindows } from '../../windows/count.js';
import type { WindowDefinition } from '../../windows/definitions.js';
import { SessionWindows } from '../../windows/session.js';
import { SlicedWindows } from '../../windows/sliced.js';
import { SlidingWindows } from '../../windows/sliding.js';
import { Buckets, type Bucket, type KeyState, type WindowStrategy, type WindowView } from '../../windows/strategy.js';
import type { StatefulOperator, TaskContext } from '../context.js';
import { MinHeap } from '../min-heap.js';
import { signalOperator } from '../operator.js';
import type { Origin, Signal, WindowSignal } from '../signals.js';

/** What a window step needs to know. */
export interface WindowStepSpec {
  readonly storeName: string;
  readonly window: WindowDefinition;
  readonly aggregation: Aggregation<unknown, unknown, unknown>;
  /** Emit `update` events (only when something consumes them: they cost a combine per record). */
  readonly emitUpdates: boolean;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function createStrategy(window: WindowDefinition, buckets: Buckets): WindowStrategy {
  switch (window.kind) {
    case 'tumbling':
    case 'hopping':
      return new SlicedWindows(window.sizeMs, window.slideMs, window.graceMs, buckets);
    case 'sliding':
      return new SlidingWindows(window.sizeMs, window.graceMs, buckets);
    case 'session':
      return new SessionWindows(window.gapMs, window.graceMs, buckets);
    case 'count':
      return new CountWindows(window.size, window.step, buckets);
  }
}

const keyId = (key: unknown) => (typeof key === 'string' ? `s${key}` : `j${JSON.stringify(key)}`);

/**
 * The window step: assigns records to windows through the window kind's strategy, keeps the
 * state per key, closes windows in end order as stream time passes, and reports late records.
 * Emits `window` signals (close, update, late); records and ticks stop here.
 */
export function windowAggregate(context: TaskContext, spec: WindowStepSpec): OperatorFunction<Signal, Signal> {
  const { aggregation, storeName } = spec;
  const keys = new Map<string, KeyState>();
  const deadlines = new MinHeap<KeyState>();
  const changed = new Map<KeyState, Set<number>>();
  const buckets = new Buckets(aggregation, {
    changed(state, start) {
      let starts = changed.get(state);
      if (!starts) changed.set(state, (starts = new Set()));
      starts.add(start);
    },
  });
  const strategy = createStrategy(spec.window, buckets);
  let sequence = 0;

  const schedule = (state: KeyState) => {
    const due = strategy.due(state);
    if (due === undefined && state.buckets.length === 0) {
      state.due = undefined;
      keys.delete(state.id);
      return;
    }
    if (due !== state.due) {
      state.due = due;
      if (due !== undefined) deadlines.push(due, state);
    }
  };

  const windowSignal = (event: WindowSignal['event'], key: unknown, view: WindowView, origin: Origin | undefined): WindowSignal => ({
    type: 'window',
    event,
    key,
    start: view.start,
    end: view.end,
    value: aggregation.result(view.partial),
    timestamp: view.end - 1,
    origin,
  });

  const operator: StatefulOperator = {
    storeName,
    nextDeadline: () => {
      // Drop stale heap entries so the deadline is real.
      for (;;) {
        const priority = deadlines.peekPriority();
        if (priority === undefined) return undefined;
        const state = deadlines.pop()!;
        if (state.due === priority && keys.get(state.id) === state) {
          deadlines.push(priority, state);
          return priority;
        }
      }
    },
    openWindows() {
      let open = 0;
      for (const state of keys.values()) open += strategy.openWindows(state).length;
      return open;
    },
    takeChanges() {
      const entries: StoreEntry[] = [];
      for (const [state, starts] of changed) {
        const keyBytes = encoder.encode(JSON.stringify(state.key));
        for (const start of starts) {
          const bucket = state.buckets.find((candidate) => candidate.start === start);
          entries.push({ key: encodeWindowKey(keyBytes, start), value: bucket ? encodeBucket(bucket) : null });
        }
      }
      changed.clear();
      return entries;
    },
    restore(entries, streamTime) {
      for (const [storeKey, value] of entries) {
        const { keyBytes } = decodeWindowKey(storeKey);
        const key = JSON.parse(decoder.decode(keyBytes)) as unknown;
        const id = keyId(key);
        let state = keys.get(id);
        if (!state) keys.set(id, (state = { key, id, buckets: [], nextStart: -Infinity, due: undefined }));
        const bucket = decodeBucket(value);
        state.buckets.push(bucket);
        for (const item of collectedItems(bucket)) if (item[1] >= sequence) sequence = item[1] + 1;
      }
      for (const state of keys.values()) {
        state.buckets.sort((a, b) => a.start - b.start);
        strategy.restored(state, streamTime);
        schedule(state);
      }
    },
    query(key) {
      const state = keys.get(keyId(key));
      return state ? strategy.openWindows(state).map((view) => ({ start: view.start, end: view.end, value: aggregation.result(view.partial) })) : undefined;
    },
    *queryAll() {
      for (const state of keys.values()) yield [state.key, operator.query(state.key)] as const;
    },
  };
  context.register(operator);

  return signalOperator(context, `window ${storeName}`, (signal, emit) => {
    if (signal.type === 'tick') {
      const streamTime = signal.streamTime;
      for (;;) {
        const priority = deadlines.peekPriority();
        if (priority === undefined || priority > streamTime) break;
        const state = deadlines.pop()!;
        if (state.due !== priority || keys.get(state.id) !== state) continue;
        state.due = undefined;
        strategy.fire(state, (view) => {
          context.metrics.windowsClosed++;
          emit(windowSignal('close', state.key, view, undefined));
        });
        schedule(state);
      }
      return;
    }
    if (signal.type !== 'record') return;
    const { key, value, timestamp, origin } = signal;
    const id = keyId(key);
    let state = keys.get(id);
    const created = !state;
    if (!state) state = { key, id, buckets: [], nextStart: -Infinity, due: undefined };
    let late = false;
    const accepted = strategy.add(
      state,
      value,
      timestamp,
      sequence++,
      context.streamTime(),
      (start, end) => {
        late = true;
        emit({ type: 'window', event: 'late', key, start, end, value, timestamp, origin });
      },
      (view) => {
        context.metrics.windowsClosed++;
        emit(windowSignal('close', key, view, origin));
      },
    );
    if (late) context.metrics.lateRecords++;
    if (!accepted) return;
    if (created) keys.set(id, state);
    schedule(state);
    if (spec.emitUpdates) {
      for (const view of strategy.openWindows(state)) {
        if (spec.window.kind === 'count' || (view.start <= timestamp && timestamp < view.end)) emit(windowSignal('update', key, view, origin));
      }
    }
  });
}

function encodeBucket(bucket: Bucket): Uint8Array {
  return encoder.encode(JSON.stringify([bucket.end, bucket.partial, bucket.own ?? null, bucket.count ?? null, bucket.start]));
}

function decodeBucket(bytes: Uint8Array): Bucket {
  const [end, partial, own, count, start] = JSON.parse(decoder.decode(bytes)) as [number, unknown, Bucket['own'] | null, number | null, number];
  const bucket: Bucket = { start, end, partial };
  if (own !== null) bucket.own = own;
  if (count !== null) bucket.count = count;
  return bucket;
}

/** Collected partials carry arrival sequences; a restore continues after the largest. */
function collectedItems(bucket: Bucket): Array<[number, number, unknown]> {
  return Array.isArray(bucket.partial) && bucket.partial.every((item) => Array.isArray(item) && item.length === 3)
    ? (bucket.partial as Array<[number, number, unknown]>)
    : [];
}
