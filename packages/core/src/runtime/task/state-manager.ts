import type { Clock } from '../../clock.js';
import { changelogTopic } from '../../dsl/topology.js';
import { EddyError } from '../../errors.js';
import type { PartitionStore, StoreEntry } from '../../state/backend.js';
import { ChangeloggingStore, type ChangelogReader } from '../../state/changelogging.js';
import type { OutgoingRecord, TopicPartitionOffset } from '../../transport/types.js';
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
/** Whether a store key is one of the task metadata entries rather than an operator's. */
export const isMetaKey = (key: Uint8Array): boolean => key.length === 1 && key[0]! >= 0xfd;

/** Where the task stands, recorded with the state in every commit batch. */
export interface TaskProgress {
  readonly streamTime: number;
  readonly positions: readonly TopicPartitionOffset[];
  readonly replayMarks: StoredReplayMarks;
}

/** One store's share of a commit: the entries its backend gets once the changelog has them. */
export interface StoreWrite {
  readonly changelog: ChangeloggingStore;
  readonly entries: readonly StoreEntry[];
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

/** One store's stack: the operator (its caching store on top), and the changelogging layer above the backend. */
interface StoreStack {
  readonly operator: StatefulOperator;
  readonly changelog: ChangeloggingStore;
}

/**
 * A task's state: its stateful operators, the store stack behind each (caching store →
 * changelogging → the backend partition, which the app opens before the first record), the task
 * progress each commit records with the state, and the restore. Like Kafka Streams'
 * ProcessorStateManager.
 */
export class TaskStateManager {
  readonly operators: StatefulOperator[] = [];
  readonly stores = new Map<string, PartitionStore>();
  readonly #stacks: StoreStack[] = [];

  constructor(private readonly options: StateManagerOptions) {}

  register(operator: StatefulOperator): void {
    const { appId, partition, clock } = this.options;
    this.operators.push(operator);
    const changelog = new ChangeloggingStore({
      topic: changelogTopic(appId, operator.storeName),
      partition,
      clock,
      backend: () => this.stores.get(operator.storeName)!,
      produce: (record) => this.options.produce(record),
    });
    this.#stacks.push({ operator, changelog });
  }

  storeOf(storeName: string): PartitionStore {
    const store = this.stores.get(storeName);
    if (!store) throw new EddyError('STATE_FAILED', `store ${storeName} of task ${this.options.taskId} is not open`);
    return store;
  }

  /** Whether `topic` is the changelog of one of the task's stores. */
  isChangelog(topic: string): boolean {
    return this.#stacks.some(({ changelog }) => changelog.topic === topic);
  }

  /** Whether some operator has keys out of memory (so a batch may need `load`). */
  hasEvicted(): boolean {
    return this.operators.some((operator) => operator.store.hasEvicted());
  }

  /** Reads back the evicted state that records with these keys, or windows closing by `streamTime`, need. */
  async load(keys: readonly unknown[], streamTime: number): Promise<void> {
    for (const operator of this.operators) await operator.load(keys, streamTime);
  }

  /**
   * Commit step (2), the changelog half: takes each store's changes, adds the task's progress
   * (for every store when `progressChanged`, else only for stores with changes) and queues them
   * for the changelog. The backends get them in {@link write}, once the changelog has them.
   */
  takeChanges(progressChanged: boolean, progress: () => TaskProgress): StoreWrite[] {
    const writes: StoreWrite[] = [];
    for (const { operator, changelog } of this.#stacks) {
      const entries = operator.store.takeChanges();
      if (entries.length === 0 && !progressChanged && !changelog.hasUnwritten()) continue;
      entries.push(...progressEntries(progress()));
      writes.push({ changelog, entries: changelog.log(entries) });
    }
    return writes;
  }

  /** Commit step (2), the local half: each backend gets its entries (see {@link ChangeloggingStore.write}); then keys may leave memory. */
  async write(writes: readonly StoreWrite[], lastOffsets: ReadonlyMap<string, number>): Promise<void> {
    for (const { changelog, entries } of writes) await changelog.write(entries, lastOffsets);
    // State is clean now; this is when keys may leave memory.
    for (const operator of this.operators) operator.store.evict();
  }

  /**
   * Restores each store: the changelog tail after the local checkpoint goes into the store. Returns
   * the progress the stores recorded; the operators rebuild from the stores in {@link restoreOperators}.
   */
  async restore(
    readChangelog: ChangelogReader,
    endOffset: (topic: string, partition: number) => Promise<number>,
    progress: (restored: number, remaining: number) => void,
  ): Promise<RestoredProgress> {
    const { partition } = this.options;
    let restored = 0;
    let streamTime = -Infinity;
    const positions = new Map<string, TopicPartitionOffset>();
    const replayMarks: StoredReplayMarks[] = [];
    const ends = new Map<ChangeloggingStore, number>();
    let remaining = 0;
    for (const { changelog } of this.#stacks) {
      const end = await endOffset(changelog.topic, partition);
      ends.set(changelog, end);
      remaining += await changelog.behind(end);
    }
    for (const { operator, changelog } of this.#stacks) {
      await changelog.restore(readChangelog, ends.get(changelog)!, {
        rebuilding: (checkpoint, end) => {
          this.options.log('warn', 'local state is ahead of its changelog; rebuilding', { store: operator.storeName, checkpoint, end });
          remaining += end;
        },
        applied: (records) => {
          restored += records;
          remaining = Math.max(0, remaining - records);
          progress(restored, remaining);
        },
      });
      const store = changelog.backend;
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
    for (const operator of this.operators) operator.store.release();
  }

  openWindows(): number {
    return this.operators.reduce((sum, operator) => sum + operator.openWindows(), 0);
  }
}

/** The task's progress as the metadata entries of a commit batch. */
function progressEntries({ streamTime, positions, replayMarks }: TaskProgress): StoreEntry[] {
  return [
    { key: STREAM_TIME_KEY, value: encoder.encode(JSON.stringify(streamTime)) },
    { key: INPUT_OFFSETS_KEY, value: encoder.encode(JSON.stringify(positions)) },
    { key: REPLAY_MARKS_KEY, value: encoder.encode(JSON.stringify(replayMarks)) },
  ];
}

type Entry = readonly [Uint8Array, Uint8Array];

/** The entries without the task's metadata; a filter on the store's iterator rather than a generator, whose round trip per entry would cost more than the store's read. */
function withoutMeta(entries: AsyncIterable<Entry>): AsyncIterable<Entry> {
  return {
    [Symbol.asyncIterator]() {
      const inner = entries[Symbol.asyncIterator]();
      const skipMeta = (result: IteratorResult<Entry>): IteratorResult<Entry> | Promise<IteratorResult<Entry>> =>
        !result.done && isMetaKey(result.value[0]) ? inner.next().then(skipMeta) : result;
      return {
        next: () => inner.next().then(skipMeta),
        return: async () => (await inner.return?.()) ?? { done: true, value: undefined },
      };
    },
  };
}
