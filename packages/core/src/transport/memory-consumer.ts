import { describeError, EddyError } from '../errors.js';
import { passHorizon } from './alignment.js';
import type { ConsumerGroup } from './memory-group.js';
import {
  partitionKey,
  type Alignment,
  type CaughtUp,
  type ConsumerListener,
  type IncomingRecord,
  type TopicPartition,
  type TopicPartitionOffset,
  type TransportConsumer,
} from './types.js';

/** What a member reads of the broker's log (`MemoryTransport` is one). */
export interface PartitionReader {
  /** Records handed to the listener per batch, at most. */
  readonly maxBatchSize: number;
  /** The offset after a partition's last record. */
  logEnd(topic: string, partition: number): number;
  /** Where a partition's log starts: records before it were deleted (retention), not compacted. */
  logStart(topic: string, partition: number): number;
  /** Records of a partition from `from` on, at most `max`: at once when in memory, later when read from disk. */
  readFrom(topic: string, partition: number, from: number, max: number): IncomingRecord[] | Promise<IncomingRecord[]>;
}

const atTheEnd: CaughtUp = Object.freeze({ forMs: Infinity, confirmedAgoMs: 0 });

/** A member's position in one of its partitions. */
interface PositionEntry {
  readonly topic: string;
  readonly partition: number;
  position: number;
}

/** One member of a consumer group on the embedded broker. */
export class MemoryConsumer implements TransportConsumer {
  readonly #positions = new Map<string, PositionEntry>();
  #draining: Promise<void> | undefined;
  #scheduled = false;
  #closed = false;
  /** A delivery pass failed: nothing more is delivered (see #failed). */
  #broken = false;

  constructor(
    private readonly broker: PartitionReader,
    private readonly group: ConsumerGroup,
    readonly topics: readonly string[],
    private readonly listener: ConsumerListener,
  ) {}

  async assign(partitions: readonly TopicPartition[]): Promise<void> {
    const added = partitions.filter((tp) => !this.#positions.has(partitionKey(tp.topic, tp.partition)));
    if (added.length === 0) return;
    for (const tp of added) {
      // A group without committed offsets starts where the log starts, as on Kafka.
      const position = this.group.committedOffset(tp.topic, tp.partition) ?? this.broker.logStart(tp.topic, tp.partition);
      this.#positions.set(partitionKey(tp.topic, tp.partition), { ...tp, position });
    }
    const positions = await this.listener.onAssign(added);
    for (const position of positions ?? []) {
      const entry = this.#positions.get(partitionKey(position.topic, position.partition));
      if (entry && entry.position < position.offset) entry.position = position.offset;
    }
    this.wake();
  }

  async revokeExcept(keep: readonly TopicPartition[]): Promise<void> {
    const keepKeys = new Set(keep.map((tp) => partitionKey(tp.topic, tp.partition)));
    const revoked = [...this.#positions.entries()].filter(([key]) => !keepKeys.has(key));
    if (revoked.length === 0) return;
    await this.#draining;
    for (const [key] of revoked) this.#positions.delete(key);
    await this.listener.onRevoke(revoked.map(([, { topic, partition }]) => ({ topic, partition })));
  }

  revokeAll(): Promise<void> {
    return this.revokeExcept([]);
  }

  hasWork(): boolean {
    if (this.#draining) return true;
    if (this.#closed) return false;
    for (const entry of this.#positions.values()) {
      if (entry.position < this.broker.logEnd(entry.topic, entry.partition)) return true;
    }
    return false;
  }

  /** Schedules a delivery pass off the current call stack, so producers never re-enter consumers. */
  wake(): void {
    if (this.#scheduled || this.#closed || this.#broken) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      this.drain().catch((error: unknown) => this.#failed(error));
    });
  }

  /**
   * A delivery pass failed (the log on disk could not be read back, say): the member cannot go on,
   * and the app stops and tells its host (`onFatal`) rather than leaving its reader stopped, or
   * the rejection unhandled.
   */
  #failed(error: unknown): void {
    if (this.#closed || this.#broken) return;
    this.#broken = true;
    this.listener.onFatal?.(error instanceof EddyError ? error : new EddyError('TRANSPORT_FAILED', `reading the embedded broker's log failed: ${describeError(error)}`, { cause: error }));
  }

  /**
   * Runs one delivery pass: one batch from each assigned partition; one pass runs at a time. A pass
   * that delivered something schedules the next with {@link wake}, so that the event loop turns
   * between passes: a pipeline feeding its own input would otherwise run in microtasks forever,
   * and no timer or I/O callback would ever run.
   */
  drain(): Promise<void> {
    if (this.#draining) return this.#draining;
    this.#draining = this.#deliverPass().then(
      (delivered) => {
        this.#draining = undefined;
        if (delivered) this.wake();
      },
      (error: unknown) => {
        this.#draining = undefined;
        throw error;
      },
    );
    return this.#draining;
  }

  /**
   * Whether another pass should follow: this one delivered records, or left records that came
   * meanwhile. A partition delivered in step that had nothing when the pass cut its group waits
   * for the next pass, whatever comes meanwhile: read then, uncut, it could run ahead of the
   * others in event time (while the pass awaits the listener, the log goes on growing).
   */
  async #deliverPass(): Promise<boolean> {
    const entries = [...this.#positions.values()];
    const { cut: aligned, stepping, stepped } = await this.#alignedBatches(entries);
    let more = false;
    for (const entry of entries) {
      if (this.#closed) return false;
      const read = aligned.get(entry);
      if (!read && stepping.has(entry)) {
        more ||= entry.position < this.broker.logEnd(entry.topic, entry.partition);
        continue;
      }
      const { from, batch } = read ?? (await this.#read(entry));
      if (await this.#deliver(entry, from, batch)) more = true;
    }
    if (stepped) await this.listener.afterStep?.();
    return more;
  }

  /**
   * A partition's next batch, from its position. A position before where the log starts now:
   * the log deleted those records (retention) before this member read them; it reads on from the
   * start, and says so.
   */
  async #read(entry: PositionEntry): Promise<Read> {
    const start = this.broker.logStart(entry.topic, entry.partition);
    if (entry.position < start) {
      const skipped = entry.position;
      entry.position = start;
      await this.listener.onSkipped?.({ topic: entry.topic, partition: entry.partition, from: skipped, to: start, deleted: true });
    }
    const from = entry.position;
    const slice = this.broker.readFrom(entry.topic, entry.partition, from, this.broker.maxBatchSize);
    return { entry, from, batch: Array.isArray(slice) ? slice : await slice };
  }

  /**
   * The batches of the partitions the listener wants delivered in step (see `Alignment`), read
   * ahead and cut to their group's horizon; the pass delivers them in its usual order.
   * `stepping`: every partition delivered in step, with records or not; `stepped`: some group had
   * two partitions or more with records.
   */
  async #alignedBatches(entries: readonly PositionEntry[]): Promise<{ cut: Map<PositionEntry, Read>; stepping: Set<PositionEntry>; stepped: boolean }> {
    const cut = new Map<PositionEntry, Read>();
    const stepping = new Set<PositionEntry>();
    if (!this.listener.alignment) return { cut, stepping, stepped: false };
    const groups = new Map<number, Fetched[]>();
    for (const entry of entries) {
      const alignment = this.listener.alignment(entry.topic);
      if (!alignment) continue;
      stepping.add(entry);
      const read = await this.#read(entry);
      if (read.batch.length === 0) continue;
      const group = groups.get(alignment.group);
      if (group) group.push({ ...read, alignment });
      else groups.set(alignment.group, [{ ...read, alignment }]);
    }
    for (const group of groups.values()) for (const read of alignedBatches(group)) cut.set(read.entry, read);
    return { cut, stepping, stepped: [...groups.values()].some((group) => group.length > 1) };
  }

  /** Delivers a batch read from `from`, unless the partition moved (a seek) or went (a revoke) meanwhile. */
  async #deliver(entry: PositionEntry, from: number, batch: readonly IncomingRecord[]): Promise<boolean> {
    if (this.#closed || batch.length === 0 || entry.position !== from || this.#positions.get(partitionKey(entry.topic, entry.partition)) !== entry) return false;
    // Offsets may have gaps (compaction, deleted records): continue after the last one read.
    entry.position = batch[batch.length - 1]!.offset + 1;
    await this.listener.onRecords(batch);
    return true;
  }

  /** In process, the log answers at once and for as long as nothing new is appended. */
  caughtUp({ topic, partition }: TopicPartition): CaughtUp | undefined {
    const entry = this.#positions.get(partitionKey(topic, partition));
    if (entry === undefined || entry.position < this.broker.logEnd(topic, partition)) return undefined;
    return atTheEnd;
  }

  lag({ topic, partition }: TopicPartition): number | undefined {
    const entry = this.#positions.get(partitionKey(topic, partition));
    return entry === undefined ? undefined : this.broker.logEnd(topic, partition) - entry.position;
  }

  seek({ topic, partition, offset }: TopicPartitionOffset): void {
    const entry = this.#positions.get(partitionKey(topic, partition));
    if (!entry) return;
    entry.position = offset;
    // Moved back (a task started again from its last commit): what lies ahead is delivered again.
    this.wake();
  }

  commit(offsets: readonly TopicPartitionOffset[]): Promise<void> {
    return this.group.commitOffsets(offsets);
  }

  async committed({ topic, partition }: TopicPartition): Promise<number | undefined> {
    return this.group.committedOffset(topic, partition);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    await this.group.leave(this);
    this.#closed = true;
  }
}

/** A partition's batch read in a delivery pass from offset `from`. */
interface Read {
  readonly entry: PositionEntry;
  readonly from: number;
  readonly batch: readonly IncomingRecord[];
}

/** A batch of a partition delivered in step, before it is cut to its group's horizon. */
interface Fetched extends Read {
  readonly alignment: Alignment;
}

/** The batches of one alignment group (none empty), each cut at its first record past the group's horizon (see {@link passHorizon}). */
export function alignedBatches(group: readonly Fetched[]): Read[] {
  const horizon = passHorizon(group.map(({ batch, alignment }) => ({ next: batch[0]!, alignment })));
  return group.map(({ entry, from, batch, alignment }) => {
    let end = 0;
    while (end < batch.length && alignment.timestamp(batch[end]!) <= horizon) end++;
    return { entry, from, batch: end === batch.length ? batch : batch.slice(0, end) };
  });
}
