/**
 * @eddy/core: the typed pipeline DSL, windows and time, tasks and the commit protocol, serdes,
 * errors, the embedded broker and in-memory state.
 */
export { createApp, App } from './app.js';
export type { AppOptions, HealthReport, SendOptions, SourceOptions, StoredWindow, StoreReader, TableReader, WindowStoreReader } from './app.js';
export type { AppEvents, AppState } from './runtime/lifecycle.js';
export { Stream, KeyedStream, WindowedStream, WindowedTable, Table, GlobalTable } from './dsl/stages.js';
export type { SinkOptions, StreamJoinOptions, TableOptions } from './dsl/stages.js';
export type { Duration } from './duration.js';
export { toMs } from './duration.js';
export type { WindowOptions } from './windows/definitions.js';
export type { AggregateSpec } from './aggregations.js';
export { BATCH_HANDLER, isBatchHandler } from './handler.js';
export type { HandlerOutcome, HandlerResult, LateRecord, WindowBatchHandler, WindowHandler, WindowResult } from './handler.js';
export { serdes, json, string, bytes } from './serde.js';
export type { Serde } from './serde.js';
export { EddyError, ConfigError, describeError, RecordsRejectedError } from './errors.js';
export type { ErrorCode, RejectedRecord } from './errors.js';
export { systemClock } from './clock.js';
export type { Clock, TimerHandle } from './clock.js';
export type { Logger } from './logger.js';
export { defaultLogger, silentLogger } from './logger.js';
export { memoryTransport, MemoryTransport } from './transport/memory.js';
export type { MemoryTransportOptions, RetentionOptions } from './transport/memory.js';
export type {
  Alignment,
  CaughtUp,
  ConsumerListener,
  DecodedRecord,
  Headers,
  IncomingRecord,
  OutgoingRecord,
  TopicPartition,
  TopicPartitionOffset,
  TopicSpec,
  TransactionalProducer,
  Transport,
  TransportConsumer,
  TransportProducer,
} from './transport/types.js';
export { partitionKey } from './transport/types.js';
export { passHorizon } from './transport/alignment.js';
export type { WaitingNext } from './transport/alignment.js';
export { memoryState } from './state/memory.js';
export type { KeyRange, PartitionStore, StateBackend, StoreEntry, StoreSpec } from './state/backend.js';
export { compareBytes, decodeWindowKey, encodeWindowKey, keyPrefix } from './state/keys.js';
export type { MetricsSnapshot } from './runtime/metrics.js';
export { murmur2, partitionForKey } from './murmur2.js';
export { changelogTopic, deadLetterTopic, repartitionTopic } from './dsl/topology.js';
