import { ConfigError, defaultLogger, toMs, type Duration, type Logger } from '@eddy/core';
import type { ConnectionOptions as TlsOptions } from 'node:tls';
import type { SASLOptions } from '@platformatic/kafka';

/** How much the transport logs (through {@link KafkaTransportOptions.logger}). */
export type KafkaLogLevel = 'nothing' | 'error' | 'warn' | 'info' | 'debug';

/**
 * How requests that fail with a retriable broker error are retried: exponential backoff from
 * `initialRetryTime`, at most `maxRetryTime` apart, `retries` times, then the operation fails
 * with an `EddyError` of code `TRANSPORT_FAILED` (and `retriable: true`).
 *
 * @example
 * ```ts
 * const retry: KafkaRetryOptions = { retries: 10, initialRetryTime: '200ms', maxRetryTime: '10s' };
 * ```
 */
export interface KafkaRetryOptions {
  /** Attempts after the first. Default 8. */
  readonly retries?: number;
  /** Wait before the first retry. Default `'300ms'`. */
  readonly initialRetryTime?: Duration;
  /** Longest wait between two attempts. Default `'30s'`. */
  readonly maxRetryTime?: Duration;
  /** Randomization of each wait, between 0 and 1. Default 0.2. */
  readonly factor?: number;
  /** Growth of the wait per attempt. Default 2. */
  readonly multiplier?: number;
}

/**
 * Consumer group settings. The defaults suit stream processing: a rebalance is noticed within
 * about a heartbeat interval, and an idle fetch returns every half second.
 *
 * @example
 * ```ts
 * const consumer: KafkaConsumerTuning = { sessionTimeout: '10s', heartbeatInterval: '500ms' };
 * ```
 */
export interface KafkaConsumerTuning {
  /**
   * A member silent for this long leaves the group. Kafka's consumer group protocol keeps it per
   * group: given here, it is set as the group's `consumer.session.timeout.ms` when the app joins
   * (within the broker's `group.consumer.min/max.session.timeout.ms`, 45 s to 60 s by default;
   * a value the broker refuses is logged, and the group keeps its own). Default: the group's,
   * which is the broker's `group.consumer.session.timeout.ms` (45 s by default).
   */
  readonly sessionTimeout?: Duration;
  /** How long the group waits for members to rejoin (and finish revoking) in a rebalance. Default `'60s'`. */
  readonly rebalanceTimeout?: Duration;
  /**
   * Heartbeats, also the latency of noticing a rebalance; must be below sessionTimeout. Like the
   * session timeout, the group's own (`consumer.heartbeat.interval.ms`, bounded by the broker's
   * `group.consumer.min/max.heartbeat.interval.ms`). Default: the group's (5 s on a default broker).
   */
  readonly heartbeatInterval?: Duration;
  /** How long the broker holds a fetch that finds no records. Default `'500ms'`. */
  readonly maxWaitTime?: Duration;
  /** Bytes fetched per partition per request. Default 1 MiB. */
  readonly maxBytesPerPartition?: number;
}

/**
 * SASL authentication. PLAIN and SCRAM take a username and password; OAUTHBEARER a token, or a
 * function that gives a fresh one at each authentication.
 *
 * @example
 * ```ts
 * const sasl: KafkaSasl = { mechanism: 'scram-sha-512', username: 'eddy', password: process.env.KAFKA_PASSWORD! };
 * ```
 */
export type KafkaSasl =
  | { readonly mechanism: 'plain' | 'scram-sha-256' | 'scram-sha-512'; readonly username: string; readonly password: string }
  | { readonly mechanism: 'oauthbearer'; readonly token: string | (() => string | Promise<string>) };

/**
 * Options of {@link kafkaTransport}.
 *
 * @example
 * ```ts
 * const options: KafkaTransportOptions = {
 *   brokers: ['kafka-1:9092', 'kafka-2:9092'],
 *   clientId: 'sensors',
 *   ssl: true,
 *   sasl: { mechanism: 'scram-sha-512', username: 'eddy', password: process.env.KAFKA_PASSWORD! },
 *   defaultPartitions: 12,
 *   replicationFactor: 3,
 * };
 * ```
 */
export interface KafkaTransportOptions {
  /** Bootstrap servers, `host:port`. */
  readonly brokers: readonly string[];
  /** The client id brokers see in their logs and quotas. Default `'eddy'`. */
  readonly clientId?: string;
  /** TLS: `true` for the system's CAs, or Node's `tls.connect` options. */
  readonly ssl?: boolean | TlsOptions;
  /** SASL authentication (plain, scram-sha-256, scram-sha-512, oauthbearer). */
  readonly sasl?: KafkaSasl;
  /**
   * Partitions of the topics Eddy creates without being told a count: outputs (`to(topic)`) and
   * sources that do not exist yet. Unset by default, in which case the runtime falls back to 1
   * partition; set it, or create such topics beforehand, for real parallelism.
   */
  readonly defaultPartitions?: number;
  /**
   * Replicas of the topics Eddy creates (internal topics, and the ones above). Default: the
   * broker's `default.replication.factor`.
   */
  readonly replicationFactor?: number;
  /** How much the transport logs. Default `'warn'`. */
  readonly logLevel?: KafkaLogLevel;
  /** Where the transport logs; a pino logger fits. Default: `@eddy/core`'s `defaultLogger`. */
  readonly logger?: Logger;
  /** Retries of retriable broker errors (connections, metadata, produce, commits). */
  readonly retry?: KafkaRetryOptions;
  /** Consumer group tuning. */
  readonly consumer?: KafkaConsumerTuning;
  /**
   * Static membership (KIP-345, on the consumer group protocol of KIP-848): a stable id for this
   * instance, unique in the group (say, the pod or host name). An instance that stops and comes
   * back with the same id within the group's session timeout gets its partitions back with no
   * rebalance, and so with no restore elsewhere.
   */
  readonly groupInstanceId?: string;
  /**
   * Exactly-once: how long the broker lets a task's transaction stay open before it aborts it (a
   * killed instance's, if no new owner ends it first; or one whose commit is held up). Keep the
   * app's `commitInterval`, and what a commit waits for (close handlers), well below it.
   * Default `'10s'`, as Kafka Streams; at most the broker's `transaction.max.timeout.ms` (15 min).
   */
  readonly transactionTimeout?: Duration;
}

/** The validated options, durations in milliseconds. */
export interface KafkaSettings {
  readonly brokers: string[];
  readonly groupInstanceId: string | undefined;
  /** TLS and SASL as @platformatic/kafka takes them. */
  readonly tls: TlsOptions | undefined;
  readonly saslOptions: SASLOptions | undefined;
  readonly clientId: string;
  readonly defaultPartitions: number | undefined;
  readonly replicationFactor: number | undefined;
  /** The given logger, quiet below `logLevel`. */
  readonly logger: Logger;
  readonly retry: { readonly retries: number; readonly initialRetryTimeMs: number; readonly maxRetryTimeMs: number; readonly factor: number; readonly multiplier: number };
  readonly sessionTimeoutMs: number;
  readonly rebalanceTimeoutMs: number;
  readonly heartbeatIntervalMs: number;
  /** The group's configurations the options ask for (a session timeout or heartbeat interval given explicitly). */
  readonly groupConfigs: Readonly<Record<string, string>>;
  readonly maxWaitTimeMs: number;
  readonly maxBytesPerPartition: number;
  readonly transactionTimeoutMs: number;
}

const logLevels: readonly KafkaLogLevel[] = ['nothing', 'error', 'warn', 'info', 'debug'];

/** The option names each object of {@link KafkaTransportOptions} takes: any other is a typo. */
const optionNames = {
  '': ['brokers', 'clientId', 'ssl', 'sasl', 'defaultPartitions', 'replicationFactor', 'logLevel', 'logger', 'retry', 'consumer', 'groupInstanceId', 'transactionTimeout'],
  'retry.': ['retries', 'initialRetryTime', 'maxRetryTime', 'factor', 'multiplier'],
  'consumer.': ['sessionTimeout', 'rebalanceTimeout', 'heartbeatInterval', 'maxWaitTime', 'maxBytesPerPartition'],
} as const;

/** An options object (or undefined) with no name outside `known`; `path` names it in the error. */
function checkObject(value: unknown, path: keyof typeof optionNames): void {
  if (value === undefined) return;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new ConfigError(`kafkaTransport: ${path ? path.slice(0, -1) : 'options'} must be an object, got ${JSON.stringify(value)}`);
  const known: readonly string[] = optionNames[path];
  const unknown = Object.keys(value).filter((name) => !known.includes(name));
  if (unknown.length > 0) throw new ConfigError(`kafkaTransport: unknown option ${unknown.map((name) => path + name).join(', ')} (known: ${known.map((name) => path + name).join(', ')})`);
}

/** Validates {@link KafkaTransportOptions} at once, naming the bad value, and fills in defaults. */
export function resolveSettings(options: KafkaTransportOptions): KafkaSettings {
  if (typeof options !== 'object' || options === null) throw new ConfigError(`kafkaTransport: expected options, got ${String(options)}`);
  checkObject(options, '');
  checkObject(options.retry, 'retry.');
  checkObject(options.consumer, 'consumer.');
  const { brokers } = options;
  if (!Array.isArray(brokers) || brokers.length === 0 || brokers.some((broker) => typeof broker !== 'string' || broker.trim() === '')) {
    throw new ConfigError(`kafkaTransport: brokers must be a non-empty list of 'host:port' strings, got ${JSON.stringify(brokers)}`);
  }
  const clientId = options.clientId ?? 'eddy';
  if (typeof clientId !== 'string' || clientId === '') throw new ConfigError(`kafkaTransport: clientId must be a non-empty string, got ${JSON.stringify(clientId)}`);
  const logLevel = options.logLevel ?? 'warn';
  if (!logLevels.includes(logLevel)) throw new ConfigError(`kafkaTransport: logLevel must be one of ${logLevels.join(', ')}, got ${JSON.stringify(logLevel)}`);

  const retry = options.retry ?? {};
  const retries = positiveInteger(retry.retries ?? 8, 'retry.retries', { allowZero: true });
  const factor = retry.factor ?? 0.2;
  if (typeof factor !== 'number' || !(factor >= 0 && factor <= 1)) throw new ConfigError(`kafkaTransport: retry.factor must be between 0 and 1, got ${String(factor)}`);
  const multiplier = retry.multiplier ?? 2;
  if (typeof multiplier !== 'number' || !(multiplier >= 1)) throw new ConfigError(`kafkaTransport: retry.multiplier must be at least 1, got ${String(multiplier)}`);

  const consumer = options.consumer ?? {};
  const sessionTimeoutMs = toMs(consumer.sessionTimeout ?? '30s', 'kafkaTransport: consumer.sessionTimeout');
  const heartbeatIntervalMs = toMs(consumer.heartbeatInterval ?? '1s', 'kafkaTransport: consumer.heartbeatInterval');
  if (heartbeatIntervalMs >= sessionTimeoutMs) {
    throw new ConfigError(`kafkaTransport: consumer.heartbeatInterval (${heartbeatIntervalMs} ms) must be below consumer.sessionTimeout (${sessionTimeoutMs} ms)`);
  }

  const { ssl, logger } = options;
  if (ssl !== undefined && typeof ssl !== 'boolean' && (typeof ssl !== 'object' || ssl === null)) throw new ConfigError(`kafkaTransport: ssl must be true, false or TLS options, got ${JSON.stringify(ssl)}`);
  const levels = ['error', 'warn', 'info', 'debug'] as const;
  if (logger !== undefined && (typeof logger !== 'object' || logger === null || levels.some((level) => typeof logger[level] !== 'function'))) {
    throw new ConfigError(`kafkaTransport: logger must have ${levels.join(', ')} functions (fields, message)`);
  }

  const { groupInstanceId } = options;
  if (groupInstanceId !== undefined && (typeof groupInstanceId !== 'string' || groupInstanceId.trim() === '')) {
    throw new ConfigError(`kafkaTransport: groupInstanceId must be a non-empty string, got ${JSON.stringify(groupInstanceId)}`);
  }

  return {
    brokers: brokers.map((broker) => broker.trim()),
    groupInstanceId,
    tls: options.ssl === true ? {} : options.ssl ? options.ssl : undefined,
    saslOptions: saslOf(options.sasl),
    clientId,
    defaultPartitions: options.defaultPartitions === undefined ? undefined : positiveInteger(options.defaultPartitions, 'defaultPartitions'),
    replicationFactor: options.replicationFactor === undefined ? undefined : positiveInteger(options.replicationFactor, 'replicationFactor'),
    logger: atLevel(options.logger ?? defaultLogger, logLevel),
    retry: {
      retries,
      initialRetryTimeMs: toMs(retry.initialRetryTime ?? '300ms', 'kafkaTransport: retry.initialRetryTime'),
      maxRetryTimeMs: toMs(retry.maxRetryTime ?? '30s', 'kafkaTransport: retry.maxRetryTime'),
      factor,
      multiplier,
    },
    sessionTimeoutMs,
    rebalanceTimeoutMs: toMs(consumer.rebalanceTimeout ?? '60s', 'kafkaTransport: consumer.rebalanceTimeout'),
    heartbeatIntervalMs,
    groupConfigs: {
      ...(consumer.sessionTimeout === undefined ? {} : { 'consumer.session.timeout.ms': String(sessionTimeoutMs) }),
      ...(consumer.heartbeatInterval === undefined ? {} : { 'consumer.heartbeat.interval.ms': String(heartbeatIntervalMs) }),
    },
    maxWaitTimeMs: toMs(consumer.maxWaitTime ?? '500ms', 'kafkaTransport: consumer.maxWaitTime'),
    maxBytesPerPartition: positiveInteger(consumer.maxBytesPerPartition ?? 1024 * 1024, 'consumer.maxBytesPerPartition'),
    transactionTimeoutMs: toMs(options.transactionTimeout ?? '10s', 'kafkaTransport: transactionTimeout'),
  };
}

/** SASL options as @platformatic/kafka takes them. */
function saslOf(sasl: KafkaSasl | undefined): SASLOptions | undefined {
  if (sasl === undefined) return undefined;
  if (typeof sasl !== 'object' || sasl === null) throw new ConfigError(`kafkaTransport: sasl must be an object with a mechanism, got ${JSON.stringify(sasl)}`);
  const withPassword = ['plain', 'scram-sha-256', 'scram-sha-512'].includes(sasl.mechanism);
  const credentials = withPassword ? (['username', 'password'] as const).filter((name) => typeof (sasl as Record<string, unknown>)[name] !== 'string') : [];
  if (credentials.length > 0) throw new ConfigError(`kafkaTransport: sasl.${credentials[0]} must be a string for mechanism ${sasl.mechanism}`);
  if (sasl.mechanism === 'oauthbearer' && typeof sasl.token !== 'string' && typeof sasl.token !== 'function') throw new ConfigError('kafkaTransport: sasl.token must be a string or a function giving one');
  switch (sasl.mechanism) {
    case 'plain':
      return { mechanism: 'PLAIN', username: sasl.username, password: sasl.password };
    case 'scram-sha-256':
      return { mechanism: 'SCRAM-SHA-256', username: sasl.username, password: sasl.password };
    case 'scram-sha-512':
      return { mechanism: 'SCRAM-SHA-512', username: sasl.username, password: sasl.password };
    case 'oauthbearer':
      return { mechanism: 'OAUTHBEARER', token: sasl.token };
    default:
      throw new ConfigError(`kafkaTransport: sasl.mechanism must be one of plain, scram-sha-256, scram-sha-512, oauthbearer, got ${JSON.stringify((sasl as { mechanism?: unknown }).mechanism)}`);
  }
}

/** A logger that drops what is below `level`. */
function atLevel(logger: Logger, level: KafkaLogLevel): Logger {
  const rank = logLevels.indexOf(level);
  const quiet = () => undefined;
  return {
    error: rank >= 1 ? (fields, message) => logger.error(fields, message) : quiet,
    warn: rank >= 2 ? (fields, message) => logger.warn(fields, message) : quiet,
    info: rank >= 3 ? (fields, message) => logger.info(fields, message) : quiet,
    debug: rank >= 4 ? (fields, message) => logger.debug(fields, message) : quiet,
  };
}

function positiveInteger(value: number, what: string, { allowZero = false } = {}): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < (allowZero ? 0 : 1)) {
    throw new ConfigError(`kafkaTransport: ${what} must be a ${allowZero ? 'non-negative' : 'positive'} integer, got ${JSON.stringify(value)}`);
  }
  return value;
}
