import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import { systemClock, type Clock, type TimerHandle } from './clock.js';
import { GraphBuilder, type Node } from './dsl/graph.js';
import { Stream } from './dsl/stages.js';
import { buildTopology, changelogTopic, deadLetterTopic, describeMermaid, describeText, type SubTopology, type Topology } from './dsl/topology.js';
import { toMs, type Duration } from './duration.js';
import { ConfigError, describeError, EddyError } from './errors.js';
import { isBatchHandler, type WindowBatchHandler } from './handler.js';
import { defaultLogger, type Logger } from './logger.js';
import { partitionForKey } from './murmur2.js';
import { CacheBudget } from './runtime/cache.js';
import { Metrics, type MetricsSnapshot } from './runtime/metrics.js';
import { Task, type TaskHost } from './runtime/task.js';
import { checkSerde, defaultKeySerde, json, type Serde } from './serde.js';
import type { StateBackend } from './state/backend.js';
import { memoryState } from './state/memory.js';
import { memoryTransport } from './transport/memory.js';
import type { Headers, TopicPartition, TopicPartitionOffset, TransactionalProducer, Transport, TransportConsumer, TransportProducer } from './transport/types.js';

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
  /** A pino-compatible logger. */
  logger?: Logger;
  /** The clock; tests inject a virtual one (the TestDriver does). */
  clock?: Clock;
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

/** Reads a state store from the host service. */
export interface StoreReader {
  /** The value of one key: a table's aggregate, or a window store's open windows. */
  get(key: unknown): Promise<unknown>;
  /** All entries (optionally keys in `[gte, lt)`, compared as strings), sorted by key. */
  range(options?: { gte?: string; lt?: string }): Promise<Array<{ key: unknown; value: unknown }>>;
}

type Status = 'created' | 'starting' | 'running' | 'stopping' | 'stopped';

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
  #logger: Logger;
  #clock: Clock;
  #transport: Transport;
  #state: StateBackend;
  #status: Status = 'created';
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
  #failure: EddyError | undefined;
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
    this.#status = 'starting';
    try {
      const topology = buildTopology(this.id, this.#graph.nodes);
      if (topology.subTopologies.length === 0) throw new ConfigError(`app ${this.id}: no pipeline; declare one with app.from(topic) before start()`);
      this.#topology = topology;
      if (this.#options.guarantee === 'exactly-once' && !this.#transport.exactlyOnce) {
        throw new ConfigError(`app ${this.id}: guarantee 'exactly-once' needs a transport with transactions; the ${this.#transport.kind} transport has none`);
      }
      await this.#transport.connect();
      await this.#createTopics(topology);
      await Promise.all(this.#batchHandlers().map((handler) => handler.start()));
      this.#producer = await this.#transport.createProducer();
      const topics = topology.subTopologies.flatMap((sub) => sub.sources.map((source) => source.topic));
      this.#nextCommitAt = this.#clock.now() + this.#commitIntervalMs;
      this.#status = 'running';
      this.#consumer = await this.#transport.subscribe(this.id, topics, {
        onAssign: (partitions) => this.#assign(partitions),
        onRevoke: (partitions) => this.#revoke(partitions),
        onSkipped: async ({ topic, partition, from, to }) => {
          const task = this.#tasks.get(this.#taskKey(topic, partition));
          if (!task || this.#status !== 'running') return;
          await task.exclusive(() => task.skip(topic, from, to));
        },
        onRecords: async (records) => {
          const first = records[0];
          if (!first || this.#status !== 'running') return;
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
          if (task.pendingWork > this.#maxPending || this.#batchHandlers().some((handler) => handler.queueDepth >= handler.maxQueue)) {
            await task.drain();
            task.restartIdleCountdown();
          }
          this.#arm();
        },
      });
      this.#arm();
      this.#eventLoopDelay = monitorEventLoopDelay({ resolution: 10 });
      this.#eventLoopDelay.enable();
      this.#log('info', 'app started', { tasks: this.#tasks.size, transport: this.#transport.kind, state: this.#state.kind });
    } catch (error) {
      this.#status = 'stopped';
      await Promise.allSettled(this.#batchHandlers().map((handler) => handler.close()));
      throw error;
    }
  }

  /**
   * Drains in-flight work, commits, and closes. Safe to call twice.
   * @example
   * process.on('SIGTERM', () => app.stop());
   */
  stop(): Promise<void> {
    if (this.#status === 'stopped') return Promise.resolve();
    if (this.#status === 'created') {
      // Never started, but `send()` may have opened a producer.
      this.#status = 'stopped';
      return (async () => {
        await this.#producer?.close();
        if (this.#producer) await this.#transport.close();
      })();
    }
    this.#stopping ??= this.#shutdown();
    return this.#stopping;
  }

  async #shutdown(): Promise<void> {
    this.#status = 'stopping';
    this.#timer?.cancel();
    this.#eventLoopDelay?.disable();
    await Promise.allSettled([...this.#background]);
    try {
      await this.#consumer?.close();
      await this.#producer?.close();
      await Promise.all(this.#batchHandlers().map((handler) => handler.close()));
      await this.#state.close();
      await this.#transport.close();
    } finally {
      this.#status = 'stopped';
      this.#log('info', 'app stopped', {});
    }
  }

  /**
   * Produces a record from the host service (JSON value unless the topic's source says otherwise;
   * a Uint8Array is sent as raw bytes).
   * @example
   * await app.send('readings', { sensor: 's1', value: 20.5, ts: Date.now() }, { key: 's1' });
   */
  async send(topic: string, value: unknown, options: SendOptions = {}): Promise<void> {
    if (this.#status === 'stopped' || this.#status === 'stopping') throw new EddyError('APP_STOPPED', `send: app ${this.id} is stopped`);
    await this.produceTo(topic, value, options);
  }

  /** @internal Shared by `send` and the TestDriver. */
  async produceTo(topic: string, value: unknown, options: SendOptions): Promise<void> {
    if (typeof topic !== 'string' || topic.length === 0) throw new ConfigError(`send: invalid topic ${JSON.stringify(topic)}`);
    const timestamp = options.timestamp ?? this.#clock.now();
    if (typeof timestamp !== 'number' || !Number.isFinite(timestamp)) throw new ConfigError(`send: timestamp must be a finite number, got ${String(timestamp)}`);
    const source = this.#graph.nodes.find((node) => node.kind === 'source' && node.topic === topic);
    const valueSerde = source?.kind === 'source' ? source.valueSerde : json();
    const keySerde = source?.kind === 'source' ? source.keySerde : defaultKeySerde;
    const key = options.key === undefined || options.key === null ? null : options.key instanceof Uint8Array ? options.key : keySerde.serialize(options.key);
    const bytes = value === null || value === undefined ? null : value instanceof Uint8Array ? value : valueSerde.serialize(value);
    const partitions = await this.#partitionCount(topic);
    const partition = key ? partitionForKey(key, partitions) : this.#roundRobin++ % partitions;
    this.#producer ??= await this.#transport.createProducer();
    await this.#producer.send([{ topic, partition, key, value: bytes, timestamp, headers: (options.headers ?? {}) as Headers }]);
  }
  #roundRobin = 0;

  /**
   * Reads a state store (a table or a window store) from the host service.
   * @example
   * const spend = await app.store('spend').get('customer-7');
   */
  store(name: string): StoreReader {
    const names = this.#storeNames();
    if (!names.includes(name)) throw new ConfigError(`store: no store named ${JSON.stringify(name)}; stores: ${names.join(', ') || '(none)'}`);
    const operators = () => [...this.#tasks.values()].flatMap((task) => task.operators.filter((operator) => operator.storeName === name));
    return {
      get: async (key) => {
        for (const operator of operators()) {
          const value = await operator.query(key);
          if (value !== undefined) return value;
        }
        return undefined;
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
    return `${lines.join('\n')}\n`;
  }

  /** @internal The topology's sources and sinks (the TestDriver decodes topics with their serdes). */
  topologyNodes(): { sources: Extract<Node, { kind: 'source' }>[]; sinks: Extract<Node, { kind: 'sink' }>[] } {
    const nodes = (this.#topology ?? buildTopology(this.id, this.#graph.nodes)).subTopologies.flatMap((sub) => sub.nodes);
    return {
      sources: nodes.filter((node): node is Extract<Node, { kind: 'source' }> => node.kind === 'source'),
      sinks: nodes.filter((node): node is Extract<Node, { kind: 'sink' }> => node.kind === 'sink'),
    };
  }

  /** @internal Why the app stopped on its own, if it did (`onError: 'stop'`). */
  get failure(): EddyError | undefined {
    return this.#failure;
  }

  /** @internal For the TestDriver: runs until no record, timer or handler work is left. */
  async settle(idle: () => Promise<void>): Promise<void> {
    for (let round = 0; round < 10_000; round++) {
      await idle();
      const tasks = [...this.#tasks.values()];
      const busy = tasks.some((task) => task.pendingWork > 0) || this.#background.size > 0;
      if (!busy) return;
      await Promise.all([...tasks.map((task) => task.drain()), ...this.#background]);
    }
  }

  // --- internals ---------------------------------------------------------------------------

  #assertStatus(expected: Status, what: string): void {
    if (this.#status !== expected) throw new EddyError('APP_STATE', `${what}: app ${this.id} is ${this.#status}, expected ${expected}`);
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
    return `${sub?.index ?? -1}_${partition}`;
  }

  #host(): TaskHost {
    return {
      appId: this.id,
      topology: this.#topology!,
      clock: this.#clock,
      metrics: this.#metrics,
      time: this.#options.time,
      idleTimeoutMs: this.#idleTimeoutMs,
      hasPending: (topic, partition) => this.#consumer?.hasPending?.({ topic, partition }) ?? false,
      producer: this.#producer!,
      keepsValues: this.#transport.keepsValues === true,
      partitionsOf: (topic) => this.#partitions.get(topic) ?? 1,
      cache: this.#cache,
      recordFailed: (error) => this.#recordFailed(error),
      log: (level, message, fields) => this.#log(level, message, fields),
    };
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
    const task = new Task(this.#host(), sub, partition, await this.#transactionalProducer(sub, partition));
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
      if (this.#status === 'running') this.#inBackground(this.#rebuild(task, error));
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
        if (this.#status === 'running' && !this.#revoking.has(task)) this.#inBackground(this.#rebuild(task, error));
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
      const task = this.#tasks.get(key);
      if (!task) continue;
      this.#revoking.add(task);
      try {
        if (!this.#failure) await this.#commitTask(task);
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
      // The transaction is aborted (or was, by a newer owner of the task: this instance is then a
      // zombie), and with it the task's work since its last commit. A running task starts again
      // from there; one being revoked is closed by its revocation.
      if (this.#status === 'running' && !this.#revoking.has(task)) this.#inBackground(this.#rebuild(task, error));
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
    for (let attempt = 0; this.#status === 'running'; attempt++) {
      if (attempt > 0) await new Promise((resolve) => this.#clock.setTimeout(() => resolve(undefined), Math.min(2_000, 100 * 2 ** attempt)));
      const consumer = this.#consumer;
      if (!consumer || this.#status !== 'running' || this.#tasks.has(key)) return;
      const ownership = (await consumer.confirmOwnership?.(partitions)) ?? 'owned';
      if (ownership === 'revoked') {
        this.#log('info', 'a failed task was revoked before it was rebuilt', { task: key });
        return;
      }
      if (ownership === 'unsure') continue;
      let opened: { task: Task; positions: readonly TopicPartitionOffset[] } | undefined;
      try {
        opened = await this.#openTask(task.subTopology, task.partition);
        for (const { topic, partition } of partitions) {
          const restored = opened.positions.find((position) => position.topic === topic && position.partition === partition)?.offset ?? 0;
          const committed = (await consumer.committed({ topic, partition })) ?? 0;
          consumer.seek({ topic, partition, offset: Math.max(restored, committed) });
        }
      } catch (failure) {
        if (opened) await this.#closeTask(opened.task);
        this.#log('warn', 'rebuilding a task failed; trying again', { task: key, attempt: attempt + 1, error: describeError(failure) });
        continue;
      }
      if (this.#status !== 'running' || this.#tasks.has(key) || (await consumer.confirmOwnership?.(partitions)) === 'revoked') {
        await this.#closeTask(opened.task);
        return;
      }
      this.#tasks.set(key, opened.task);
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
    if (this.#failure) return;
    this.#failure = error;
    this.#log('error', message, { code: error.code, error: error.message });
    for (const task of this.#tasks.values()) task.halt();
    queueMicrotask(() => void this.stop());
  }

  /** Arms one clock timer for the earliest of: the next commit, any task's next wake-up. */
  #arm(): void {
    if (this.#status !== 'running') return;
    let due = this.#nextCommitAt;
    for (const task of this.#tasks.values()) {
      const wakeUp = task.nextWakeUp();
      if (wakeUp !== undefined && wakeUp < due) due = wakeUp;
    }
    this.#timer?.cancel();
    this.#timer = this.#clock.setTimeout(() => this.#onTimer(), Math.max(0, due - this.#clock.now()));
  }

  #onTimer(): void {
    if (this.#status !== 'running') return;
    const now = this.#clock.now();
    this.#inBackground(async () => {
      for (const task of this.#tasks.values()) {
        await task.exclusive(async () => {
          await task.preparePunctuate(now);
          task.punctuate(now);
        });
      }
      if (now >= this.#nextCommitAt) {
        this.#nextCommitAt = now + this.#commitIntervalMs;
        for (const task of this.#tasks.values()) {
          // One task's failed commit (retried with the next one, or rebuilt) does not hold the others back.
          await this.#commitTask(task).catch((error: unknown) => this.#log('warn', 'commit failed', { task: task.taskId, error: describeError(error) }));
        }
      }
    }, 'timer work failed');
  }

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
