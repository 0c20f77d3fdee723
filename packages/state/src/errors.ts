import { EddyError } from '@eddy/core';

/**
 * Stable codes of {@link StateError}. `STATE_FAILED` matches `@eddy/core`'s code for state
 * failures; `STATE_LOCKED` is specific to a disk backend.
 *
 * @example
 * ```ts
 * const retryLater = (code: StateErrorCode) => code === 'STATE_LOCKED';
 * ```
 */
export type StateErrorCode = 'STATE_LOCKED' | 'STATE_FAILED';

/**
 * An error of the LevelDB state backend, shaped like `@eddy/core`'s `EddyError`: a stable
 * `code`, the underlying `cause`, and whether retrying may succeed.
 *
 * - `STATE_LOCKED` (retriable): another process, or another backend in this process, has the
 *   app's state directory open. Nothing was changed on disk. It usually clears once the previous
 *   owner stops, e.g. after a rolling restart.
 * - `STATE_FAILED`: the store partition or backend is closed, or LevelDB failed in a way that
 *   moving the broken state aside could not fix (e.g. permissions).
 *
 * @example
 * ```ts
 * try {
 *   await app.start();
 * } catch (error) {
 *   if (error instanceof StateError && error.code === 'STATE_LOCKED') {
 *     console.error('another instance of this app uses the same state dir');
 *   }
 * }
 * ```
 */
export class StateError extends EddyError {
  declare readonly code: StateErrorCode;

  constructor(code: StateErrorCode, message: string, options: { cause?: unknown; retriable?: boolean } = {}) {
    super(code, message, options);
  }
}

/** The error code of a LevelDB error, or of the first error in its `cause` chain that has one. */
export function levelErrorCode(error: unknown): string | undefined {
  for (let current = error, depth = 0; current instanceof Error && depth < 8; current = current.cause, depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string' && code.startsWith('LEVEL_') && code !== 'LEVEL_DATABASE_NOT_OPEN') return code;
  }
  return undefined;
}

/** Whether LevelDB failed on what it read (damaged files, or the disk under them), not on how it was used. */
export function isDamage(error: unknown): boolean {
  const code = levelErrorCode(error);
  return code === 'LEVEL_CORRUPTION' || code === 'LEVEL_IO_ERROR';
}

/** The innermost message of an error's `cause` chain: LevelDB's own words are there. */
export function rootMessage(error: unknown): string {
  let current = error;
  for (let depth = 0; current instanceof Error && current.cause instanceof Error && depth < 8; depth++) {
    current = current.cause;
  }
  return current instanceof Error ? current.message : String(current);
}
