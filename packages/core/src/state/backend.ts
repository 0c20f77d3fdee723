/**
 * The contract between Eddy's stateful operators and a storage engine.
 *
 * Operators keep their working state in memory (the write-behind cache) and hand the storage
 * engine one batch of changed entries per commit. The engine persists the batch together with the
 * changelog offset it corresponds to, so that a restart replays only the changelog tail after that
 * offset. Keys and values are opaque bytes here; operators own their encodings.
 */

/** Identifies one partition of one store of one app. */
export interface StoreSpec {
  /** The app id (also the consumer group and the prefix of internal topics). */
  readonly appId: string;
  /** The store name as given by `{ name }` or derived from the step's parameters. */
  readonly storeName: string;
  /** The task's partition number. */
  readonly partition: number;
  /** The compacted topic that backs this store: `<appId>-<storeName>-changelog`. */
  readonly changelogTopic: string;
}

/** One change in a commit batch; `value: null` deletes the key (a tombstone in the changelog). */
export interface StoreEntry {
  readonly key: Uint8Array;
  readonly value: Uint8Array | null;
}

/** A half-open key range `[gte, lt)`; a missing bound is open. */
export interface KeyRange {
  readonly gte?: Uint8Array;
  readonly lt?: Uint8Array;
}

/** One partition of one store, as seen by the task that owns it. */
export interface PartitionStore {
  /** Entries in ascending byte order of their keys, optionally within a range. */
  entries(range?: KeyRange): AsyncIterable<readonly [Uint8Array, Uint8Array]>;
  /** Reads one key. */
  get(key: Uint8Array): Promise<Uint8Array | undefined>;
  /**
   * Applies a batch atomically. `changelogOffset`, when given, is the offset in the changelog
   * topic of the next record to replay after this batch; it is stored with the batch and must
   * never move backwards (a smaller one is ignored).
   */
  write(batch: readonly StoreEntry[], changelogOffset?: number): Promise<void>;
  /** The changelog offset recorded with the last batch, or undefined if none was recorded. */
  checkpoint(): Promise<number | undefined>;
  /** Deletes every entry and the checkpoint (used before a full restore). */
  clear(): Promise<void>;
  /** Releases the partition; the data stays. */
  close(): Promise<void>;
}

/** A storage engine: opens store partitions for the tasks of one app instance. */
export interface StateBackend {
  /** A short name for logs and `describe()`, e.g. `memory` or `level`. */
  readonly kind: string;
  /**
   * Its stores outlive the process (on disk): what they hold can be read back after a restart
   * instead of rebuilt, as a global table's local copy is. Undefined: they do not.
   */
  readonly durable?: boolean;
  /**
   * Bytes of live state operators may keep in memory; past it they evict keys not used lately
   * and read them back through `get`/`entries`. Undefined: unbounded (all state in memory).
   */
  readonly cacheBudgetBytes?: number;
  /**
   * Claims the state of an app instance before it joins its group: a disk backend takes its lock
   * here, so that a second instance on the same state fails at `start()` (`STATE_LOCKED`) and
   * leaves the first untouched. Optional; `close()` gives the claim up.
   */
  claim?(appId: string): Promise<void>;
  /** Opens (creating if needed) one store partition. */
  open(spec: StoreSpec): Promise<PartitionStore>;
  /**
   * Closes what this backend opened for app instance `appId` and gives up its claim: several apps
   * of a process may share a backend, and one stopping leaves the others' stores open. Without an
   * id, closes everything.
   */
  close(appId?: string): Promise<void>;
}
