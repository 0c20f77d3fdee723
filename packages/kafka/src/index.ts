/**
 * @eddy/kafka: Eddy's transport on Apache Kafka, through kafkajs.
 *
 * @example
 * ```ts
 * import { createApp } from '@eddy/core';
 * import { kafkaTransport } from '@eddy/kafka';
 *
 * const app = createApp({ id: 'sensors', transport: kafkaTransport({ brokers: ['localhost:9092'] }) });
 * ```
 */
export { kafkaTransport, KafkaTransport } from './transport.js';
/** Whether kafkajs's producers and fetches in this process use `@eddy/kafka`'s fixes (false if kafkajs loaded first). */
export { producerFixesInstalled } from './producer-fixes.js';
export { fetchFixInstalled } from './fetch-fixes.js';
export type { KafkaConsumerTuning, KafkaLogLevel, KafkaRetryOptions, KafkaTransportOptions } from './options.js';
