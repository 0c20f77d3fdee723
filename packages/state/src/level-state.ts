import { join, resolve } from 'node:path';
import { ConfigError, type PartitionStore, type StateBackend, type StoreSpec } from '@eddy/core';
import { StateError } from './errors.js';
import { AppDatabase, LevelPartitionStore } from './level-state-store.js';
import { partitionLayout } from './layout.js';
import { openDatabase, type LevelTuning, type StateLogger } from './recovery.js';

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
   * Check an app's database when it opens: every block of its table files against its checksum
   * (LevelDB reads them without checking, so a changed byte could otherwise read back as other
   * data), and every entry, so damage is found before a task trips on it. Costs two sequential
   * reads of the state; default true.
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
    throw new ConfigError(`levelState needs an options object with a dir, got ${String(options)}`);
  }
  if (typeof options.dir !== 'string' || options.dir.trim() === '') {
    throw new ConfigError(`levelState option dir must be a non-empty path, got ${JSON.stringify(options.dir)}`);
  }
  const keepCorruptCopies = options.keepCorruptCopies ?? 1;
  if (!Number.isInteger(keepCorruptCopies) || keepCorruptCopies < 0) {
    throw new ConfigError(`levelState option keepCorruptCopies must be a non-negative integer, got ${String(keepCorruptCopies)}`);
  }
  const logger = options.logger ?? consoleLogger;
  if (typeof logger.warn !== 'function' || typeof logger.info !== 'function') {
    throw new ConfigError('levelState option logger must have warn(fields, message) and info(fields, message)');
  }
  const cacheBudget = options.cacheBudget;
  if (cacheBudget !== undefined && (!Number.isInteger(cacheBudget) || cacheBudget < 1)) {
    throw new ConfigError(`levelState option cacheBudget must be a positive number of bytes, got ${String(cacheBudget)}`);
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
  readonly durable = true;
  readonly cacheBudgetBytes: number | undefined;
  readonly #settings: Settings;
  readonly #apps = new Map<string, Promise<AppDatabase>>();
  /** App ids whose state an app has claimed (see `claim`). */
  readonly #claimed = new Set<string>();
  /** Per app, the close of its database under way: opening it again waits for LevelDB's lock to go. */
  readonly #appClosing = new Map<string, Promise<void>>();

  constructor(settings: Settings) {
    this.#settings = settings;
    this.cacheBudgetBytes = settings.cacheBudget;
  }

  async open(spec: StoreSpec): Promise<PartitionStore> {
    assertAppId(spec.appId);
    if (typeof spec.storeName !== 'string' || spec.storeName === '') {
      throw new ConfigError(`store spec storeName must be a non-empty string, got ${JSON.stringify(spec.storeName)}`);
    }
    const layout = partitionLayout(spec.storeName, spec.partition);
    // A backend is reusable after close (an app stopped and started again); let a close finish.
    await this.#appClosing.get(spec.appId);
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
    await this.#appClosing.get(appId);
    if (this.#claimed.has(appId)) {
      throw new StateError('STATE_LOCKED', `Eddy state of app ${appId} at ${join(this.#settings.dir, appId)} is in use by another app of this process with the same id`, {
        retriable: true,
      });
    }
    await this.#app(appId);
    this.#claimed.add(appId);
  }

  async close(appId?: string): Promise<void> {
    const apps = appId === undefined ? new Set([...this.#apps.keys(), ...this.#claimed, ...this.#appClosing.keys()]) : [appId];
    await Promise.all([...apps].map((id) => this.#closeApp(id)));
  }

  /** Closes one app's database and gives up its claim; the other apps of this backend keep theirs. */
  #closeApp(appId: string): Promise<void> {
    this.#claimed.delete(appId);
    const opening = this.#apps.get(appId);
    if (opening === undefined) return this.#appClosing.get(appId) ?? Promise.resolve();
    this.#apps.delete(appId);
    const closing = opening
      .catch(() => undefined)
      .then((app) => app?.close())
      .finally(() => {
        if (this.#appClosing.get(appId) === closing) this.#appClosing.delete(appId);
      });
    this.#appClosing.set(appId, closing);
    return closing;
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

/** App ids name directories; allowing only Kafka's topic characters keeps `..` and `/` out. */
function assertAppId(appId: unknown): asserts appId is string {
  if (typeof appId !== 'string' || !/^[A-Za-z0-9._-]+$/.test(appId) || appId === '.' || appId === '..') {
    throw new ConfigError(`store spec appId must use only letters, digits, '.', '_' and '-', got ${JSON.stringify(appId)}`);
  }
}
