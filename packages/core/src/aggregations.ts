import { ConfigError } from './errors.js';

/**
 * An aggregation as the window and table operators run it. Every aggregation the operators see
 * has `merge`: partials of slices are merged when a window closes. A user aggregation without
 * `merge` is wrapped by {@link foldAtClose}.
 */
export interface Aggregation<V, Partial, Result> {
  /** Part of default store names, e.g. `count`, `sum`, `collect`. */
  readonly name: string;
  init(): Partial;
  /** Adds one value; may mutate and return `partial`. `sequence` orders equal timestamps. */
  add(partial: Partial, value: V, timestamp: number, sequence: number): Partial;
  /** Combines two partials, `earlier` covering earlier slices; may mutate and return `earlier`. */
  merge(earlier: Partial, later: Partial): Partial;
  /** The value handed to handlers; must not mutate `partial`. */
  result(partial: Partial): Result;
  /** Makes a private copy for combining slices, so that slices stay untouched. */
  clone(partial: Partial): Partial;
}

/** The user's form: `aggregate({ init, add, merge? })`. */
export interface AggregateSpec<V, A> {
  init: () => A;
  add: (accumulator: A, value: V) => A;
  merge?: (earlier: A, later: A) => A;
}

type Extract<V> = (value: V) => number;

function numberOf<V>(fn: Extract<V> | undefined, what: string): Extract<V> {
  if (fn !== undefined && typeof fn !== 'function') throw new ConfigError(`${what}: expected a function, got ${String(fn)}`);
  return fn ?? ((value: V) => value as unknown as number);
}

/** A number read from a record; anything but a finite number is a bad record. */
function finite(value: unknown, what: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw new TypeError(`${what}: expected a finite number, got ${JSON.stringify(value)}`);
  }
  return value;
}

export function countAggregation<V>(): Aggregation<V, number, number> {
  return {
    name: 'count',
    init: () => 0,
    add: (partial) => partial + 1,
    merge: (earlier, later) => earlier + later,
    result: (partial) => partial,
    clone: (partial) => partial,
  };
}

export function sumAggregation<V>(fn?: Extract<V>): Aggregation<V, number, number> {
  const read = numberOf(fn, 'sum');
  return {
    name: 'sum',
    init: () => 0,
    add: (partial, value) => partial + finite(read(value), 'sum'),
    merge: (earlier, later) => earlier + later,
    result: (partial) => partial,
    clone: (partial) => partial,
  };
}

function extremeAggregation<V>(name: 'min' | 'max', fn?: Extract<V>): Aggregation<V, number | null, number | null> {
  const read = numberOf(fn, name);
  const pick = name === 'min' ? Math.min : Math.max;
  const combine = (a: number | null, b: number | null) => (a === null ? b : b === null ? a : pick(a, b));
  return {
    name,
    init: () => null,
    add: (partial, value) => combine(partial, finite(read(value), name)),
    merge: combine,
    result: (partial) => partial,
    clone: (partial) => partial,
  };
}
export const minAggregation = <V>(fn?: Extract<V>) => extremeAggregation<V>('min', fn);
export const maxAggregation = <V>(fn?: Extract<V>) => extremeAggregation<V>('max', fn);

export function meanAggregation<V>(fn?: Extract<V>): Aggregation<V, [sum: number, count: number], number | null> {
  const read = numberOf(fn, 'mean');
  return {
    name: 'mean',
    init: () => [0, 0],
    add: (partial, value) => [partial[0] + finite(read(value), 'mean'), partial[1] + 1],
    merge: (earlier, later) => [earlier[0] + later[0], earlier[1] + later[1]],
    result: ([sum, count]) => (count === 0 ? null : sum / count),
    clone: (partial) => [partial[0], partial[1]],
  };
}

/** One collected record: timestamp, arrival sequence, value. */
export type Collected<V> = [timestamp: number, sequence: number, value: V];

const byTimeThenArrival = <V>(a: Collected<V>, b: Collected<V>) => a[0] - b[0] || a[1] - b[1];

/** Inserts keeping timestamp-then-arrival order; in-order records append in O(1). */
function insertInOrder<V>(items: Collected<V>[], item: Collected<V>): void {
  let index = items.length;
  while (index > 0 && byTimeThenArrival(items[index - 1]!, item) > 0) index--;
  if (index === items.length) items.push(item);
  else items.splice(index, 0, item);
}

/**
 * Collects values; each record is stored once, in the slice it falls in, kept in timestamp order
 * (ties in arrival order). Partials always cover disjoint time ranges and are merged in time
 * order, so a window's values are its slices joined, with no sort at close.
 */
export function collectAggregation<V>(): Aggregation<V, Collected<V>[], V[]> {
  return {
    name: 'collect',
    init: () => [],
    add: (partial, value, timestamp, sequence) => {
      insertInOrder(partial, [timestamp, sequence, value]);
      return partial;
    },
    merge: (earlier, later) => {
      // Disjoint and in order in every window kind; the check keeps a surprise correct.
      const last = earlier[earlier.length - 1];
      const first = later[0];
      if (last && first && byTimeThenArrival(last, first) > 0) {
        for (const item of later) insertInOrder(earlier, item);
        return earlier;
      }
      for (const item of later) earlier.push(item);
      return earlier;
    },
    result: (partial) => partial.map((item) => item[2]),
    clone: (partial) => [...partial],
  };
}

export function reduceAggregation<V>(fn: (accumulator: V, value: V) => V): Aggregation<V, { value?: V; has: boolean }, V | undefined> {
  if (typeof fn !== 'function') throw new ConfigError(`reduce: expected a function, got ${String(fn)}`);
  const combine = (a: { value?: V; has: boolean }, b: { value?: V; has: boolean }) =>
    !a.has ? b : !b.has ? a : { value: fn(a.value as V, b.value as V), has: true };
  return {
    name: 'reduce',
    init: () => ({ has: false }),
    add: (partial, value) => (partial.has ? { value: fn(partial.value as V, value), has: true } : { value, has: true }),
    merge: combine,
    result: (partial) => partial.value,
    clone: (partial) => ({ ...partial }),
  };
}

/**
 * A user aggregation. For a running table (`running`), the accumulator is the state. With `merge`, slices hold partial accumulators; without it, slices hold the
 * records themselves and the window folds them with `init`/`add` in timestamp order when it
 * closes, which keeps the per-record work O(1) for every window kind.
 */
export function userAggregation<V, A>(spec: AggregateSpec<V, A>, { running = false } = {}): Aggregation<V, unknown, A> {
  if (typeof spec !== 'object' || spec === null) throw new ConfigError(`aggregate: expected { init, add, merge? }, got ${String(spec)}`);
  if (typeof spec.init !== 'function') throw new ConfigError(`aggregate: init must be a function, got ${String(spec.init)}`);
  if (typeof spec.add !== 'function') throw new ConfigError(`aggregate: add must be a function, got ${String(spec.add)}`);
  if (spec.merge !== undefined && typeof spec.merge !== 'function') throw new ConfigError(`aggregate: merge must be a function, got ${String(spec.merge)}`);
  // A running table aggregate never merges, so it keeps the accumulator itself.
  if (spec.merge || running) {
    const merge = spec.merge ?? ((): A => {
      throw new ConfigError('aggregate: merge is required here');
    });
    return {
      name: 'aggregate',
      init: spec.init,
      add: (partial, value) => spec.add(partial as A, value),
      merge: (earlier, later) => merge(earlier as A, later as A),
      result: (partial) => partial as A,
      clone: (partial) => structuredClone(partial),
    } as Aggregation<V, unknown, A>;
  }
  return foldAtClose(spec) as Aggregation<V, unknown, A>;
}

function foldAtClose<V, A>(spec: AggregateSpec<V, A>): Aggregation<V, Collected<V>[], A> {
  const collect = collectAggregation<V>();
  return {
    ...collect,
    name: 'aggregate',
    result: (partial) => {
      let accumulator = spec.init();
      for (const item of partial) accumulator = spec.add(accumulator, item[2]);
      return accumulator;
    },
  };
}

/** A table read from a topic: each key's latest value (a null value deletes the key; see the table operator). */
export function latestAggregation<V>(): Aggregation<V, V | undefined, V | undefined> {
  return {
    name: 'latest',
    init: () => undefined,
    add: (_, value) => value,
    merge: (earlier, later) => (later === undefined ? earlier : later),
    result: (partial) => partial,
    clone: (partial) => partial,
  };
}
