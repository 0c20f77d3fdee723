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
import type { Duration } from '../duration.js';
import { ConfigError } from '../errors.js';
import { isBatchHandler, type LateRecord, type WindowHandler, type WindowResult } from '../handler.js';
import { checkSerde, defaultKeySerde, json, type Serde } from '../serde.js';
import {
  checkName,
  countWindows,
  defaultWindowStoreName,
  hoppingWindows,
  sessionWindows,
  slidingWindows,
  tumblingWindows,
  type WindowDefinition,
  type WindowOptions,
} from '../windows/definitions.js';
import type { GraphBuilder, Node, RecordCallback } from './graph.js';

/** Options of writing a topic ({@link Stream.to}, {@link Stream.through}). */
export interface SinkOptions<K, V> {
  /** Serializes keys. Default: UTF-8 for strings, JSON otherwise. */
  key?: Serde<K>;
  /** Serializes values. Default: JSON. */
  value?: Serde<V>;
  /**
   * Declares that this write feeds a topic the app itself reads, so that records go round a loop.
   * Without it such a loop (the same pipeline reading the topic, or another pipeline of the app
   * that leads back to it) is refused when the topology is built: a loop with no exit never ends
   * and grows its topics without bound. Default false.
   * @example
   * // Each round halves the remaining budget; the filter is the loop's exit.
   * app.from<Job>('jobs')
   *   .filter(job => job.budget >= 1)
   *   .map(job => ({ ...job, budget: job.budget / 2 }))
   *   .to('jobs', { cycle: true });
   */
  cycle?: boolean;
}

/** Options of unwindowed aggregates. */
export interface TableOptions {
  /** The state store name (and so its changelog topic); defaults to the aggregation's name. */
  name?: string;
}

type AnyAggregation = Aggregation<unknown, unknown, unknown>;

function checkFunction(fn: unknown, what: string): RecordCallback {
  if (typeof fn !== 'function') throw new ConfigError(`${what}: expected a function, got ${fn === null ? 'null' : typeof fn}`);
  return fn as RecordCallback;
}

function checkTopic(topic: unknown, what: string): string {
  if (typeof topic !== 'string' || !/^[A-Za-z0-9._-]{1,249}$/.test(topic)) {
    throw new ConfigError(`${what}: invalid topic name ${JSON.stringify(topic)} (letters, digits, '.', '_' and '-', at most 249)`);
  }
  return topic;
}

function checkHandler(handler: unknown, what: string, optional = false): WindowHandler<unknown, unknown> | undefined {
  if (handler === undefined && optional) return undefined;
  if (typeof handler === 'function' || isBatchHandler(handler)) return handler as WindowHandler<unknown, unknown>;
  throw new ConfigError(`${what}: expected a function or a worker pool, got ${handler === null ? 'null' : typeof handler}`);
}

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
    const storeName = this.name ?? defaultWindowStoreName(this.window, aggregation.name);
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

/** Per-window aggregates; choose how results leave: final (`onClose`), every change, late records. */
export class WindowedTable<K, A, V = unknown> {
  /** @internal */
  constructor(
    private readonly graph: GraphBuilder,
    /** @internal */ readonly node: Node,
  ) {}

  /**
   * The window store's name, to read its open windows with `app.store(...)` (the stage itself works too).
   * @example
   * const counts = keyed.hopping('10s', '1s').count();
   * await app.store(counts).get('s1');   // [{ start, end, value }]
   */
  get name(): string {
    return (this.node as Extract<Node, { kind: 'window' }>).storeName;
  }

  private emit<R>(event: 'close' | 'update' | 'late', handler: unknown, label: string, optional: boolean): Stream<K, R> {
    const checked = checkHandler(handler, label, optional);
    return new Stream(this.graph, this.graph.add({ kind: 'emit', parents: [this.node], event, handler: checked, label }));
  }

  /**
   * Runs `handler` once per window when it closes (stream time ≥ end + grace); its results are
   * records keyed by the window key with timestamp `end - 1`. A `workerPool(...)` works too.
   * @example
   * windows.onClose(w => ({ sensor: w.key, mean: w.value })).to('means')
   */
  onClose<R>(handler: WindowHandler<WindowResult<K, A>, R>): Stream<K, R> {
    return this.emit('close', handler, 'onClose', false);
  }

  /**
   * Emits on every change of a window; without a handler the window itself (`{ key, start, end, value }`).
   * @example
   * windows.onUpdate().to('live-counts')
   */
  onUpdate(): Stream<K, WindowResult<K, A>>;
  onUpdate<R>(handler: WindowHandler<WindowResult<K, A>, R>): Stream<K, R>;
  onUpdate<R>(handler?: WindowHandler<WindowResult<K, A>, R>): Stream<K, R | WindowResult<K, A>> {
    return this.emit('update', handler, 'onUpdate', true);
  }

  /**
   * The final result of each window as a stream of `{ key, start, end, value }`.
   * @example
   * windows.toStream().to('window-results')
   */
  toStream(): Stream<K, WindowResult<K, A>> {
    return this.emit('close', undefined, 'toStream', true);
  }

  /**
   * Runs `handler` for each record that arrives after a window it belongs to has closed, once per
   * missed window (`{ key, start, end, value: the record's value, timestamp }`); its results form a stream.
   * @example
   * windows.onLate(late => late).to('late-readings')
   */
  onLate<R>(handler: WindowHandler<LateRecord<K, V>, R>): Stream<K, R> {
    return this.emit('late', handler, 'onLate', false);
  }
}

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
}
