import { systemClock, type Clock } from '../clock.js';
import { toMs, type Duration } from '../duration.js';
import { ConfigError } from '../errors.js';
import type { Compaction, Retention } from './partition-log.js';

/** Options of the embedded broker. */
export interface MemoryTransportOptions {
  /** Partitions of a topic created implicitly (by a send or a subscription). Default 1. */
  defaultPartitions?: number;
  /** Records handed to a task per batch. Default 500. */
  maxBatchSize?: number;
  /**
   * What each partition of an ordinary topic keeps; older records are dropped, as Kafka's
   * retention does. Default: everything. Repartition topics are trimmed as their records are
   * committed and changelog topics are compacted, whatever this says.
   */
  retention?: RetentionOptions;
  /** The same as `retention.records` (kept for older code). */
  retentionRecords?: number;
  /** How long a compacted topic keeps a tombstone (a delete) after it was written. Default `'1d'`, as Kafka's `delete.retention.ms`. */
  tombstoneRetention?: Duration;
  /** The clock that retention by age reads; the TestDriver gives its virtual one. Default: the system clock. */
  clock?: Clock;
}

/** What each partition of an ordinary topic keeps (see {@link MemoryTransportOptions.retention}); unset limits do not apply. */
export interface RetentionOptions {
  /** Records kept. */
  readonly records?: number;
  /** Bytes of keys, values and headers kept. */
  readonly bytes?: number;
  /** How long a record is kept after it was written, e.g. `'7d'`. */
  readonly age?: Duration;
}

/** The broker's options once checked, durations in milliseconds. */
export interface ResolvedMemoryOptions {
  readonly defaultPartitions: number;
  readonly maxBatchSize: number;
  readonly retention: Retention;
  readonly compaction: Compaction;
  readonly clock: Clock;
}

/** Checks the options once, at the API edge; `what` names the broker in messages (`memoryTransport`, `levelTransport`). */
export function resolveMemoryOptions(options: MemoryTransportOptions, what: string): ResolvedMemoryOptions {
  const { defaultPartitions = 1, maxBatchSize = 500, retentionRecords } = options;
  if (retentionRecords !== undefined && (!Number.isInteger(retentionRecords) || retentionRecords < 1)) {
    throw new ConfigError(`${what}: retentionRecords must be a positive integer, got ${String(retentionRecords)}`);
  }
  const retention = { ...resolveRetention(options.retention, what), ...(retentionRecords === undefined ? {} : { records: retentionRecords }) };
  const compaction = { tombstoneMs: toMs(options.tombstoneRetention ?? '1d', `${what}: tombstoneRetention`) };
  const clock = options.clock ?? systemClock;
  if (!Number.isInteger(defaultPartitions) || defaultPartitions < 1) {
    throw new ConfigError(`${what}: defaultPartitions must be a positive integer, got ${String(defaultPartitions)}`);
  }
  if (!Number.isInteger(maxBatchSize) || maxBatchSize < 1) {
    throw new ConfigError(`${what}: maxBatchSize must be a positive integer, got ${String(maxBatchSize)}`);
  }
  return { defaultPartitions, maxBatchSize, retention, compaction, clock };
}

/** Checks retention options once, at the API edge, into milliseconds. */
function resolveRetention(options: RetentionOptions | undefined, what: string): Retention {
  if (options === undefined) return {};
  if (typeof options !== 'object' || options === null) throw new ConfigError(`${what}: retention must be an object, got ${String(options)}`);
  const count = (value: number | undefined, name: string) => {
    if (value !== undefined && (!Number.isInteger(value) || value < 1)) throw new ConfigError(`${what}: retention.${name} must be a positive integer, got ${String(value)}`);
    return value;
  };
  return {
    records: count(options.records, 'records'),
    bytes: count(options.bytes, 'bytes'),
    ms: options.age === undefined ? undefined : toMs(options.age, `${what}: retention.age`),
  };
}
