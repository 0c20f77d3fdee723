import { Buffer } from 'node:buffer';
import type { KeyRange, PartitionStore, StoreEntry, StoreSpec } from '@eddy/core';
import type { Iterator as LevelIterator } from 'level';
import { rootMessage, StateError } from './errors.js';
import { dataKey, decodeOffset, encodeOffset, type PartitionLayout } from './layout.js';
import type { LevelDatabase } from './recovery.js';

/** Entries per native read of a range: one call per entry costs more than the read itself. */
const ENTRIES_PER_READ = 1_000;

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

  entries(range: KeyRange = {}): AsyncIterable<readonly [Uint8Array, Uint8Array]> {
    return { [Symbol.asyncIterator]: () => this.#read(range) };
  }

  /**
   * Steps through a range with the next batch read while this one is handed out. Not a generator:
   * a restore steps through every entry, and a generator's round trip per entry costs more than
   * reading it.
   */
  #read(range: KeyRange): AsyncIterator<readonly [Uint8Array, Uint8Array]> {
    const skip = this.#partition.layout.dataStart.length;
    let iterator: LevelIterator<LevelDatabase, Uint8Array, Uint8Array> | undefined;
    let ahead: Promise<Array<[Uint8Array, Uint8Array]>> | undefined;
    let batch: Array<[Uint8Array, Uint8Array]> = [];
    let at = 0;
    let started = false;
    const readAhead = (from: LevelIterator<LevelDatabase, Uint8Array, Uint8Array>) => {
      const reading = from.nextv(ENTRIES_PER_READ).catch((error: unknown) => {
        throw failure(error, `reading ${this.#name()}`);
      });
      // Awaited by the next step or by finish; until then its failure must not count as unhandled.
      reading.catch(() => undefined);
      return reading;
    };
    const start = async () => {
      this.#assertOpen();
      if (range.gte !== undefined) assertBytes(range.gte, 'range.gte');
      if (range.lt !== undefined) assertBytes(range.lt, 'range.lt');
      // Reads see every write issued before them, as in memory.
      await this.#partition.tail;
      const { layout } = this.#partition;
      const gte = range.gte === undefined ? layout.dataStart : dataKey(layout, range.gte);
      const lt = range.lt === undefined ? layout.dataEnd : dataKey(layout, range.lt);
      if (Buffer.compare(gte, lt) >= 0) return;
      iterator = this.#app.db.iterator({ gte, lt, fillCache: false });
      ahead = readAhead(iterator);
    };
    const finish = async () => {
      const open = iterator;
      iterator = undefined;
      batch = [];
      if (open === undefined) return;
      await ahead?.catch(() => undefined);
      await open.close();
    };
    const entry = (stored: [Uint8Array, Uint8Array]): IteratorResult<readonly [Uint8Array, Uint8Array]> => ({ done: false, value: [plain(stored[0], skip), plain(stored[1], 0)] });
    const done: IteratorResult<readonly [Uint8Array, Uint8Array]> = { done: true, value: undefined };
    const refill = async (): Promise<IteratorResult<readonly [Uint8Array, Uint8Array]>> => {
      try {
        if (!started) {
          started = true;
          await start();
        }
        if (iterator === undefined || ahead === undefined) return done;
        batch = await ahead;
        at = 0;
        if (batch.length === 0) {
          await finish();
          return done;
        }
        ahead = readAhead(iterator);
        return entry(batch[at++]!);
      } catch (error) {
        await finish().catch(() => undefined);
        throw error;
      }
    };
    return {
      next: () => (at < batch.length ? Promise.resolve(entry(batch[at++]!)) : refill()),
      return: async () => {
        await finish();
        return done;
      },
    };
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
        if (operations.keys.length === 0 && !advance) return;
        // A chained batch: an array batch copies and re-checks every operation in JS first, which
        // costs several times the write itself. The checkpoint goes in the same atomic batch.
        const chained = this.#app.db.batch();
        try {
          const { keys, values } = operations;
          for (let index = 0; index < keys.length; index++) {
            const value = values[index]!;
            if (value === null) chained.del(keys[index]!);
            else chained.put(keys[index]!, value);
          }
          if (advance) chained.put(layout.checkpointKey, encodeOffset(changelogOffset));
          await chained.write({ sync: this.#sync });
        } catch (error) {
          await chained.close().catch(() => undefined);
          throw failure(error, `writing ${this.#name()}`);
        }
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

/** A validated batch: prefixed keys, and their values (null deletes). */
interface Operations {
  readonly keys: Uint8Array[];
  readonly values: Array<Uint8Array | null>;
}

function toOperations(batch: readonly StoreEntry[], layout: PartitionLayout): Operations {
  if (!Array.isArray(batch)) throw new TypeError(`a write batch must be an array, got ${typeof batch}`);
  const keys = new Array<Uint8Array>(batch.length);
  const values = new Array<Uint8Array | null>(batch.length);
  for (let index = 0; index < batch.length; index++) {
    const entry = batch[index];
    assertBytes(entry?.key, `batch[${index}].key`);
    const value = entry.value;
    if (value !== null && !(value instanceof Uint8Array)) throw new TypeError(`batch[${index}].value must be a Uint8Array or null, got ${typeof value}`);
    keys[index] = dataKey(layout, entry.key);
    values[index] = value;
  }
  return { keys, values };
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
