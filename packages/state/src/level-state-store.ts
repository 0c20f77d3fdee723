import { Buffer } from 'node:buffer';
import type { KeyRange, PartitionStore, StoreEntry, StoreSpec } from '@eddy/core';
import { rootMessage, StateError } from './errors.js';
import { dataKey, decodeOffset, encodeOffset, type PartitionLayout } from './layout.js';
import type { LevelDatabase } from './recovery.js';

/** One partition's shared state: every handle on it, and every write, goes through it. */
export interface PartitionState {
  readonly layout: PartitionLayout;
  /** The checkpoint as stored; kept in memory so a write can tell whether it moves forward. */
  checkpoint: number | undefined;
  /** The end of the write queue: writes apply one at a time, in the order they were issued. */
  tail: Promise<void>;
}

/** One app's LevelDB, shared by the handles on its partitions. */
export class AppDatabase {
  readonly db: LevelDatabase;
  readonly handles = new Set<LevelPartitionStore>();
  readonly #partitions = new Map<string, Promise<PartitionState>>();
  #closed = false;

  constructor(db: LevelDatabase) {
    this.db = db;
  }

  partition(layout: PartitionLayout): Promise<PartitionState> {
    if (this.#closed) return Promise.reject(new StateError('STATE_FAILED', 'the state backend was closed while opening a store'));
    const id = Buffer.from(layout.prefix).toString('hex');
    let state = this.#partitions.get(id);
    if (state === undefined) {
      state = this.db.get(layout.checkpointKey).then(
        // An unreadable checkpoint reads as none: the engine then clears and fully restores.
        (stored) => ({ layout, checkpoint: stored === undefined ? undefined : decodeOffset(stored), tail: Promise.resolve() }),
        (error: unknown) => {
          this.#partitions.delete(id);
          throw failure(error, 'reading the checkpoint');
        },
      );
      this.#partitions.set(id, state);
    }
    return state;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const handle of this.handles) handle.markClosed();
    this.handles.clear();
    for (const state of this.#partitions.values()) {
      const partition = await state.catch(() => undefined);
      await partition?.tail;
    }
    await this.db.close();
  }
}

/** A handle on one store partition: reads, and writes queued behind the partition's earlier ones. */
export class LevelPartitionStore implements PartitionStore {
  readonly #spec: StoreSpec;
  readonly #app: AppDatabase;
  readonly #partition: PartitionState;
  readonly #sync: boolean;
  #closed = false;

  constructor(spec: StoreSpec, app: AppDatabase, partition: PartitionState, sync: boolean) {
    this.#spec = spec;
    this.#app = app;
    this.#partition = partition;
    this.#sync = sync;
  }

  markClosed(): void {
    this.#closed = true;
  }

  async *entries(range: KeyRange = {}): AsyncIterable<readonly [Uint8Array, Uint8Array]> {
    this.#assertOpen();
    if (range.gte !== undefined) assertBytes(range.gte, 'range.gte');
    if (range.lt !== undefined) assertBytes(range.lt, 'range.lt');
    // Reads see every write issued before them, as in memory.
    await this.#partition.tail;
    const { layout } = this.#partition;
    const gte = range.gte === undefined ? layout.dataStart : dataKey(layout, range.gte);
    const lt = range.lt === undefined ? layout.dataEnd : dataKey(layout, range.lt);
    if (Buffer.compare(gte, lt) >= 0) return;

    const skip = layout.dataStart.length;
    const iterator = this.#app.db.iterator({ gte, lt, fillCache: false });
    try {
      for (;;) {
        // Batches of entries per native call; one call per entry costs more than the read itself.
        const entries = await iterator.nextv(256).catch((error: unknown) => {
          throw failure(error, `reading ${this.#name()}`);
        });
        if (entries.length === 0) return;
        for (const [key, value] of entries) yield [plain(key, skip), plain(value, 0)];
      }
    } finally {
      await iterator.close();
    }
  }

  async get(key: Uint8Array): Promise<Uint8Array | undefined> {
    this.#assertOpen();
    assertBytes(key, 'key');
    await this.#partition.tail;
    const value = await this.#app.db.get(dataKey(this.#partition.layout, key)).catch((error: unknown) => {
      throw failure(error, `reading ${this.#name()}`);
    });
    return value === undefined ? undefined : plain(value, 0);
  }

  write(batch: readonly StoreEntry[], changelogOffset?: number): Promise<void> {
    try {
      this.#assertOpen();
      if (changelogOffset !== undefined && (!Number.isSafeInteger(changelogOffset) || changelogOffset < 0)) {
        throw new RangeError(`changelog offset must be a non-negative safe integer, got ${String(changelogOffset)}`);
      }
      // Built now, before queueing: validation fails the whole batch before anything is written,
      // and prefixing copies the keys.
      const { layout } = this.#partition;
      const operations = toOperations(batch, layout);
      return this.#enqueue(async () => {
        const current = this.#partition.checkpoint;
        const advance = changelogOffset !== undefined && (current === undefined || changelogOffset > current);
        if (advance) operations.push({ type: 'put', key: layout.checkpointKey, value: encodeOffset(changelogOffset) });
        if (operations.length === 0) return;
        await this.#app.db.batch(operations, { sync: this.#sync }).catch((error: unknown) => {
          throw failure(error, `writing ${this.#name()}`);
        });
        if (advance) this.#partition.checkpoint = changelogOffset;
      });
    } catch (error) {
      return Promise.reject(error);
    }
  }

  async checkpoint(): Promise<number | undefined> {
    this.#assertOpen();
    await this.#partition.tail;
    return this.#partition.checkpoint;
  }

  clear(): Promise<void> {
    try {
      this.#assertOpen();
    } catch (error) {
      return Promise.reject(error);
    }
    const { layout } = this.#partition;
    return this.#enqueue(async () => {
      try {
        // Checkpoint first: LevelDB clears a range in several batches, and a crash part way must
        // leave no checkpoint behind, so that the next start clears and restores everything.
        await this.#app.db.del(layout.checkpointKey, { sync: this.#sync });
        this.#partition.checkpoint = undefined;
        await this.#app.db.clear({ gte: layout.dataStart, lt: layout.dataEnd });
      } catch (error) {
        throw failure(error, `clearing ${this.#name()}`);
      }
    });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#app.handles.delete(this);
    // Writes issued before close land before close resolves.
    await this.#partition.tail;
  }

  #enqueue(task: () => Promise<void>): Promise<void> {
    const result = this.#partition.tail.then(task);
    this.#partition.tail = result.catch(() => undefined);
    return result;
  }

  #assertOpen(): void {
    if (this.#closed) throw new StateError('STATE_FAILED', `${this.#name()} is closed`);
  }

  #name(): string {
    const { appId, storeName, partition } = this.#spec;
    return `store ${appId}/${storeName} partition ${partition}`;
  }
}

type Operation =
  | { type: 'put'; key: Uint8Array; value: Uint8Array }
  | { type: 'del'; key: Uint8Array };

function toOperations(batch: readonly StoreEntry[], layout: PartitionLayout): Operation[] {
  if (!Array.isArray(batch)) throw new TypeError(`a write batch must be an array, got ${typeof batch}`);
  const operations: Operation[] = [];
  for (const [index, entry] of batch.entries()) {
    assertBytes(entry?.key, `batch[${index}].key`);
    const key = dataKey(layout, entry.key);
    if (entry.value === null) operations.push({ type: 'del', key });
    else if (entry.value instanceof Uint8Array) operations.push({ type: 'put', key, value: entry.value });
    else throw new TypeError(`batch[${index}].value must be a Uint8Array or null, got ${typeof entry.value}`);
  }
  return operations;
}

/** A plain Uint8Array view: LevelDB hands out Buffers, whose `slice` shares memory. */
function plain(bytes: Uint8Array, skip: number): Uint8Array {
  return new Uint8Array(bytes.buffer, bytes.byteOffset + skip, bytes.byteLength - skip);
}

function assertBytes(value: unknown, what: string): asserts value is Uint8Array {
  if (!(value instanceof Uint8Array)) throw new TypeError(`${what} must be a Uint8Array, got ${typeof value}`);
}

function failure(error: unknown, what: string): StateError {
  if (error instanceof StateError) return error;
  return new StateError('STATE_FAILED', `${what} failed: ${rootMessage(error)}`, { cause: error });
}
