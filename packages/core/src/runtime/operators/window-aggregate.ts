import type { OperatorFunction } from 'rxjs';
import type { Aggregation } from '../../aggregations.js';
import { encodeUtf8 } from '../../serde.js';
import { decodeWindowKey, encodeWindowKey, keyPrefix } from '../../state/keys.js';
import { CachingStore, keyId } from '../../state/caching-store.js';
import { Buckets, type Bucket, type KeyState, type WindowDefinition, type WindowView } from '../../windows/strategy.js';
import type { StatefulOperator, TaskContext } from '../context.js';
import { KeyDeadlines } from '../deadlines.js';
import { signalOperator } from '../operator.js';
import type { Origin, RecordSignal, Signal, WindowSignal } from '../signals.js';

/** What a window step needs to know. */
export interface WindowStepSpec {
  readonly storeName: string;
  readonly window: WindowDefinition;
  readonly aggregation: Aggregation<unknown, unknown, unknown>;
  /** Emit `update` events (only when something consumes them: they cost a combine per record). */
  readonly emitUpdates: boolean;
}

const decoder = new TextDecoder();

/**
 * The window step: assigns records to windows through the window kind's strategy, keeps the
 * state per key, closes windows in end order as stream time passes, and reports late records.
 * Emits `window` signals (close, update, late); records and ticks stop here.
 */
export function windowAggregate(context: TaskContext, spec: WindowStepSpec): OperatorFunction<Signal, Signal> {
  const { aggregation, storeName } = spec;
  const deadlines: KeyDeadlines<KeyState> = new KeyDeadlines((state) => keys.holds(state));
  /** Per key changed since the last flush, the starts of its removed buckets that were stored: tombstones to write. */
  const removals = new Map<KeyState, number[]>();
  const buckets = new Buckets(aggregation, {
    changed(state, bucket) {
      bucket.dirty = true;
      keys.changed(state);
    },
    removed(state, start, stored) {
      // Never written (born and gone since the last flush): no tombstone to write.
      if (!stored) return;
      keys.changed(state);
      const removed = removals.get(state);
      if (removed) removed.push(start);
      else removals.set(state, [start]);
    },
  });
  const strategy = spec.window.createStrategy(buckets);
  let sequence = 0;

  const keyBytesOf = (key: unknown) => encodeUtf8(JSON.stringify(key));
  /** A key's serialized size: its buckets' at their last flush. */
  const measure = (state: KeyState) => {
    let bytes = 0;
    for (const bucket of state.buckets) bytes += bucket.bytes ?? 0;
    return bytes;
  };

  const keys: CachingStore<KeyState> = new CachingStore<KeyState>(context.cache, () => context.storeOf(storeName), {
    encode(state, into) {
      const keyBytes = keyBytesOf(state.key);
      for (const bucket of state.buckets) {
        if (!bucket.dirty) continue;
        const value = strategy.encode(bucket);
        bucket.bytes = value.length;
        bucket.dirty = false;
        bucket.stored = true;
        into.push({ key: encodeWindowKey(keyBytes, bucket.start), value });
      }
      const removed = removals.get(state);
      if (removed) {
        removals.delete(state);
        // A start removed and then used again (a session that moved back) is a put, not a tombstone.
        const present = new Set(state.buckets.map((bucket) => bucket.start));
        for (const start of new Set(removed)) if (!present.has(start)) into.push({ key: encodeWindowKey(keyBytes, start), value: null });
      }
      return measure(state);
    },
    async load(state, below) {
      const loaded: Bucket[] = [];
      for await (const [, value] of below.entries(keyPrefix(keyBytesOf(state.key)))) loaded.push(strategy.decode(value));
      state.buckets.push(...loaded);
      return measure(state);
    },
    // Everything but the buckets stays, to keep deadlines.
    unload(state) {
      state.buckets.length = 0;
    },
  });

  const schedule = (state: KeyState) => {
    const due = strategy.due(state);
    if (due === undefined && state.buckets.length === 0) {
      state.due = undefined;
      keys.delete(state);
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

  const query = (state: KeyState) => strategy.openWindows(state).map((view) => ({ start: view.start, end: view.end, value: aggregation.result(view.partial) }));

  const operator: StatefulOperator = {
    storeName,
    store: keys,
    hasDue: (streamTime) => deadlines.hasDue(streamTime),
    nextDeadline: () => deadlines.next(),
    openWindows() {
      let open = 0;
      for (const state of keys.values()) if (!state.evicted) open += strategy.countOpen(state);
      return open;
    },
    async restore(entries, streamTime) {
      let state: KeyState | undefined;
      const finish = (restored: KeyState) => {
        restored.buckets.sort((a, b) => a.start - b.start);
        strategy.restored(restored, streamTime);
        keys.restored(restored, measure(restored));
        schedule(restored);
        keys.evictIfOverBudget(restored);
      };
      for await (const [storeKey, value] of entries) {
        const { keyBytes } = decodeWindowKey(storeKey);
        const key = JSON.parse(decoder.decode(keyBytes)) as unknown;
        const id = keyId(key);
        if (!state || state.id !== id) {
          if (state) finish(state);
          state = strategy.createKeyState(key, id);
        }
        const bucket = strategy.decode(value);
        bucket.bytes = value.length;
        state.buckets.push(bucket);
        for (const item of collectedItems(bucket)) if (item[1] >= sequence) sequence = item[1] + 1;
      }
      if (state) finish(state);
    },
    async load(recordKeys, streamTime) {
      if (!keys.hasEvicted()) return;
      const needed = new Set<KeyState>();
      for (const key of recordKeys) {
        const state = keys.get(keyId(key));
        if (state?.evicted) needed.add(state);
      }
      for (const state of keys.values()) if (state.evicted && state.due !== undefined && state.due <= streamTime) needed.add(state);
      for (const state of needed) await keys.load(state);
    },
    async query(key) {
      const state = await keys.read(key);
      return state && query(state);
    },
    async *queryAll() {
      for await (const state of keys.readAll()) yield [state.key, query(state)] as const;
    },
  };
  context.register(operator);

  // The strategy's callbacks are made once, not per record: they read the signal being handled.
  // (A window's output never flows back into its own operator, so handling does not nest.)
  let emitTo: (signal: Signal) => void = () => undefined;
  let record: RecordSignal | undefined;
  let firing: KeyState | undefined;
  let late = false;
  const missed = (start: number, end: number) => {
    late = true;
    const { key, value, timestamp, origin } = record!;
    emitTo({ type: 'window', event: 'late', key, start, end, value, timestamp, origin });
  };
  const closedByRecord = (view: WindowView) => {
    context.metrics.windowsClosed++;
    emitTo(windowSignal('close', record!.key, view, record!.origin));
  };
  const closedByTime = (view: WindowView) => {
    context.metrics.windowsClosed++;
    emitTo(windowSignal('close', firing!.key, view, undefined));
  };
  return signalOperator(context, `window ${storeName}`, (signal, emit) => {
    emitTo = emit;
    if (signal.type === 'tick') {
      const streamTime = signal.streamTime;
      for (let state = deadlines.popDue(streamTime); state; state = deadlines.popDue(streamTime)) {
        if (state.evicted) throw new Error(`window state of key ${JSON.stringify(state.key)} was not loaded before its deadline`);
        state.due = undefined;
        firing = state;
        strategy.fire(state, closedByTime);
        firing = undefined;
        schedule(state);
      }
      return;
    }
    if (signal.type !== 'record') return;
    const { key, value, timestamp, origin } = signal;
    const id = keyId(key);
    let state = keys.get(id);
    const created = !state;
    if (!state) state = strategy.createKeyState(key, id);
    if (state.evicted) throw new Error(`window state of key ${JSON.stringify(key)} was not loaded before its record`);
    keys.use(state);
    record = signal;
    late = false;
    const accepted = strategy.add(state, value, timestamp, sequence++, context.streamTime(), missed, closedByRecord);
    record = undefined;
    if (late) context.metrics.lateRecords++;
    if (!accepted) return;
    if (created) keys.add(state);
    schedule(state);
    if (spec.emitUpdates) {
      for (const view of strategy.updatedWindows(state, timestamp)) emit(windowSignal('update', key, view, origin));
    }
  });
}

/** Collected partials carry arrival sequences; a restore continues after the largest. */
function collectedItems(bucket: Bucket): Array<[number, number, unknown]> {
  return Array.isArray(bucket.partial) && bucket.partial.every((item) => Array.isArray(item) && item.length === 3)
    ? (bucket.partial as Array<[number, number, unknown]>)
    : [];
}
