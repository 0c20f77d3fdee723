import type { Clock } from '../../clock.js';
import { changelogTopic } from '../../dsl/topology.js';
import { EddyError } from '../../errors.js';
import type { PartitionStore, StoreEntry } from '../../state/backend.js';
import type { IncomingRecord, OutgoingRecord, TopicPartitionOffset } from '../../transport/types.js';
import type { StatefulOperator } from '../context.js';
import type { StoredReplayMarks } from './replay-guard.js';

const encoder = new TextEncoder();
const decoder = new TextDecoder();
/**
 * Task metadata written with every store's commit batch (and so to its changelog): the stream time
 * and the input offsets the state reflects. Single bytes that UTF-8 text and window keys never are.
 */
const STREAM_TIME_KEY = Uint8Array.of(0xff);
const INPUT_OFFSETS_KEY = Uint8Array.of(0xfe);
/**
 * Per repartition topic read and upstream input partition, the last record (stamp offset, index)
 * applied; stored as entries `["<topic>|<upstream>", [offset, index]]` (see replay-guard.ts).
 */
const REPLAY_MARKS_KEY = Uint8Array.of(0xfd);
const isMetaKey = (key: Uint8Array) => key.length === 1 && key[0]! >= 0xfd;

/** Where the task stands, recorded with the state in every commit batch. */
export interface TaskProgress {
  readonly streamTime: number;
  readonly positions: readonly TopicPartitionOffset[];
  readonly replayMarks: StoredReplayMarks;
}

/** One store's share of a commit: the entries its local store gets once the changelog has them. */
export interface StoreWrite {
  readonly store: PartitionStore;
  readonly storeName: string;
  readonly entries: StoreEntry[];
  readonly topic: string;
}

/** What a restore found. */
export interface RestoreResult {
  /** Changelog records replayed. */
  readonly records: number;
  /**
   * Input positions the restored state already reflects. A crash between the state flush and the
   * offset commit leaves committed offsets behind these; reading from here keeps records from
   * being counted twice.
   */
  readonly positions: readonly TopicPartitionOffset[];
}

/** What a restore read back besides the state: see {@link TaskProgress}. */
export interface RestoredProgress extends RestoreResult {
  readonly streamTime: number;
  /** The replay marks each store held. */
  readonly replayMarks: readonly StoredReplayMarks[];
}

export interface StateManagerOptions {
  readonly appId: string;
  readonly taskId: string;
  readonly partition: number;
  readonly clock: Clock;
  /** Queues a changelog record with the task's other sends. */
  produce(record: OutgoingRecord): void;
  log(level: 'warn', message: string, fields?: Record<string, unknown>): void;
}

/**
 * A task's state: its stateful operators, the store partition behind each (opened by the app
 * before the first record), what each commit writes to the changelogs and the local stores, and
 * the restore from the changelog. Like Kafka Streams' ProcessorStateManager.
 */
export class TaskStateManager {
  readonly operators: StatefulOperator[] = [];
  readonly stores = new Map<string, PartitionStore>();
  /** Per store, commit entries sent to the changelog but not yet written to the local store. */
  readonly #unwritten = new Map<string, StoreEntry[]>();

  constructor(private readonly options: StateManagerOptions) {}

  register(operator: StatefulOperator): void {
    this.operators.push(operator);
  }

  storeOf(storeName: string): PartitionStore {
    const store = this.stores.get(storeName);
    if (!store) throw new EddyError('STATE_FAILED', `store ${storeName} of task ${this.options.taskId} is not open`);
    return store;
  }

  /** Whether `topic` is the changelog of one of the task's stores. */
  isChangelog(topic: string): boolean {
    return this.operators.some((operator) => changelogTopic(this.options.appId, operator.storeName) === topic);
  }

  /** Whether some operator has keys out of memory (so a batch may need `load`). */
  hasEvicted(): boolean {
    return this.operators.some((operator) => operator.hasEvicted());
  }

  /** Reads back the evicted state that records with these keys, or windows closing by `streamTime`, need. */
  async load(keys: readonly unknown[], streamTime: number): Promise<void> {
    for (const operator of this.operators) await operator.load(keys, streamTime);
  }

  /**
   * Commit step (2), the changelog half: takes each operator's changes, adds the task's progress
   * (for every store when `progressChanged`, else only for stores with changes) and queues them
   * for the changelog. The local stores get them in {@link write}, once the changelog has them.
   */
  takeChanges(progressChanged: boolean, progress: () => TaskProgress): StoreWrite[] {
    const { appId, partition, clock } = this.options;
    const writes: StoreWrite[] = [];
    for (const operator of this.operators) {
      const entries = operator.takeChanges();
      // Entries a failed commit took from the operator but never wrote locally: their changelog
      // records are back in the outbox; the local store must get them too, first.
      const unwritten = this.#unwritten.get(operator.storeName) ?? [];
      if (entries.length === 0 && !progressChanged && unwritten.length === 0) continue;
      const { streamTime, positions, replayMarks } = progress();
      entries.push(
        { key: STREAM_TIME_KEY, value: encoder.encode(JSON.stringify(streamTime)) },
        { key: INPUT_OFFSETS_KEY, value: encoder.encode(JSON.stringify(positions)) },
        { key: REPLAY_MARKS_KEY, value: encoder.encode(JSON.stringify(replayMarks)) },
      );
      const topic = changelogTopic(appId, operator.storeName);
      for (const entry of entries) this.options.produce({ topic, partition, key: entry.key, value: entry.value, timestamp: clock.now() });
      const all = [...unwritten, ...entries];
      this.#unwritten.set(operator.storeName, all);
      writes.push({ store: this.stores.get(operator.storeName)!, storeName: operator.storeName, entries: all, topic });
    }
    return writes;
  }

  /**
   * Commit step (2), the local half: each store gets its entries, checkpointed at the changelog
   * offset after the last one written (`lastOffsets`, per changelog topic); then keys may leave memory.
   */
  async write(writes: readonly StoreWrite[], lastOffsets: ReadonlyMap<string, number>): Promise<void> {
    for (const { store, storeName, entries, topic } of writes) {
      const last = lastOffsets.get(topic);
      await store.write(entries, last === undefined ? undefined : last + 1);
      this.#unwritten.delete(storeName);
    }
    // State is clean now; this is when keys may leave memory.
    for (const operator of this.operators) operator.evict();
  }

  /**
   * Restores each store: the changelog tail after the local checkpoint goes into the store. Returns
   * the progress the stores recorded; the operators rebuild from the stores in {@link restoreOperators}.
   */
  async restore(
    readChangelog: (topic: string, partition: number, from: number) => AsyncIterable<readonly IncomingRecord[]>,
    endOffset: (topic: string, partition: number) => Promise<number>,
    progress: (restored: number, remaining: number) => void,
  ): Promise<RestoredProgress> {
    const { appId, partition } = this.options;
    let restored = 0;
    let streamTime = -Infinity;
    const positions = new Map<string, TopicPartitionOffset>();
    const replayMarks: StoredReplayMarks[] = [];
    const ends = new Map<StatefulOperator, number>();
    let remaining = 0;
    for (const operator of this.operators) {
      const end = await endOffset(changelogTopic(appId, operator.storeName), partition);
      ends.set(operator, end);
      remaining += Math.max(0, end - ((await this.stores.get(operator.storeName)!.checkpoint()) ?? 0));
    }
    for (const operator of this.operators) {
      const store = this.stores.get(operator.storeName)!;
      const topic = changelogTopic(appId, operator.storeName);
      const end = ends.get(operator)!;
      let checkpoint = (await store.checkpoint()) ?? 0;
      if (checkpoint > end) {
        // The local state is ahead of its changelog (the topic was recreated): start over.
        this.options.log('warn', 'local state is ahead of its changelog; rebuilding', { store: operator.storeName, checkpoint, end });
        await store.clear();
        remaining += end;
        checkpoint = 0;
      }
      // Store writes in chunks of ~10k records: fewer, larger batches restore several times faster.
      let pending: StoreEntry[] = [];
      let nextOffset = checkpoint;
      const write = async () => {
        if (pending.length === 0) return;
        await store.write(pending, nextOffset);
        restored += pending.length;
        remaining = Math.max(0, remaining - pending.length);
        pending = [];
        progress(restored, remaining);
      };
      for await (const batch of readChangelog(topic, partition, checkpoint)) {
        for (const record of batch) pending.push({ key: record.key ?? new Uint8Array(), value: record.value });
        const last = batch[batch.length - 1];
        if (last) nextOffset = last.offset + 1;
        if (pending.length >= 10_000) await write();
      }
      await write();
      const storedTime = await store.get(STREAM_TIME_KEY);
      if (storedTime) streamTime = Math.max(streamTime, Number(decoder.decode(storedTime)));
      const storedMarks = await store.get(REPLAY_MARKS_KEY);
      if (storedMarks) replayMarks.push(JSON.parse(decoder.decode(storedMarks)) as StoredReplayMarks);
      const storedPositions = await store.get(INPUT_OFFSETS_KEY);
      for (const position of storedPositions ? (JSON.parse(decoder.decode(storedPositions)) as TopicPartitionOffset[]) : []) {
        if ((positions.get(position.topic)?.offset ?? -1) < position.offset) positions.set(position.topic, position);
      }
    }
    return { records: restored, positions: [...positions.values()], streamTime, replayMarks };
  }

  /** The operators rebuild their in-memory state (and so their open windows) from the restored stores. */
  async restoreOperators(streamTime: number): Promise<void> {
    for (const operator of this.operators) await operator.restore(withoutMeta(this.stores.get(operator.storeName)!.entries()), streamTime);
  }

  /** The task closes: what the operators hold leaves the app's cache budget. */
  release(): void {
    for (const operator of this.operators) operator.release();
  }

  openWindows(): number {
    return this.operators.reduce((sum, operator) => sum + operator.openWindows(), 0);
  }
}

async function* withoutMeta(entries: AsyncIterable<readonly [Uint8Array, Uint8Array]>): AsyncIterable<readonly [Uint8Array, Uint8Array]> {
  for await (const entry of entries) if (!isMetaKey(entry[0])) yield entry;
}
