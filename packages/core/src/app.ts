import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import { systemClock, type Clock, type TimerHandle } from './clock.js';
import { GraphBuilder, type Node } from './dsl/graph.js';
import { Stream, Table, WindowedTable } from './dsl/stages.js';
import { buildTopology, changelogTopic, deadLetterTopic, describeMermaid, describeText, type SubTopology, type Topology } from './dsl/topology.js';
import { toMs, type Duration } from './duration.js';
import { ConfigError, describeError, EddyError } from './errors.js';
import { isBatchHandler, type WindowBatchHandler } from './handler.js';
import { defaultLogger, type Logger } from './logger.js';
import { partitionForKey } from './murmur2.js';
import { CacheBudget } from './runtime/cache.js';
import { HostSends } from './runtime/host-sends.js';
import { Lifecycle, type AppEvents, type AppState } from './runtime/lifecycle.js';
import { Metrics, type MetricsSnapshot } from './runtime/metrics.js';
import { Task, taskIdOf, type CommitRecord, type TaskHost } from './runtime/task.js';
import { checkSerde, defaultKeySerde, json, type Serde } from './serde.js';
import type { StateBackend } from './state/backend.js';
import { memoryState } from './state/memory.js';
import { memoryTransport } from './transport/memory.js';
import type { CaughtUp, Headers, OutgoingRecord, TopicPartition, TopicPartitionOffset, TransactionalProducer, Transport, TransportConsumer, TransportProducer } from './transport/types.js';

/** How the host's records reach one topic (see `App.send`). */
interface HostRoute {
  readonly topic: string;
  readonly partitions: number;
  readonly keySerde: Serde<unknown>;
  readonly valueSerde: Serde<unknown>;
  readonly sends: HostSends;
  /** Keys sent lately, serialized and hashed to their partition. */
  readonly keys: Map<unknown, { readonly bytes: Uint8Array; readonly partition: number }>;
}

const emptyHeaders: Headers = Object.freeze({});

/** A worker pool that takes no more windows: the sources pause (see backpressure in `start`). */
const isFull = (handler: WindowBatchHandler<unknown, unknown>): boolean => handler.queueDepth >= handler.maxQueue;

const isTransactional = (producer: TransportProducer): producer is TransactionalProducer =>
  typeof (producer as Partial<TransactionalProducer>).begin === 'function' && typeof (producer as Partial<TransactionalProducer>).sendOffsets === 'function';

/** Options of {@link createApp}. */
export interface AppOptions {
  /** The consumer group id, the prefix of internal topics and the state directory name. */
  id: string;
  /** Where topics live; default: a private embedded broker (`memoryTransport()`). */
  transport?: Transport;
  /** Where state lives; default: in memory (rebuilt from the changelog on restart). */
  state?: StateBackend;
  /** `event` (default): record timestamps; `processing`: the clock at arrival. */
  time?: 'event' | 'processing';
  /** Event time: after this much quiet, a task's stream time follows the clock. Default `'5s'`; `false` disables. */
  idleTimeout?: Duration | false;
  /** How often tasks commit (state flush, offsets). Default `'1s'`. */
  commitInterval?: Duration;
  /**
   * Default `at-least-once`; `exactly-once` needs a transport with transactions: each task commits
   * its outputs, state changes and input offsets in one transaction; after a failed transaction (a
   * broker failure past retries, a coordinator that aborted it) the task starts again from its
   * last commit, unless the group gave its partitions to another instance (this one a zombie).
   */
  guarantee?: 'at-least-once' | 'exactly-once';
  /** What a bad record does: `dead-letter` (default, to `<id>-dlq`) or `stop`. */
  onError?: 'dead-letter' | 'stop';
  /** Handler windows waiting per task before its source pauses. Default 1000. */
  maxPending?: number;
  /**
   * How long a task may go without a successful commit (or keep failing to send) before the app
   * reports it: a `warn` log, `app.health()` degraded. Default: five commit intervals.
   */
  stallTimeout?: Duration;
  /** A pino-compatible logger. */
  logger?: Logger;
  /** The clock; tests inject a virtual one (the TestDriver does). */
  clock?: Clock;
}

/** What `app.health()` reports. */
export interface HealthReport {
  readonly status: 'ok' | 'degraded' | 'failed';
  /** Why it is not ok, one line each. */
  readonly reasons: string[];
}

/** Options of {@link App.from}. */
export interface SourceOptions<K, V> {
  /** Event time of a record; default: the record's own timestamp. */
  timestamp?: (value: V) => number;
  key?: Serde<K>;
  value?: Serde<V>;
}

/** Options of {@link App.send}. */
export interface SendOptions {
  key?: unknown;
  timestamp?: number;
  headers?: Record<string, string>;
}

/** One open window of a window store. */
export interface StoredWindow<A> {
  readonly start: number;
  readonly end: number;
  readonly value: A;
}

/** Reads a table from the host service (see {@link App.store}). */
export interface TableReader<K, A> {
  /** The key's value, or undefined if it has none. */
  get(key: K): Promise<A | undefined>;
  /** All entries (optionally keys in `[gte, lt)`, compared as strings), sorted by key. */
  range(options?: { gte?: string; lt?: string }): Promise<Array<{ key: K; value: A }>>;
}

/** Reads a window store from the host service (see {@link App.store}). */
export interface WindowStoreReader<K, A> {
  /** The key's open windows in window order; `[]` when it has none. */
  get(key: K): Promise<Array<StoredWindow<A>>>;
  /** Every key's open windows (optionally keys in `[gte, lt)`, compared as strings), sorted by key. */
  range(options?: { gte?: string; lt?: string }): Promise<Array<{ key: K; value: Array<StoredWindow<A>> }>>;
}

/** Reads a state store from the host service. */
export interface StoreReader {
  /** The value of one key: a table's aggregate, or a window store's open windows. */
  get(key: unknown): Promise<unknown>;
  /** All entries (optionally keys in `[gte, lt)`, compared as strings), sorted by key. */
  range(options?: { gte?: string; lt?: string }): Promise<Array<{ key: unknown; value: unknown }>>;
}

const idPattern = /^[A-Za-z0-9._-]{1,200}$/;

/**
 * Creates an app: declare pipelines with `from(...)`, then `start()`.
 * @example
 * const app = createApp({ id: 'sensors' });
 * app.from<Reading>('readings').keyBy(r => r.sensor).tumbling('10s').count().toStream().to('counts');
 * await app.start();
 */
export function createApp(options: AppOptions): App {
  return new App(options);
}

/** A stream-processing app: its pipelines, tasks, state and transport. */
export class App {
  readonly id: string;
  readonly #graph = new GraphBuilder();
  readonly #options: Required<Pick<AppOptions, 'time' | 'guarantee' | 'onError'>>;
  readonly #idleTimeoutMs: number | undefined;
  readonly #commitIntervalMs: number;
  readonly #maxPending: number;
  readonly #stallTimeoutMs: number;
  /** Per task id, its commits on this instance (see `CommitRecord`): kept while the task is started again after failures. */
  readonly #commitRecords = new Map<string, CommitRecord>();
  /** Tasks reported stuck (see `stallTimeout`), so that each stall is logged once, and its end. */
  readonly #stalled = new Set<string>();
  #logger: Logger;
  #clock: Clock;
  #transport: Transport;
  #state: StateBackend;
  readonly #life = new Lifecycle((event, error) => this.#log('error', `an app.on('${event}') listener threw`, { error: describeError(error) }));
  /** Records are taken and work is committed: from subscribing until the app stops or fails. */
  #open = false;
  /** Whether this app holds its state (see `StateBackend.claim`), and so closes it when it stops. */
  #stateClaimed = false;
  /** Assignments and revocations under way (the app is `rebalancing` while there are any). */
  #rebalances = 0;
  #topology: Topology | undefined;
  #producer: TransportProducer | undefined;
  #consumer: TransportConsumer | undefined;
  readonly #partitions = new Map<string, number>();
  readonly #tasks = new Map<string, Task>();
  readonly #metrics = new Metrics();
  #timer: TimerHandle | undefined;
  #nextCommitAt = 0;
  readonly #background = new Set<Promise<unknown>>();
  /** Tasks being revoked: a failed commit closes them, it does not rebuild them. */
  readonly #revoking = new Set<Task>();
  /**
   * Local hand-off: per upstream task that may hand records off, the end offset of each of its
   * internal topics' partitions when it opened (records of earlier owners the reading task must
   * have read before records bypass the topic).
   */
  readonly #handOffFloors = new Map<Task, Map<string, number>>();
  /** Per upstream task, the tasks it handed records to since its last commit, with their commit count at the latest hand-off. */
  readonly #handedTo = new Map<Task, Map<Task, number>>();
  #stopping: Promise<void> | undefined;
  #restoredRecords = 0;
  #cache!: CacheBudget;
  #restoreRemaining = 0;
  #eventLoopDelay: IntervalHistogram | undefined;

  constructor(options: AppOptions) {
    if (typeof options !== 'object' || options === null) throw new ConfigError(`createApp: expected options, got ${String(options)}`);
    if (typeof options.id !== 'string' || !idPattern.test(options.id)) {
      throw new ConfigError(`createApp: invalid id ${JSON.stringify(options.id)} (letters, digits, '.', '_' and '-')`);
    }
    const time = options.time ?? 'event';
    if (time !== 'event' && time !== 'processing') throw new ConfigError(`createApp: time must be 'event' or 'processing', got ${JSON.stringify(time)}`);
    const guarantee = options.guarantee ?? 'at-least-once';
    if (guarantee !== 'at-least-once' && guarantee !== 'exactly-once') {
      throw new ConfigError(`createApp: guarantee must be 'at-least-once' or 'exactly-once', got ${JSON.stringify(guarantee)}`);
    }
    const onError = options.onError ?? 'dead-letter';
    if (onError !== 'dead-letter' && onError !== 'stop') throw new ConfigError(`createApp: onError must be 'dead-letter' or 'stop', got ${JSON.stringify(onError)}`);
    const maxPending = options.maxPending ?? 1000;
    if (!Number.isInteger(maxPending) || maxPending < 1) throw new ConfigError(`createApp: maxPending must be a positive integer, got ${String(maxPending)}`);
    this.id = options.id;
    this.#options = { time, guarantee, onError };
    this.#idleTimeoutMs = options.idleTimeout === false ? undefined : toMs(options.idleTimeout ?? '5s', 'idleTimeout', { allowZero: true });
    this.#commitIntervalMs = toMs(options.commitInterval ?? '1s', 'commitInterval');
    this.#maxPending = maxPending;
    this.#stallTimeoutMs = options.stallTimeout === undefined ? 5 * this.#commitIntervalMs : toMs(options.stallTimeout, 'stallTimeout');
    this.#logger = options.logger ?? defaultLogger;
    this.#clock = options.clock ?? systemClock;
    this.#transport = options.transport ?? memoryTransport();
    this.#state = options.state ?? memoryState();
    this.#cache = new CacheBudget(this.#state.cacheBudgetBytes);
  }

  /**
   * A stream of a topic's records. Keys are read as UTF-8 strings, values as JSON, unless serdes say otherwise.
   * @example
   * app.from<Reading>('readings', { timestamp: r => r.ts })
   */
  from<V, K = string | undefined>(topic: string, options: SourceOptions<K, V> = {}): Stream<K, V> {
    this.#assertStatus('created', 'from');
    if (typeof topic !== 'string' || !/^[A-Za-z0-9._-]{1,249}$/.test(topic)) throw new ConfigError(`from: invalid topic name ${JSON.stringify(topic)}`);
    if (options.timestamp !== undefined && typeof options.timestamp !== 'function') {
      throw new ConfigError(`from ${topic}: timestamp must be a function, got ${typeof options.timestamp}`);
    }
    const node = this.#graph.add({
      kind: 'source',
      parents: [],
      topic,
      timestamp: options.timestamp as ((value: unknown) => number) | undefined,
      keySerde: (checkSerde(options.key, `from ${topic} key`) ?? defaultKeySerde) as Serde<unknown>,
      valueSerde: (checkSerde(options.value, `from ${topic} value`) ?? json()) as Serde<unknown>,
      internal: false,
    });
    return new Stream<K, V>(this.#graph, node);
  }

  /**
   * The topology as text (default) or a Mermaid flowchart.
   * @example
   * console.log(app.describe({ format: 'mermaid' }));
   */
  describe(options: { format?: 'text' | 'mermaid' } = {}): string {
    const topology = this.#topology ?? buildTopology(this.id, this.#graph.nodes);
    if (options.format === 'mermaid') return describeMermaid(topology);
    if (options.format !== undefined && options.format !== 'text') throw new ConfigError(`describe: format must be 'text' or 'mermaid', got ${JSON.stringify(options.format)}`);
    return describeText(topology);
  }

  /** @internal The TestDriver swaps in its clock and a private embedded broker before start. */
  configureForTest(overrides: { clock: Clock; transport: Transport; logger?: Logger }): void {
    this.#assertStatus('created', 'TestDriver.start');
    this.#clock = overrides.clock;
    this.#transport = overrides.transport;
    if (overrides.logger) this.#logger = overrides.logger;
  }

  /**
   * Starts processing; resolves once tasks are assigned and restored.
   * @example
   * await app.start();
   */
  async start(): Promise<void> {
    this.#assertStatus('created', 'start');
    this.#life.moveTo('starting');
    try {
      const topology = buildTopology(this.id, this.#graph.nodes);
      if (topology.subTopologies.length === 0) throw new ConfigError(`app ${this.id}: no pipeline; declare one with app.from(topic) before start()`);
      this.#topology = topology;
      if (this.#options.guarantee === 'exactly-once' && !this.#transport.exactlyOnce) {
        throw new ConfigError(`app ${this.id}: guarantee 'exactly-once' needs a transport with transactions; the ${this.#transport.kind} transport has none`);
      }
      // Before anything is touched: a second instance on the same state fails here.
      await this.#state.claim?.(this.id);
      this.#stateClaimed = true;
      await this.#transport.connect();
      await this.#createTopics(topology);
      await Promise.all(this.#batchHandlers().map((handler) => handler.start()));
      // A producer that `send()` opened before start serves the app too.
      this.#producer ??= await this.#transport.createProducer();
      const topics = topology.subTopologies.flatMap((sub) => sub.sources.map((source) => source.topic));
      this.#nextCommitAt = this.#clock.now() + this.#commitIntervalMs;
      this.#open = true;
      this.#consumer = await this.#transport.subscribe(this.id, topics, {
        onAssign: (partitions) => this.#rebalancing(() => this.#assign(partitions)),
        onRevoke: (partitions) => this.#rebalancing(() => this.#revoke(partitions)),
        onFatal: (error) => this.#stopOn(error, 'the transport failed for good; the app stops'),
        onSkipped: async ({ topic, partition, from, to }) => {
          const task = this.#tasks.get(this.#taskKey(topic, partition));
          if (!task || !this.#open) return;
          await task.exclusive(() => task.skip(topic, from, to));
        },
        onRecords: async (records) => {
          const first = records[0];
          if (!first || !this.#open) return;
          const task = this.#tasks.get(this.#taskKey(first.topic, first.partition));
          if (!task) return;
          await task.exclusive(async () => {
            this.#updateHandOffs(task);
            await task.prepare(records);
            task.process(records);
            // Within the batch: the task's commit must find what it handed off applied.
            await this.#deliverHandOffs(task);
          });
          // Backpressure: a task with too many windows waiting for handlers, or a full worker pool,
          // pauses its source until the work in flight is done.
          if (task.pendingWork > this.#maxPending || this.#batchHandlers().some(isFull)) {
            await task.drain();
            task.restartIdleCountdown();
          }
          this.#arm();
        },
      });
      this.#arm();
      this.#eventLoopDelay = monitorEventLoopDelay({ resolution: 10 });
      this.#eventLoopDelay.enable();
      // A failure while starting (a bad record under onError 'stop', say) has stopped it already.
      if (!this.#life.moveTo('running')) throw this.#life.failure ?? new EddyError('APP_STATE', `start: app ${this.id} stopped while starting`);
      this.#log('info', 'app started', { tasks: this.#tasks.size, transport: this.#transport.kind, state: this.#state.kind });
    } catch (error) {
      this.#open = false;
      this.#life.fail(error instanceof EddyError ? error : new EddyError('APP_STATE', `start: app ${this.id} failed to start: ${describeError(error)}`, { cause: error }), { notify: false });
      await this.#release();
      throw error;
    }
  }

  /**
   * Drains in-flight work, commits, and closes. Safe to call twice.
   * @example
   * process.on('SIGTERM', () => app.stop());
   */
  stop(): Promise<void> {
    if (this.#life.state === 'created') {
      this.#life.moveTo('stopped');
      // Never started, but `send()` may have opened a producer.
      this.#stopping ??= this.#release();
    }
    this.#stopping ??= this.#shutdown();
    return this.#stopping;
  }

  /** Stops taking records, finishes and commits what was taken (unless the app failed), and closes. */
  async #shutdown(): Promise<void> {
    this.#life.moveTo('stopping');
    this.#open = this.#life.failure === undefined && this.#open;
    this.#timer?.cancel();
    this.#eventLoopDelay?.disable();
    await Promise.allSettled([...this.#background]);
    try {
      await this.#consumer?.close();
    } finally {
      this.#open = false;
      await this.#release();
      this.#life.moveTo('stopped');
      this.#log('info', 'app stopped', { state: this.#life.state });
    }
  }

  /** Closes the producer, handlers, state and transport; each is closed even if another fails to. */
  async #release(): Promise<void> {
    const results = await Promise.allSettled([
      this.#producer?.close(),
      ...this.#batchHandlers().map((handler) => handler.close()),
    ]);
    // State this app never claimed may be another's (a second instance that failed to start).
    if (this.#stateClaimed) results.push(...(await Promise.allSettled([this.#state.close()])));
    results.push(...(await Promise.allSettled([this.#transport.close()])));
    for (const result of results) if (result.status === 'rejected') this.#log('warn', 'closing failed', { error: describeError(result.reason) });
  }

  /**
   * Produces a record from the host service (JSON value unless the topic's source says otherwise;
   * a Uint8Array is sent as raw bytes). Resolves once the transport has it (on `levelTransport`,
   * written to disk; on Kafka, acknowledged).
   * @example
   * await app.send('readings', { sensor: 's1', value: 20.5, ts: Date.now() }, { key: 's1' });
   */
  send(topic: string, value: unknown, options: SendOptions = {}): Promise<void> {
    const stopped = this.#stoppedForSends('send');
    if (stopped) return Promise.reject(stopped);
    return this.produceTo(topic, value, options);
  }

  /**
   * Produces many records to one topic in one write: the cheapest way in for a host that has
   * records at hand (a request body, a file, a queue it drains).
   * @example
   * await app.sendBatch('readings', events.map((event) => ({ value: event, key: event.sensor, timestamp: event.ts })));
   */
  sendBatch(topic: string, records: ReadonlyArray<SendOptions & { value: unknown }>): Promise<void> {
    const stopped = this.#stoppedForSends('sendBatch');
    if (stopped) return Promise.reject(stopped);
    if (!Array.isArray(records)) return Promise.reject(new ConfigError(`sendBatch: expected an array of { value, key?, timestamp?, headers? }, got ${typeof records}`));
    return this.#produce(topic, records, 'sendBatch');
  }

  /** @internal Shared by `send` and the TestDriver. */
  produceTo(topic: string, value: unknown, options: SendOptions): Promise<void> {
    const route = this.#routes.get(topic);
    // The usual case, once a topic has been written to: no await before the producer's own.
    if (route) {
      try {
        return route.sends.send([this.#outgoing(route, value, options, 'send')]);
      } catch (error) {
        return Promise.reject(error);
      }
    }
    return this.#produce(topic, [{ ...options, value }], 'send');
  }

  async #produce(topic: string, records: ReadonlyArray<SendOptions & { value: unknown }>, what: string): Promise<void> {
    const route = this.#routes.get(topic) ?? (await this.#route(topic, what));
    if (records.length === 0) return;
    await route.sends.send(records.map((record) => this.#outgoing(route, record.value, record, what)));
  }

  /** How the host's records for `topic` are written: its source's serdes, its partitions, the producer. */
  async #route(topic: string, what: string): Promise<HostRoute> {
    if (typeof topic !== 'string' || !/^[A-Za-z0-9._-]{1,249}$/.test(topic)) throw new ConfigError(`${what}: invalid topic ${JSON.stringify(topic)}`);
    const source = this.#graph.nodes.find((node) => node.kind === 'source' && node.topic === topic);
    const partitions = await this.#partitionCount(topic);
    this.#producer ??= await this.#transport.createProducer();
    if (this.#hostSends?.producer !== this.#producer) this.#hostSends = { producer: this.#producer, sends: new HostSends(this.#producer) };
    const route: HostRoute = {
      topic,
      partitions,
      keySerde: source?.kind === 'source' ? source.keySerde : defaultKeySerde,
      valueSerde: source?.kind === 'source' ? source.valueSerde : json(),
      sends: this.#hostSends.sends,
      keys: new Map(),
    };
    this.#routes.set(topic, route);
    return route;
  }
  /** Per topic the host writes, how (see `#route`). */
  readonly #routes = new Map<string, HostRoute>();
  /** The host's sends of a turn, together (see HostSends), for the producer they go through. */
  #hostSends: { readonly producer: TransportProducer; readonly sends: HostSends } | undefined;

  #outgoing(route: HostRoute, value: unknown, options: SendOptions, what: string): OutgoingRecord {
    const timestamp = options.timestamp ?? this.#clock.now();
    if (typeof timestamp !== 'number' || !Number.isFinite(timestamp)) throw new ConfigError(`${what}: timestamp must be a finite number, got ${String(timestamp)}`);
    const bytes = value === null || value === undefined ? null : value instanceof Uint8Array ? value : route.valueSerde.serialize(value);
    const headers = (options.headers ?? emptyHeaders) as Headers;
    const key = options.key;
    if (key === undefined || key === null) return { topic: route.topic, partition: this.#roundRobin++ % route.partitions, key: null, value: bytes, timestamp, headers };
    if (key instanceof Uint8Array) return { topic: route.topic, partition: partitionForKey(key, route.partitions), key, value: bytes, timestamp, headers };
    // Keys repeat: serialize and hash each one once (as sinks do).
    let keyed = typeof key === 'object' ? undefined : route.keys.get(key);
    if (!keyed) {
      const keyBytes = route.keySerde.serialize(key);
      keyed = { bytes: keyBytes, partition: partitionForKey(keyBytes, route.partitions) };
      if (typeof key !== 'object') {
        if (route.keys.size >= 10_000) route.keys.clear();
        route.keys.set(key, keyed);
      }
    }
    return { topic: route.topic, partition: keyed.partition, key: keyed.bytes, value: bytes, timestamp, headers };
  }
  #roundRobin = 0;

  /** Why the host may not send any more, if it may not. */
  #stoppedForSends(what: string): EddyError | undefined {
    const state = this.#life.state;
    if (state === 'stopping' || state === 'stopped' || state === 'failed') return new EddyError('APP_STOPPED', `${what}: app ${this.id} is ${state}`);
    return undefined;
  }

  /**
   * Reads a state store from the host service: a table's value per key, or a window store's open
   * windows per key (`[]` when the key has none). Give the stage itself (its `name` and types
   * come with it) or the store's name. Reads reject with `APP_STATE` unless the app is running.
   * @example
   * const spend = app.keyBy(o => o.customer).sum(o => o.amount, { name: 'spend' });
   * await app.store(spend).get('customer-7');          // number | undefined
   * await app.store('hopping-10000ms-1000ms-count').get('s1');  // [{ start, end, value }]
   */
  store<K, A>(table: Table<K, A>): TableReader<K, A>;
  store<K, A>(windows: WindowedTable<K, A, unknown>): WindowStoreReader<K, A>;
  store(name: string): StoreReader;
  store(stage: string | Table<unknown, unknown> | WindowedTable<unknown, unknown, unknown>): StoreReader {
    const name = typeof stage === 'string' ? stage : stage instanceof Table || stage instanceof WindowedTable ? stage.name : undefined;
    const names = this.#storeNames();
    if (name === undefined || !names.includes(name)) {
      throw new ConfigError(`store: no store named ${typeof stage === 'string' ? JSON.stringify(stage) : String(name ?? stage)}; stores: ${names.join(', ') || '(none)'}`);
    }
    const windowed = this.#graph.nodes.some((node) => node.kind === 'window' && node.storeName === name);
    const operators = () => {
      if (!this.#life.active) throw new EddyError('APP_STATE', `store ${name}: app ${this.id} is ${this.#life.state}; its stores are read while it runs`);
      return [...this.#tasks.values()].flatMap((task) => task.operators.filter((operator) => operator.storeName === name));
    };
    return {
      get: async (key) => {
        for (const operator of operators()) {
          const value = await operator.query(key);
          if (value !== undefined) return value;
        }
        return windowed ? [] : undefined;
      },
      range: async ({ gte, lt } = {}) => {
        const rows: Array<{ key: unknown; value: unknown }> = [];
        for (const operator of operators()) {
          for await (const [key, value] of operator.queryAll()) {
            const text = String(key);
            if ((gte === undefined || text >= gte) && (lt === undefined || text < lt)) rows.push({ key, value });
          }
        }
        return rows.sort((a, b) => (String(a.key) < String(b.key) ? -1 : String(a.key) > String(b.key) ? 1 : 0));
      },
    };
  }

  /**
   * A snapshot of the app's counters, or the same in Prometheus text format.
   * @example
   * app.metrics().deadLetters
   */
  metrics(): MetricsSnapshot;
  metrics(format: 'prometheus'): string;
  metrics(format?: 'prometheus'): MetricsSnapshot | string {
    const tasks = [...this.#tasks.values()];
    const now = this.#clock.now();
    const snapshot: MetricsSnapshot = {
      recordsIn: this.#metrics.recordsIn,
      recordsOut: this.#metrics.recordsOut,
      windowsOpen: tasks.reduce((sum, task) => sum + task.openWindows(), 0),
      windowsClosed: this.#metrics.windowsClosed,
      lateRecords: this.#metrics.lateRecords,
      deadLetters: this.#metrics.deadLetters,
      duplicatesDropped: this.#metrics.duplicatesDropped,
      recordsHandedOff: this.#metrics.recordsHandedOff,
      handlerQueueDepth: tasks.reduce((sum, task) => sum + task.pendingWork, 0),
      stateCacheBytes: this.#cache.usedBytes,
      restoredRecords: this.#restoredRecords,
      lag: tasks.reduce((sum, task) => sum + task.subTopology.sources.reduce((inner, source) => inner + (this.#consumer?.lag?.({ topic: source.topic, partition: task.partition }) ?? 0), 0), 0),
      eventLoopDelayP99Ms: this.#eventLoopDelay ? this.#eventLoopDelay.percentile(99) / 1e6 : 0,
      eventLoopDelayMaxMs: this.#eventLoopDelay ? this.#eventLoopDelay.max / 1e6 : 0,
      restoreRemaining: this.#restoreRemaining,
      tasks: tasks.length,
      streamTime: Object.fromEntries(tasks.map((task) => [task.taskId, task.streamTime()])),
      commitFailures: this.#metrics.commitFailures,
      lastCommitAgeMs: Object.fromEntries(tasks.map((task) => [task.taskId, task.commitAgeMs(now)])),
    };
    if (format !== 'prometheus') return snapshot;
    const lines: string[] = [];
    const metric = (name: string, type: 'counter' | 'gauge', value: number, help: string) => {
      lines.push(`# HELP eddy_${name} ${help}`, `# TYPE eddy_${name} ${type}`, `eddy_${name}{app="${this.id}"} ${value}`);
    };
    metric('records_in_total', 'counter', snapshot.recordsIn, 'Records read from source topics.');
    metric('records_out_total', 'counter', snapshot.recordsOut, 'Records written to topics.');
    metric('windows_open', 'gauge', snapshot.windowsOpen, 'Windows holding state.');
    metric('windows_closed_total', 'counter', snapshot.windowsClosed, 'Windows closed.');
    metric('late_records_total', 'counter', snapshot.lateRecords, 'Records that missed a closed window.');
    metric('dead_letters_total', 'counter', snapshot.deadLetters, 'Records sent to the dead-letter topic.');
    metric('duplicates_dropped_total', 'counter', snapshot.duplicatesDropped, 'Replayed repartition records dropped as already applied.');
    metric('records_handed_off_total', 'counter', snapshot.recordsHandedOff, 'Records handed to a local task instead of through their repartition topic.');
    metric('handler_queue_depth', 'gauge', snapshot.handlerQueueDepth, 'Handler calls and sends in flight.');
    metric('lag', 'gauge', snapshot.lag, 'Records waiting in assigned input partitions.');
    metric('event_loop_delay_p99_ms', 'gauge', snapshot.eventLoopDelayP99Ms, 'Event-loop delay, 99th percentile.');
    metric('event_loop_delay_max_ms', 'gauge', snapshot.eventLoopDelayMaxMs, 'Event-loop delay, maximum.');
    metric('restored_records_total', 'counter', snapshot.restoredRecords, 'Changelog records replayed into state.');
    metric('state_cache_bytes', 'gauge', snapshot.stateCacheBytes, 'Serialized bytes of state held in memory.');
    metric('restore_remaining', 'gauge', snapshot.restoreRemaining, 'Changelog records left to replay.');
    metric('commit_failures_total', 'counter', snapshot.commitFailures, 'Task commits that failed.');
    metric('last_commit_age_max_ms', 'gauge', Math.max(0, ...Object.values(snapshot.lastCommitAgeMs)), 'Longest time since a task last committed.');
    metric('healthy', 'gauge', this.health().status === 'ok' ? 1 : 0, 'Whether app.health() reports ok.');
    return `${lines.join('\n')}\n`;
  }

  /**
   * Whether the app does its job, for a readiness probe: `ok`; `degraded` while it starts or
   * rebalances, when a task has not committed within `stallTimeout` or its sends keep failing, or
   * when a worker pool's queue is full; `failed` once it stopped (on its own: `app.failure` says why).
   * @example
   * server.get('/ready', (_, res) => res.status(app.health().status === 'ok' ? 200 : 503).end());
   */
  health(): HealthReport {
    const state = this.#life.state;
    if (state === 'failed') return { status: 'failed', reasons: [`failed: ${this.#life.failure?.code}: ${this.#life.failure?.message}`] };
    if (state === 'stopping' || state === 'stopped') return { status: 'failed', reasons: [`the app is ${state}`] };
    if (state === 'created' || state === 'starting') return { status: 'degraded', reasons: [`the app is ${state}`] };
    const reasons = this.#stalls(this.#clock.now());
    if (state === 'rebalancing') reasons.push('the app is rebalancing');
    for (const handler of this.#batchHandlers().filter(isFull)) {
      reasons.push(`a worker pool's queue is full (${handler.queueDepth} of ${handler.maxQueue}): sources are paused`);
    }
    return { status: reasons.length === 0 ? 'ok' : 'degraded', reasons };
  }

  /** Why tasks are stuck (see `stallTimeout`); logs each stall when it begins and when it ends. */
  #stalls(now: number): string[] {
    const reasons: string[] = [];
    for (const task of this.#tasks.values()) {
      const stall = task.stalled(now, this.#stallTimeoutMs);
      if (stall) {
        reasons.push(stall);
        if (!this.#stalled.has(task.taskId)) this.#log('warn', 'a task is stuck: its work is not committed', { task: task.taskId, reason: stall });
        this.#stalled.add(task.taskId);
      } else if (this.#stalled.delete(task.taskId)) {
        this.#log('info', 'a stuck task commits again', { task: task.taskId });
      }
    }
    return reasons;
  }

  /** @internal The topology's sources and sinks (the TestDriver decodes topics with their serdes). */
  topologyNodes(): { sources: Extract<Node, { kind: 'source' }>[]; sinks: Extract<Node, { kind: 'sink' }>[] } {
    const nodes = (this.#topology ?? buildTopology(this.id, this.#graph.nodes)).subTopologies.flatMap((sub) => sub.nodes);
    return {
      sources: nodes.filter((node): node is Extract<Node, { kind: 'source' }> => node.kind === 'source'),
      sinks: nodes.filter((node): node is Extract<Node, { kind: 'sink' }> => node.kind === 'sink'),
    };
  }

  /**
   * Where the app is in its life: `created`, `starting`, `running`, `rebalancing`, `stopping`,
   * `stopped`, or `failed` (it stopped on its own; see {@link App.failure}).
   * @example
   * if (app.state === 'failed') process.exitCode = 1;
   */
  get state(): AppState {
    return this.#life.state;
  }

  /**
   * Listens for the app's state changes (`state`, with the previous state) or for the error it
   * stops on by itself (`error`, once, before the state becomes `failed`). Returns a function
   * that removes the listener. An `error` with no listener is logged, never thrown.
   * @example
   * const off = app.on('error', (error) => alerting.page(`eddy stopped: ${error.code}`));
   */
  on<E extends keyof AppEvents>(event: E, listener: AppEvents[E]): () => void {
    return this.#life.on(event, listener);
  }

  /**
   * Why the app stopped on its own (a bad record under `onError: 'stop'`, a record the broker
   * refused that cannot be dead-lettered, a transport that failed for good), if it did.
   * @example
   * app.on('state', (state) => state === 'failed' && console.error(app.failure?.code));
   */
  get failure(): EddyError | undefined {
    return this.#life.failure;
  }

  /** @internal For the TestDriver: runs until no record, timer or handler work is left. */
  async settle(idle: () => Promise<void>): Promise<void> {
    for (let round = 0; round < 10_000; round++) {
      await idle();
      const tasks = [...this.#tasks.values()];
      const busy = tasks.some((task) => task.pendingWork > 0) || this.#background.size > 0;
      if (!busy) return;
      // A send that fails leaves its records for the next flush (its commit fails meanwhile): not for settling to wait on.
      await Promise.all([...tasks.map((task) => task.drain().catch(() => undefined)), ...this.#background]);
    }
  }

  // --- internals ---------------------------------------------------------------------------

  #assertStatus(expected: AppState, what: string): void {
    if (this.#life.state !== expected) throw new EddyError('APP_STATE', `${what}: app ${this.id} is ${this.#life.state}, expected ${expected}`);
  }

  #log(level: 'debug' | 'info' | 'warn' | 'error', message: string, fields: Record<string, unknown> = {}): void {
    this.#logger[level]({ app: this.id, ...fields }, message);
  }

  #storeNames(): string[] {
    const topology = this.#topology ?? buildTopology(this.id, this.#graph.nodes);
    return topology.subTopologies.flatMap((sub) => [...sub.storeNames]);
  }

  #batchHandlers(): WindowBatchHandler<unknown, unknown>[] {
    if (!this.#handlers) {
      const handlers = new Set<WindowBatchHandler<unknown, unknown>>();
      for (const node of this.#graph.nodes) if (node.kind === 'emit' && isBatchHandler(node.handler)) handlers.add(node.handler);
      this.#handlers = [...handlers];
    }
    return this.#handlers;
  }
  #handlers: WindowBatchHandler<unknown, unknown>[] | undefined;

  async #partitionCount(topic: string): Promise<number> {
    const known = this.#partitions.get(topic);
    if (known !== undefined) return known;
    let count = await this.#transport.partitionCount(topic);
    if (count === undefined) {
      await this.#transport.ensureTopics([{ name: topic, partitions: this.#transport.defaultPartitions ?? 1 }]);
      count = (await this.#transport.partitionCount(topic)) ?? 1;
    }
    this.#partitions.set(topic, count);
    return count;
  }

  /**
   * Partition counts: a sub-topology runs one task per partition of its sources (which must
   * agree); a repartition topic gets the count of the sub-topology that writes it; changelogs
   * the count of the sub-topology that owns the store.
   */
  async #createTopics(topology: Topology): Promise<void> {
    const counts = new Map<SubTopology, number>();
    const internalCount = (topic: string) => {
      const writer = topology.repartitionTopics.get(topic);
      return writer ? counts.get(writer) : undefined;
    };
    for (let pass = 0; pass <= topology.subTopologies.length && counts.size < topology.subTopologies.length; pass++) {
      for (const sub of topology.subTopologies) {
        if (counts.has(sub)) continue;
        const sourceCounts: number[] = [];
        let ready = true;
        for (const source of sub.sources) {
          if (source.internal) {
            const count = internalCount(source.topic);
            if (count === undefined) ready = false;
            else sourceCounts.push(count);
          } else {
            sourceCounts.push(await this.#partitionCount(source.topic));
          }
        }
        if (!ready) continue;
        if (new Set(sourceCounts).size > 1) {
          throw new ConfigError(`topics ${sub.sources.map((source) => source.topic).join(', ')} are merged but have different partition counts (${sourceCounts.join(', ')})`);
        }
        counts.set(sub, sourceCounts[0]!);
      }
    }
    const specs = [];
    for (const [topic, writer] of topology.repartitionTopics) specs.push({ name: topic, partitions: counts.get(writer)!, unlimitedRetention: true });
    for (const sub of topology.subTopologies) {
      for (const store of sub.storeNames) specs.push({ name: changelogTopic(this.id, store), partitions: counts.get(sub)!, compacted: true });
    }
    specs.push({ name: deadLetterTopic(this.id), partitions: 1 });
    await this.#transport.ensureTopics(specs);
    for (const spec of specs) this.#partitions.set(spec.name, spec.partitions);
    for (const sub of topology.subTopologies) for (const sink of sub.sinks) await this.#partitionCount(sink.topic);
  }

  #taskKey(topic: string, partition: number): string {
    const sub = this.#topology!.subTopologies.find((candidate) => candidate.sources.some((source) => source.topic === topic));
    return taskIdOf(sub?.index ?? -1, partition);
  }

  #host(): TaskHost {
    return {
      appId: this.id,
      topology: this.#topology!,
      clock: this.#clock,
      metrics: this.#metrics,
      time: this.#options.time,
      idleTimeoutMs: this.#idleTimeoutMs,
      caughtUp: (topic, partition) => this.#caughtUp(topic, partition),
      producer: this.#producer!,
      keepsValues: this.#transport.keepsValues === true,
      partitionsOf: (topic) => this.#partitions.get(topic) ?? 1,
      cache: this.#cache,
      recordFailed: (error) => this.#recordFailed(error),
      fatal: (error) => this.#stopOn(error, 'a task cannot go on; the app stops'),
      log: (level, message, fields) => this.#log(level, message, fields),
    };
  }

  /**
   * Whether a task keeps up with one of its sources, by the log's word. A repartition topic says
   * nothing of the records a local task hands over directly (see `#handsOff`): the reading task
   * keeps up only while that task keeps up with its own sources too.
   */
  #caughtUp(topic: string, partition: number, seen = new Set<Task>()): CaughtUp | undefined {
    const own = this.#consumer?.caughtUp({ topic, partition });
    const writer = own && this.#topology?.repartitionTopics.get(topic);
    const upstream = writer && this.#tasks.get(taskIdOf(writer.index, partition));
    if (!upstream || !this.#handOffFloors.has(upstream) || seen.has(upstream)) return own;
    seen.add(upstream);
    let combined: CaughtUp = own;
    for (const source of writer.sources) {
      const theirs = this.#caughtUp(source.topic, partition, seen);
      if (!theirs) return undefined;
      combined = { forMs: Math.min(combined.forMs, theirs.forMs), confirmedAgoMs: Math.max(combined.confirmedAgoMs, theirs.confirmedAgoMs) };
    }
    return combined;
  }

  async #assign(partitions: readonly TopicPartition[]): Promise<TopicPartitionOffset[]> {
    const topology = this.#topology!;
    const positions: TopicPartitionOffset[] = [];
    for (const { topic, partition } of partitions) {
      const key = this.#taskKey(topic, partition);
      if (this.#tasks.has(key)) continue;
      const sub = topology.subTopologies.find((candidate) => candidate.sources.some((source) => source.topic === topic))!;
      const { task, positions: restored } = await this.#openTask(sub, partition);
      positions.push(...restored);
      this.#tasks.set(key, task);
    }
    this.#arm();
    return positions;
  }

  /**
   * A task with its state restored, and the input positions that state covers. Exactly-once: the
   * task's producer exists (and has fenced its previous owner's) before its state is read.
   */
  async #openTask(sub: SubTopology, partition: number): Promise<{ task: Task; positions: readonly TopicPartitionOffset[] }> {
    const taskId = taskIdOf(sub.index, partition);
    let committed = this.#commitRecords.get(taskId);
    if (!committed) this.#commitRecords.set(taskId, (committed = { at: this.#clock.now(), failures: 0, error: undefined }));
    const task = new Task(this.#host(), sub, partition, { transactional: await this.#transactionalProducer(sub, partition), committed });
    try {
      for (const storeName of sub.storeNames) {
        task.stores.set(storeName, await this.#state.open({ appId: this.id, storeName, partition, changelogTopic: changelogTopic(this.id, storeName) }));
      }
    } catch (error) {
      await this.#closeTask(task);
      throw error;
    }
    const started = this.#clock.now();
    let reported = 0;
    const restored = await task.restore(
      (changelog, changelogPartition, from) => this.#transport.readPartition({ topic: changelog, partition: changelogPartition }, from),
      (changelog, changelogPartition) => this.#transport.endOffset({ topic: changelog, partition: changelogPartition }),
      (records, remaining) => {
        this.#restoredRecords += records - reported;
        reported = records;
        this.#restoreRemaining = remaining;
        const seconds = Math.max(0.001, (this.#clock.now() - started) / 1000);
        this.#log('debug', 'restoring state', { task: task.taskId, records, recordsPerSecond: Math.round(records / seconds), remaining });
      },
    ).catch(async (error: unknown) => {
      await this.#closeTask(task);
      throw error;
    });
    this.#restoreRemaining = 0;
    if (restored.records > 0) {
      const ms = this.#clock.now() - started;
      this.#log('info', 'state restored', { task: task.taskId, records: restored.records, ms, recordsPerSecond: Math.round(restored.records / Math.max(0.001, ms / 1000)) });
    }
    if (this.#handsOff(sub)) {
      const floors = new Map<string, number>();
      for (const sink of sub.sinks) if (sink.internal) floors.set(sink.topic, await this.#transport.endOffset({ topic: sink.topic, partition }));
      this.#handOffFloors.set(task, floors);
    }
    return { task, positions: restored.positions };
  }

  /**
   * Local hand-off (on a transport that serializes internal topics, like Kafka): a sub-topology
   * of stateless steps that ends in repartition topics hands each record bound for its own
   * partition straight to the local task that reads that partition, which skips a produce, a
   * fetch and a decode per record. The copartitioned assignment puts both tasks in one instance.
   * The reading task commits first (under exactly-once, its own transaction with its replay
   * marks), then the handing one; a replay in between is dropped by those marks. The embedded
   * broker hands values over in process anyway.
   */
  #handsOff(sub: SubTopology): boolean {
    if (this.#transport.keepsValues) return false;
    // No store means no window or table, and so no handler (a handler follows its window).
    return sub.storeNames.length === 0 && sub.sinks.some((sink) => sink.internal);
  }

  /**
   * Before a batch: for each internal topic, whether its records for this partition go to the
   * local task that reads it. A task starts by writing to the topic; it hands off once that task
   * has read everything written to the partition before (by earlier owners, and its own sends,
   * none in flight), so that records of one origin reach it in order (its replay marks require
   * that). It writes to the topic again when that task is gone or being revoked.
   */
  #updateHandOffs(task: Task): void {
    const floors = this.#handOffFloors.get(task);
    if (!floors) return;
    for (const [topic, floor] of floors) {
      const target = this.#tasks.get(this.#taskKey(topic, task.partition));
      const usable = target !== undefined && !this.#revoking.has(target);
      const current = task.handOffTarget(topic);
      if (current) {
        if (current !== target || !usable) task.setHandOffTarget(topic, undefined);
        continue;
      }
      if (!usable || task.sending) continue;
      const written = task.lastWritten(topic);
      const needed = Math.max(floor, written === undefined ? 0 : written + 1);
      const position = target.position(topic);
      if (needed === 0 || (position !== undefined && position >= needed)) {
        task.setHandOffTarget(topic, target);
        this.#log('debug', 'records bound for a local task are handed to it directly', { task: task.taskId, to: target.taskId, topic });
      }
    }
  }

  /**
   * Applies the records a batch handed off, each target under its own lock. If that fails (state
   * could not be read back), the handing task has moved past records that reached nobody: it
   * stops and starts again from its last commit.
   */
  async #deliverHandOffs(task: Task): Promise<void> {
    try {
      for (const { target, topic, records } of task.takeHandOffs()) {
        await target.exclusive(async () => {
          await target.prepareHandOff(records);
          target.processHandOff(topic, records);
          // The task's commit waits for a commit of the target after this, the latest hand-off.
          let handed = this.#handedTo.get(task);
          if (!handed) this.#handedTo.set(task, (handed = new Map()));
          handed.set(target, target.commits);
        });
      }
    } catch (error) {
      task.halt();
      if (this.#open) this.#inBackground(this.#rebuild(task, error));
      throw error;
    }
  }

  /**
   * Before a task commits its input offsets: every task it handed records to has committed them
   * (their state and replay marks are in its changelog). If one cannot (it failed, or closed
   * without), this commit fails too, and a task that stays is rebuilt from its last commit so
   * that those records are read and handed off again.
   */
  async #commitHandOffs(task: Task): Promise<void> {
    const handed = this.#handedTo.get(task);
    if (!handed) return;
    for (const [target, before] of handed) {
      if (target.commits <= before && this.#tasks.get(target.taskId) === target) await this.#commitTask(target);
      if (target.commits <= before) {
        const error = new EddyError('TRANSPORT_FAILED', `task ${task.taskId}: task ${target.taskId} closed before it committed the records handed to it`);
        if (this.#open && !this.#revoking.has(task)) this.#inBackground(this.#rebuild(task, error));
        throw error;
      }
    }
    handed.clear();
  }

  /** Closes a task that is no longer registered, and its stores. */
  async #closeTask(task: Task): Promise<void> {
    this.#handOffFloors.delete(task);
    this.#handedTo.delete(task);
    await task.close();
    for (const store of task.stores.values()) await store.close().catch(() => undefined);
  }

  async #revoke(partitions: readonly TopicPartition[]): Promise<void> {
    const keys = new Set(partitions.map(({ topic, partition }) => this.#taskKey(topic, partition)));
    for (const key of keys) {
      this.#commitRecords.delete(key);
      const task = this.#tasks.get(key);
      if (!task) continue;
      this.#revoking.add(task);
      try {
        if (!this.#life.failure) await this.#commitTask(task);
      } catch (error) {
        // The partition's next owner resumes from the last commit: records repeat, none is lost.
        this.#log('warn', 'commit on revoke failed', { task: task.taskId, error: String(error) });
      } finally {
        this.#tasks.delete(key);
        this.#revoking.delete(task);
        await this.#closeTask(task);
      }
    }
  }

  /**
   * Exactly-once: a producer of its own for the task, its transactional id stable per task. The
   * embedded broker gives a plain one (a crash cannot tear its log): then the task commits as under
   * at-least-once with the app's producer.
   *
   * The id names the task's input (app id, source topics, partition), not its place in the
   * topology: an instance running a changed pipeline still fences the old one that reads the same
   * input partition.
   */
  async #transactionalProducer(sub: SubTopology, partition: number): Promise<TransactionalProducer | undefined> {
    if (this.#options.guarantee !== 'exactly-once') return undefined;
    const topics = sub.sources.map((source) => source.topic).sort();
    // ':' and '+' appear in neither app ids nor topic names: two apps can never share an id.
    const producer = await this.#transport.createProducer({ transactionalId: `${this.id}:${topics.join('+')}:${partition}` });
    if (isTransactional(producer)) return producer;
    await producer.close();
    return undefined;
  }

  #commitTask(task: Task): Promise<void> {
    const commit = task.exclusive(async () => {
      await this.#commitHandOffs(task);
      await task.commit(async (offsets) => {
        // A transactional task committed its offsets with its transaction.
        if (!task.transactional) await this.#consumer!.commit(offsets);
        // Committed repartition records are never read again: let the log drop them.
        for (const offset of offsets) {
          if (!this.#topology!.repartitionTopics.has(offset.topic)) continue;
          // Best effort: the offsets are committed already, and a failure only leaves records for the
          // next commit to drop.
          await this.#transport
            .deleteRecords?.(offset, offset.offset)
            .catch((error: unknown) => this.#log('warn', 'deleting committed repartition records failed', { task: task.taskId, error: describeError(error) }));
        }
      });
    });
    if (!task.transactional) return commit;
    return commit.catch((error: unknown) => {
      // The broker refused a record inside the transaction: starting again would send it again.
      if (error instanceof EddyError && error.code === 'RECORD_REJECTED') {
        this.#stopOn(error, 'the broker refused a record of a transaction; under exactly-once it cannot be dead-lettered, so the app stops');
        throw error;
      }
      // The transaction is aborted (or was, by a newer owner of the task: this instance is then a
      // zombie), and with it the task's work since its last commit. A running task starts again
      // from there; one being revoked is closed by its revocation.
      if (this.#open && !this.#revoking.has(task)) this.#inBackground(this.#rebuild(task, error));
      throw error;
    });
  }

  /**
   * After a task lost its work since its last commit — its transaction failed (exactly-once), or a
   * task it handed records to started again or closed without committing them — the task is
   * dropped (its stores hold only committed state), and once the group confirms that this
   * instance still owns its partitions, opened again: a new producer under exactly-once, state
   * restored from the changelog, input read again from the committed offsets. Until then its
   * records are not processed. If the partitions went to another instance (this one was a
   * zombie, fenced by the new owner), the rebalance revokes them here and nothing is rebuilt.
   */
  async #rebuild(task: Task, error: unknown): Promise<void> {
    const key = task.taskId;
    if (this.#tasks.get(key) !== task) return;
    this.#tasks.delete(key);
    this.#log('warn', 'a task lost its work since its last commit; it starts again from there', { task: key, error: describeError(error) });
    // Tasks that handed records to this one since their last commit lose them with its state:
    // they stop now and start again from their last commit too, handing those records again.
    for (const [upstream, handed] of this.#handedTo) {
      if (!handed.has(task) || this.#tasks.get(upstream.taskId) !== upstream) continue;
      upstream.halt();
      this.#inBackground(this.#rebuild(upstream, new EddyError('TRANSPORT_FAILED', `task ${key} started again: what task ${upstream.taskId} handed it since its last commit is lost`)));
    }
    await this.#closeTask(task);
    const partitions = task.subTopology.sources.map((source) => ({ topic: source.topic, partition: task.partition }));
    for (let attempt = 0; this.#open; attempt++) {
      if (attempt > 0) await new Promise((resolve) => this.#clock.setTimeout(() => resolve(undefined), Math.min(2_000, 100 * 2 ** attempt)));
      const consumer = this.#consumer;
      if (!consumer || !this.#open || this.#tasks.has(key)) return;
      const ownership = (await consumer.confirmOwnership?.(partitions)) ?? 'owned';
      if (ownership === 'revoked') {
        this.#log('info', 'a failed task was revoked before it was rebuilt', { task: key });
        return;
      }
      if (ownership === 'unsure') continue;
      let opened: { task: Task; positions: readonly TopicPartitionOffset[] } | undefined;
      const resumeAt: TopicPartitionOffset[] = [];
      try {
        opened = await this.#openTask(task.subTopology, task.partition);
        for (const { topic, partition } of partitions) {
          const restored = opened.positions.find((position) => position.topic === topic && position.partition === partition)?.offset ?? 0;
          const committed = (await consumer.committed({ topic, partition })) ?? 0;
          resumeAt.push({ topic, partition, offset: Math.max(restored, committed) });
        }
      } catch (failure) {
        if (opened) await this.#closeTask(opened.task);
        this.#log('warn', 'rebuilding a task failed; trying again', { task: key, attempt: attempt + 1, error: describeError(failure) });
        continue;
      }
      if (!this.#open || this.#tasks.has(key) || (await consumer.confirmOwnership?.(partitions)) === 'revoked') {
        await this.#closeTask(opened.task);
        return;
      }
      // The task takes its place and its partitions move back in one step: records (or skipped
      // offsets) the consumer delivered while it had no task are dropped, so it must read them
      // again from the task's position, and nothing it fetched before may reach the new task.
      this.#tasks.set(key, opened.task);
      for (const position of resumeAt) consumer.seek(position);
      this.#log('info', 'task started again from its last commit', { task: key, attempts: attempt + 1 });
      this.#arm();
      return;
    }
  }

  #recordFailed(error: EddyError): boolean {
    if (this.#options.onError === 'dead-letter') return true;
    this.#stopOn(error, 'stopping on a bad record (onError: stop)');
    return false;
  }

  /** Stops the app on its own (see `failure`): tasks take no more records and commit no more. */
  #stopOn(error: EddyError, message: string): void {
    if (this.#life.failure || !['starting', 'running', 'rebalancing', 'stopping'].includes(this.#life.state)) return;
    this.#open = false;
    for (const task of this.#tasks.values()) task.halt();
    this.#log('error', this.#life.heard ? message : `${message} (no app.on('error') listener)`, { code: error.code, error: error.message });
    this.#life.fail(error);
    // Not awaited: this may run inside the very work (a batch, a commit) that the stop waits for.
    queueMicrotask(() => void this.stop().catch((failure: unknown) => this.#log('error', 'stopping after a failure failed', { error: describeError(failure) })));
  }

  /** Runs an assignment or revocation; the app is `rebalancing` until none is under way. */
  async #rebalancing<T>(work: () => Promise<T>): Promise<T> {
    // The first assignment belongs to `starting`.
    if (this.#rebalances++ === 0 && this.#life.state === 'running') this.#life.moveTo('rebalancing');
    try {
      return await work();
    } finally {
      if (--this.#rebalances === 0 && this.#life.state === 'rebalancing') this.#life.moveTo('running');
    }
  }

  /** Arms one clock timer for the earliest of: the next commit, any task's next wake-up. */
  #arm(): void {
    if (!this.#open) return;
    let due = this.#nextCommitAt;
    // While a round of timer work waits (a commit on a broker that does not answer), only the next
    // commit time matters: it checks for stuck tasks.
    for (const task of this.#timerRound ? [] : this.#tasks.values()) {
      const wakeUp = task.nextWakeUp();
      if (wakeUp !== undefined && wakeUp < due) due = wakeUp;
    }
    this.#timer?.cancel();
    this.#timer = this.#clock.setTimeout(() => this.#onTimer(), Math.max(0, due - this.#clock.now()));
  }

  #onTimer(): void {
    if (!this.#open) return;
    const now = this.#clock.now();
    const commitDue = now >= this.#nextCommitAt;
    if (commitDue) {
      this.#nextCommitAt = now + this.#commitIntervalMs;
      this.#stalls(now);
    }
    if (this.#timerRound) {
      this.#arm();
      return;
    }
    this.#timerRound = true;
    this.#inBackground(async () => {
      try {
        for (const task of this.#tasks.values()) {
          await task.exclusive(async () => {
            await task.preparePunctuate(now);
            task.punctuate(now);
          });
        }
        if (!commitDue) return;
        for (const task of this.#tasks.values()) {
          // One task's failed commit (retried with the next one, or rebuilt) does not hold the others back.
          await this.#commitTask(task).catch((error: unknown) => this.#log('warn', 'commit failed', { task: task.taskId, error: describeError(error) }));
        }
      } finally {
        this.#timerRound = false;
      }
    }, 'timer work failed');
    this.#arm();
  }
  /** A round of timer work (punctuation, commits) is under way. */
  #timerRound = false;

  /** Runs work that nobody awaits (stop and settle wait for it); a failure is logged. */
  #inBackground(work: Promise<void> | (() => Promise<void>), failure = 'background work failed'): void {
    const tracked = (typeof work === 'function' ? work() : work)
      .catch((error: unknown) => this.#log('error', failure, { error: String(error) }))
      .finally(() => {
        this.#background.delete(tracked);
        this.#arm();
      });
    this.#background.add(tracked);
  }
}
