import {
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
import { toMs, type Duration } from '../duration.js';
import { ConfigError } from '../errors.js';
import { checkSerde, defaultKeySerde, json, type Serde } from '../serde.js';
import {
  countWindows,
  hoppingWindows,
  sessionWindows,
  slidingWindows,
  tumblingWindows,
  type WindowDefinition,
  type WindowOptions,
} from '../windows/definitions.js';
import type { GraphBuilder, Joiner, Node, RecordCallback } from './graph.js';
import { checkFunction, checkName, checkTopic } from './stage-checks.js';
import type { SinkOptions, TableOptions } from './stage-options.js';
import { GlobalTable } from './global-table.js';
import { Table } from './table.js';
import { WindowedStream } from './windowed-stream.js';

type AnyAggregation = Aggregation<unknown, unknown, unknown>;

// Stream and KeyedStream share this file: KeyedStream extends Stream and Stream.keyBy makes a
// KeyedStream, so as two modules each would import the other and the subclass could load first.

/**
 * A stream of records with keys of type `K` and values of type `V`. Every method returns a new
 * stage and records a node in the app's graph; nothing runs until `app.start()`.
 */
export class Stream<K, V> {
  /** @internal */
  constructor(
    protected readonly graph: GraphBuilder,
    /** @internal */ readonly node: Node,
  ) {}

  protected next(kind: 'map' | 'filter' | 'flatMap' | 'peek', fn: unknown): Node {
    return this.graph.add({ kind, parents: [this.node], fn: checkFunction(fn, kind) });
  }

  /**
   * Transforms each value; the key and timestamp stay.
   * @example
   * app.from<Reading>('readings').map(r => ({ ...r, celsius: (r.value - 32) / 1.8 }))
   */
  map<V2>(fn: (value: V, key: K) => V2): Stream<K, V2> {
    return new Stream(this.graph, this.next('map', fn));
  }

  /**
   * Keeps the records for which `fn` returns true; a type guard narrows the value type.
   * @example
   * app.from<Reading>('readings').filter(r => Number.isFinite(r.value))
   */
  filter<S extends V>(fn: (value: V, key: K) => value is S): Stream<K, S>;
  filter(fn: (value: V, key: K) => boolean): Stream<K, V>;
  filter(fn: (value: V, key: K) => boolean): Stream<K, V> {
    return new Stream(this.graph, this.next('filter', fn));
  }

  /**
   * Turns each value into zero or more values (any iterable).
   * @example
   * app.from<Batch>('batches').flatMap(batch => batch.readings)
   */
  flatMap<V2>(fn: (value: V, key: K) => Iterable<V2>): Stream<K, V2> {
    return new Stream(this.graph, this.next('flatMap', fn));
  }

  /**
   * Runs a side effect per record and passes it on unchanged.
   * @example
   * stream.peek(r => log.debug(r))
   */
  peek(fn: (value: V, key: K) => void): Stream<K, V> {
    return new Stream(this.graph, this.next('peek', fn));
  }

  /**
   * Interleaves another stream of the same types with this one.
   * @example
   * app.from<Reading>('north').merge(app.from<Reading>('south'))
   */
  merge(other: Stream<K, V>): Stream<K, V> {
    if (!(other instanceof Stream) || other.graph !== this.graph) {
      throw new ConfigError('merge: expected a stream of the same app');
    }
    return new Stream(this.graph, this.graph.add({ kind: 'merge', parents: [this.node, other.node] }));
  }

  /**
   * Stream–global table: each record looks up the key `tableKey` gives in a table every instance
   * holds whole (no repartition); a record whose table key is not there is dropped.
   * @example
   * readings.join(places, (reading) => reading.place, (reading, place) => ({ ...reading, site: place.site }))
   */
  join<T, R>(table: GlobalTable<unknown, T>, tableKey: (value: V, key: K) => unknown, joiner: (value: V, tableValue: T, key: K) => R): Stream<K, R> {
    return new Stream(this.graph, this.globalJoinNode('inner', table, tableKey, joiner));
  }

  /** Like {@link join} with a global table, but a record whose table key is not there goes on with `undefined`. */
  leftJoin<T, R>(table: GlobalTable<unknown, T>, tableKey: (value: V, key: K) => unknown, joiner: (value: V, tableValue: T | undefined, key: K) => R): Stream<K, R> {
    return new Stream(this.graph, this.globalJoinNode('left', table, tableKey, joiner));
  }

  protected globalJoinNode(mode: 'inner' | 'left', table: GlobalTable<unknown, unknown>, tableKey: unknown, joiner: unknown): Node {
    const what = mode === 'left' ? 'leftJoin' : 'join';
    if (!(table instanceof GlobalTable)) throw new ConfigError(`${what}: expected a GlobalTable (app.globalTable(topic)), got ${String(table)}`);
    if (typeof tableKey !== 'function') throw new ConfigError(`${what} ${table.name}: the table key must be a function of (value, key), got ${typeof tableKey}`);
    if (typeof joiner !== 'function') throw new ConfigError(`${what} ${table.name}: the joiner must be a function, got ${typeof joiner}`);
    return this.graph.add({ kind: 'globalJoin', parents: [this.node], mode, tableKey: tableKey as RecordCallback, joiner: joiner as Joiner, table: table.lookup });
  }

  /**
   * Re-keys the stream; a stateful step after it reads through an internal repartition topic
   * (`<app id>-<name>-repartition`), so that one key always lands in one task.
   * @example
   * app.from<Reading>('readings').keyBy(r => r.sensor)
   */
  keyBy<K2>(fn: (value: V, key: K) => K2, options: { name?: string } = {}): KeyedStream<K2, V> {
    const name = checkName(options.name, 'keyBy');
    return new KeyedStream(this.graph, this.graph.add({ kind: 'keyBy', parents: [this.node], fn: checkFunction(fn, 'keyBy'), name }));
  }

  /**
   * Writes the stream to a topic (terminal). Keys default to UTF-8 for strings and JSON
   * otherwise; values to JSON. Writing a topic the app reads is refused unless declared with
   * `{ cycle: true }` (see {@link SinkOptions.cycle}).
   * @example
   * stream.to('predictions')
   * stream.to('retries', { cycle: true })   // the app reads 'retries' too
   */
  to(topic: string, options: SinkOptions<K, V> = {}): void {
    const checked = checkTopic(topic, 'to');
    const { cycle = false } = options;
    if (typeof cycle !== 'boolean') {
      throw new ConfigError(`to ${checked}: cycle must be true or false, got ${typeof cycle === 'string' ? JSON.stringify(cycle) : String(cycle)}`);
    }
    this.graph.add({
      kind: 'sink',
      parents: [this.node],
      topic: checked,
      keySerde: (checkSerde(options.key, 'to key') ?? defaultKeySerde) as Serde<unknown>,
      valueSerde: (checkSerde(options.value, 'to value') ?? json()) as Serde<unknown>,
      internal: false,
      cycle,
    });
  }

  /**
   * Writes the stream to a topic and continues from it, partitioned by key. Options as for
   * {@link Stream.to}, `cycle` included.
   * @example
   * stream.through('cleaned-readings').keyBy(r => r.site)
   */
  through(topic: string, options: SinkOptions<K, V> = {}): Stream<K, V> {
    return new Stream(this.graph, this.throughNode(topic, options));
  }

  protected throughNode(topic: string, options: SinkOptions<K, V>): Node {
    this.to(topic, options);
    return this.graph.add({
      kind: 'source',
      parents: [],
      topic,
      timestamp: undefined,
      keySerde: (options.key ?? defaultKeySerde) as Serde<unknown>,
      valueSerde: (options.value ?? json()) as Serde<unknown>,
      internal: false,
    });
  }
}

/**
 * A stream whose key is the partitioning key: windows and running aggregates are per key.
 */
/** A joiner: the record's value, the other side's value (a table's, or a record's), and the key. */
type JoinerOf<K, V, T, R> = (value: V, otherValue: T, key: K) => R;

/** Options of a windowed stream–stream join. */
export interface StreamJoinOptions {
  /** How far apart in time two records may be to be joined (inclusive). */
  within: Duration;
  /** How late a record may arrive and still be joined: stream time past its timestamp + within + grace closes its window. Default 0. */
  grace?: Duration;
  /** The store of both sides' buffered records (and so its changelog); default from the parameters. */
  name?: string;
}

export class KeyedStream<K, V> extends Stream<K, V> {
  override map<V2>(fn: (value: V, key: K) => V2): KeyedStream<K, V2> {
    return new KeyedStream(this.graph, this.next('map', fn));
  }

  override filter<S extends V>(fn: (value: V, key: K) => value is S): KeyedStream<K, S>;
  override filter(fn: (value: V, key: K) => boolean): KeyedStream<K, V>;
  override filter(fn: (value: V, key: K) => boolean): KeyedStream<K, V> {
    return new KeyedStream(this.graph, this.next('filter', fn));
  }

  override flatMap<V2>(fn: (value: V, key: K) => Iterable<V2>): KeyedStream<K, V2> {
    return new KeyedStream(this.graph, this.next('flatMap', fn));
  }

  override peek(fn: (value: V, key: K) => void): KeyedStream<K, V> {
    return new KeyedStream(this.graph, this.next('peek', fn));
  }

  override through(topic: string, options: SinkOptions<K, V> = {}): KeyedStream<K, V> {
    return new KeyedStream(this.graph, this.throughNode(topic, options));
  }

  /**
   * Fixed, non-overlapping windows `[k*size, (k+1)*size)`.
   * @example
   * readings.keyBy(r => r.sensor).tumbling('1m', { grace: '5s' }).mean(r => r.value)
   */
  tumbling(size: Duration, options?: WindowOptions): WindowedStream<K, V> {
    return this.windowed(tumblingWindows(size, options), options);
  }

  /**
   * Overlapping windows of `size` starting every `slide`: `[k*slide, k*slide + size)`.
   * @example
   * readings.keyBy(r => r.sensor).hopping('10s', '1s').collect()
   */
  hopping(size: Duration, slide: Duration, options?: WindowOptions): WindowedStream<K, V> {
    return this.windowed(hoppingWindows(size, slide, options), options);
  }

  /**
   * One window per key and distinct record timestamp t, covering `(t - size, t]`.
   * @example
   * payments.keyBy(p => p.card).sliding('1m').count()
   */
  sliding(size: Duration, options?: WindowOptions): WindowedStream<K, V> {
    return this.windowed(slidingWindows(size, options), options);
  }

  /**
   * Sessions: records of a key at most `gap` apart form one window `[first, last + 1)`.
   * @example
   * clicks.keyBy(c => c.user).session('30m').collect()
   */
  session(gap: Duration, options?: WindowOptions): WindowedStream<K, V> {
    return this.windowed(sessionWindows(gap, options), options);
  }

  /**
   * Per key, every `step` records (default `size`), a window of the last `size` records.
   * @example
   * readings.keyBy(r => r.sensor).countWindow(100, 10).mean(r => r.value)
   */
  countWindow(size: number, step?: number, options?: WindowOptions): WindowedStream<K, V> {
    return this.windowed(countWindows(size, step, options), options);
  }

  /**
   * Stream–table: joins each record with the table's value for its key as of that record; a
   * record whose key the table does not hold is dropped; table updates produce nothing. The
   * stream goes through a repartition topic with the table's partition count when re-keyed.
   *
   * Stream–stream (windowed): joins each pair of records of one key, one from each stream, whose
   * timestamps differ by at most `within`, once, whatever order they arrive in within `grace`
   * (output timestamp: the later of the two).
   * @example
   * readings.keyBy(r => r.sensor).join(sensors, (reading, sensor, key) => ({ ...reading, place: sensor.place }))
   * readings.keyBy(r => r.sensor).join(repairs.keyBy(e => e.sensor), (reading, repair) => ({ reading, repair }), { within: '5s', grace: '1s' })
   */
  override join<T, R>(table: GlobalTable<unknown, T>, tableKey: (value: V, key: K) => unknown, joiner: (value: V, tableValue: T, key: K) => R): KeyedStream<K, R>;
  override join<T, R>(table: Table<K, T>, joiner: (value: V, tableValue: T, key: K) => R, options?: { name?: string }): KeyedStream<K, R>;
  override join<V2, R>(other: KeyedStream<K, V2>, joiner: (value: V, otherValue: V2, key: K) => R, options: StreamJoinOptions): KeyedStream<K, R>;
  override join<R>(other: GlobalTable<unknown, unknown> | Table<K, unknown> | KeyedStream<K, unknown>, joiner: unknown, options: unknown = {}): KeyedStream<K, R> {
    if (other instanceof GlobalTable) return new KeyedStream(this.graph, this.globalJoinNode('inner', other, joiner, options));
    const join = joiner as JoinerOf<K, V, unknown, R>;
    return other instanceof KeyedStream ? this.joinStream('inner', other, join, options as StreamJoinOptions) : this.joinTable('inner', other, join, options as { name?: string });
  }

  /**
   * Like {@link join}, but a record with no partner still goes on, with `undefined` for the other
   * side: against a table at once; against a stream once its join window has closed (stream time
   * past its timestamp + within + grace), never before.
   * @example
   * readings.keyBy(r => r.sensor).leftJoin(sensors, (reading, sensor) => ({ ...reading, place: sensor?.place ?? 'unknown' }))
   */
  override leftJoin<T, R>(table: GlobalTable<unknown, T>, tableKey: (value: V, key: K) => unknown, joiner: (value: V, tableValue: T | undefined, key: K) => R): KeyedStream<K, R>;
  override leftJoin<T, R>(table: Table<K, T>, joiner: (value: V, tableValue: T | undefined, key: K) => R, options?: { name?: string }): KeyedStream<K, R>;
  override leftJoin<V2, R>(other: KeyedStream<K, V2>, joiner: (value: V, otherValue: V2 | undefined, key: K) => R, options: StreamJoinOptions): KeyedStream<K, R>;
  override leftJoin<R>(other: GlobalTable<unknown, unknown> | Table<K, unknown> | KeyedStream<K, unknown>, joiner: unknown, options: unknown = {}): KeyedStream<K, R> {
    if (other instanceof GlobalTable) return new KeyedStream(this.graph, this.globalJoinNode('left', other, joiner, options));
    const join = joiner as JoinerOf<K, V, unknown, R>;
    return other instanceof KeyedStream ? this.joinStream('left', other, join, options as StreamJoinOptions) : this.joinTable('left', other, join, options as { name?: string });
  }

  /**
   * Windowed stream–stream join where a record of either side with no partner goes on once its
   * join window has closed, with `undefined` for the other side.
   * @example
   * readings.keyBy(r => r.sensor).outerJoin(repairs.keyBy(e => e.sensor), (reading, repair) => ({ reading, repair }), { within: '5s' })
   */
  outerJoin<V2, R>(other: KeyedStream<K, V2>, joiner: (value: V | undefined, otherValue: V2 | undefined, key: K) => R, options: StreamJoinOptions): KeyedStream<K, R> {
    if (!(other instanceof KeyedStream)) throw new ConfigError(`outerJoin: expected a keyed stream (stream.keyBy(...)), got ${String(other)}`);
    return this.joinStream('outer', other, joiner as JoinerOf<K, V, unknown, R>, options);
  }

  private joinStream<R>(mode: 'inner' | 'left' | 'outer', other: KeyedStream<K, unknown>, joiner: JoinerOf<K, V, unknown, R>, options: { name?: string } | StreamJoinOptions): KeyedStream<K, R> {
    const what = mode === 'inner' ? 'join' : `${mode}Join`;
    if (typeof joiner !== 'function') throw new ConfigError(`${what}: the joiner must be a function, got ${typeof joiner}`);
    const { within, grace, name } = (options ?? {}) as Partial<StreamJoinOptions>;
    if (within === undefined) throw new ConfigError(`${what} of two streams: give { within } (how far apart two records may be in time to be joined)`);
    const withinMs = toMs(within, `${what} within`, { allowZero: true });
    const graceMs = grace === undefined ? 0 : toMs(grace, `${what} grace`, { allowZero: true });
    const storeName = checkName(name, what) ?? `${what}-within-${withinMs}ms-grace-${graceMs}ms`;
    const node = this.graph.add({ kind: 'streamJoin', parents: [this.node, other.node], mode, joiner: joiner as Joiner, withinMs, graceMs, storeName });
    return new KeyedStream(this.graph, node);
  }

  private joinTable<R>(mode: 'inner' | 'left', table: Table<K, unknown>, joiner: JoinerOf<K, V, unknown, R>, options: { name?: string }): KeyedStream<K, R> {
    const what = mode === 'left' ? 'leftJoin' : 'join';
    if (!(table instanceof Table)) throw new ConfigError(`${what}: expected a Table (app.table(topic), or an aggregate such as count()), got ${String(table)}`);
    if (typeof joiner !== 'function') throw new ConfigError(`${what}: the joiner must be a function, got ${typeof joiner}`);
    const name = checkName(options?.name, what) ?? `${table.name}-join`;
    const node = this.graph.add({ kind: 'join', parents: [this.node, table.node], mode, joiner: joiner as Joiner, tableStore: table.name, name });
    return new KeyedStream(this.graph, node);
  }

  private windowed(window: WindowDefinition, options: WindowOptions | undefined): WindowedStream<K, V> {
    return new WindowedStream(this.graph, this.node, window, checkName(options?.name, 'window'));
  }

  private table<A>(aggregation: AnyAggregation, options: TableOptions): Table<K, A> {
    const storeName = checkName(options.name, aggregation.name) ?? `table-${aggregation.name}`;
    const keyBy = this.node.kind === 'keyBy' ? this.node.name : undefined;
    return new Table(this.graph, this.graph.add({ kind: 'table', parents: [this.node], aggregation, storeName, repartitionName: keyBy }));
  }

  /**
   * A running count per key (a table).
   * @example
   * const counts = clicks.keyBy(c => c.page).count({ name: 'page-counts' });
   */
  count(options: TableOptions = {}): Table<K, number> {
    return this.table(countAggregation(), options);
  }

  /** A running sum per key of `fn(value)` (or the value itself). */
  sum(fn?: (value: V) => number, options: TableOptions = {}): Table<K, number> {
    return this.table(sumAggregation(fn) as AnyAggregation, options);
  }

  /** A running minimum per key. */
  min(fn?: (value: V) => number, options: TableOptions = {}): Table<K, number | null> {
    return this.table(minAggregation(fn) as AnyAggregation, options);
  }

  /** A running maximum per key. */
  max(fn?: (value: V) => number, options: TableOptions = {}): Table<K, number | null> {
    return this.table(maxAggregation(fn) as AnyAggregation, options);
  }

  /** A running mean per key. */
  mean(fn?: (value: V) => number, options: TableOptions = {}): Table<K, number | null> {
    return this.table(meanAggregation(fn) as AnyAggregation, options);
  }

  /** A running reduction per key. */
  reduce(fn: (accumulator: V, value: V) => V, options: TableOptions = {}): Table<K, V> {
    return this.table(reduceAggregation(fn) as AnyAggregation, options);
  }

  /**
   * A running aggregate per key.
   * @example
   * orders.keyBy(o => o.customer).aggregate({ init: () => 0, add: (total, o) => total + o.amount }, { name: 'spend' })
   */
  aggregate<A>(spec: AggregateSpec<V, A>, options: TableOptions = {}): Table<K, A> {
    return this.table(userAggregation(spec, { running: true }) as AnyAggregation, options);
  }
}
