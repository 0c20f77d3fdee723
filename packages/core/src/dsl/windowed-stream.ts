import {
  collectAggregation,
  countAggregation,
  maxAggregation,
  meanAggregation,
  minAggregation,
  reduceAggregation,
  sumAggregation,
  userAggregation,
  type AggregateSpec,
  type Aggregation,
} from '../aggregations.js';
import type { WindowDefinition } from '../windows/definitions.js';
import type { GraphBuilder, Node } from './graph.js';
import { WindowedTable } from './windowed-table.js';

type AnyAggregation = Aggregation<unknown, unknown, unknown>;

/** A keyed stream cut into windows; an aggregation turns it into a {@link WindowedTable}. */
export class WindowedStream<K, V> {
  /** @internal */
  constructor(
    private readonly graph: GraphBuilder,
    private readonly parent: Node,
    private readonly window: WindowDefinition,
    private readonly name: string | undefined,
  ) {}

  private aggregated<A>(aggregation: AnyAggregation): WindowedTable<K, A, V> {
    const storeName = this.name ?? this.window.defaultStoreName(aggregation.name);
    const keyBy = this.parent.kind === 'keyBy' ? this.parent.name : undefined;
    const node = this.graph.add({ kind: 'window', parents: [this.parent], window: this.window, aggregation, storeName, repartitionName: keyBy });
    return new WindowedTable(this.graph, node);
  }

  /** Records per window. @example readings.keyBy(r => r.sensor).tumbling('1m').count() */
  count(): WindowedTable<K, number, V> {
    return this.aggregated(countAggregation());
  }

  /** Sum of `fn(value)` (or the value itself) per window. @example .tumbling('1m').sum(r => r.value) */
  sum(fn?: (value: V) => number): WindowedTable<K, number, V> {
    return this.aggregated(sumAggregation(fn) as AnyAggregation);
  }

  /** Smallest `fn(value)` per window. */
  min(fn?: (value: V) => number): WindowedTable<K, number | null, V> {
    return this.aggregated(minAggregation(fn) as AnyAggregation);
  }

  /** Largest `fn(value)` per window. */
  max(fn?: (value: V) => number): WindowedTable<K, number | null, V> {
    return this.aggregated(maxAggregation(fn) as AnyAggregation);
  }

  /** Mean of `fn(value)` per window. @example .hopping('10s', '1s').mean(r => r.value) */
  mean(fn?: (value: V) => number): WindowedTable<K, number | null, V> {
    return this.aggregated(meanAggregation(fn) as AnyAggregation);
  }

  /** The window's values in timestamp order (stable for equal timestamps). @example .hopping('10s', '1s').collect() */
  collect(): WindowedTable<K, V[], V> {
    return this.aggregated(collectAggregation() as AnyAggregation);
  }

  /** Reduces the window's values with an associative function. @example .tumbling('1m').reduce((a, b) => (a.value > b.value ? a : b)) */
  reduce(fn: (accumulator: V, value: V) => V): WindowedTable<K, V, V> {
    return this.aggregated(reduceAggregation(fn) as AnyAggregation);
  }

  /**
   * A custom aggregate; give `merge` so partials of slices combine (O(1) per record); without it
   * the window keeps its records and folds them with `add` when it closes.
   * @example
   * .tumbling('1m').aggregate({ init: () => ({ n: 0 }), add: (a, r) => ({ n: a.n + 1 }), merge: (a, b) => ({ n: a.n + b.n }) })
   */
  aggregate<A>(spec: AggregateSpec<V, A>): WindowedTable<K, A, V> {
    return this.aggregated(userAggregation(spec) as AnyAggregation);
  }
}
