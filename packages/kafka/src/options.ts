import { ConfigError, defaultLogger, toMs, type Duration, type Logger } from '@eddy/core';
import type { ConnectionOptions as TlsOptions } from 'node:tls';
import type { SASLOptions } from '@platformatic/kafka';
import type { KafkaConfig, RetryOptions } from 'kafkajs';

/** How much kafkajs itself logs (through {@link KafkaTransportOptions.logger}). */
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
  /** A member silent for this long leaves the group. Default `'30s'`. */
  readonly sessionTimeout?: Duration;
  /** How long the group waits for members to rejoin (and finish revoking) in a rebalance. Default `'60s'`. */
  readonly rebalanceTimeout?: Duration;
  /** Heartbeats, also the latency of noticing a rebalance. Must be below sessionTimeout. Default `'1s'`. */
  readonly heartbeatInterval?: Duration;
  /** How long the broker holds a fetch that finds no records. Default `'500ms'`. */
  readonly maxWaitTime?: Duration;
  /** Bytes fetched per partition per request. Default 1 MiB. */
  readonly maxBytesPerPartition?: number;
}

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
  readonly ssl?: KafkaConfig['ssl'];
  /** SASL authentication (plain, scram-sha-256/512, aws, oauthbearer), as kafkajs takes it. */
  readonly sasl?: KafkaConfig['sasl'];
  /**
   * Partitions of the topics Eddy creates without being told a count: outputs (`to(topic)`) and
   * sources that do not exist yet. Unset by default, in which case the runtime falls back to 1
   * partition; set it, or create such topics beforehand, for real parallelism.
   */
  readonly defaultPartitions?: number;
  /**
   * Replicas of the topics Eddy creates (internal topics, and the ones above). Default: the
   * broker's `default.replication.factor`, or, if that cannot be read, the smaller of 3 and the
   * number of brokers.
   */
  readonly replicationFactor?: number;
  /** How much kafkajs logs. Default `'warn'`. */
  readonly logLevel?: KafkaLogLevel;
  /** Where kafkajs and the transport log; a pino logger fits. Default: `@eddy/core`'s `defaultLogger`. */
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
  /** @internal Which client runs the transport while the move off kafkajs is under way. */
  readonly client?: 'kafkajs' | 'platformatic';
}

/** The validated options, durations in milliseconds. */
export interface KafkaSettings {
  readonly brokers: string[];
  readonly groupInstanceId: string | undefined;
  readonly client: 'kafkajs' | 'platformatic';
  /** TLS and SASL as @platformatic/kafka takes them. */
  readonly tls: TlsOptions | undefined;
  readonly saslOptions: SASLOptions | undefined;
  readonly clientId: string;
  readonly ssl: KafkaConfig['ssl'];
  readonly sasl: KafkaConfig['sasl'];
  readonly defaultPartitions: number | undefined;
  readonly replicationFactor: number | undefined;
  readonly logLevel: KafkaLogLevel;
  readonly logger: Logger;
  /** In kafkajs's shape (milliseconds). */
  readonly retry: RetryOptions;
  readonly sessionTimeoutMs: number;
  readonly rebalanceTimeoutMs: number;
  readonly heartbeatIntervalMs: number;
  readonly maxWaitTimeMs: number;
  readonly maxBytesPerPartition: number;
}

const logLevels: readonly KafkaLogLevel[] = ['nothing', 'error', 'warn', 'info', 'debug'];

/** Validates {@link KafkaTransportOptions} at once, naming the bad value, and fills in defaults. */
export function resolveSettings(options: KafkaTransportOptions): KafkaSettings {
  if (typeof options !== 'object' || options === null) throw new ConfigError(`kafkaTransport: expected options, got ${String(options)}`);
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

  const { groupInstanceId } = options;
  if (groupInstanceId !== undefined && (typeof groupInstanceId !== 'string' || groupInstanceId.trim() === '')) {
    throw new ConfigError(`kafkaTransport: groupInstanceId must be a non-empty string, got ${JSON.stringify(groupInstanceId)}`);
  }

  return {
    brokers: brokers.map((broker) => broker.trim()),
    groupInstanceId,
    client: options.client ?? (process.env.EDDY_KAFKA_CLIENT === 'platformatic' ? 'platformatic' : 'kafkajs'),
    tls: options.ssl === true ? {} : options.ssl ? (options.ssl as TlsOptions) : undefined,
    saslOptions: saslOf(options.sasl),
    clientId,
    ssl: options.ssl,
    sasl: options.sasl,
    defaultPartitions: options.defaultPartitions === undefined ? undefined : positiveInteger(options.defaultPartitions, 'defaultPartitions'),
    replicationFactor: options.replicationFactor === undefined ? undefined : positiveInteger(options.replicationFactor, 'replicationFactor'),
    logLevel,
    logger: options.logger ?? defaultLogger,
    retry: {
      retries,
      initialRetryTime: toMs(retry.initialRetryTime ?? '300ms', 'kafkaTransport: retry.initialRetryTime'),
      maxRetryTime: toMs(retry.maxRetryTime ?? '30s', 'kafkaTransport: retry.maxRetryTime'),
      factor,
      multiplier,
    },
    sessionTimeoutMs,
    rebalanceTimeoutMs: toMs(consumer.rebalanceTimeout ?? '60s', 'kafkaTransport: consumer.rebalanceTimeout'),
    heartbeatIntervalMs,
    maxWaitTimeMs: toMs(consumer.maxWaitTime ?? '500ms', 'kafkaTransport: consumer.maxWaitTime'),
    maxBytesPerPartition: positiveInteger(consumer.maxBytesPerPartition ?? 1024 * 1024, 'consumer.maxBytesPerPartition'),
  };
}

/** kafkajs-style SASL options as @platformatic/kafka takes them. */
function saslOf(sasl: KafkaConfig['sasl']): SASLOptions | undefined {
  if (!sasl) return undefined;
  const mechanisms = { plain: 'PLAIN', 'scram-sha-256': 'SCRAM-SHA-256', 'scram-sha-512': 'SCRAM-SHA-512', oauthbearer: 'OAUTHBEARER' } as const;
  const mechanism = mechanisms[sasl.mechanism as keyof typeof mechanisms];
  if (!mechanism) throw new ConfigError(`kafkaTransport: sasl.mechanism must be one of ${Object.keys(mechanisms).join(', ')}, got ${JSON.stringify(sasl.mechanism)}`);
  const { username, password } = sasl as { username?: string; password?: string };
  return { mechanism, username, password };
}

function positiveInteger(value: number, what: string, { allowZero = false } = {}): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < (allowZero ? 0 : 1)) {
    throw new ConfigError(`kafkaTransport: ${what} must be a ${allowZero ? 'non-negative' : 'positive'} integer, got ${JSON.stringify(value)}`);
  }
  return value;
}
