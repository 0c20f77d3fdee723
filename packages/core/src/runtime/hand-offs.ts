import type { SubTopology } from '../dsl/topology.js';
import { EddyError } from '../errors.js';
import type { Transport } from '../transport/types.js';
import type { Task } from './task.js';

/** What the hand-off needs of the task manager. */
export interface HandOffTasks {
  /** The running task that reads `topic`'s partition, if this instance has one. */
  reading(topic: string, partition: number): Task | undefined;
  isRunning(task: Task): boolean;
  isRevoking(task: Task): boolean;
  commit(task: Task): Promise<void>;
  /** Drops the task and opens it again from its last commit, in the background (if the app is open). */
  rebuildLater(task: Task, error: unknown): void;
  log(level: 'debug', message: string, fields: Record<string, unknown>): void;
  /** Whether the task's input is delivered in step because its sub-topology moves records between partitions (see runtime/delivery-alignment.ts): then it hands nothing off. */
  inStep(task: Task): boolean;
}

/**
 * Local hand-off: a sub-topology of stateless steps that ends in repartition topics hands each
 * record bound for its own partition straight to the local task that reads that partition, which
 * skips a produce, a fetch and a decode per record on Kafka, and on the embedded brokers the
 * append, delivery and deletion of the repartition record (on the hopping count job fed by
 * `app.send`, 11–17% of the run's time). The copartitioned assignment puts both tasks
 * in one instance. The reading task commits first (under exactly-once, its own transaction with
 * its replay marks), then the handing one; a replay in between is dropped by those marks.
 */
export class HandOffs {
  /**
   * Per upstream task that may hand records off, the end offset of each of its internal topics'
   * partitions when it opened (records of earlier owners the reading task must have read before
   * records bypass the topic).
   */
  readonly #floors = new Map<Task, Map<string, number>>();
  /** Per upstream task, the tasks it handed records to since its last commit, with their commit count at the latest hand-off. */
  readonly #handedTo = new Map<Task, Map<Task, number>>();

  constructor(
    private readonly transport: Transport,
    private readonly tasks: HandOffTasks,
  ) {}

  /** Whether a sub-topology's tasks hand records off. */
  appliesTo(sub: SubTopology): boolean {
    if (this.transport.localHandOff === false) return false;
    // No store means no window or table, and so no handler (a handler follows its window).
    return sub.storeNames.length === 0 && sub.sinks.some((sink) => sink.internal);
  }

  /** Notes, for a task that opens, where its internal topics' partitions end. */
  async opened(task: Task, sub: SubTopology): Promise<void> {
    if (!this.appliesTo(sub)) return;
    const floors = new Map<string, number>();
    for (const sink of sub.sinks) if (sink.internal) floors.set(sink.topic, await this.transport.endOffset({ topic: sink.topic, partition: task.partition }));
    this.#floors.set(task, floors);
  }

  /** Whether a task hands records off (a reading task keeps up only while it keeps up too). */
  handsOff(task: Task): boolean {
    return this.#floors.has(task);
  }

  closed(task: Task): void {
    this.#floors.delete(task);
    this.#handedTo.delete(task);
  }

  /** The running tasks that handed records to `task` since their last commit. */
  *handedTo(task: Task): Iterable<Task> {
    for (const [upstream, handed] of this.#handedTo) if (handed.has(task) && this.tasks.isRunning(upstream)) yield upstream;
  }

  /**
   * Before a batch: for each internal topic, whether its records for this partition go to the
   * local task that reads it. A task starts by writing to the topic; it hands off once that task
   * has read everything written to the partition before (by earlier owners, and its own sends,
   * none in flight), so that records of one source reach it in order (its replay marks require
   * that). It writes to the topic again when that task is gone or being revoked, or the task's
   * input goes in step — but only once that task has committed what it was handed: a record
   * written to the topic before would carry a later replay stamp than records handed off but not
   * committed, and after a crash the reading task would read it first and then drop the replays
   * of those as already applied (its marks keep one high-water mark per source).
   */
  async update(task: Task): Promise<void> {
    const floors = this.#floors.get(task);
    if (!floors) return;
    for (const [topic, floor] of floors) {
      const target = this.tasks.reading(topic, task.partition);
      // A task that orders its inputs by timestamp reads each of them through its topic; so do the
      // records of a task whose input is delivered in step.
      const usable = target !== undefined && !this.tasks.isRevoking(target) && !target.ordersInput && !this.tasks.inStep(task);
      const current = task.handOffTarget(topic);
      if (current) {
        if (current === target && usable) continue;
        await this.#committedBy(task, current);
        task.setHandOffTarget(topic, undefined);
        continue;
      }
      if (!usable || task.sending) continue;
      const written = task.lastWritten(topic);
      const needed = Math.max(floor, written === undefined ? 0 : written + 1);
      const position = target.position(topic);
      if (needed === 0 || (position !== undefined && position >= needed)) {
        task.setHandOffTarget(topic, target);
        this.tasks.log('debug', 'records bound for a local task are handed to it directly', { task: task.taskId, to: target.taskId, topic });
      }
    }
  }

  /**
   * Applies the records a batch handed off, each target under its own lock. If that fails (state
   * could not be read back), the handing task has moved past records that reached nobody: it
   * stops and starts again from its last commit. Returns the tasks it delivered to.
   */
  async deliver(task: Task): Promise<Set<Task>> {
    const targets = new Set<Task>();
    try {
      for (const { target, topic, records } of task.takeHandOffs()) {
        targets.add(target);
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
      this.tasks.rebuildLater(task, error);
      throw error;
    }
    return targets;
  }

  /**
   * Before a task commits its input offsets: every task it handed records to has committed them
   * (their state and replay marks are in its changelog). If one cannot (it failed, or closed
   * without), this commit fails too, and a task that stays is rebuilt from its last commit so
   * that those records are read and handed off again.
   */
  async beforeCommit(task: Task): Promise<void> {
    const handed = this.#handedTo.get(task);
    if (!handed) return;
    for (const target of [...handed.keys()]) await this.#committedBy(task, target);
  }

  /**
   * Resolves once `target` has committed the records `task` handed it since its last commit
   * (committing it if it has not). If it cannot (it failed, or closed without), those records
   * reached nobody: this fails, and a task that stays is rebuilt from its last commit so that
   * they are read and handed off again.
   */
  async #committedBy(task: Task, target: Task): Promise<void> {
    const handed = this.#handedTo.get(task);
    const before = handed?.get(target);
    if (before === undefined) return;
    if (target.commits <= before && this.tasks.isRunning(target)) await this.tasks.commit(target);
    if (target.commits <= before) {
      const error = new EddyError('TRANSPORT_FAILED', `task ${task.taskId}: task ${target.taskId} closed before it committed the records handed to it`);
      if (!this.tasks.isRevoking(task)) this.tasks.rebuildLater(task, error);
      throw error;
    }
    handed!.delete(target);
  }
}
