import { describeError, WorkerPoolError } from './errors.js';
import type { HandlerOutcome } from './handler-contract.js';
import type { ResolvedPoolOptions } from './pool-options.js';
import type { BatchResult } from './pooled-worker.js';
import type { ItemOutcome, SerializedError } from './worker-protocol.js';

/** A window submitted to the pool, until it has its outcome. */
export interface QueuedItem {
  readonly input: unknown;
  attempts: number;
  /** Set once the item was in a batch that failed as a whole, so its next failure is its own. */
  runAlone: boolean;
  settled: boolean;
  readonly resolve: (outcome: HandlerOutcome<unknown>) => void;
}

/**
 * The windows a pool was given and has no outcome for yet: which wait for a worker, which go
 * together in the next batch, and what a batch's result means for each of them (an outcome,
 * another attempt, or running alone so that a failure is its own).
 */
export class PoolQueue {
  readonly #options: Pick<ResolvedPoolOptions, 'batchSize' | 'retries' | 'exportName'>;
  readonly #waiting: QueuedItem[] = [];
  #depth = 0;
  #drainWaiters: (() => void)[] = [];

  constructor(options: Pick<ResolvedPoolOptions, 'batchSize' | 'retries' | 'exportName'>) {
    this.#options = options;
  }

  /** Windows submitted whose outcome is not known yet. */
  get depth(): number {
    return this.#depth;
  }

  /** Windows waiting for a worker. */
  get waiting(): number {
    return this.#waiting.length;
  }

  /** One entry and one outcome per item, counted at once (see {@link depth}); the entries wait once {@link enqueue}d. */
  submit<Out>(items: readonly unknown[]): { entries: QueuedItem[]; outcomes: Promise<HandlerOutcome<Out>>[] } {
    const entries: QueuedItem[] = [];
    const outcomes = items.map(
      (input) =>
        new Promise<HandlerOutcome<Out>>((resolve) => {
          entries.push({
            input,
            attempts: 0,
            runAlone: false,
            settled: false,
            resolve: resolve as (outcome: HandlerOutcome<unknown>) => void,
          });
        }),
    );
    // Counted from submission, so that the engine sees the backlog even while workers start.
    this.#depth += entries.length;
    return { entries, outcomes };
  }

  /** Submitted windows now wait for a worker. */
  enqueue(entries: readonly QueuedItem[]): void {
    this.#waiting.push(...entries);
  }

  /** Resolves once every window submitted has its outcome; call it only while {@link depth} is above 0. */
  whenDrained(): Promise<void> {
    return new Promise<void>((resolve) => this.#drainWaiters.push(resolve));
  }

  /** The next batch for one of `idleWorkerCount` idle workers; call it only while windows wait. */
  takeBatch(idleWorkerCount: number): QueuedItem[] {
    const first = this.#waiting[0] as QueuedItem;
    if (first.runAlone) return [this.#waiting.shift() as QueuedItem];
    // Spread what waits over the idle workers rather than filling one batch and leaving the
    // others idle; batchSize caps the message.
    const length = Math.min(this.#options.batchSize, Math.ceil(this.#waiting.length / idleWorkerCount));
    const batch: QueuedItem[] = [];
    while (batch.length < length && this.#waiting.length > 0 && !(this.#waiting[0] as QueuedItem).runAlone) {
      batch.push(this.#waiting.shift() as QueuedItem);
    }
    return batch;
  }

  /** Gives each window of a batch that ended without a result (a bug of ours) a `HANDLER_FAILED` outcome. */
  failInternally(batch: readonly QueuedItem[], error: unknown): void {
    for (const item of batch) {
      this.settle(item, {
        ok: false,
        error: new WorkerPoolError('HANDLER_FAILED', `workerPool internal error: ${describeError(error)}`, { cause: error }),
        attempts: item.attempts,
      });
    }
  }

  /** Fails every waiting window: no worker could be started to run it. */
  failWaiting(error: unknown): void {
    for (const item of this.#waiting.splice(0)) {
      this.settle(item, {
        ok: false,
        error: new WorkerPoolError('WORKER_INIT_FAILED', `no worker could be started to run this window: ${describeError(error)}`, {
          cause: error,
          retriable: true,
        }),
        attempts: item.attempts,
      });
    }
  }

  /** What a batch's result means for each of its windows: an outcome, another attempt, or another go at no cost. */
  applyBatchResult(batch: QueuedItem[], result: BatchResult): void {
    switch (result.kind) {
      case 'done': {
        const { outcomes } = result;
        batch.slice(0, outcomes.length).forEach((item, index) => {
          const outcome = outcomes[index] as ItemOutcome;
          if (outcome.ok) {
            this.settle(item, { ok: true, value: outcome.value });
          } else {
            this.#failAttempt(item, this.#handlerError(outcome.error));
          }
        });
        // The worker stopped at a handler that threw; the windows after it did not run.
        this.#waiting.unshift(...batch.slice(outcomes.length));
        return;
      }
      case 'lost': {
        const { culprit, completed } = result;
        if (typeof culprit === 'number') {
          // Items that had finished lost their results with the worker and run again at no cost;
          // the one to blame runs alone next time.
          const blamed = batch[culprit] as QueuedItem;
          blamed.runAlone = true;
          this.#failAttempt(blamed, result.error);
          this.#waiting.unshift(...batch.filter((item) => item !== blamed));
        } else if (culprit === 'earlier-batch') {
          this.#waiting.unshift(...batch);
        } else if (batch.length === 1) {
          this.#failAttempt(batch[0] as QueuedItem, result.error);
        } else {
          // Nothing tells whose fault it was (a timer of another item may have killed the worker):
          // the item that was running, or each item if all had finished, runs alone next, and
          // attempts count only once it does.
          for (const item of completed >= batch.length ? batch : [batch[completed] as QueuedItem]) item.runAlone = true;
          this.#waiting.unshift(...batch);
        }
        return;
      }
      case 'rejected': {
        const error = new WorkerPoolError('HANDLER_FAILED', `the batch could not be run: ${describeError(result.error)}`, {
          cause: result.error,
        });
        if (batch.length === 1) {
          this.#failAttempt(batch[0] as QueuedItem, error);
        } else {
          // Typically a value that cannot be cloned: run each item alone to find which one.
          for (const item of batch) item.runAlone = true;
          this.#waiting.unshift(...batch);
        }
        return;
      }
    }
  }

  #handlerError(serialized: SerializedError): WorkerPoolError {
    const cause = new Error(serialized.message);
    cause.name = serialized.name;
    if (serialized.stack !== undefined) cause.stack = serialized.stack;
    return new WorkerPoolError('HANDLER_FAILED', `handler '${this.#options.exportName}' threw ${describeError(cause)}`, {
      cause,
    });
  }

  #failAttempt(item: QueuedItem, error: WorkerPoolError): void {
    item.attempts += 1;
    if (item.attempts <= this.#options.retries) {
      this.#waiting.unshift(item);
      return;
    }
    const attempts = item.attempts;
    const final = new WorkerPoolError(
      error.code,
      `${error.message} (gave up after ${attempts} attempt${attempts === 1 ? '' : 's'})`,
      { cause: error.cause, retriable: error.retriable },
    );
    this.settle(item, { ok: false, error: final, attempts });
  }

  /** Gives a window its outcome (once; later calls are ignored). */
  settle(item: QueuedItem, outcome: HandlerOutcome<unknown>): void {
    if (item.settled) return;
    item.settled = true;
    this.#depth -= 1;
    item.resolve(outcome);
    if (this.#depth === 0) {
      for (const resolve of this.#drainWaiters.splice(0)) resolve();
    }
  }
}
