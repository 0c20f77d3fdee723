import type { Clock } from './clock.js';
import { toMs, type Duration } from './duration.js';
import { ConfigError } from './errors.js';
import type { Logger } from './logger.js';
import type { Serde } from './serde.js';
import type { StateBackend } from './state/backend.js';
import type { Transport } from './transport/types.js';

/** Options of {@link createApp}. */
export interface AppOptions {
  /** The consumer group id, the prefix of internal topics and the state directory name. */
  id: string;
  /** Where topics live; default: a private embedded broker (`memoryTransport()`). */
  transport?: Transport;
  /** Where state lives; default: in memory (rebuilt from the changelog on restart). */
  state?: StateBackend;
  /** `event` (default): record timestamps; `processing`: the clock at arrival. */
  time?: 'event' | 'processing';
  /** Event time: after this much quiet, a task's stream time follows the clock. Default `'5s'`; `false` disables. */
  idleTimeout?: Duration | false;
  /** How often tasks commit (state flush, offsets). Default `'1s'`. */
  commitInterval?: Duration;
  /**
   * Event time: a task with several inputs (a join, windows over merged topics) processes their
   * records in timestamp order. An input with no records at hand is waited for until records known
   * to be coming to it come (the log shows them, or a local task wrote them), or the log's word
   * on it is fresh; one that may still have earlier ones, nothing known either way (the log has
   * stopped answering in time, or a local task that writes it waits on its own inputs), is waited
   * for this long before the others go ahead of it. Default `'500ms'`, and under exactly-once the
   * commit interval more (records a local task writes to a repartition topic are readable from its
   * commit on); `0` never waits, for any input.
   */
  maxInputWait?: Duration;
  /**
   * Default `at-least-once`; `exactly-once` needs a transport with transactions: each task commits
   * its outputs, state changes and input offsets in one transaction; after a failed transaction (a
   * broker failure past retries, a coordinator that aborted it) the task starts again from its
   * last commit, unless the group gave its partitions to another instance (this one a zombie).
   */
  guarantee?: 'at-least-once' | 'exactly-once';
  /** What a bad record does: `dead-letter` (default, to `<id>-dlq`) or `stop`. */
  onError?: 'dead-letter' | 'stop';
  /** Handler windows waiting per task before its source pauses. Default 1000. */
  maxPending?: number;
  /**
   * How long a task may go without a successful commit (or keep failing to send) before the app
   * reports it: a `warn` log, `app.health()` degraded. Default: five commit intervals.
   */
  stallTimeout?: Duration;
  /** A pino-compatible logger. */
  logger?: Logger;
  /** The clock; tests inject a virtual one (the TestDriver does). */
  clock?: Clock;
}

/** What `app.health()` reports. */
export interface HealthReport {
  readonly status: 'ok' | 'degraded' | 'failed';
  /** Why it is not ok, one line each. */
  readonly reasons: string[];
}

/** Options of {@link App.from}. */
export interface SourceOptions<K, V> {
  /** Event time of a record; default: the record's own timestamp. */
  timestamp?: (value: V) => number;
  key?: Serde<K>;
  value?: Serde<V>;
}

/** Options of {@link App.send}. */
export interface SendOptions {
  key?: unknown;
  timestamp?: number;
  headers?: Record<string, string>;
}

/** One open window of a window store. */
export interface StoredWindow<A> {
  readonly start: number;
  readonly end: number;
  readonly value: A;
}

/** Reads a table from the host service (see {@link App.store}). */
export interface TableReader<K, A> {
  /** The key's value, or undefined if it has none. */
  get(key: K): Promise<A | undefined>;
  /** All entries (optionally keys in `[gte, lt)`, compared as strings), sorted by key. */
  range(options?: { gte?: string; lt?: string }): Promise<Array<{ key: K; value: A }>>;
}

/** Reads a window store from the host service (see {@link App.store}). */
export interface WindowStoreReader<K, A> {
  /** The key's open windows in window order; `[]` when it has none. */
  get(key: K): Promise<Array<StoredWindow<A>>>;
  /** Every key's open windows (optionally keys in `[gte, lt)`, compared as strings), sorted by key. */
  range(options?: { gte?: string; lt?: string }): Promise<Array<{ key: K; value: Array<StoredWindow<A>> }>>;
}

/** Reads a state store from the host service. */
export interface StoreReader {
  /** The value of one key: a table's aggregate, or a window store's open windows. */
  get(key: unknown): Promise<unknown>;
  /** All entries (optionally keys in `[gte, lt)`, compared as strings), sorted by key. */
  range(options?: { gte?: string; lt?: string }): Promise<Array<{ key: unknown; value: unknown }>>;
}

const idPattern = /^[A-Za-z0-9._-]{1,200}$/;

/** The app's options checked, with their defaults. */
export interface AppSettings {
  readonly id: string;
  readonly time: 'event' | 'processing';
  readonly guarantee: 'at-least-once' | 'exactly-once';
  readonly onError: 'dead-letter' | 'stop';
  /** Undefined when idle tasks never follow the clock (`idleTimeout: false`). */
  readonly idleTimeoutMs: number | undefined;
  readonly commitIntervalMs: number;
  readonly maxInputWaitMs: number;
  readonly maxPending: number;
  readonly stallTimeoutMs: number;
}

/** Checks `createApp`'s options: a wrong one fails here, with a `ConfigError` naming it. */
export function resolveAppOptions(options: AppOptions): AppSettings {
  if (typeof options !== 'object' || options === null) throw new ConfigError(`createApp: expected options, got ${String(options)}`);
  if (typeof options.id !== 'string' || !idPattern.test(options.id)) {
    throw new ConfigError(`createApp: invalid id ${JSON.stringify(options.id)} (letters, digits, '.', '_' and '-')`);
  }
  const time = options.time ?? 'event';
  if (time !== 'event' && time !== 'processing') throw new ConfigError(`createApp: time must be 'event' or 'processing', got ${JSON.stringify(time)}`);
  const guarantee = options.guarantee ?? 'at-least-once';
  if (guarantee !== 'at-least-once' && guarantee !== 'exactly-once') {
    throw new ConfigError(`createApp: guarantee must be 'at-least-once' or 'exactly-once', got ${JSON.stringify(guarantee)}`);
  }
  const onError = options.onError ?? 'dead-letter';
  if (onError !== 'dead-letter' && onError !== 'stop') throw new ConfigError(`createApp: onError must be 'dead-letter' or 'stop', got ${JSON.stringify(onError)}`);
  const maxPending = options.maxPending ?? 1000;
  if (!Number.isInteger(maxPending) || maxPending < 1) throw new ConfigError(`createApp: maxPending must be a positive integer, got ${String(maxPending)}`);
  const commitIntervalMs = toMs(options.commitInterval ?? '1s', 'commitInterval');
  return {
    id: options.id,
    time,
    guarantee,
    onError,
    idleTimeoutMs: options.idleTimeout === false ? undefined : toMs(options.idleTimeout ?? '5s', 'idleTimeout', { allowZero: true }),
    commitIntervalMs,
    maxInputWaitMs: options.maxInputWait === undefined ? 500 + (guarantee === 'exactly-once' ? commitIntervalMs : 0) : toMs(options.maxInputWait, 'maxInputWait', { allowZero: true }),
    maxPending,
    stallTimeoutMs: options.stallTimeout === undefined ? 5 * commitIntervalMs : toMs(options.stallTimeout, 'stallTimeout'),
  };
}
