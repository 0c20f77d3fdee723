import type { Clock } from '../clock.js';
import type { ErrorCode } from '../errors.js';
import type { OutgoingRecord } from '../transport/types.js';
import type { PartitionStore } from '../state/backend.js';
import type { CacheBudget, CachedEntry, CachingStore } from '../state/caching-store.js';
import type { Metrics } from './metrics.js';
import type { Origin, Signal } from './signals.js';

/** An operator's write-behind cache as its task drives it: flushed at commit, evicted after, released on close. */
export type OperatorStore = Pick<CachingStore<CachedEntry>, 'takeChanges' | 'evict' | 'release' | 'hasEvicted'>;

/** A stateful operator, as its task sees it: deadlines, its store, restore and load-back. */
export interface StatefulOperator {
  readonly storeName: string;
  /** The top of its store stack (state/caching-store.ts); the task's state manager adds the layers below. */
  readonly store: OperatorStore;
  /** The stream time at which this operator next has something to close, if any. */
  nextDeadline(): number | undefined;
  /** Whether something may be due by `streamTime` (cheap, per record; a stale deadline may say yes). */
  hasDue(streamTime: number): boolean;
  /**
   * Rebuilds the in-memory state from stored entries in key order (before any record is
   * processed); task metadata entries are not passed. Keys past the cache budget stay on disk.
   */
  restore(entries: AsyncIterable<readonly [Uint8Array, Uint8Array]>, streamTime: number): Promise<void>;
  /** Reads back evicted keys that the next records (`keys`) or windows closing by `streamTime` need. */
  load(keys: readonly unknown[], streamTime: number): Promise<void>;
  /** Windows (or table rows) currently holding state. */
  openWindows(): number;
  /** A table's current value of a key, read back already (stream–table joins read it per record). */
  lookup?(key: unknown): unknown;
  /** Entries for queries from the host service (`app.store(name)`). */
  query(key: unknown): Promise<unknown>;
  queryAll(): AsyncIterable<readonly [unknown, unknown]>;
}

/** A record for an internal topic that a sink offers to the local task reading its partition. */
export interface HandOffOffer {
  readonly topic: string;
  readonly partition: number;
  readonly key: unknown;
  readonly value: unknown;
  readonly timestamp: number;
  /** The replay stamp its copy in the topic would carry (see origin.ts `ReplayStamp`). */
  readonly replaySource: string;
  readonly replayOffset: number;
  readonly replayIndex: number;
  /** The input record it derives from, for dead letters. */
  readonly upstream: Origin;
}

/** What an operator may ask of the task that runs it. */
export interface TaskContext {
  readonly appId: string;
  readonly taskId: string;
  readonly partition: number;
  readonly clock: Clock;
  readonly metrics: Metrics;
  /** The task's stream time: the largest timestamp seen (or the clock, in processing time). */
  streamTime(): number;
  /**
   * Handles an error raised while processing `signal` at step `step`: a dead letter, or a stop,
   * as the app's `onError` policy says. Never throws.
   */
  fail(error: unknown, signal: Signal | undefined, step: string, code?: ErrorCode): void;
  /** Queues a record for the producer; sent at the end of the batch. */
  produce(record: OutgoingRecord): void;
  /**
   * Offers a record for an internal topic to the local task that reads its partition (see
   * `Task.handOff`); true if taken, false if it must be produced.
   */
  handOff?(offer: HandOffOffer): boolean;
  /** The transport hands objects along in process (internal topics skip serialization). */
  readonly keepsValues: boolean;
  /** The partition count of an output topic (known since start). */
  partitionsOf(topic: string): number;
  /** Counts async work (handlers) that the commit and `advanceTime` must wait for. */
  track(work: Promise<unknown>): void;
  /** Registers a stateful operator with the task (for deadlines, commit and restore). */
  register(operator: StatefulOperator): void;
  /** The store partition behind a stateful operator (opened before the first record). */
  storeOf(storeName: string): PartitionStore;
  /** The stateful operator of a store in this task (a join reads its table's). */
  operatorOf(storeName: string): StatefulOperator | undefined;
  /** The app-wide cache budget. */
  readonly cache: CacheBudget;
}
