/**
 * Drives one window kind's strategy alone, the way the window operator does but with no app,
 * task or store: records in send order, stream time as their largest timestamp, due windows
 * fired in deadline order. It can also flush the strategy's changes into a map of stored bytes
 * and rebuild every key from there, as a restart does, to check the kind's codec and change
 * tracking. The results have the shapes of `window-compare`, so they compare with a model's.
 */
import { collectAggregation, type Aggregation } from '../aggregations.js';
import { Buckets, type Bucket, type KeyState, type WindowDefinition, type WindowStrategy, type WindowView } from '../windows/strategy.js';
import { closedDifference, firstDifference, lateDifference, type ClosedCall, type LateCall } from './window-compare.test-support.js';
import { collectedIds, idsOf, simulate, type Reading, type WindowModel } from './window-reference.test-support.js';

/** An `onUpdate` event: a window a record just updated, with its value then. */
export interface UpdateCall {
  key: string;
  start: number;
  end: number;
  value: unknown;
  at: number;
}

export interface StrategyRun {
  closed: ClosedCall[];
  late: LateCall[];
  /** Records late for at least one window. */
  lateRecords: number;
  updates: UpdateCall[];
}

export interface DriveOptions {
  /** Default `collect()`, so window values are the readings in collect order. */
  aggregation?: Aggregation<unknown, unknown, unknown>;
  /** Closes everything after the last record, as a long idle time does. */
  flushAtEnd?: boolean;
  /** After record `index` (and the windows it closed): flush, forget every key, restore from the flushed bytes. */
  restartAfter?: (index: number) => boolean;
}

/** The stored bytes of one key: bucket start → value. */
type StoredKey = Map<number, Uint8Array>;

/** A window strategy with its keys, their deadlines and their stored state, for tests. */
export class StrategyDriver {
  readonly strategy: WindowStrategy;
  readonly keys = new Map<string, KeyState>();
  /** What flushes wrote, as the store would hold it. */
  readonly stored = new Map<string, StoredKey>();
  readonly #aggregation: Aggregation<unknown, unknown, unknown>;
  /** Keys with changes since the last flush, with the starts whose storage key went away. */
  readonly #changed = new Map<KeyState, number[]>();
  #sequence = 0;
  streamTime = -Infinity;

  constructor(window: WindowDefinition, aggregation: Aggregation<unknown, unknown, unknown> = collectAggregation()) {
    this.#aggregation = aggregation;
    const changed = this.#changed;
    this.strategy = window.createStrategy(
      new Buckets(aggregation, {
        changed(state, bucket) {
          bucket.dirty = true;
          if (!changed.has(state)) changed.set(state, []);
        },
        removed(state, start, stored) {
          if (!stored) return;
          const removed = changed.get(state);
          if (removed) removed.push(start);
          else changed.set(state, [start]);
        },
      }),
    );
  }

  /** Adds one record at the current stream time, then moves stream time and fires what is due. */
  send(reading: Reading, at: number, run: StrategyRun): void {
    const { strategy } = this;
    let state = this.keys.get(reading.k);
    const created = !state;
    if (!state) state = strategy.createKeyState(reading.k, reading.k);
    let late = false;
    const missed = (start: number, end: number) => {
      late = true;
      run.late.push({ key: reading.k, start, end, id: reading.id, timestamp: reading.ts, at });
    };
    const closed = (view: WindowView) => run.closed.push(this.#call(reading.k, view, at));
    const accepted = strategy.add(state, reading, reading.ts, this.#sequence++, this.streamTime, missed, closed);
    if (late) run.lateRecords++;
    if (accepted) {
      if (created) this.keys.set(reading.k, state);
      for (const view of strategy.updatedWindows(state, reading.ts)) run.updates.push(this.#call(reading.k, view, at));
      this.#forgetIfEmpty(state);
    }
    this.advance(Math.max(this.streamTime, reading.ts), at, run);
  }

  /** Moves stream time to `streamTime` and fires every key's due work, earliest deadline first. */
  advance(streamTime: number, at: number, run: StrategyRun): void {
    this.streamTime = streamTime;
    for (;;) {
      let next: KeyState | undefined;
      let nextDue = Infinity;
      for (const state of this.keys.values()) {
        const due = this.strategy.due(state);
        if (due !== undefined && due <= streamTime && (next === undefined || due < nextDue)) [next, nextDue] = [state, due];
      }
      if (!next) return;
      const firing = next;
      this.strategy.fire(firing, (view) => run.closed.push(this.#call(String(firing.key), view, at)));
      this.#forgetIfEmpty(firing);
    }
  }

  /** Writes the changes since the last flush into `stored`, as the operator's commit does. */
  flush(): void {
    for (const [state, removed] of this.#changed) {
      const key = String(state.key);
      let stored = this.stored.get(key);
      if (!stored) this.stored.set(key, (stored = new Map()));
      for (const bucket of state.buckets) {
        if (!bucket.dirty) continue;
        bucket.dirty = false;
        bucket.stored = true;
        stored.set(bucket.start, this.strategy.encode(bucket));
      }
      const present = new Set(state.buckets.map((bucket) => bucket.start));
      for (const start of removed) if (!present.has(start)) stored.delete(start);
      if (stored.size === 0) this.stored.delete(key);
    }
    this.#changed.clear();
  }

  /** Flushes, forgets every key, and rebuilds them from the stored bytes alone. */
  restart(): void {
    this.flush();
    this.keys.clear();
    for (const [key, stored] of this.stored) {
      const state = this.strategy.createKeyState(key, key);
      const buckets: Bucket[] = [...stored.values()].map((bytes) => this.strategy.decode(bytes));
      state.buckets.push(...buckets.sort((a, b) => a.start - b.start));
      this.strategy.restored(state, this.streamTime);
      this.keys.set(key, state);
    }
  }

  #forgetIfEmpty(state: KeyState): void {
    if (state.buckets.length === 0 && this.strategy.due(state) === undefined) this.keys.delete(String(state.key));
  }

  #call(key: string, view: WindowView, at: number): ClosedCall {
    return { key, start: view.start, end: view.end, value: this.#aggregation.result(view.partial), at };
  }
}

/** Runs readings through a fresh strategy of `window`, as `simulate` runs them through a model. */
export function driveStrategy(window: WindowDefinition, readings: readonly Reading[], options: DriveOptions = {}): StrategyRun {
  const driver = new StrategyDriver(window, options.aggregation);
  const run: StrategyRun = { closed: [], late: [], lateRecords: 0, updates: [] };
  readings.forEach((reading, index) => {
    driver.send(reading, index, run);
    if (options.restartAfter?.(index)) driver.restart();
  });
  if (options.flushAtEnd) driver.advance(Infinity, readings.length, run);
  return run;
}

export interface StrategyCheck extends Omit<DriveOptions, 'aggregation'> {
  window: WindowDefinition;
  model: WindowModel;
  readings: readonly Reading[];
  /** Also compare `updatedWindows` with the model's updates. */
  updates?: boolean;
}

/** Runs a strategy and its reference model on the same readings and lists every disagreement. */
export function checkStrategy(check: StrategyCheck): { differences: object[]; stats: { windows: number; lateCalls: number; updates: number } } {
  const run = driveStrategy(check.window, check.readings, check);
  const reference = simulate(check.model, check.readings, { flushAtEnd: check.flushAtEnd === true });
  const updateOf = (update: { key: string; start: number; end: number; at: number }, ids: number[]) => ({ key: update.key, start: update.start, end: update.end, ids, at: update.at });
  const differences = [
    closedDifference(run.closed, reference.closed),
    lateDifference(run.late, reference.late),
    run.lateRecords === reference.lateRecords ? undefined : { label: 'late records', actual: run.lateRecords, expected: reference.lateRecords },
    check.updates
      ? firstDifference(
          run.updates.map((update) => updateOf(update, idsOf(update.value))),
          reference.updates.map((update) => updateOf(update, collectedIds(update.records))),
          'updates',
        )
      : undefined,
  ].filter((difference): difference is object => difference !== undefined);
  return { differences, stats: { windows: reference.closed.length, lateCalls: reference.late.length, updates: reference.updates.length } };
}
