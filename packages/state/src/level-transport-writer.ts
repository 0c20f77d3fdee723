import { EddyError } from '@eddy/core';
import { rootMessage } from './errors.js';
import type { LevelDatabase } from './recovery.js';

/** One write to the log: a put or a delete of one key. */
export type BatchOp = { readonly type: 'put'; readonly key: Uint8Array; readonly value: Uint8Array } | { readonly type: 'del'; readonly key: Uint8Array };

/**
 * Writes to the log in as few batches as it can: what is asked for while a batch is being written
 * goes into the next one, together (a group commit). Batches are written one at a time, in the
 * order asked, so records reach the disk in offset order.
 */
export class GroupCommit {
  readonly #db: () => LevelDatabase | undefined;
  readonly #sync: boolean;
  #pending: Array<{ readonly ops: readonly BatchOp[]; readonly resolve: () => void; readonly reject: (error: unknown) => void }> = [];
  #running: Promise<void> | undefined;

  constructor(db: () => LevelDatabase | undefined, sync: boolean) {
    this.#db = db;
    this.#sync = sync;
  }

  write(ops: readonly BatchOp[]): Promise<void> {
    if (ops.length === 0) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.#pending.push({ ops, resolve, reject });
      this.#running ??= this.#run();
    });
  }

  /** Resolves once everything asked so far is written (or failed). */
  async idle(): Promise<void> {
    while (this.#running) await this.#running;
  }

  async #run(): Promise<void> {
    // What else is asked for in this turn joins the first batch.
    await Promise.resolve();
    try {
      while (this.#pending.length > 0) {
        const batch = this.#pending;
        this.#pending = [];
        const db = this.#db();
        try {
          if (!db) throw new EddyError('TRANSPORT_FAILED', 'the Eddy broker log is closed');
          await db.batch(batch.flatMap((entry) => entry.ops) as Array<{ type: 'put'; key: Uint8Array; value: Uint8Array } | { type: 'del'; key: Uint8Array }>, { sync: this.#sync });
          for (const entry of batch) entry.resolve();
        } catch (error) {
          const failure = error instanceof EddyError ? error : new EddyError('TRANSPORT_FAILED', `writing to the Eddy broker log failed: ${rootMessage(error)}`, { cause: error, retriable: true });
          for (const entry of batch) entry.reject(failure);
        }
      }
    } finally {
      this.#running = undefined;
    }
  }
}
