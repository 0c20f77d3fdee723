// The messages between the pool (main thread) and the worker bootstrap (worker.mjs). Internal:
// both sides ship in this package, so they always agree on these shapes.

import type { MessagePort } from 'node:worker_threads';

/** Given to every worker as `workerData`. */
export interface WorkerSetup {
  /** `file:` URL of the user's module. */
  readonly moduleUrl: string;
  readonly exportName: string;
  /** Where the worker reports each finished item, so the pool can time items one by one. */
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

/** Posted on the progress port after each item of a batch settles. */
export interface ProgressReport {
  readonly batchId: number;
  /** How many items of the batch have settled so far. */
  readonly completed: number;
}

/** What the bootstrap exposes through comlink. */
export interface WorkerApi {
  /** Imports the user's module, checks the export and runs its `init()`; call once. */
  load(): Promise<void>;
  /** Runs the handler on each item in turn; one item's failure does not fail the batch. */
  runBatch(items: readonly unknown[], batchId?: number): Promise<ItemOutcome[]>;
}
