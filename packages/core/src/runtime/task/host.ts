import type { Clock } from '../../clock.js';
import type { Topology } from '../../dsl/topology.js';
import type { EddyError } from '../../errors.js';
import type { CaughtUp, TransportProducer } from '../../transport/types.js';
import type { CacheBudget } from '../../state/caching-store.js';
import type { Metrics } from '../metrics.js';
import type { InputOutlook } from './input-order.js';

/** What a task needs from the app that runs it. */
export interface TaskHost {
  readonly appId: string;
  readonly topology: Topology;
  readonly clock: Clock;
  readonly metrics: Metrics;
  readonly time: 'event' | 'processing';
  /** Quiet time after which stream time follows the clock; undefined disables it. */
  readonly idleTimeoutMs: number | undefined;
  /** Whether the log says the task has read everything of a partition, and since when (see {@link CaughtUp}). */
  caughtUp(topic: string, partition: number): CaughtUp | undefined;
  /**
   * What is to come of an empty input partition that was written before a record the task was
   * given `deliveredAgoMs` ago, by the log's word and that of the local tasks that write it (see {@link InputOutlook}).
   */
  inputOutlook(topic: string, partition: number, deliveredAgoMs: number): InputOutlook;
  /** How long a task with several inputs waits for an empty one that may still have records, none known (`maxInputWait`). */
  readonly maxInputWaitMs: number;
  readonly producer: TransportProducer;
  readonly keepsValues: boolean;
  partitionsOf(topic: string): number;
  /** The app-wide budget of the operators' write-behind caches. */
  readonly cache: CacheBudget;
  /** A record failed; under `onError: 'stop'` this stops the app. Returns true to dead-letter. */
  recordFailed(error: EddyError): boolean;
  /** The task cannot go on (and must not commit): the app stops and tells its host. */
  fatal(error: EddyError): void;
  log(level: 'debug' | 'info' | 'warn' | 'error', message: string, fields?: Record<string, unknown>): void;
  /** A task of sub-topology `index` wrote a repartition record to another partition (see runtime/delivery-alignment.ts). */
  crossedPartitions?(index: number): void;
}
