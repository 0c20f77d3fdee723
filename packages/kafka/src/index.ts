/**
 * @eddy/kafka: Eddy's transport on Apache Kafka, through @platformatic/kafka's public API.
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
export type { KafkaConsumerTuning, KafkaLogLevel, KafkaRetryOptions, KafkaSasl, KafkaTransportOptions } from './options.js';
