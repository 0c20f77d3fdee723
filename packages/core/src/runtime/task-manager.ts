import type { AppSettings } from '../app-options.js';
import type { Clock } from '../clock.js';
import { changelogTopic, type SubTopology, type Topology } from '../dsl/topology.js';
import { describeError, EddyError } from '../errors.js';
import type { StateBackend } from '../state/backend.js';
import type {
  CaughtUp,
  IncomingRecord,
  TopicPartition,
  TopicPartitionOffset,
  TransactionalProducer,
  Transport,
  TransportConsumer,
  TransportProducer,
} from '../transport/types.js';
import type { BackgroundWork } from './background.js';
import type { CacheBudget } from '../state/caching-store.js';
import { HandOffs } from './hand-offs.js';
import type { Metrics } from './metrics.js';
import type { InputOutlook, Run } from './task/input-order.js';
import { Task, taskIdOf, type CommitRecord, type TaskHost } from './task.js';
import type { TopicProvisioner } from './topic-provisioner.js';
import type { DeliveryAlignment } from './delivery-alignment.js';

type Level = 'debug' | 'info' | 'warn' | 'error';

/** What the task manager needs of the running app. */
export interface TaskManagerDeps {
  readonly settings: AppSettings;
  readonly topology: Topology;
  readonly clock: Clock;
  readonly transport: Transport;
  readonly state: StateBackend;
  readonly metrics: Metrics;
  readonly cache: CacheBudget;
  readonly producer: TransportProducer;
  readonly topics: TopicProvisioner;
  readonly background: BackgroundWork;
  /** Records are taken and work is committed: from subscribing until the app stops or fails. */
  isOpen(): boolean;
  /** The app stopped on its own: a revoked task no longer commits. */
  hasFailed(): boolean;
  /** Backpressure: the task has too much work waiting (handler windows, a full worker pool), so its source waits for it. */
  overloaded(task: Task): boolean;
  /** A bad record: whether to dead-letter it (or the app stops). */
  recordFailed(error: EddyError): boolean;
  stopOn(error: EddyError, message: string): void;
  /** A task's next wake-up may have moved: the scheduler arms its timer again. */
  arm(): void;
  log(level: Level, message: string, fields?: Record<string, unknown>): void;
  /** Told when a task moves repartition records between partitions (see runtime/delivery-alignment.ts). */
  readonly alignment?: DeliveryAlignment;
}

/** A task dropped after a failure, until it runs again (or its partitions leave this instance). */
interface Rebuilding {
  readonly since: number;
  attempts: number;
  waitingFor: string;
  /** Why the last attempt failed, if one did: `health()` says it while the next attempt waits. */
  lastFailure: string | undefined;
}

const isTransactional = (producer: TransportProducer): producer is TransactionalProducer =>
  typeof (producer as Partial<TransactionalProducer>).begin === 'function' && typeof (producer as Partial<TransactionalProducer>).sendOffsets === 'function';

/**
 * The tasks of this instance, one per sub-topology and partition it is assigned: opened (state
 * restored) on assignment, committed and closed on revocation, committed with their input offsets
 * (see `commit`), and rebuilt from their last commit after a failure.
 */
export class TaskManager {
  readonly #tasks = new Map<string, Task>();
  /** Per task id, its commits on this instance (see `CommitRecord`): kept while the task is started again after failures. */
  readonly #commitRecords = new Map<string, CommitRecord>();
  /** Tasks being revoked: a failed commit closes them, it does not rebuild them. */
  readonly #revoking = new Set<Task>();
  /** Tasks reported stuck (see `stallTimeout`), so that each stall is logged once, and its end. */
  readonly #stalled = new Set<string>();
  /** Tasks dropped after a failure and not running yet, by task id (see `#rebuild`). */
  readonly #rebuilding = new Map<string, Rebuilding>();
  /**
   * Per task id, the opening under way. Opens of one task run one after another, so the producer of
   * the one opened last (the one registered: see #reopen) fences the others, never the reverse.
   */
  readonly #opening = new Map<string, Promise<unknown>>();
  /** Tasks with a release of waiting input queued (see #releaseWaitingLater). */
  readonly #releasing = new Set<Task>();
  readonly #handOffs: HandOffs;
  /** Set once the app has subscribed. */
  consumer: TransportConsumer | undefined;
  restoredRecords = 0;
  restoreRemaining = 0;

  constructor(private readonly deps: TaskManagerDeps) {
    this.#handOffs = new HandOffs(deps.transport, {
      reading: (topic, partition) => this.#tasks.get(this.taskKey(topic, partition)),
      isRunning: (task) => this.#isRunning(task),
      isRevoking: (task) => this.#revoking.has(task),
      commit: (task) => this.commit(task),
      rebuildLater: (task, error) => this.#rebuildLater(task, error),
      log: (level, message, fields) => deps.log(level, message, fields),
      inStep: (task) => deps.alignment?.movesRecords(task.subTopology.index) === true,
    });
  }

  get tasks(): Iterable<Task> {
    return this.#tasks.values();
  }

  /** The tasks, those that hand records off to local tasks first (see Scheduler: a commit round's order). */
  commitOrder(): Task[] {
    const tasks = [...this.#tasks.values()];
    return [...tasks.filter((task) => this.#handOffs.handsOff(task)), ...tasks.filter((task) => !this.#handOffs.handsOff(task))];
  }

  get size(): number {
    return this.#tasks.size;
  }

  taskKey(topic: string, partition: number): string {
    const sub = this.deps.topology.subTopologies.find((candidate) => candidate.sources.some((source) => source.topic === topic));
    return taskIdOf(sub?.index ?? -1, partition);
  }

  /** A batch of one partition's records: processed by its task, records handed off delivered, backpressure applied. */
  async onRecords(records: readonly IncomingRecord[]): Promise<void> {
    const first = records[0];
    if (!first || !this.deps.isOpen()) return;
    const task = this.#tasks.get(this.taskKey(first.topic, first.partition));
    if (!task) return;
    let handedTo: ReadonlySet<Task> = new Set();
    await task.exclusive(async () => {
      await this.#handOffs.update(task);
      const runs = task.accept(records);
      if (runs.length === 0) return;
      await this.#processRuns(task, runs);
      // Within the batch: the task's commit must find what it handed off applied.
      handedTo = await this.#handOffs.deliver(task);
    });
    // This task moved on: a task whose input waited on it (it writes that input) may go ahead.
    this.#releaseWaitingLater(task);
    // Backpressure: a task with too many windows waiting for handlers, or a full worker pool,
    // pauses its source until the work in flight is done, the work of the tasks its records were
    // handed to included (their windows closed on this batch).
    const involved = [task, ...handedTo];
    if (involved.some((candidate) => this.deps.overloaded(candidate))) {
      await Promise.all(involved.map((candidate) => candidate.drain()));
      task.restartIdleCountdown();
    }
    this.deps.arm();
  }

  /**
   * Resolves once the tasks whose records move between partitions in step have written what they
   * produced: under exactly-once each task writes through its own producer, and a delivery pass's
   * records must reach the repartition topics before the next pass's do (see `ConsumerListener.afterStep`).
   */
  async stepWritten(): Promise<void> {
    const { alignment, settings } = this.deps;
    if (!alignment || settings.guarantee !== 'exactly-once') return;
    await Promise.all([...this.#tasks.values()].filter((task) => alignment.movesRecords(task.subTopology.index)).map((task) => task.sent()));
  }

  /**
   * Reads back the state runs of records need, then processes them. The runs of a task that orders
   * its input have left its buffer: if its state cannot be read back, the task is dropped and
   * starts again from its last commit (the batch cannot simply be delivered again).
   */
  async #processRuns(task: Task, runs: readonly Run[]): Promise<void> {
    try {
      await task.prepare(runs);
    } catch (error) {
      if (task.ordersInput) {
        task.halt();
        this.#rebuildLater(task, error);
      }
      throw error;
    }
    task.process(runs);
  }

  /** Processes the input of `task` that waited for its turn and may go by clock time `now`; call it under the task's lock. True if there was some. */
  async releaseInput(task: Task, now: number): Promise<boolean> {
    const runs = task.release(now);
    if (runs.length === 0) return false;
    await this.#processRuns(task, runs);
    return true;
  }

  /** Processes, in each task whose input waits for its turn, what may go now (see task/input-order.ts). True if there was some. */
  async releaseWaiting(): Promise<boolean> {
    let released = false;
    for (const task of this.#tasks.values()) {
      if (task.waitingInput && (await task.exclusive(() => this.releaseInput(task, this.deps.clock.now())))) released = true;
    }
    return released;
  }

  /** The same, in the background, after `moved` processed records (a task busy committing holds up no delivery). */
  #releaseWaitingLater(moved: Task): void {
    for (const task of this.#tasks.values()) {
      if (task === moved || !task.waitingInput || this.#releasing.has(task)) continue;
      this.#releasing.add(task);
      this.deps.background.run(async () => {
        await task.exclusive(() => {
          this.#releasing.delete(task);
          return this.releaseInput(task, this.deps.clock.now());
        });
      }, 'processing input that waited its turn failed');
    }
  }

  /**
   * What is to come of a task's empty input partition that was written before a record the task
   * was given `deliveredAgoMs` ago (see {@link InputOutlook}).
   * - `ready` takes the log's word, by an answer asked for since, that the task has read it all
   *   (on Kafka the log answers every 500 ms; an older answer may miss records written just before
   *   that record) and, for a repartition topic, every local task that writes it has nothing in
   *   hand (ready with its own inputs, not waiting, nothing being sent) and the reader has read
   *   past all it wrote there.
   * - `coming`: the log shows records the task has not been given, or has not said yet where the
   *   partition ends, or its answer that does is due (the member keeps up with the log, whose last
   *   answer is older than the record); or a local task that writes it has records in flight or
   *   written past the reader's position (under exactly-once, readable from that task's commit
   *   on), or has such records coming to its own inputs.
   * - `unsure`: the log has stopped saying the member keeps up (answers late or missing, just
   *   moved) though it shows nothing unread, or a local task that writes it waits on its own inputs.
   * Tasks of other instances are not known here: their records are waited for only while the log shows them.
   */
  inputOutlook(topic: string, partition: number, deliveredAgoMs: number, seen = new Set<Task>()): InputOutlook {
    const caught = this.caughtUp(topic, partition);
    let outlook: InputOutlook = 'ready';
    // Kept up with, but by an answer older than the record: the next answer is due.
    if (caught && caught.confirmedAgoMs > deliveredAgoMs) return 'coming';
    if (!caught) {
      const lag = this.consumer?.lag?.({ topic, partition });
      const unanswered = lag === undefined && this.consumer?.lag !== undefined;
      if ((lag !== undefined && lag > 0) || unanswered) return 'coming';
      outlook = 'unsure';
    }
    const writer = this.deps.topology.repartitionTopics.get(topic);
    if (!writer) return outlook;
    const read = this.#tasks.get(this.taskKey(topic, partition))?.position(topic) ?? 0;
    if (this.writesPending(topic, partition, read)) return 'coming';
    for (const task of this.#tasks.values()) {
      if (task.subTopology !== writer) continue;
      if (task.waitingInput) outlook = 'unsure';
      if (seen.has(task)) continue;
      seen.add(task);
      for (const source of writer.sources) {
        const theirs = this.inputOutlook(source.topic, task.partition, deliveredAgoMs, seen);
        if (theirs === 'coming') return 'coming';
        if (theirs === 'unsure') outlook = 'unsure';
      }
    }
    return outlook;
  }

  /**
   * Whether local tasks have records on their way to a partition of a repartition topic at or after
   * `offset`: queued or in flight for it, or written there (acknowledged; under exactly-once
   * readable only from the writer's commit on). See `ConsumerListener.writesPending`.
   */
  writesPending(topic: string, partition: number, offset: number): boolean {
    const writer = this.deps.topology.repartitionTopics.get(topic);
    if (!writer) return false;
    for (const task of this.#tasks.values()) {
      if (task.subTopology !== writer) continue;
      const written = task.lastWritten(topic, partition);
      if ((written !== undefined && written >= offset) || task.sendingTo(topic, partition)) return true;
    }
    return false;
  }

  /** Offsets the transport skipped (aborted or compacted records): the task's position moves past them. */
  async onSkipped({ topic, partition, from, to, deleted }: { topic: string; partition: number; from: number; to: number; deleted?: boolean }): Promise<void> {
    if (deleted) {
      this.deps.metrics.recordsLostToRetention += to - from;
      this.deps.log('warn', 'records were deleted before they were read; reading on after them', { topic, partition, from, to });
    }
    const task = this.#tasks.get(this.taskKey(topic, partition));
    if (!task || !this.deps.isOpen()) return;
    await task.exclusive(() => task.skip(topic, from, to));
  }

  async assign(partitions: readonly TopicPartition[]): Promise<TopicPartitionOffset[]> {
    const positions: TopicPartitionOffset[] = [];
    const added = partitions.filter(({ topic, partition }) => !this.#tasks.has(this.taskKey(topic, partition)));
    if (added.length > 0) this.deps.log('info', 'partitions assigned', { partitions: added.map(({ topic, partition }) => `${topic}[${partition}]`) });
    for (const { topic, partition } of partitions) {
      const key = this.taskKey(topic, partition);
      if (this.#tasks.has(key)) continue;
      // A rebuild of the task under way yields to the assignment (see #reopen).
      this.#rebuilding.delete(key);
      const sub = this.deps.topology.subTopologies.find((candidate) => candidate.sources.some((source) => source.topic === topic))!;
      const { task, positions: restored } = await this.#open(sub, partition);
      positions.push(...restored);
      this.#tasks.set(key, task);
    }
    this.deps.arm();
    return positions;
  }

  /**
   * Before the app stops: every task's stream time catches up with the clock (see
   * Task.catchUpStreamTime) while the log still answers for its partitions, so that the last
   * commits record it.
   */
  async catchUpStreamTime(): Promise<void> {
    for (const task of this.#tasks.values()) await task.exclusive(() => task.catchUpStreamTime(this.deps.clock.now()));
  }

  async revoke(partitions: readonly TopicPartition[]): Promise<void> {
    const keys = new Set(partitions.map(({ topic, partition }) => this.taskKey(topic, partition)));
    for (const key of keys) {
      this.#commitRecords.delete(key);
      // A rebuild of the task under way stops: its partitions leave this instance.
      this.#rebuilding.delete(key);
      const task = this.#tasks.get(key);
      if (!task) continue;
      this.#revoking.add(task);
      try {
        if (!this.deps.hasFailed()) await this.commit(task, { last: true });
      } catch (error) {
        // The partition's next owner resumes from the last commit: records repeat, none is lost.
        this.deps.log('warn', 'commit on revoke failed', { task: task.taskId, error: String(error) });
      } finally {
        this.#tasks.delete(key);
        this.#revoking.delete(task);
        await this.#close(task);
      }
    }
  }

  /**
   * Commits a task: first the tasks it handed records to, then its own outputs, state and input
   * offsets (see the commit protocol in the task). Under exactly-once a failed transaction drops
   * the task and rebuilds it from its last commit. `last`: the task's partitions leave after it
   * (see Task.recordStreamTime).
   */
  commit(task: Task, { last = false } = {}): Promise<void> {
    const consumer = this.consumer!;
    const committed = task.exclusive(async () => {
      if (last) {
        await task.catchUpStreamTime(this.deps.clock.now());
        task.recordStreamTime();
      }
      await this.#handOffs.beforeCommit(task);
      await task.commit(async (offsets) => {
        // A transactional task committed its offsets with its transaction.
        if (!task.transactional) await consumer.commit(offsets);
        // Committed repartition records are never read again: let the log drop them.
        for (const offset of offsets) {
          if (!this.deps.topology.repartitionTopics.has(offset.topic)) continue;
          // Best effort: the offsets are committed already, and a failure only leaves records for the
          // next commit to drop.
          await this.deps.transport
            .deleteRecords?.(offset, offset.offset)
            .catch((error: unknown) => this.deps.log('warn', 'deleting committed repartition records failed', { task: task.taskId, error: describeError(error) }));
        }
      });
    });
    if (!task.transactional) return committed;
    return committed.catch((error: unknown) => {
      // The broker refused a record inside the transaction: starting again would send it again.
      if (error instanceof EddyError && error.code === 'RECORD_REJECTED') {
        this.deps.stopOn(error, 'the broker refused a record of a transaction; under exactly-once it cannot be dead-lettered, so the app stops');
        throw error;
      }
      // The transaction is aborted (or was, by a newer owner of the task: this instance is then a
      // zombie), and with it the task's work since its last commit. A running task starts again
      // from there; one being revoked is closed by its revocation.
      if (!this.#revoking.has(task)) this.#rebuildLater(task, error);
      throw error;
    });
  }

  /**
   * Whether a task keeps up with one of its sources, by the log's word. A repartition topic says
   * nothing of the records a local task hands over directly (see HandOffs): the reading task
   * keeps up only while that task keeps up with its own sources too.
   */
  caughtUp(topic: string, partition: number, seen = new Set<Task>()): CaughtUp | undefined {
    const own = this.consumer?.caughtUp({ topic, partition });
    const writer = own && this.deps.topology.repartitionTopics.get(topic);
    const upstream = writer && this.#tasks.get(taskIdOf(writer.index, partition));
    if (!upstream || !this.#handOffs.handsOff(upstream) || seen.has(upstream)) return own;
    seen.add(upstream);
    let combined: CaughtUp = own;
    for (const source of writer.sources) {
      const theirs = this.caughtUp(source.topic, partition, seen);
      if (!theirs) return undefined;
      combined = { forMs: Math.min(combined.forMs, theirs.forMs), confirmedAgoMs: Math.max(combined.confirmedAgoMs, theirs.confirmedAgoMs) };
    }
    return combined;
  }

  /**
   * Why tasks are stuck (see `stallTimeout`): a task that has not committed or keeps failing to
   * send, or one dropped after a failure that has not run again. Logs each stall when it begins
   * and when it ends.
   */
  stalls(now: number): string[] {
    const reasons: string[] = [];
    const bound = this.deps.settings.stallTimeoutMs;
    const report = (taskId: string, stall: string | undefined) => {
      if (stall) {
        reasons.push(stall);
        if (!this.#stalled.has(taskId)) this.deps.log('warn', 'a task is stuck: its work is not committed', { task: taskId, reason: stall });
        this.#stalled.add(taskId);
      } else if (this.#stalled.delete(taskId)) {
        this.deps.log('info', 'a stuck task commits again', { task: taskId });
      }
    };
    for (const task of this.#tasks.values()) report(task.taskId, task.stalled(now, bound));
    for (const [taskId, rebuilding] of this.#rebuilding) {
      const downMs = now - rebuilding.since;
      const failed = rebuilding.lastFailure === undefined ? '' : `; the last attempt failed: ${rebuilding.lastFailure}`;
      report(taskId, downMs > bound ? `task ${taskId}: not running for ${downMs} ms, being started again after a failure (attempt ${rebuilding.attempts}: ${rebuilding.waitingFor}${failed})` : undefined);
    }
    return reasons;
  }

  #isRunning(task: Task): boolean {
    return this.#tasks.get(task.taskId) === task;
  }

  #rebuildLater(task: Task, error: unknown): void {
    if (this.deps.isOpen()) this.deps.background.run(this.#rebuild(task, error));
  }

  #host(): TaskHost {
    const { deps } = this;
    return {
      appId: deps.settings.id,
      topology: deps.topology,
      clock: deps.clock,
      metrics: deps.metrics,
      time: deps.settings.time,
      idleTimeoutMs: deps.settings.idleTimeoutMs,
      caughtUp: (topic, partition) => this.caughtUp(topic, partition),
      inputOutlook: (topic, partition, deliveredAgoMs) => this.inputOutlook(topic, partition, deliveredAgoMs),
      maxInputWaitMs: deps.settings.maxInputWaitMs,
      producer: deps.producer,
      keepsValues: deps.transport.keepsValues === true,
      partitionsOf: (topic) => deps.topics.partitionsOf(topic),
      cache: deps.cache,
      recordFailed: (error) => deps.recordFailed(error),
      fatal: (error) => deps.stopOn(error, 'a task cannot go on; the app stops'),
      log: (level, message, fields) => deps.log(level, message, fields),
      crossedPartitions: (index) => deps.alignment?.crossed(index),
    };
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
    if (this.deps.settings.guarantee !== 'exactly-once') return undefined;
    const topics = sub.sources.map((source) => source.topic).sort();
    // ':' and '+' appear in neither app ids nor topic names: two apps can never share an id.
    const producer = await this.deps.transport.createProducer({ transactionalId: `${this.deps.settings.id}:${topics.join('+')}:${partition}` });
    if (isTransactional(producer)) return producer;
    await producer.close();
    return undefined;
  }

  /**
   * A task with its state restored, and the input positions that state covers. Exactly-once: the
   * task's producer exists (and has fenced its previous owner's) before its state is read.
   */
  #open(sub: SubTopology, partition: number): Promise<{ task: Task; positions: readonly TopicPartitionOffset[] }> {
    const taskId = taskIdOf(sub.index, partition);
    const opening = (this.#opening.get(taskId) ?? Promise.resolve())
      .catch(() => undefined)
      .then(() => this.#openNow(sub, partition));
    this.#opening.set(taskId, opening);
    void opening
      .catch(() => undefined)
      .finally(() => {
        if (this.#opening.get(taskId) === opening) this.#opening.delete(taskId);
      });
    return opening;
  }

  async #openNow(sub: SubTopology, partition: number): Promise<{ task: Task; positions: readonly TopicPartitionOffset[] }> {
    const { deps } = this;
    const taskId = taskIdOf(sub.index, partition);
    let committed = this.#commitRecords.get(taskId);
    if (!committed) this.#commitRecords.set(taskId, (committed = { at: deps.clock.now(), failures: 0, error: undefined }));
    const task = new Task(this.#host(), sub, partition, { transactional: await this.#transactionalProducer(sub, partition), committed });
    try {
      for (const storeName of sub.storeNames) {
        task.stores.set(storeName, await deps.state.open({ appId: deps.settings.id, storeName, partition, changelogTopic: changelogTopic(deps.settings.id, storeName) }));
      }
    } catch (error) {
      await this.#close(task);
      throw error;
    }
    const started = deps.clock.now();
    let reported = 0;
    const restored = await task
      .restore(
        (changelog, changelogPartition, from) => deps.transport.readPartition({ topic: changelog, partition: changelogPartition }, from),
        (changelog, changelogPartition) => deps.transport.endOffset({ topic: changelog, partition: changelogPartition }),
        (records, remaining) => {
          this.restoredRecords += records - reported;
          reported = records;
          this.restoreRemaining = remaining;
          const seconds = Math.max(0.001, (deps.clock.now() - started) / 1000);
          deps.log('debug', 'restoring state', { task: task.taskId, records, recordsPerSecond: Math.round(records / seconds), remaining });
        },
      )
      .catch(async (error: unknown) => {
        await this.#close(task);
        throw error;
      });
    this.restoreRemaining = 0;
    if (restored.records > 0) {
      const ms = deps.clock.now() - started;
      deps.log('info', 'state restored', { task: task.taskId, records: restored.records, ms, recordsPerSecond: Math.round(restored.records / Math.max(0.001, ms / 1000)) });
    }
    await this.#handOffs.opened(task, sub).catch(async (error: unknown) => {
      await this.#close(task);
      throw error;
    });
    return { task, positions: restored.positions };
  }

  /** Closes a task that is no longer registered, and its stores. */
  async #close(task: Task): Promise<void> {
    this.#handOffs.closed(task);
    await task.close();
    for (const store of task.stores.values()) await store.close().catch(() => undefined);
  }

  /**
   * After a task lost its work since its last commit — its transaction failed (exactly-once), or a
   * task it handed records to started again or closed without committing them — the task is
   * dropped (its stores hold only committed state), and once the group confirms that this
   * instance still owns its partitions, opened again: a new producer under exactly-once, state
   * restored from the changelog, input read again from the committed offsets. Until then its
   * records are not processed, and `app.health()` names it once that lasts past `stallTimeout`.
   * If the partitions went to another instance (this one was a zombie, fenced by the new owner),
   * the rebalance revokes them here and nothing is rebuilt.
   */
  async #rebuild(task: Task, error: unknown): Promise<void> {
    const key = task.taskId;
    // A task being revoked is closed by its revocation, not rebuilt.
    if (!this.#isRunning(task) || this.#revoking.has(task)) return;
    this.#tasks.delete(key);
    const rebuilding: Rebuilding = { since: this.deps.clock.now(), attempts: 0, waitingFor: 'closing the failed task', lastFailure: undefined };
    this.#rebuilding.set(key, rebuilding);
    try {
      this.deps.log('warn', 'a task lost its work since its last commit; it starts again from there', { task: key, error: describeError(error) });
      // Tasks that handed records to this one since their last commit lose them with its state:
      // they stop now and start again from their last commit too, handing those records again.
      for (const upstream of this.#handOffs.handedTo(task)) {
        upstream.halt();
        this.deps.background.run(this.#rebuild(upstream, new EddyError('TRANSPORT_FAILED', `task ${key} started again: what task ${upstream.taskId} handed it since its last commit is lost`)));
      }
      await this.#close(task);
      await this.#reopen(task, rebuilding);
    } finally {
      if (this.#rebuilding.get(key) === rebuilding) this.#rebuilding.delete(key);
    }
  }

  async #reopen(task: Task, rebuilding: Rebuilding): Promise<void> {
    const key = task.taskId;
    const partitions = task.subTopology.sources.map((source) => ({ topic: source.topic, partition: task.partition }));
    // Why not to go on: the app closes, or another path took the task over meanwhile (an assignment
    // opened it, or a newer rebuild runs).
    const gone = () =>
      !this.deps.isOpen() ? 'the app is closing' : this.#tasks.has(key) || this.#rebuilding.get(key) !== rebuilding ? 'another assignment or rebuild took the task over' : undefined;
    const stop = (why: string) => this.deps.log('debug', 'a failed task is not rebuilt here', { task: key, why, attempts: rebuilding.attempts });
    for (let attempt = 0; ; attempt++) {
      if (attempt > 0) await new Promise((resolve) => this.deps.clock.setTimeout(() => resolve(undefined), Math.min(2_000, 100 * 2 ** attempt)));
      const before = gone();
      if (before !== undefined) return stop(before);
      rebuilding.attempts = attempt + 1;
      // While the app starts, its consumer is not there yet: the task waits for it, it is not dropped.
      const consumer = this.consumer;
      if (!consumer) {
        rebuilding.waitingFor = 'the app to finish starting';
        continue;
      }
      rebuilding.waitingFor = 'the group to confirm this instance still owns its partitions';
      const ownership = (await consumer.confirmOwnership?.(partitions)) ?? 'owned';
      if (ownership === 'revoked') {
        this.deps.log('info', 'a failed task was revoked before it was rebuilt', { task: key });
        return;
      }
      if (ownership === 'unsure') {
        // A rebalance under way, or a coordinator that does not answer: say so when it lasts.
        const level = attempt === 2 || attempt % 10 === 9 ? 'warn' : 'debug';
        this.deps.log(level, 'the group is unsure whether this instance still owns a failed task; asking again', { task: key, attempt: attempt + 1 });
        continue;
      }
      const confirmed = gone();
      if (confirmed !== undefined) return stop(confirmed);
      rebuilding.waitingFor = 'opening the task and restoring its state';
      let opened: { task: Task; positions: readonly TopicPartitionOffset[] } | undefined;
      const resumeAt: TopicPartitionOffset[] = [];
      try {
        opened = await this.#open(task.subTopology, task.partition);
        rebuilding.waitingFor = 'reading the committed offsets';
        for (const { topic, partition } of partitions) {
          const restored = opened.positions.find((position) => position.topic === topic && position.partition === partition)?.offset ?? 0;
          const committed = (await consumer.committed({ topic, partition })) ?? 0;
          resumeAt.push({ topic, partition, offset: Math.max(restored, committed) });
        }
      } catch (failure) {
        rebuilding.waitingFor = 'closing what the failed attempt opened';
        if (opened) await this.#close(opened.task);
        rebuilding.waitingFor = 'the next attempt';
        rebuilding.lastFailure = describeError(failure);
        this.deps.log('warn', 'rebuilding a task failed; trying again', { task: key, attempt: attempt + 1, error: describeError(failure) });
        continue;
      }
      rebuilding.waitingFor = 'the group to confirm again, the task restored';
      let why = gone();
      if (why === undefined && (await consumer.confirmOwnership?.(partitions)) === 'revoked') why = 'the group revoked its partitions';
      // Checked again after the answer: the task must not replace one that an assignment opened meanwhile.
      why ??= gone();
      if (why !== undefined) {
        await this.#close(opened.task);
        return stop(why);
      }
      // The task takes its place and its partitions move back in one step: records (or skipped
      // offsets) the consumer delivered while it had no task are dropped, so it must read them
      // again from the task's position, and nothing it fetched before may reach the new task.
      this.#tasks.set(key, opened.task);
      for (const position of resumeAt) consumer.seek(position);
      this.deps.log('info', 'task started again from its last commit', { task: key, attempts: attempt + 1 });
      this.deps.arm();
      return;
    }
  }
}
