// The messages between the pool (main thread) and the worker bootstrap (worker.mjs). Internal:
// both sides ship in this package, so they always agree on these shapes.

import type { MessagePort } from 'node:worker_threads';

/** Given to every worker as `workerData`. */
export interface WorkerSetup {
  /** `file:` URL of the user's module. */
  readonly moduleUrl: string;
  readonly exportName: string;
  /** Where the worker reports its progress through a batch, so the pool can time items one by one. */
  readonly progressPort: MessagePort;
}

/** An error flattened to plain data, because Error objects lose their name crossing threads. */
export interface SerializedError {
  readonly message: string;
  readonly name: string;
  readonly stack?: string;
}

/** What became of one item of a batch inside the worker. */
export type ItemOutcome<Out = unknown> =
  | { readonly ok: true; readonly value: Out }
  | { readonly ok: false; readonly error: SerializedError };

/**
 * Posted on the progress port: `progress` when a batch has arrived (`completed` 0) and after each
 * of its items settles; `dying` as the worker dies of something an item's handler started (an
 * uncaught error or rejection, `process.exit()`), even from a timer that fires later.
 */
export type WorkerReport =
  | { readonly kind: 'progress'; readonly batchId: number; readonly completed: number }
  | { readonly kind: 'dying'; readonly batchId: number; readonly item: number };

/** What the bootstrap exposes through comlink. */
export interface WorkerApi {
  /** Imports the user's module, checks the export and runs its `init()`; call once. */
  load(): Promise<void>;
  /**
   * Runs the handler on each item in turn and gives their outcomes. Stops after an item whose
   * handler threw: the outcomes then end with that failure, and the items after it did not run.
   */
  runBatch(items: readonly unknown[], batchId?: number): Promise<ItemOutcome[]>;
}
