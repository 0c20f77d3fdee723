import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import { latestAggregation } from './aggregations.js';
import { resolveAppOptions, type AppOptions, type AppSettings, type HealthReport, type SendOptions, type SourceOptions, type StoreReader, type TableReader, type WindowStoreReader } from './app-options.js';
import { systemClock, type Clock } from './clock.js';
import { GraphBuilder, type Node } from './dsl/graph.js';
import { checkName, checkTopic } from './dsl/stage-checks.js';
import { GlobalTable, Stream, Table, WindowedTable } from './dsl/stages.js';
import { buildTopology, describeMermaid, describeText, type Topology } from './dsl/topology.js';
import { ConfigError, describeError, EddyError } from './errors.js';
import { isBatchHandler, type WindowBatchHandler } from './handler.js';
import { defaultLogger, type Logger } from './logger.js';
import { BackgroundWork } from './runtime/background.js';
import { CacheBudget } from './state/caching-store.js';
import { GlobalStore } from './runtime/global-store.js';
import { HostInput } from './runtime/host-input.js';
import { Lifecycle, type AppEvents, type AppState } from './runtime/lifecycle.js';
import { Metrics, prometheusText, type MetricsSnapshot } from './runtime/metrics.js';
import { Scheduler } from './runtime/scheduler.js';
import { storeReader } from './runtime/store-queries.js';
import { TaskManager } from './runtime/task-manager.js';
import { testHooks, type AppTestHooks } from './runtime/test-hooks.js';
import { TopicProvisioner } from './runtime/topic-provisioner.js';
import { checkSerde, defaultKeySerde, json, type Serde } from './serde.js';
import type { StateBackend } from './state/backend.js';
import { memoryState } from './state/memory.js';
import { memoryTransport } from './transport/memory.js';
import type { Transport, TransportConsumer, TransportProducer } from './transport/types.js';
import { DeliveryAlignment } from './runtime/delivery-alignment.js';

export type { AppOptions, HealthReport, SendOptions, SourceOptions, StoredWindow, StoreReader, TableReader, WindowStoreReader } from './app-options.js';

/** A worker pool that takes no more windows: the sources pause (see backpressure in `start`). */
const isFull = (handler: WindowBatchHandler<unknown, unknown>): boolean => handler.queueDepth >= handler.maxQueue;

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
/**
 * An app: the pipelines declared on it, and, once started, their tasks on this instance. The
 * class is the facade: lifecycle, the DSL entry, the host's sends and store reads, metrics and
 * health. The work is done by the runtime's parts it wires together: the topic provisioner, the
 * task manager (assignment, commits, rebuilds, with the local hand-off), the scheduler (one
 * timer for punctuation and commits) and the host's input path.
 */
export class App {
  readonly id: string;
  readonly #graph = new GraphBuilder();
  readonly #settings: AppSettings;
  #logger: Logger;
  #clock: Clock;
  #transport: Transport;
  readonly #state: StateBackend;
  readonly #life = new Lifecycle((event, error) => this.#log('error', `an app.on('${event}') listener threw`, { error: describeError(error) }));
  /** Records are taken and work is committed: from subscribing until the app stops or fails. */
  #open = false;
  /** Whether this app holds its state (see `StateBackend.claim`), and so closes it when it stops. */
  #stateClaimed = false;
  /** This app's connection to its transport (see #connectTransport). */
  #transportConnecting: Promise<void> | undefined;
  #transportConnected = false;
  /** The window batch handlers (worker pools) this app started, to close once when it stops. */
  #startedHandlers: WindowBatchHandler<unknown, unknown>[] = [];
  /** Assignments and revocations under way (the app is `rebalancing` while there are any). */
  #rebalances = 0;
  #topology: Topology | undefined;
  #producer: TransportProducer | undefined;
  #consumer: TransportConsumer | undefined;
  /** Made at start, once the topology, clock and transport are known. */
  #tasks: TaskManager | undefined;
  readonly #metrics = new Metrics();
  readonly #cache: CacheBudget;
  readonly #topics: TopicProvisioner;
  readonly #input: HostInput;
  readonly #background = new BackgroundWork(
    (message, fields) => this.#log('error', message, fields),
    () => this.#scheduler.arm(),
  );
  readonly #scheduler: Scheduler;
  #stopping: Promise<void> | undefined;
  #eventLoopDelay: IntervalHistogram | undefined;
  #handlers: WindowBatchHandler<unknown, unknown>[] | undefined;

  constructor(options: AppOptions) {
    this.#settings = resolveAppOptions(options);
    this.id = this.#settings.id;
    this.#logger = options.logger ?? defaultLogger;
    this.#clock = options.clock ?? systemClock;
    this.#transport = options.transport ?? memoryTransport();
    this.#state = options.state ?? memoryState();
    this.#cache = new CacheBudget(this.#state.cacheBudgetBytes);
    this.#topics = new TopicProvisioner(this.id, () => this.#transport);
    this.#input = new HostInput({
      clock: () => this.#clock,
      // A producer that `send()` opens before start serves the app too.
      producer: async () => {
        await this.#connectTransport();
        return (this.#producer ??= await this.#transport.createProducer());
      },
      nodes: () => this.#graph.nodes,
      topics: this.#topics,
    });
    this.#scheduler = new Scheduler({
      clock: () => this.#clock,
      commitIntervalMs: this.#settings.commitIntervalMs,
      background: this.#background,
      isOpen: () => this.#open,
      tasks: () => this.#tasks?.tasks ?? [],
      tasksToCommit: () => this.#tasks?.commitOrder() ?? [],
      commit: (task) => this.#tasks!.commit(task),
      releaseInput: (task, now) => this.#tasks!.releaseInput(task, now),
      checkStalls: (now) => void this.#tasks?.stalls(now),
      log: (level, message, fields) => this.#log(level, message, fields),
    });
  }

  /**
   * A stream of a topic's records. Keys are read as UTF-8 strings, values as JSON, unless serdes say otherwise.
   * @example
   * app.from<Reading>('readings', { timestamp: r => r.ts })
   */
  from<V, K = string | undefined>(topic: string, options: SourceOptions<K, V> = {}): Stream<K, V> {
    this.#assertStatus('created', 'from');
    checkTopic(topic, 'from');
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
   * A topic read as a table: each key's latest value (a record with a null value deletes its key),
   * kept in a store (changelogged like every store) that joins read and `app.store` queries.
   * Keys are read as UTF-8 strings and values as JSON unless serdes say otherwise; a stream joins
   * it on the same key, in the same number of partitions.
   * @example
   * const sensors = app.table<string, Sensor>('sensors');
   * readings.keyBy(r => r.sensor).join(sensors, (reading, sensor) => ({ ...reading, place: sensor.place }))
   */
  table<K = string, V = unknown>(topic: string, options: { name?: string; key?: Serde<K>; value?: Serde<V> } = {}): Table<K, V> {
    this.#assertStatus('created', 'table');
    checkTopic(topic, 'table');
    const source = this.from<V, K>(topic, { key: options.key, value: options.value });
    const storeName = checkName(options.name, `table ${topic}`) ?? `${topic}-table`;
    const node = this.#graph.add({ kind: 'table', parents: [source.node], aggregation: latestAggregation(), storeName, repartitionName: undefined, upsert: true });
    return new Table<K, V>(this.#graph, node);
  }

  /**
   * A topic read whole by every instance: before its tasks start, each instance reads every
   * partition into a table of its own, and keeps it following the topic (a null value deletes its
   * key). Streams look it up by any key they compute, with no repartition:
   * `stream.join(globalTable, (value, key) => tableKey, joiner)`. Readable with `app.store`. On a
   * disk state backend the table is kept there too, with a checkpoint of the offsets it has read,
   * so a restart reads only the topic's tail.
   * @example
   * const places = app.globalTable<string, Place>('places');
   * readings.join(places, (reading) => reading.place, (reading, place) => ({ ...reading, site: place.site }))
   */
  globalTable<K = string, V = unknown>(topic: string, options: { name?: string; key?: Serde<K>; value?: Serde<V> } = {}): GlobalTable<K, V> {
    this.#assertStatus('created', 'globalTable');
    checkTopic(topic, 'globalTable');
    const storeName = checkName(options.name, `globalTable ${topic}`) ?? `${topic}-global`;
    const keySerde = (checkSerde(options.key, `globalTable ${topic} key`) ?? defaultKeySerde) as Serde<unknown>;
    const valueSerde = (checkSerde(options.value, `globalTable ${topic} value`) ?? json()) as Serde<unknown>;
    const store = new GlobalStore(topic, storeName, keySerde, valueSerde);
    this.#globalStores.push(store);
    return new GlobalTable<K, V>(store);
  }
  readonly #globalStores: GlobalStore[] = [];

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
      if (this.#settings.guarantee === 'exactly-once' && !this.#transport.exactlyOnce) {
        throw new ConfigError(`app ${this.id}: guarantee 'exactly-once' needs a transport with transactions; the ${this.#transport.kind} transport has none`);
      }
      // Before anything is touched: a second instance on the same state fails here.
      await this.#state.claim?.(this.id);
      this.#stateClaimed = true;
      await this.#connectTransport();
      await this.#topics.provision(topology);
      // Global tables are whole on this instance before any task starts.
      for (const store of this.#globalStores) await this.#topics.partitionCount(store.topic);
      await Promise.all(this.#globalStores.map((store) => store.start(this.#transport, this.#state, this.id, (level, message, fields) => this.#log(level, message, fields))));
      // Each handler started is closed once by #release, and only those: a pool may serve other apps too.
      this.#startedHandlers = this.#batchHandlers();
      await Promise.all(this.#startedHandlers.map((handler) => handler.start()));
      // A producer that `send()` opened before start serves the app too.
      this.#producer ??= await this.#transport.createProducer();
      // Only where the consumers step backlogs: elsewhere it would only turn local hand-off off.
      const alignment = this.#transport.stepsBacklogs === true ? new DeliveryAlignment(topology, this.#clock, this.#settings.time) : undefined;
      const tasks = this.#taskManager(topology, this.#producer, alignment);
      const topics = topology.subTopologies.flatMap((sub) => sub.sources.map((source) => source.topic));
      this.#scheduler.start();
      this.#open = true;
      this.#consumer = await this.#transport.subscribe(this.id, topics, {
        onAssign: (partitions) => this.#rebalancing(() => tasks.assign(partitions)),
        onRevoke: (partitions) => this.#rebalancing(() => tasks.revoke(partitions)),
        onFatal: (error) => this.#stopOn(error, 'the transport failed for good; the app stops'),
        onSkipped: (skipped) => tasks.onSkipped(skipped),
        onRecords: (records) => {
          alignment?.delivered(records[0]?.topic ?? '', records.length);
          return tasks.onRecords(records);
        },
        alignment: (topic) => alignment?.forTopic(topic),
        afterStep: () => tasks.stepWritten(),
        writesPending: ({ topic, partition, offset }) => tasks.writesPending(topic, partition, offset),
      });
      tasks.consumer = this.#consumer;
      this.#scheduler.arm();
      this.#eventLoopDelay = monitorEventLoopDelay({ resolution: 10 });
      this.#eventLoopDelay.enable();
      // A failure while starting (a bad record under onError 'stop', say) has stopped it already.
      if (!this.#life.moveTo('running')) throw this.#life.failure ?? new EddyError('APP_STATE', `start: app ${this.id} stopped while starting`);
      this.#log('info', 'app started', { tasks: tasks.size, transport: this.#transport.kind, state: this.#state.kind });
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
    // An app failing now (stop() called from an 'error' listener) goes on to 'failed', not 'stopping'.
    if (this.#life.failure === undefined) this.#life.moveTo('stopping');
    this.#open = this.#life.failure === undefined && this.#open;
    this.#scheduler.stop();
    this.#eventLoopDelay?.disable();
    await this.#background.settled();
    try {
      // The last commits (on revoke) record the stream time the idle timeout reached.
      if (this.#open) await this.#tasks?.catchUpStreamTime();
      await this.#consumer?.close();
    } finally {
      this.#open = false;
      await this.#release();
      this.#life.moveTo('stopped');
      this.#log('info', 'app stopped', { state: this.#life.state });
    }
  }

  /** Connects this app to its transport, once (start, or a send before it); #release closes that once. */
  async #connectTransport(): Promise<void> {
    this.#transportConnecting ??= this.#transport.connect().then(
      () => {
        this.#transportConnected = true;
      },
      (error: unknown) => {
        this.#transportConnecting = undefined;
        throw error;
      },
    );
    await this.#transportConnecting;
  }

  /** Closes the producer, handlers, state and transport; each is closed even if another fails to. */
  async #release(): Promise<void> {
    const results = await Promise.allSettled([
      this.#producer?.close(),
      ...this.#globalStores.map((store) => store.close()),
      ...this.#startedHandlers.splice(0).map((handler) => handler.close()),
    ]);
    // State this app never claimed may be another's (a second instance that failed to start).
    if (this.#stateClaimed) results.push(...(await Promise.allSettled([this.#state.close(this.id)])));
    // A transport this app never connected to may serve other apps (it counts its users): not ours to close.
    if (this.#transportConnected) {
      this.#transportConnected = false;
      this.#transportConnecting = undefined;
      results.push(...(await Promise.allSettled([this.#transport.close()])));
    }
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
    return this.#input.send(topic, value, options);
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
    return this.#input.sendAll(topic, records, 'sendBatch');
  }

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
   * const spend = app.from<Order>('orders').keyBy(o => o.customer).sum(o => o.amount, { name: 'spend' });
   * await app.store(spend).get('customer-7');          // number | undefined
   * await app.store('hopping-10000ms-1000ms-grace-0ms-count').get('s1');  // [{ start, end, value }]
   */
  store<K, A>(table: Table<K, A>): TableReader<K, A>;
  store<K, A>(windows: WindowedTable<K, A, unknown>): WindowStoreReader<K, A>;
  store<K, V>(table: GlobalTable<K, V>): TableReader<K, V>;
  store(name: string): StoreReader;
  store(stage: string | Table<unknown, unknown> | WindowedTable<unknown, unknown, unknown> | GlobalTable<unknown, unknown>): StoreReader {
    const name = typeof stage === 'string' ? stage : stage instanceof Table || stage instanceof WindowedTable || stage instanceof GlobalTable ? stage.name : undefined;
    const names = [...this.#storeNames(), ...this.#globalStores.map((store) => store.storeName)];
    if (name === undefined || !names.includes(name)) {
      throw new ConfigError(`store: no store named ${typeof stage === 'string' ? JSON.stringify(stage) : String(name ?? stage)}; stores: ${names.join(', ') || '(none)'}`);
    }
    const windowed = this.#graph.nodes.some((node) => node.kind === 'window' && node.storeName === name);
    const global = this.#globalStores.find((store) => store.storeName === name);
    return storeReader(windowed, () => {
      if (!this.#life.active) throw new EddyError('APP_STATE', `store ${name}: app ${this.id} is ${this.#life.state}; its stores are read while it runs`);
      // A global table is whole on this instance; a task's store holds its partition's keys.
      return global ? [global] : [...(this.#tasks?.tasks ?? [])].flatMap((task) => task.operators.filter((operator) => operator.storeName === name));
    });
  }

  /**
   * A snapshot of the app's counters, or the same in Prometheus text format.
   * @example
   * app.metrics().deadLetters
   */
  metrics(): MetricsSnapshot;
  metrics(format: 'prometheus'): string;
  metrics(format?: 'prometheus'): MetricsSnapshot | string {
    const tasks = [...(this.#tasks?.tasks ?? [])];
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
      inputWaitsExpired: this.#metrics.inputWaitsExpired,
      recordsLostToDamage: this.#transport.recordsLostToDamage?.() ?? 0,
      recordsLostToRetention: this.#metrics.recordsLostToRetention,
      handlerQueueDepth: tasks.reduce((sum, task) => sum + task.pendingWork, 0),
      stateCacheBytes: this.#cache.usedBytes,
      restoredRecords: this.#tasks?.restoredRecords ?? 0,
      lag: tasks.reduce((sum, task) => sum + task.subTopology.sources.reduce((inner, source) => inner + (this.#consumer?.lag?.({ topic: source.topic, partition: task.partition }) ?? 0), 0), 0),
      eventLoopDelayP99Ms: this.#eventLoopDelay ? this.#eventLoopDelay.percentile(99) / 1e6 : 0,
      eventLoopDelayMaxMs: this.#eventLoopDelay ? this.#eventLoopDelay.max / 1e6 : 0,
      restoreRemaining: this.#tasks?.restoreRemaining ?? 0,
      tasks: tasks.length,
      streamTime: Object.fromEntries(tasks.map((task) => [task.taskId, task.streamTimeAt(now)])),
      commitFailures: this.#metrics.commitFailures,
      lastCommitAgeMs: Object.fromEntries(tasks.map((task) => [task.taskId, task.commitAgeMs(now)])),
    };
    if (format !== 'prometheus') return snapshot;
    return prometheusText(this.id, snapshot, this.health().status === 'ok');
  }

  /**
   * Whether the app does its job, for a readiness probe: `ok`; `degraded` while it starts or
   * rebalances, when a task has not committed within `stallTimeout`, its sends keep failing, or it has
   * not run again within `stallTimeout` of a failure, or
   * when a worker pool's queue is full; `failed` once it stopped (on its own: `app.failure` says why).
   * @example
   * server.get('/ready', (_, res) => res.status(app.health().status === 'ok' ? 200 : 503).end());
   */
  health(): HealthReport {
    const state = this.#life.state;
    if (state === 'failed') return { status: 'failed', reasons: [`failed: ${this.#life.failure?.code}: ${this.#life.failure?.message}`] };
    if (state === 'stopping' || state === 'stopped') return { status: 'failed', reasons: [`the app is ${state}`] };
    if (state === 'created' || state === 'starting') return { status: 'degraded', reasons: [`the app is ${state}`] };
    const reasons = this.#tasks?.stalls(this.#clock.now()) ?? [];
    if (state === 'rebalancing') reasons.push('the app is rebalancing');
    reasons.push(...(this.#consumer?.troubles?.() ?? []));
    for (const handler of this.#batchHandlers().filter(isFull)) {
      reasons.push(`a worker pool's queue is full (${handler.queueDepth} of ${handler.maxQueue}): sources are paused`);
    }
    return { status: reasons.length === 0 ? 'ok' : 'degraded', reasons };
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

  /** @internal The TestDriver's hooks (see `testHooks`). */
  [testHooks](): AppTestHooks {
    return {
      configure: (overrides) => {
        this.#assertStatus('created', 'TestDriver.start');
        this.#clock = overrides.clock;
        this.#transport = overrides.transport;
        if (overrides.logger) this.#logger = overrides.logger;
      },
      send: (topic, value, options) => this.#input.send(topic, value, options),
      topology: () => this.#topology ?? buildTopology(this.id, this.#graph.nodes),
      topologyNodes: () => {
        const nodes = (this.#topology ?? buildTopology(this.id, this.#graph.nodes)).subTopologies.flatMap((sub) => sub.nodes);
        return {
          sources: nodes.filter((node): node is Extract<Node, { kind: 'source' }> => node.kind === 'source'),
          sinks: nodes.filter((node): node is Extract<Node, { kind: 'sink' }> => node.kind === 'sink'),
        };
      },
      settle: async (idle) => {
        for (let round = 0; round < 10_000; round++) {
          await idle();
          const tasks = [...(this.#tasks?.tasks ?? [])];
          // With the broker idle, every input has caught up: what waits for its turn goes now.
          if (tasks.some((task) => task.waitingInput) && (await this.#tasks!.releaseWaiting())) continue;
          const busy = tasks.some((task) => task.pendingWork > 0) || this.#background.size > 0;
          if (!busy) return;
          // A send that fails leaves its records for the next flush (its commit fails meanwhile): not for settling to wait on.
          await Promise.all([...tasks.map((task) => task.drain().catch(() => undefined)), this.#background.settled()]);
        }
      },
    };
  }

  // --- internals ---------------------------------------------------------------------------

  #taskManager(topology: Topology, producer: TransportProducer, alignment: DeliveryAlignment | undefined): TaskManager {
    this.#tasks = new TaskManager({
      alignment,
      settings: this.#settings,
      topology,
      clock: this.#clock,
      transport: this.#transport,
      state: this.#state,
      metrics: this.#metrics,
      cache: this.#cache,
      producer,
      topics: this.#topics,
      background: this.#background,
      isOpen: () => this.#open,
      overloaded: (task) => task.pendingWork > this.#settings.maxPending || this.#batchHandlers().some(isFull),
      hasFailed: () => this.#life.failure !== undefined,
      recordFailed: (error) => this.#recordFailed(error),
      stopOn: (error, message) => this.#stopOn(error, message),
      arm: () => this.#scheduler.arm(),
      log: (level, message, fields) => this.#log(level, message, fields),
    });
    return this.#tasks;
  }

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

  #recordFailed(error: EddyError): boolean {
    if (this.#settings.onError === 'dead-letter') return true;
    this.#stopOn(error, 'stopping on a bad record (onError: stop)');
    return false;
  }

  /** Stops the app on its own (see `failure`): tasks take no more records and commit no more. */
  #stopOn(error: EddyError, message: string): void {
    if (this.#life.failure || !['starting', 'running', 'rebalancing', 'stopping'].includes(this.#life.state)) return;
    this.#open = false;
    for (const task of this.#tasks?.tasks ?? []) task.halt();
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
}
