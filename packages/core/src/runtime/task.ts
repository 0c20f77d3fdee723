import type { Clock } from '../clock.js';
import { stateSpansSources, type SubTopology } from '../dsl/topology.js';
import type { ErrorCode } from '../errors.js';
import type { PartitionStore } from '../state/backend.js';
import type { IncomingRecord, OutgoingRecord, TopicPartitionOffset, TransactionalProducer } from '../transport/types.js';
import type { CacheBudget } from '../state/caching-store.js';
import type { HandOffOffer, StatefulOperator, TaskContext } from './context.js';
import type { Metrics } from './metrics.js';
import type { Signal } from './signals.js';
import { TaskCommit, type CommitRecord } from './task/commit.js';
import { buildOperatorGraph } from './task/graph.js';
import type { TaskHost } from './task/host.js';
import { TaskInput } from './task/input.js';
import type { Run } from './task/input-order.js';
import { OutgoingHandOffs, type HandedOff } from './task/outgoing-hand-offs.js';
import { RecordCollector } from './task/record-collector.js';
import { RecordDecoder } from './task/record-decoder.js';
import { ReplayGuard } from './task/replay-guard.js';
import { TaskStateManager, type RestoreResult, type TaskProgress } from './task/state-manager.js';
import { StreamTimeKeeper } from './task/stream-time.js';

export type { CommitRecord } from './task/commit.js';
export type { TaskHost } from './task/host.js';
export type { HandedOff } from './task/outgoing-hand-offs.js';
export type { RestoreResult } from './task/state-manager.js';

/** Records a task that orders its inputs holds for their turn before it stops waiting for an empty input. */
const MAX_BUFFERED = 10_000;

/** A task's id: its sub-topology and partition, as in Kafka Streams (`0_3`). */
export const taskIdOf = (subTopology: number, partition: number): string => `${subTopology}_${partition}`;

/**
 * One partition of one sub-topology: its own RxJS operator graph, stream time, state and offsets.
 * Records enter through `process`; `commit` runs the commit protocol. The task wires its parts,
 * in `task/`: `graph.ts` builds the operator graph; `input.ts` takes records in, through
 * `record-decoder.ts` and `replay-guard.ts` (replayed repartition records dropped); `stream-time.ts`
 * keeps stream time and the idle timeout; `record-collector.ts` sends what the task writes, and
 * its dead letters; `state-manager.ts` holds the stores, each behind its layers (the write-behind
 * cache, `state/caching-store.ts`, over the changelog, `state/changelogging.ts`, over the backend);
 * `commit.ts` is the commit protocol; `outgoing-hand-offs.ts` the records handed to local tasks.
 */
export class Task implements TaskContext {
  readonly taskId: string;
  readonly appId: string;
  readonly clock: Clock;
  readonly metrics: Metrics;
  readonly cache: CacheBudget;
  readonly keepsValues: boolean;
  /** The stateful operators, and the store partition behind each (the app opens and closes those). */
  readonly operators: StatefulOperator[];
  readonly stores: Map<string, PartitionStore>;

  readonly #state: TaskStateManager;
  readonly #replays: ReplayGuard;
  readonly #commit: TaskCommit;
  readonly #collector: RecordCollector;
  readonly #decoder: RecordDecoder;
  readonly #time: StreamTimeKeeper;
  /** The stream time the last commit batch recorded (see recordStreamTime). */
  #recordedStreamTime = -Infinity;
  readonly #handOffs: OutgoingHandOffs;
  /** Whether this task has written a repartition record to another partition (told to the host once). */
  #crossedPartitions = false;
  readonly #input: TaskInput;
  /** Handlers' async work in flight, which `drain` and the commit wait for. */
  readonly #work = new Set<Promise<unknown>>();
  #lock: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly host: TaskHost,
    readonly subTopology: SubTopology,
    readonly partition: number,
    options: { readonly transactional?: TransactionalProducer; readonly committed?: CommitRecord } = {},
  ) {
    this.taskId = taskIdOf(subTopology.index, partition);
    this.appId = host.appId;
    this.clock = host.clock;
    this.metrics = host.metrics;
    this.cache = host.cache;
    this.keepsValues = host.keepsValues;
    const log = host.log.bind(host);
    this.#state = new TaskStateManager({ appId: host.appId, taskId: this.taskId, partition, clock: host.clock, produce: (record) => this.produce(record), log });
    this.operators = this.#state.operators;
    this.stores = this.#state.stores;
    this.#replays = new ReplayGuard(host.metrics, subTopology.sources.filter((node) => node.internal).map((node) => node.topic));
    this.#commit = new TaskCommit(
      {
        taskId: this.taskId,
        appId: host.appId,
        partition,
        clock: host.clock,
        metrics: host.metrics,
        halted: () => this.#input.halted,
        drain: () => this.drain(),
        takeStateChanges: (progressChanged) => this.#state.takeChanges(progressChanged, () => this.#progress()),
        flush: () => this.flush(),
        inFlight: () => this.#collector.inFlight,
        sending: () => this.#collector.sending,
        writeState: (writes, lastOffsets) => this.#state.write(writes, lastOffsets),
        positions: () => this.#input.positions(),
        log,
      },
      options.transactional,
      options.committed,
    );
    this.#collector = new RecordCollector({
      host,
      taskId: this.taskId,
      partition,
      transaction: options.transactional ? this.#commit : undefined,
      isChangelog: (topic) => this.#state.isChangelog(topic),
      halt: () => this.halt(),
    });
    this.#decoder = new RecordDecoder(host.topology, host.clock, (incoming, error, step) => this.#collector.deadLetterRaw(incoming, error, step));
    this.#time = new StreamTimeKeeper({
      clock: host.clock,
      time: host.time,
      idleTimeoutMs: host.idleTimeoutMs,
      sourceTopics: subTopology.sources.map((source) => source.topic),
      caughtUp: (topic) => host.caughtUp(topic, partition),
      operators: this.operators,
      tick: (tick) => this.#input.tick(tick),
    });
    this.#handOffs = new OutgoingHandOffs(host.metrics);
    const inputs = buildOperatorGraph(this, host.topology, subTopology);
    this.#input = new TaskInput({
      host,
      order: Task.ordersInput(host, subTopology)
        ? {
            maxWaitMs: host.maxInputWaitMs,
            maxBuffered: MAX_BUFFERED,
            outlook: (topic, deliveredAgoMs) => host.inputOutlook(topic, partition, deliveredAgoMs),
            expired: (topic, waitedMs) => {
              host.metrics.inputWaitsExpired++;
              host.log('debug', 'an input stayed empty; the others go ahead of it', { task: this.taskId, topic, waitedMs });
            },
          }
        : undefined,
      sources: subTopology.sources,
      inputs,
      decoder: this.#decoder,
      replays: this.#replays,
      time: this.#time,
      state: this.#state,
      progressed: () => this.#commit.progressed(),
      flush: () => this.flush(),
    });
  }

  /**
   * Whether a sub-topology's tasks process their inputs in timestamp order (see
   * task/input-order.ts): in event time, when state depends on more than one input (a join, a
   * window over merged topics). Such a task takes no hand-offs: its inputs come through their topics.
   */
  static ordersInput(host: Pick<TaskHost, 'time'>, sub: SubTopology): boolean {
    return host.time === 'event' && sub.sources.length > 1 && stateSpansSources(sub);
  }

  /** Where the task stands, recorded with the state in every commit batch. */
  #progress(): TaskProgress {
    this.#recordedStreamTime = this.#time.current;
    return { streamTime: this.#time.current, positions: this.#input.positions(), replayMarks: this.#replays.stored() };
  }

  /**
   * The stream time the task has at clock time `now`, for metrics: in processing time the clock;
   * in event time with the quiet time the log confirms counted in, as the next timer will.
   */
  streamTimeAt(now: number): number {
    return this.#time.peek(now);
  }

  // --- TaskContext -------------------------------------------------------------------------

  streamTime(): number {
    return this.#time.current;
  }

  register(operator: StatefulOperator): void {
    this.#state.register(operator);
  }

  storeOf(storeName: string): PartitionStore {
    return this.#state.storeOf(storeName);
  }

  operatorOf(storeName: string): StatefulOperator | undefined {
    return this.operators.find((operator) => operator.storeName === storeName);
  }

  produce(record: OutgoingRecord): void {
    this.#collector.produce(record);
  }

  partitionsOf(topic: string): number {
    return this.host.partitionsOf(topic);
  }

  track(work: Promise<unknown>): void {
    const tracked = work.finally(() => this.#work.delete(tracked));
    this.#work.add(tracked);
    // Results of async handlers are produced as they come.
    void tracked.then(() => this.flush());
  }

  fail(error: unknown, signal: Signal | undefined, step: string, code: ErrorCode = 'HANDLER_FAILED'): void {
    this.#collector.deadLetterSignal(error, signal, step, code, (failed) => this.#decoder.keyOf(failed));
  }

  // --- records in --------------------------------------------------------------------------

  /** Serializes work on this task: record batches, punctuation and commits never interleave. */
  exclusive<T>(work: () => Promise<T> | T): Promise<T> {
    const run = this.#lock.then(work, work);
    this.#lock = run.catch(() => undefined);
    return run;
  }

  /**
   * Takes a delivered batch of one partition and returns what can be processed now: the batch
   * itself, or for a task that orders its inputs, the runs of records whose turn has come.
   */
  accept(records: readonly IncomingRecord[]): readonly Run[] {
    return this.#input.accept(records);
  }

  /** The waiting input whose turn has come by clock time `now` (see TaskInput.release), to prepare and process. */
  release(now: number): readonly Run[] {
    return this.#input.release(now);
  }

  /** Whether the task processes its inputs in timestamp order (see task/input-order.ts). */
  get ordersInput(): boolean {
    return this.#input.ordered;
  }

  /** Whether input waits for its turn. */
  get waitingInput(): boolean {
    return this.#input.waiting;
  }

  /** Reads back the evicted state runs of records will need (see TaskInput.prepare). */
  prepare(runs: readonly Run[]): Promise<void> {
    return this.#input.prepare(runs);
  }

  /** Reads back the evicted state that closes by the stream time `punctuate(now)` reaches. */
  async preparePunctuate(now: number): Promise<void> {
    if (!this.#state.hasEvicted()) return;
    await this.#state.load([], this.#time.reachedBy(now));
  }

  /** Processes runs of records, each of one partition in offset order. */
  process(runs: readonly Run[]): void {
    this.#input.process(runs);
  }

  /** Offsets `from` to `to` of `topic` need no processing (see TaskInput.skip). */
  skip(topic: string, from: number, to: number): void {
    this.#input.skip(topic, from, to);
  }

  /** The next offset of `topic` (this partition) that this task would process. */
  position(topic: string): number | undefined {
    return this.#input.position(topic);
  }

  // --- local hand-off ------------------------------------------------------------------------

  /**
   * Local hand-off, for an internal topic whose reading task of this partition runs in this
   * process (see runtime/hand-offs.ts): a record this task writes to that partition while it
   * processes a batch goes to that task directly, with its origin, instead of through the topic.
   * Returns false when the record must go through the topic.
   */
  handOff(offer: HandOffOffer): boolean {
    if (offer.partition !== this.partition) {
      if (!this.#crossedPartitions) {
        this.#crossedPartitions = true;
        this.host.crossedPartitions?.(this.subTopology.index);
      }
      return false;
    }
    if (!this.#input.processing) return false;
    return this.#handOffs.offer(offer);
  }

  /** The records handed off during the last batch, in runs of one topic, in the order written; clears them. */
  takeHandOffs(): ReadonlyArray<{ readonly target: Task; readonly topic: string; readonly records: readonly HandedOff[] }> {
    return this.#handOffs.take();
  }

  handOffTarget(topic: string): Task | undefined {
    return this.#handOffs.target(topic);
  }

  setHandOffTarget(topic: string, target: Task | undefined): void {
    this.#handOffs.setTarget(topic, target);
  }

  /** Reads back the evicted state that handed-off records need (see {@link prepare}). */
  prepareHandOff(records: readonly HandedOff[]): Promise<void> {
    return this.#input.prepareHandOff(records);
  }

  /** Processes records another task handed off for `topic` (see TaskInput.processHandOff). */
  processHandOff(topic: string, records: readonly HandedOff[]): void {
    this.#input.processHandOff(topic, records);
  }

  // --- time ----------------------------------------------------------------------------------

  /**
   * Timer work: in processing time, stream time is the clock; in event time, once the task has
   * been quiet for the idle timeout, stream time follows the clock from there on.
   */
  punctuate(now: number): void {
    if (this.#input.halted) return;
    this.#time.punctuate(now);
    this.flush();
  }

  /**
   * Stream time catches up with clock time `now` as a timer would, the idle timeout's quiet time
   * included, whether or not something is due. Call it under the task's lock, while the log still
   * answers for the task's partitions.
   */
  async catchUpStreamTime(now: number): Promise<void> {
    if (this.#input.halted) return;
    await this.preparePunctuate(now);
    this.punctuate(now);
  }

  /**
   * Before the task's last commit (its partitions leave, or the app stops): the commit records
   * stream time even if nothing else changed. Ordinary commits record it only with state that
   * changed, so that an idle task writes nothing; without this, quiet time that moved stream time
   * but closed nothing would be forgotten, and the next owner would take records as on time that
   * this one would have found late.
   */
  recordStreamTime(): void {
    if (this.#time.current !== this.#recordedStreamTime) this.#commit.progressed();
  }

  /** Quiet time counts from now (after a pause for backpressure, or while input waits). */
  restartIdleCountdown(from?: number): void {
    this.#time.restartIdleCountdown(from);
  }

  /** The clock time at which this task next has timer work, if any. */
  nextWakeUp(): number | undefined {
    const time = this.#time.nextWakeUp();
    const input = this.#input.wakeUp(this.clock.now());
    return time === undefined || (input !== undefined && input < time) ? input : time;
  }

  // --- records out -------------------------------------------------------------------------

  /** Sends what the operators produced since the last flush, as one producer call. */
  flush(): void {
    this.#collector.flush();
  }

  /** Whether sends are in flight or queued (records on their way to a topic). */
  get sending(): boolean {
    return this.#collector.sending;
  }

  /** Whether this task has records queued or in flight for a partition of `topic`. */
  sendingTo(topic: string, partition: number): boolean {
    return this.#collector.sendingTo(topic, partition);
  }

  /** The offset of the last record this task wrote (acknowledged) to its partition of `topic`. */
  lastWritten(topic: string, partition = this.partition): number | undefined {
    return this.#collector.lastWritten(topic, partition);
  }

  /** Async work (handlers, sends) in flight. */
  get pendingWork(): number {
    return this.#work.size + this.#collector.inFlight.size;
  }

  /** Resolves when what the task produced so far is written (acknowledged, or failed: the commit then fails). */
  async sent(): Promise<void> {
    this.flush();
    await Promise.allSettled([...this.#collector.inFlight]);
  }

  /** Resolves when every handler started so far has delivered and every send is acknowledged. */
  async drain(): Promise<void> {
    while (this.#work.size > 0 || this.#collector.sending) {
      this.#commit.throwIfFailed();
      this.flush();
      // A failed send rejects here (its records are back in the outbox): the caller stops.
      await Promise.all([...this.#work, ...this.#collector.inFlight]);
    }
  }

  // --- commit and restore ------------------------------------------------------------------

  /** Exactly-once: the task has its own transactional producer (and commits offsets with it). */
  get transactional(): boolean {
    return this.#commit.transactional;
  }

  /** Successful commits so far (a task that handed records here waits for one after its hand-off). */
  get commits(): number {
    return this.#commit.commits;
  }

  /**
   * The commit protocol (task/commit.ts). Exactly-once, the input offsets are committed with the
   * transaction and `commitOffsets` only follows up. A failed transaction leaves the task
   * unusable: it must be closed and rebuilt from the last commit.
   */
  commit(commitOffsets: (offsets: readonly TopicPartitionOffset[]) => Promise<void>): Promise<void> {
    return this.#commit.commit(commitOffsets);
  }

  /**
   * Whether the task is stuck, as of clock time `now`: its records have waited `boundMs` for an
   * empty input (one that has records to come, which do not come), it has not committed for that
   * long (its commits fail, or wait on sends the log does not take), or its sends have failed for that long.
   * Says why, for logs and `app.health()`.
   */
  stalled(now: number, boundMs: number): string | undefined {
    const waiting = this.#input.waitingFor();
    if (waiting && now - waiting.since > boundMs) {
      return `task ${this.taskId}: records have waited ${now - waiting.since} ms for input ${waiting.topic} (the log or a local task says records are coming to it)`;
    }
    return this.#commit.stalled(now, boundMs, this.#collector.sendFailingSince);
  }

  /** Clock time since the last successful commit (or since the task opened). */
  commitAgeMs(now: number): number {
    return this.#commit.commitAgeMs(now);
  }

  /**
   * Closes the task for good: no more records; under exactly-once its open transaction (what it
   * produced since the last commit) is aborted and its producer closed. Its stores are the caller's.
   */
  async close(): Promise<void> {
    this.halt();
    // A commit under way ends first. Aborting beside it would let its offsets reach the group
    // after the abort: they would stay pending there for good (a hanging transaction), and every
    // read of the committed offsets would find them unstable.
    await this.exclusive(async () => {
      this.#state.release();
      await this.#commit.close();
    });
  }

  /**
   * Restores each store: the changelog tail after the local checkpoint goes into the store,
   * then the operators rebuild their in-memory state (and so their open windows) from it.
   */
  async restore(
    readChangelog: (topic: string, partition: number, from: number) => AsyncIterable<readonly IncomingRecord[]>,
    endOffset: (topic: string, partition: number) => Promise<number>,
    progress: (restored: number, remaining: number) => void,
  ): Promise<RestoreResult> {
    const restored = await this.#state.restore(readChangelog, endOffset, progress);
    for (const marks of restored.replayMarks) this.#replays.restore(marks);
    this.#time.restore(restored.streamTime);
    this.#recordedStreamTime = restored.streamTime;
    await this.#state.restoreOperators(restored.streamTime);
    this.#input.restorePositions(restored.positions);
    return { records: restored.records, positions: restored.positions };
  }

  openWindows(): number {
    return this.#state.openWindows();
  }

  /** Stops accepting records (after a fatal error or on close). */
  halt(): void {
    this.#input.halt();
  }
}
