import type { Clock, Duration, RetentionOptions } from '@eddy/core';
import type { LevelTuning, StateLogger } from './recovery.js';

/**
 * Options of {@link levelTransport}.
 *
 * @example
 * ```ts
 * const options: LevelTransportOptions = { dir: '/var/lib/sensors', sync: true, retention: { age: '1d' } };
 * ```
 */
export interface LevelTransportOptions {
  /**
   * The directory; the log lives in `<dir>/@broker`, so `levelState` may be given the same dir
   * (it keeps `<dir>/<app id>`). Created if missing; relative to the working directory.
   */
  readonly dir: string;
  /**
   * fsync every write, so that what a send acknowledged survives a machine crash too. Default
   * false: acknowledged records survive a process crash (they are in the OS), not a power loss.
   */
  readonly sync?: boolean;
  /**
   * What each partition of an ordinary topic keeps. Default `{ age: '7d', bytes: 64 MiB }`, no
   * limit on records. Changelogs are compacted and repartition topics trimmed once committed,
   * whatever this says.
   */
  readonly retention?: RetentionOptions;
  /** How long a compacted topic keeps a tombstone. Default `'1d'`. */
  readonly tombstoneRetention?: Duration;
  /** Partitions of topics created implicitly (by a send or a subscription). Default 1. */
  readonly defaultPartitions?: number;
  /** Records handed to a task per batch. Default 500. */
  readonly maxBatchSize?: number;
  /** Where warnings (a damaged log set aside) go; a pino logger fits. Default: the console. */
  readonly logger?: StateLogger;
  /** Damaged logs kept as `<dir>/@broker.corrupt-<n>`, newest first; 0 deletes them. Default 1. */
  readonly keepCorruptCopies?: number;
  /**
   * Check the log when it opens, every block of its table files against its checksum and every
   * entry, so that damage is found then. Default true. Without it,
   * damage the broker meets while reading its log still sets the log aside; the records of chunks
   * kept on disk only are decoded when a reader goes back to them, and a damaged chunk is then
   * skipped with a warning.
   */
  readonly verifyOnOpen?: boolean;
  readonly leveldb?: LevelTuning;
  /** The clock that retention by age reads. Default: the system clock. */
  readonly clock?: Clock;
}

/** Kept per partition of an ordinary topic unless `retention` says otherwise. */
export const DEFAULT_RETENTION: RetentionOptions = { age: '7d', bytes: 64 * 1024 * 1024 };

/** The log's folder under `dir`: a name no app id can take (ids are letters, digits, `.`, `_`, `-`). */
export const LOG_FOLDER = '@broker';

/** Where warnings go unless `logger` says otherwise. */
export const consoleLogger: StateLogger = {
  warn: (fields, message) => console.warn(`[eddy/broker] ${message}`, fields),
  info: () => undefined,
};
