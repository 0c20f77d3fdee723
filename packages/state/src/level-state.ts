import { Buffer } from 'node:buffer';
import { join, resolve } from 'node:path';
import type { KeyRange, PartitionStore, StateBackend, StoreEntry, StoreSpec } from '@eddy/core';
import { rootMessage, StateError } from './errors.js';
import { dataKey, decodeOffset, encodeOffset, partitionLayout, type PartitionLayout } from './layout.js';
import { openDatabase, type LevelDatabase, type LevelTuning, type StateLogger } from './recovery.js';

/**
 * Options of {@link levelState}.
 *
 * @example
 * ```ts
 * const options: LevelStateOptions = { dir: '/var/lib/sensors', logger: pino(), keepCorruptCopies: 2 };
 * const state = levelState(options);
 * ```
 */
export interface LevelStateOptions {
  /**
   * The state directory. Each app gets one LevelDB in `<dir>/<appId>`; missing directories are
   * created. A relative path is resolved against the working directory when `levelState` is
   * called.
   */
  readonly dir: string;
  /**
   * Where warnings (damaged state set aside) and info go; a pino logger fits. Defaults to the
   * console.
   */
  readonly logger?: StateLogger;
  /**
   * How many damaged copies to keep per app, as `<dir>/<appId>.corrupt-<n>` (newest kept), for
   * diagnosis; `0` deletes damaged state at once. Default 1.
   */
  readonly keepCorruptCopies?: number;
  /**
   * Read every entry when an app's database opens, so damage in table files is found before a
   * task trips on it. Costs one sequential read of the state; default true.
   */
  readonly verifyOnOpen?: boolean;
  /**
   * fsync every commit batch. Default false: the changelog topic is the durable copy, and after
   * an OS crash LevelDB comes back with a consistent prefix of batches whose checkpoint tells the
   * engine where to resume.
   */
  readonly sync?: boolean;
  /** LevelDB tuning; the defaults suit most apps. */
  readonly leveldb?: LevelTuning;
  /**
   * Bytes of live state the app keeps in memory (the write-behind cache), as serialized size.
   * Past it, keys not used lately are evicted after each commit and read back from LevelDB when a
   * record or a closing window needs them. Default: unbounded.
   */
  readonly cacheBudget?: number;
}

/**
 * Creates the LevelDB {@link StateBackend} (kind `level`): durable local state for the stores of
 * an app, one LevelDB per app instance in `<dir>/<appId>`, opened on the first `open()`.
 *
 * Each commit batch is written with its changelog checkpoint in one atomic LevelDB batch, so the
 * checkpoint always describes the data beside it. State that turns out to be damaged when the
 * database opens — missing or garbled LevelDB files, skipped log records, unreadable tables —
 * is moved aside (see `keepCorruptCopies`) with a warning, and the app starts with empty stores
 * and no checkpoint, which makes the engine restore them from the changelog. A directory that
 * another live process or backend has open is never touched: `open()` rejects with a
 * {@link StateError} of code `STATE_LOCKED`.
 *
 * Keys and values passed to `write` must not be modified until the returned promise resolves.
 *
 * @example
 * ```ts
 * import { createApp } from '@eddy/core';
 * import { levelState } from '@eddy/state';
 *
 * const app = createApp({ id: 'sensors', state: levelState({ dir: '.eddy', logger }) });
 * // state of app "sensors" lives in .eddy/sensors
 * ```
 */
export function levelState(options: LevelStateOptions): StateBackend {
  if (options === null || typeof options !== 'object') {
    throw new TypeError(`levelState needs an options object with a dir, got ${String(options)}`);
  }
  if (typeof options.dir !== 'string' || options.dir.trim() === '') {
    throw new TypeError(`levelState option dir must be a non-empty path, got ${JSON.stringify(options.dir)}`);
  }
  const keepCorruptCopies = options.keepCorruptCopies ?? 1;
  if (!Number.isInteger(keepCorruptCopies) || keepCorruptCopies < 0) {
    throw new RangeError(`levelState option keepCorruptCopies must be a non-negative integer, got ${String(keepCorruptCopies)}`);
  }
  const logger = options.logger ?? consoleLogger;
  if (typeof logger.warn !== 'function' || typeof logger.info !== 'function') {
    throw new TypeError('levelState option logger must have warn(fields, message) and info(fields, message)');
  }
  const cacheBudget = options.cacheBudget;
  if (cacheBudget !== undefined && (!Number.isInteger(cacheBudget) || cacheBudget < 1)) {
    throw new RangeError(`levelState option cacheBudget must be a positive number of bytes, got ${String(cacheBudget)}`);
  }
  return new LevelStateBackend({
    cacheBudget,
    dir: resolve(options.dir),
    logger,
    keepCorruptCopies,
    verifyOnOpen: options.verifyOnOpen ?? true,
    sync: options.sync ?? false,
    tuning: { ...options.leveldb },
  });
}

const consoleLogger: StateLogger = {
  warn: (fields, message) => console.warn(`[eddy/state] ${message}`, fields),
  info: () => undefined,
};

interface Settings {
  readonly dir: string;
  readonly logger: StateLogger;
  readonly keepCorruptCopies: number;
  readonly verifyOnOpen: boolean;
  readonly sync: boolean;
  readonly tuning: LevelTuning;
  readonly cacheBudget: number | undefined;
}

class LevelStateBackend implements StateBackend {
  readonly kind = 'level';
  readonly cacheBudgetBytes: number | undefined;
  readonly #settings: Settings;
  readonly #apps = new Map<string, Promise<AppDatabase>>();
  /** App ids whose state an app has claimed (see `claim`). */
  readonly #claimed = new Set<string>();
  #closing: Promise<void> | undefined;

  constructor(settings: Settings) {
    this.#settings = settings;
    this.cacheBudgetBytes = settings.cacheBudget;
  }

  async open(spec: StoreSpec): Promise<PartitionStore> {
    assertAppId(spec.appId);
    if (typeof spec.storeName !== 'string' || spec.storeName === '') {
      throw new TypeError(`store spec storeName must be a non-empty string, got ${JSON.stringify(spec.storeName)}`);
    }
    const layout = partitionLayout(spec.storeName, spec.partition);
    // A backend is reusable after close (an app stopped and started again); let a close finish.
    await this.#closing;
    const app = await this.#app(spec.appId);
    const partition = await app.partition(layout);
    const handle = new LevelPartitionStore(spec, app, partition, this.#settings.sync);
    app.handles.add(handle);
    return handle;
  }

  /**
   * Opens the app's database, which takes LevelDB's lock on its directory: another process, or
   * another backend of this process, then fails with `STATE_LOCKED`; so does a second app with the
   * same id on this backend.
   */
  async claim(appId: string): Promise<void> {
    assertAppId(appId);
    await this.#closing;
    if (this.#claimed.has(appId)) {
      throw new StateError('STATE_LOCKED', `Eddy state of app ${appId} at ${join(this.#settings.dir, appId)} is in use by another app of this process with the same id`, {
        retriable: true,
      });
    }
    await this.#app(appId);
    this.#claimed.add(appId);
  }

  async close(): Promise<void> {
    this.#claimed.clear();
    if (this.#closing === undefined) {
      const apps = [...this.#apps.values()];
      this.#apps.clear();
      this.#closing = (async () => {
        for (const opening of apps) {
          const app = await opening.catch(() => undefined);
          await app?.close();
        }
      })().finally(() => {
        this.#closing = undefined;
      });
    }
    await this.#closing;
  }

  #app(appId: string): Promise<AppDatabase> {
    let opening = this.#apps.get(appId);
    if (opening === undefined) {
      const { dir, logger, keepCorruptCopies, verifyOnOpen, tuning } = this.#settings;
      opening = openDatabase({ location: join(dir, appId), logger, keepCorruptCopies, verifyOnOpen, tuning }).then(
        (db) => new AppDatabase(db),
      );
      this.#apps.set(appId, opening);
      // A failed open (e.g. locked) must not stick: the next open() tries again.
      const failed = opening;
      failed.catch(() => {
        if (this.#apps.get(appId) === failed) this.#apps.delete(appId);
      });
    }
    return opening;
  }
}

/** One partition's shared state: every handle on it, and every write, goes through it. */
interface PartitionState {
  readonly layout: PartitionLayout;
  /** The checkpoint as stored; kept in memory so a write can tell whether it moves forward. */
  checkpoint: number | undefined;
  /** The end of the write queue: writes apply one at a time, in the order they were issued. */
  tail: Promise<void>;
}

class AppDatabase {
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

class LevelPartitionStore implements PartitionStore {
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

/** App ids name directories; allowing only Kafka's topic characters keeps `..` and `/` out. */
function assertAppId(appId: unknown): asserts appId is string {
  if (typeof appId !== 'string' || !/^[A-Za-z0-9._-]+$/.test(appId) || appId === '.' || appId === '..') {
    throw new TypeError(`store spec appId must use only letters, digits, '.', '_' and '-', got ${JSON.stringify(appId)}`);
  }
}

function failure(error: unknown, what: string): StateError {
  if (error instanceof StateError) return error;
  return new StateError('STATE_FAILED', `${what} failed: ${rootMessage(error)}`, { cause: error });
}
