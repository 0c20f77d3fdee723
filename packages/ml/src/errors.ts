import { describeError, EddyError } from '@eddy/core';

/**
 * Stable codes of the errors raised by `@eddy/ml`; users and tests may switch on them.
 *
 * - `WORKER_TIMEOUT`: a window's handler ran longer than the pool's `timeout`.
 * - `WORKER_CRASHED`: the worker died (process.exit, an uncaught error) while handling a window.
 * - `HANDLER_FAILED`: the handler threw or rejected for a window.
 * - `WORKER_INIT_FAILED`: a worker could not load the module or its `init()` failed.
 * - `POOL_CLOSED`: the pool was used after `close()`.
 * - `CONFIG_INVALID`: a bad option, found when the pool is created.
 *
 * @example
 * if (error instanceof WorkerPoolError && error.code === 'WORKER_TIMEOUT') increaseTimeout();
 */
export type WorkerPoolErrorCode =
  | 'WORKER_TIMEOUT'
  | 'WORKER_CRASHED'
  | 'HANDLER_FAILED'
  | 'WORKER_INIT_FAILED'
  | 'POOL_CLOSED'
  | 'CONFIG_INVALID';

/**
 * An error raised by the worker pool: a stable `code`, the underlying `cause`, and whether running
 * the same window again may succeed (`retriable`).
 *
 * Its constructor has the shape of `EddyError` in `@eddy/core`, so that it can become a subclass
 * of it without touching any call site.
 *
 * @example
 * const outcomes = await pool.run(windows);
 * for (const outcome of outcomes) {
 *   if (!outcome.ok && outcome.error instanceof WorkerPoolError) {
 *     console.warn(outcome.error.code, outcome.error.retriable, outcome.error.cause);
 *   }
 * }
 */
export class WorkerPoolError extends EddyError {
  declare readonly code: WorkerPoolErrorCode;

  constructor(code: WorkerPoolErrorCode, message: string, options: { cause?: unknown; retriable?: boolean } = {}) {
    super(code, message, options);
  }
}

export { describeError };
