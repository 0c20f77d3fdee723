import type { Serde } from '../serde.js';

/** Options of writing a topic ({@link Stream.to}, {@link Stream.through}). */
export interface SinkOptions<K, V> {
  /** Serializes keys. Default: UTF-8 for strings, JSON otherwise. */
  key?: Serde<K>;
  /** Serializes values. Default: JSON. */
  value?: Serde<V>;
  /**
   * Declares that this write feeds a topic the app itself reads, so that records go round a loop.
   * Without it such a loop (the same pipeline reading the topic, or another pipeline of the app
   * that leads back to it) is refused when the topology is built: a loop with no exit never ends
   * and grows its topics without bound. Default false.
   * @example
   * // Each round halves the remaining budget; the filter is the loop's exit.
   * app.from<Job>('jobs')
   *   .filter(job => job.budget >= 1)
   *   .map(job => ({ ...job, budget: job.budget / 2 }))
   *   .to('jobs', { cycle: true });
   */
  cycle?: boolean;
}

/** Options of unwindowed aggregates. */
export interface TableOptions {
  /** The state store name (and so its changelog topic); defaults to the aggregation's name. */
  name?: string;
}
