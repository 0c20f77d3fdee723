import { latestAggregation } from '../aggregations.js';
import { ConfigError } from '../errors.js';
import { checkName } from './stage-checks.js';
import type { GraphBuilder, Joiner, Node } from './graph.js';
import { Stream } from './stream.js';

/** A running aggregate per key; readable with `app.store(name)`. */
export class Table<K, A> {
  /** @internal */
  constructor(
    private readonly graph: GraphBuilder,
    /** @internal */ readonly node: Node,
  ) {}

  /**
   * The store's name, to read this table with `app.store(...)` (the stage itself works too).
   * @example
   * const totals = keyed.count({ name: 'totals' });
   * await app.store(totals).get('s1');   // number | undefined
   */
  get name(): string {
    return (this.node as Extract<Node, { kind: 'table' }>).storeName;
  }

  /**
   * Every update of the table as a stream of (key, new value).
   * @example
   * clicks.keyBy(c => c.page).count().toStream().to('page-counts')
   */
  toStream(): Stream<K, A> {
    return new Stream(this.graph, this.graph.add({ kind: 'tableStream', parents: [this.node] }));
  }

  /**
   * Table–table join: a table of `joiner(value, otherValue, key)` for each key both tables hold,
   * updated whenever either side changes; when a side loses the key, so does the result. Both
   * tables must have the same keys in the same number of partitions (a `ConfigError` at start
   * names the topics otherwise).
   * @example
   * const placed = sensors.join(places, (sensor, place) => ({ ...sensor, place }), { name: 'placed' });
   */
  join<T, R>(other: Table<K, T>, joiner: (value: A, otherValue: T, key: K) => R, options: { name?: string } = {}): Table<K, R> {
    return this.#joinTable('inner', other, joiner as Joiner, options);
  }

  /** Like {@link join}, with a result for every key of this table (`otherValue` undefined when the other has none). */
  leftJoin<T, R>(other: Table<K, T>, joiner: (value: A, otherValue: T | undefined, key: K) => R, options: { name?: string } = {}): Table<K, R> {
    return this.#joinTable('left', other, joiner as Joiner, options);
  }

  /** Like {@link join}, with a result for every key either table holds (the missing side undefined). */
  outerJoin<T, R>(other: Table<K, T>, joiner: (value: A | undefined, otherValue: T | undefined, key: K) => R, options: { name?: string } = {}): Table<K, R> {
    return this.#joinTable('outer', other, joiner as Joiner, options);
  }

  #joinTable<R>(mode: 'inner' | 'left' | 'outer', other: Table<K, unknown>, joiner: Joiner, options: { name?: string }): Table<K, R> {
    const what = mode === 'inner' ? 'join' : `${mode}Join`;
    if (!(other instanceof Table)) throw new ConfigError(`${what}: expected a Table, got ${String(other)}`);
    if (typeof joiner !== 'function') throw new ConfigError(`${what}: the joiner must be a function, got ${typeof joiner}`);
    const storeName = checkName(options?.name, what) ?? `${this.name}-${other.name}-${mode === 'inner' ? '' : `${mode}-`}join`;
    const joined = this.graph.add({ kind: 'tableJoin', parents: [this.node, other.node], mode, joiner, leftStore: this.name, rightStore: other.name });
    return new Table<K, R>(this.graph, this.graph.add({ kind: 'table', parents: [joined], aggregation: latestAggregation(), storeName, repartitionName: undefined, upsert: true }));
  }
}
