import type { OperatorFunction } from 'rxjs';
import { partitionForKey } from '../../murmur2.js';
import type { Serde } from '../../serde.js';
import type { TaskContext } from '../context.js';
import { recordOperator } from '../operator.js';
import type { Signal } from '../signals.js';

/**
 * `to(topic)` and the writing half of repartition and `through` topics: serializes key and value
 * and queues the record for the task's producer, in the partition Kafka's default partitioner
 * would choose (murmur2 of the key bytes); records without a key rotate over partitions.
 */
export function sinkRecords(context: TaskContext, topic: string, keySerde: Serde<unknown>, valueSerde: Serde<unknown>, internal: boolean): OperatorFunction<Signal, Signal> {
  let roundRobin = 0;
  // Repartition records stay in process on the embedded broker: the value travels as the object.
  const keepValues = internal && context.keepsValues;
  return recordOperator(
    context,
    `to ${topic}`,
    (key, value, timestamp, _signal, emit) => {
      const keyBytes = key === undefined || key === null ? null : keySerde.serialize(key);
      const partitions = context.partitionsOf(topic);
      const partition = keyBytes ? partitionForKey(keyBytes, partitions) : roundRobin++ % partitions;
      if (keepValues) {
        context.produce({ topic, partition, key: keyBytes, value: null, timestamp, decoded: { key, value } });
      } else {
        const valueBytes = value === undefined || value === null ? null : valueSerde.serialize(value);
        context.produce({ topic, partition, key: keyBytes, value: valueBytes, timestamp });
      }
      if (!internal) context.metrics.recordsOut++;
      void emit;
    },
    'SERIALIZATION_FAILED',
  );
}
