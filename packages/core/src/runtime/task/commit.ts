/**
 * The commit protocol of one task (DESIGN.md, "State and recovery"), as one state machine.
 *
 * At-least-once, in this order:
 *  1. drain: handlers of closed windows deliver their results; every send so far is acknowledged;
 *  2. the state changes since the last commit are queued for the changelog, with the task's
 *     progress (stream time, input positions, replay marks);
 *  3. everything queued is sent and acknowledged (dead letters of records the log refused join as
 *     they come); then the local stores get the changes, checkpointed at their changelog offsets;
 *  4. the input offsets are committed.
 * A crash anywhere loses nothing: input is read again from the committed offsets, and the state
 * restored from the changelog says which of it it reflects already (see RestoreResult). Some
 * outputs may repeat.
 *
 * Exactly-once: the task's own producer puts its outputs and changelog records in one transaction,
 * opened by the first send after a commit. Step 3 adds the input offsets to it and commits it, all
 * or nothing; the local stores are written after that, and step 4 only follows up.
 *
 * States:
 *   idle ──first send (exactly-once)──▶ open
 *   idle | open ──commit──▶ committing ──▶ idle: committed (open, if a send began a transaction since)
 *   committing ──fails──▶ idle (at-least-once) | failed (exactly-once)
 *   open | committing ──a send into the transaction fails──▶ failed
 * At-least-once, a failed commit leaves its work to the next: its progress is recorded again, its
 * changelog entries wait for their stores, failed sends are back in the outbox. Exactly-once,
 * `failed` is the end: the transaction, and the task's work since its last commit, are lost, and
 * the task must be closed (its transaction aborted) and rebuilt from its last commit.
 */
import type { Clock } from '../../clock.js';
import { describeError, EddyError } from '../../errors.js';
import type { OutgoingRecord, TopicPartitionOffset, TransactionalProducer } from '../../transport/types.js';
import type { Metrics } from '../metrics.js';
import type { TransactionSends } from './record-collector.js';
import type { StoreWrite } from './state-manager.js';

export type CommitPhase = 'idle' | 'open' | 'committing' | 'failed';

type CommitState =
  | { readonly phase: 'idle' }
  /** Exactly-once: a transaction is open (begun by the first send since the last commit). */
  | { readonly phase: 'open'; readonly transaction: Promise<void> }
  /** A commit runs; under exactly-once, with the transaction it commits, if any. */
  | { readonly phase: 'committing'; readonly transaction: Promise<void> | undefined }
  /** Exactly-once: a send or commit failed; `transaction` is what close must abort. */
  | { readonly phase: 'failed'; readonly error: unknown; readonly transaction: Promise<void> | undefined };

const IDLE: CommitState = { phase: 'idle' };

/**
 * When a task last committed (or first opened on this instance), and the commits that failed
 * since, with the latest error. It outlives the task object: a task started again after a failure
 * (see the app's rebuild) goes on with it, so a task that keeps failing shows as stuck.
 */
export interface CommitRecord {
  at: number;
  failures: number;
  error: unknown;
}

/** What the protocol does with its task's parts (the task wires them to its collector and state). */
export interface CommitSteps {
  readonly taskId: string;
  readonly appId: string;
  readonly partition: number;
  readonly clock: Clock;
  readonly metrics: Metrics;
  /** Whether the task stopped taking records (a fatal error, `onError: 'stop'`, or close). */
  halted(): boolean;
  /** Step 1: every handler started so far delivers and every send is acknowledged. */
  drain(): Promise<void>;
  /** Step 2: takes the state changes and queues them, with the task's progress, for the changelog. */
  takeStateChanges(progressChanged: boolean): readonly StoreWrite[];
  /** Sends what is queued, as one producer call. */
  flush(): void;
  /** The sends in flight, each resolving to the last offsets it wrote per partition. */
  inFlight(): Iterable<Promise<readonly TopicPartitionOffset[]>>;
  /** Whether records are queued or in flight. */
  sending(): boolean;
  /** Step 3, the local half: the stores get the changes, checkpointed at `lastOffsets`. */
  writeState(writes: readonly StoreWrite[], lastOffsets: ReadonlyMap<string, number>): Promise<void>;
  /** The task's input positions: per source topic, the next offset to process. */
  positions(): readonly TopicPartitionOffset[];
  log(level: 'debug', message: string, fields?: Record<string, unknown>): void;
}

/** One task's commits: the state machine above and the protocol that moves it. */
export class TaskCommit implements TransactionSends {
  #state: CommitState = IDLE;
  /** Input was read (positions moved) or replay marks moved since the last commit: the next commit records them. */
  #progressChanged = false;
  #commits = 0;
  readonly #record: CommitRecord;

  constructor(
    private readonly task: CommitSteps,
    /** Exactly-once: the task's own producer; its sends, changelog and offsets commit as one transaction. */
    private readonly producer: TransactionalProducer | undefined,
    record?: CommitRecord,
  ) {
    this.#record = record ?? { at: task.clock.now(), failures: 0, error: undefined };
  }

  get phase(): CommitPhase {
    return this.#state.phase;
  }

  /** Exactly-once: the task has its own transactional producer (and commits offsets with it). */
  get transactional(): boolean {
    return this.producer !== undefined;
  }

  /** Successful commits so far (a task that handed records here waits for one after its hand-off). */
  get commits(): number {
    return this.#commits;
  }

  /** Exactly-once: the transaction is lost; the task sends nothing more and commits no more. */
  get failed(): boolean {
    return this.#state.phase === 'failed';
  }

  throwIfFailed(): void {
    if (this.#state.phase === 'failed') throw this.#state.error;
  }

  /** The task read input, or moved its replay marks: the next commit records that. */
  progressed(): void {
    this.#progressChanged = true;
  }

  /** Exactly-once: sends into the open transaction, beginning one if none is open. */
  send(records: readonly OutgoingRecord[]): Promise<readonly TopicPartitionOffset[]> {
    const producer = this.producer!;
    return this.#openTransaction(producer).then(() => producer.send(records));
  }

  /** Exactly-once, a send or commit failed: the transaction is lost (the first error is kept). */
  fail(error: unknown): void {
    if (this.#state.phase === 'failed') return;
    this.#state = { phase: 'failed', error, transaction: this.#transaction() };
  }

  /**
   * Runs the protocol (see the file's doc); `commitOffsets` commits the input offsets (exactly-once,
   * they are committed already with the transaction, and it only follows up).
   */
  async commit(commitOffsets: (offsets: readonly TopicPartitionOffset[]) => Promise<void>): Promise<void> {
    const { task } = this;
    try {
      if (task.halted()) throw new EddyError('APP_STOPPED', `task ${task.taskId} is halted and commits no more`);
      this.#startCommitting();
      await this.#commitProgress(commitOffsets);
      this.#commits++;
      Object.assign(this.#record, { at: task.clock.now(), failures: 0, error: undefined });
    } catch (error) {
      if (this.producer) this.fail(error);
      task.metrics.commitFailures++;
      this.#record.failures++;
      this.#record.error = error;
      throw error;
    } finally {
      this.#stopCommitting();
    }
  }

  #startCommitting(): void {
    const state = this.#state;
    // A failed transaction stays failed: the commit fails at its first check.
    if (state.phase === 'idle' || state.phase === 'open') this.#state = { phase: 'committing', transaction: this.#transaction() };
  }

  #stopCommitting(): void {
    const state = this.#state;
    if (state.phase !== 'committing') return;
    // A send may have begun a transaction after this commit's own (see the file's doc).
    this.#state = state.transaction ? { phase: 'open', transaction: state.transaction } : IDLE;
  }

  async #commitProgress(commitOffsets: (offsets: readonly TopicPartitionOffset[]) => Promise<void>): Promise<void> {
    const progressChanged = this.#progressChanged;
    this.#progressChanged = false;
    try {
      await this.#commitSteps(commitOffsets, progressChanged);
    } catch (error) {
      // The next commit writes the metadata again, with whatever this one left unwritten.
      this.#progressChanged = true;
      throw error;
    }
  }

  async #commitSteps(commitOffsets: (offsets: readonly TopicPartitionOffset[]) => Promise<void>, progressChanged: boolean): Promise<void> {
    const { task } = this;
    // Steps 1 to 3, as the file's doc numbers them.
    await task.drain();
    const writes = task.takeStateChanges(progressChanged);
    const lastOffsets = await this.#sendAll();
    // A refused record stopped the app (onError 'stop', or a state change it could not keep): nothing past it is committed.
    if (task.halted()) throw new EddyError('APP_STOPPED', `task ${task.taskId} stopped on a record the log refused; not committing past it`);
    if (this.producer) await this.#commitTransaction(this.producer, progressChanged);
    await task.writeState(writes, lastOffsets);
    // Step 4.
    const positions = task.positions();
    if (positions.length > 0) await commitOffsets(positions);
  }

  /** Step 3: sends everything queued until all is acknowledged; per topic, the last offset written to this partition. */
  async #sendAll(): Promise<Map<string, number>> {
    const { task } = this;
    const lastOffsets = new Map<string, number>();
    // Dead letters of records the log refused join the outbox as sends complete: they go out and are acknowledged too.
    do {
      // A doomed transaction sends nothing more.
      this.throwIfFailed();
      task.flush();
      for (const offsets of await Promise.all([...task.inFlight()])) {
        for (const { topic, partition, offset } of offsets) if (partition === task.partition) lastOffsets.set(topic, Math.max(lastOffsets.get(topic) ?? -1, offset));
      }
    } while (task.sending());
    return lastOffsets;
  }

  /** Exactly-once, steps 3 and 4 at once: the input offsets join the transaction, which commits. */
  async #commitTransaction(producer: TransactionalProducer, progressChanged: boolean): Promise<void> {
    this.throwIfFailed();
    // Nothing sent and nothing read since the last commit: no transaction to commit.
    if (!this.#transaction() && !progressChanged) return;
    await this.#openTransaction(producer);
    const positions = this.task.positions();
    if (progressChanged && positions.length > 0) await producer.sendOffsets(this.task.appId, positions);
    await producer.commit();
    this.#endTransaction();
  }

  /** The open transaction, begun if there is none (idle → open). */
  #openTransaction(producer: TransactionalProducer): Promise<void> {
    const state = this.#state;
    if (state.phase !== 'idle' && state.transaction) return state.transaction;
    const transaction = producer.begin();
    this.#state = state.phase === 'idle' ? { phase: 'open', transaction } : { ...state, transaction };
    return transaction;
  }

  #transaction(): Promise<void> | undefined {
    return this.#state.phase === 'idle' ? undefined : this.#state.transaction;
  }

  /** The transaction is over (committed, or left to abort): the next send begins another. */
  #endTransaction(): void {
    const state = this.#state;
    if (state.phase === 'open') this.#state = IDLE;
    else if (state.phase !== 'idle') this.#state = { ...state, transaction: undefined };
  }

  /**
   * Exactly-once, when the task closes: once its sends settle, its open transaction (what it
   * produced since the last commit) is aborted, and its producer closed.
   */
  async close(): Promise<void> {
    const { producer, task } = this;
    if (!producer) return;
    await Promise.allSettled([...task.inFlight()]);
    if (this.#transaction()) {
      this.#endTransaction();
      // A fenced or failed producer cannot abort; the broker aborts its transaction anyway (on the
      // next owner's first transaction, or after the transaction timeout).
      await producer.abort().catch((error: unknown) => task.log('debug', 'aborting the transaction failed', { task: task.taskId, error: describeError(error) }));
    }
    await producer.close().catch((error: unknown) => task.log('debug', 'closing the transactional producer failed', { task: task.taskId, error: describeError(error) }));
  }

  /**
   * Whether the task is stuck, as of clock time `now`: it has not committed for `boundMs` (its
   * commits fail, or wait on sends the log does not take), or its sends have failed for that long
   * (since `sendFailingSince`). Says why, for logs and `app.health()`.
   */
  stalled(now: number, boundMs: number, sendFailingSince: number | undefined): string | undefined {
    const sendsFailingMs = sendFailingSince === undefined ? 0 : now - sendFailingSince;
    const uncommittedMs = now - this.#record.at;
    if (uncommittedMs <= boundMs && sendsFailingMs <= boundMs) return undefined;
    const why = this.#record.error === undefined ? '' : `: ${describeError(this.#record.error)}`;
    if (sendsFailingMs > boundMs) return `task ${this.task.taskId}: sends have failed for ${sendsFailingMs} ms${why}`;
    return `task ${this.task.taskId}: no commit for ${uncommittedMs} ms (${this.#record.failures} failed)${why}`;
  }

  /** Clock time since the last successful commit (or since the task opened). */
  commitAgeMs(now: number): number {
    return now - this.#record.at;
  }
}
