import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { WorkerPoolError } from './errors.js';
import { BATCH_HANDLER, type HandlerOutcome, type WindowBatchHandler } from './handler-contract.js';
import { resolvePoolOptions, type ResolvedPoolOptions, type WorkerPoolOptions } from './pool-options.js';
import { PoolQueue, type QueuedItem } from './pool-queue.js';
import { PooledWorker } from './pooled-worker.js';

/**
 * What a window handler receives: the window's key, its bounds `[start, end)` in epoch
 * milliseconds, and its aggregated value.
 *
 * @example
 * // model.js, run by workerPool(new URL('./model.js', import.meta.url))
 * export default function predict(window: ClosedWindow<string, number[]>) {
 *   return { sensor: window.key, mean: window.value.reduce((a, b) => a + b, 0) / window.value.length };
 * }
 */
export interface ClosedWindow<Key = unknown, Value = unknown> {
  readonly key: Key;
  readonly start: number;
  readonly end: number;
  readonly value: Value;
}

// Resolved from this file, so it finds src/worker.mjs under the tests and dist/worker.mjs once
// built: tsc emits the bootstrap next to this module (see tsconfig.json, allowJs).
const bootstrapUrl = new URL('./worker.mjs', import.meta.url);

// A worker that cannot even be replaced (its init keeps failing) is given a few more chances,
// a little further apart each time, before the windows waiting for it are failed.
const replacementAttempts = 3;
const replacementBackoffMs = 100;

/**
 * A pool of worker threads running a user module's function over closed windows, in batches.
 * Create it with {@link workerPool}; see there for the guarantees.
 *
 * @example
 * const pool: WorkerPool<ClosedWindow<string, number[]>, number> = workerPool(new URL('./model.js', import.meta.url));
 * await pool.start();
 * const outcomes = await pool.run(windows);
 * await pool.close();
 */
export class WorkerPool<In = ClosedWindow, Out = unknown> implements WindowBatchHandler<In, Out> {
  readonly [BATCH_HANDLER] = true as const;
  /** Windows allowed to wait before the engine pauses its source. */
  readonly maxQueue: number;
  /** How many worker threads the pool keeps running. */
  readonly size: number;

  readonly #options: ResolvedPoolOptions;
  readonly #slots: (PooledWorker | undefined)[];
  readonly #slotsBeingFilled = new Set<number>();
  readonly #workersLoading = new Set<Promise<void>>();
  readonly #idleWorkers: PooledWorker[] = [];
  readonly #queue: PoolQueue;
  #starting: Promise<void> | undefined;
  #closeRequested = false;
  #closed = false;
  #closing: Promise<void> | undefined;
  /** Callers of start() that have not called close() yet: an app each, for a pool that apps share. */
  #users = 0;
  /** Counts the pool's lives: a replacement begun before a close must not fill a slot after a restart. */
  #life = 0;
  #nextWorkerId = 1;

  /** @internal Use {@link workerPool}. */
  constructor(options: ResolvedPoolOptions) {
    this.#options = options;
    this.maxQueue = options.maxQueue;
    this.size = options.size;
    this.#queue = new PoolQueue(options);
    this.#slots = Array.from({ length: options.size }, () => undefined);
  }

  /** Windows submitted to {@link WorkerPool.run} whose outcome is not known yet. */
  get queueDepth(): number {
    return this.#queue.depth;
  }

  /**
   * Spawns the workers and waits until each has imported the module and run its `init()`.
   * Rejects with `WORKER_INIT_FAILED` if any worker fails to load (the others are then
   * terminated, and a later call tries again). {@link WorkerPool.run} starts the pool too.
   *
   * Each call adds a user, which a call to {@link WorkerPool.close} removes (even when `start()`
   * rejected): an app calls both, so that apps can share a pool. Once every user has closed the
   * pool, `start()` starts it afresh, with new workers.
   *
   * @example
   * const pool = workerPool(new URL('./model.js', import.meta.url), { size: 2 });
   * await pool.start(); // the model's init() has run in both workers
   */
  start(): Promise<void> {
    this.#users += 1;
    if (this.#closing === undefined) return this.#ensureStarted();
    return this.#startOnceClosed();
  }

  async #startOnceClosed(): Promise<void> {
    while (this.#closing !== undefined) {
      const closing = this.#closing;
      await closing;
      // Another start() may have reopened the pool meanwhile, and another close() closed it again.
      if (this.#closing !== closing) continue;
      if (this.#users === 0) throw this.#closedError('start()');
      this.#reopen();
    }
    return this.#ensureStarted();
  }

  /**
   * Runs the handler over `items` and gives one outcome per item, in the order of `items`,
   * whatever order the workers finish in. Never rejects because of an item: a handler that throws,
   * hangs or kills its worker turns into a failure outcome once `retries` are spent. Rejects only
   * if the pool is closed or its workers cannot start.
   *
   * Each call settles on its own; to keep results in window order across calls, the caller
   * awaits the calls in order.
   *
   * @example
   * const outcomes = await pool.run([window1, window2]);
   * for (const outcome of outcomes) {
   *   if (outcome.ok) emit(outcome.value);
   *   else deadLetter(outcome.error, outcome.attempts);
   * }
   */
  run(items: readonly In[]): Promise<HandlerOutcome<Out>[]> {
    if (this.#closeRequested) return Promise.reject(this.#closedError('run()'));
    if (items.length === 0) return Promise.resolve([]);
    const { entries, outcomes } = this.#queue.submit<Out>(items);
    return this.#ensureStarted().then(
      () => {
        this.#queue.enqueue(entries);
        this.#refillEmptySlots();
        this.#dispatch();
        return Promise.all(outcomes);
      },
      (error: unknown) => {
        const dropped: HandlerOutcome<unknown> = { ok: false, error: new Error('not run'), attempts: 0 };
        for (const entry of entries) this.#queue.settle(entry, dropped);
        throw error;
      },
    );
  }

  /**
   * Removes a user added by {@link WorkerPool.start}. When none is left (or the pool was only
   * ever used through `run()`), stops taking work, waits until every window already submitted has
   * its outcome, then terminates the workers; `run()` then rejects with `POOL_CLOSED` until
   * `start()` is called again. Closing a closed pool does nothing.
   *
   * @example
   * const pending = pool.run(windows);
   * await pool.close(); // `pending` has settled by now
   */
  close(): Promise<void> {
    if (this.#users > 0) this.#users -= 1;
    // Another app still runs windows on the pool.
    if (this.#users > 0) return Promise.resolve();
    this.#closing ??= this.#drainAndTerminate();
    return this.#closing;
  }

  /** Back to a pool that was never started, once a close has terminated every worker. */
  #reopen(): void {
    this.#life += 1;
    this.#closeRequested = false;
    this.#closed = false;
    this.#closing = undefined;
    this.#starting = undefined;
  }

  async #drainAndTerminate(): Promise<void> {
    this.#closeRequested = true;
    if (this.#queue.depth > 0) await this.#queue.whenDrained();
    await this.#starting?.catch(() => undefined);
    this.#closed = true;
    await Promise.allSettled([...this.#workersLoading]);
    const workers = this.#slots.filter((worker) => worker !== undefined);
    this.#slots.fill(undefined);
    this.#idleWorkers.length = 0;
    await Promise.all(workers.map((worker) => worker.terminate()));
  }

  #closedError(operation: string): WorkerPoolError {
    return new WorkerPoolError('POOL_CLOSED', `workerPool(${this.#options.moduleUrl.href}): ${operation} after close()`);
  }

  #ensureStarted(): Promise<void> {
    this.#starting ??= this.#startWorkers().catch((error: unknown) => {
      this.#starting = undefined;
      throw error;
    });
    return this.#starting;
  }

  async #startWorkers(): Promise<void> {
    const results = await Promise.allSettled(
      this.#slots.map(async (_, slot) => {
        this.#slotsBeingFilled.add(slot);
        try {
          await this.#fillSlot(slot);
        } finally {
          this.#slotsBeingFilled.delete(slot);
        }
      }),
    );
    const failure = results.find((result) => result.status === 'rejected');
    if (failure === undefined) return;
    const started = this.#slots.filter((worker) => worker !== undefined);
    this.#slots.fill(undefined);
    this.#idleWorkers.length = 0;
    await Promise.all(started.map((worker) => worker.terminate()));
    throw failure.reason;
  }

  async #fillSlot(slot: number): Promise<void> {
    // Tracked so that close() can wait for a replacement that is still loading.
    const filling = this.#loadWorkerInto(slot);
    this.#workersLoading.add(filling);
    try {
      await filling;
    } finally {
      this.#workersLoading.delete(filling);
    }
  }

  async #loadWorkerInto(slot: number): Promise<void> {
    const worker = new PooledWorker({
      id: this.#nextWorkerId++,
      bootstrapUrl,
      moduleUrl: this.#options.moduleUrl,
      exportName: this.#options.exportName,
      timeoutMs: this.#options.timeoutMs,
      initTimeoutMs: this.#options.initTimeoutMs,
      onLost: (lostWorker) => this.#onWorkerLost(slot, lostWorker),
    });
    const life = this.#life;
    await worker.load();
    // The pool may have closed (and even started again), or its start failed, while this worker was loading.
    if (this.#closed || life !== this.#life || this.#starting === undefined || this.#slots[slot] !== undefined) {
      await worker.terminate();
      return;
    }
    this.#slots[slot] = worker;
    this.#idleWorkers.push(worker);
    this.#dispatch();
  }

  #onWorkerLost(slot: number, worker: PooledWorker): void {
    // A worker that dies while loading is reported by load() itself.
    if (this.#slots[slot] !== worker) return;
    this.#slots[slot] = undefined;
    const idleIndex = this.#idleWorkers.indexOf(worker);
    if (idleIndex >= 0) this.#idleWorkers.splice(idleIndex, 1);
    void this.#replace(slot);
  }

  async #replace(slot: number): Promise<void> {
    // One replacement per slot at a time, backoff included, or two workers would race for it.
    if (this.#slotsBeingFilled.has(slot)) return;
    this.#slotsBeingFilled.add(slot);
    const life = this.#life;
    let lastError: unknown;
    try {
      for (let attempt = 1; attempt <= replacementAttempts && !this.#closed && life === this.#life; attempt++) {
        try {
          await this.#fillSlot(slot);
          return;
        } catch (error) {
          lastError = error;
          if (attempt < replacementAttempts) {
            await new Promise((resolve) => setTimeout(resolve, replacementBackoffMs * attempt));
          }
        }
      }
    } finally {
      this.#slotsBeingFilled.delete(slot);
    }
    if (lastError !== undefined) this.#failQueueIfNoWorkerCanRun(lastError);
  }

  // Called on each run(): slots whose replacement gave up get another chance when new work comes.
  #refillEmptySlots(): void {
    this.#slots.forEach((worker, slot) => {
      if (worker === undefined) void this.#replace(slot);
    });
  }

  #failQueueIfNoWorkerCanRun(error: unknown): void {
    const anyWorker = this.#slots.some((worker) => worker !== undefined) || this.#slotsBeingFilled.size > 0;
    if (anyWorker) return;
    this.#queue.failWaiting(error);
  }

  #dispatch(): void {
    while (this.#queue.waiting > 0 && this.#idleWorkers.length > 0) {
      const worker = this.#idleWorkers.shift() as PooledWorker;
      // Exited, and about to be reported lost and replaced.
      if (!worker.alive) continue;
      const batch = this.#queue.takeBatch(this.#idleWorkers.length + 1);
      void this.#runBatchOn(worker, batch);
    }
  }

  async #runBatchOn(worker: PooledWorker, batch: QueuedItem[]): Promise<void> {
    let handlerThrew = false;
    try {
      const result = await worker.runBatch(batch.map((item) => item.input));
      handlerThrew = result.kind === 'done' && result.outcomes.some((outcome) => !outcome.ok);
      this.#queue.applyBatchResult(batch, result);
    } catch (error) {
      // Only a bug of ours gets here; still, no window may be left without an outcome.
      this.#queue.failInternally(batch, error);
    }
    if (handlerThrew) this.#retire(worker);
    else if (worker.alive && !this.#closed) this.#idleWorkers.push(worker);
    this.#dispatch();
  }

  // A model that threw may have left its worker's state broken (a half-updated global, say).
  #retire(worker: PooledWorker): void {
    const slot = this.#slots.indexOf(worker);
    void worker.terminate();
    if (slot < 0) return;
    this.#slots[slot] = undefined;
    // Closing with nothing left to run: no replacement needed.
    if (!this.#closeRequested || this.#queue.depth > 0) void this.#replace(slot);
  }
}

/**
 * Runs a window handler on worker threads, off the event loop: the module's default export (or
 * `exportName`) is called with each closed window `{ key, start, end, value }` and returns a result
 * or a promise of one. If the module exports `init()`, each worker runs it once before its first
 * window (load a model there).
 *
 * Guarantees:
 * - `run(windows)` gives one outcome per window, in the order given, whatever order workers finish.
 * - Windows travel in batches of up to `batchSize` per message, spread over idle workers.
 * - A handler that throws is retried up to `retries` times, then gives a `HANDLER_FAILED` outcome.
 *   Its worker is replaced, as the model may have left it broken; the windows of its batch after
 *   the failing one run on another worker.
 * - A worker that runs one window longer than `timeout` (`WORKER_TIMEOUT`) or dies
 *   (`WORKER_CRASHED`) is terminated and replaced. The window to blame (the one running past the
 *   timeout, or the one whose code killed the worker, even from a timer that fired later) is
 *   retried alone; the other windows of its batch run again at no cost. When nothing tells which
 *   window killed the worker, the one that was running runs alone next, and attempts count only
 *   once it does. After `retries` the window gets a failure outcome with the reason. No window is
 *   dropped and no call hangs.
 * - The pool may serve several apps: it counts `start()` calls and terminates its workers once each
 *   has had its `close()`.
 * - The handler may run more than once for a window (at-least-once), so it should be pure.
 *
 * The module must be plain JavaScript that Node can import in a worker, and windows and results
 * must survive structured cloning. Throws a `CONFIG_INVALID` error at once for a bad option.
 *
 * @example
 * // model.js
 * export async function init() { weights = await loadWeights(); }
 * export default function predict({ key, value }) { return { sensor: key, next: forecast(value) }; }
 *
 * // app.ts
 * app.from<Reading>('readings')
 *   .keyBy((reading) => reading.sensor)
 *   .hopping('10s', '1s')
 *   .collect()
 *   .onClose(workerPool(new URL('./model.js', import.meta.url), { size: 4, timeout: '5s', retries: 1 }))
 *   .to('predictions');
 */
export function workerPool<In = ClosedWindow, Out = unknown>(
  moduleUrl: URL | string,
  options: WorkerPoolOptions = {},
): WorkerPool<In, Out> {
  const resolved = resolvePoolOptions(moduleUrl, options);
  if (!existsSync(fileURLToPath(bootstrapUrl))) {
    throw new WorkerPoolError(
      'CONFIG_INVALID',
      `workerPool: the worker bootstrap ${bootstrapUrl.href} is missing; when bundling @eddy/ml, ship its worker.mjs next to the bundle`,
    );
  }
  return new WorkerPool<In, Out>(resolved);
}
