import type { OperatorFunction } from 'rxjs';
import { partitionForKey } from '../../murmur2.js';
import type { Serde } from '../../serde.js';
import type { TaskContext } from '../context.js';
import { recordOperator } from '../operator.js';
import { encodeReplayStamp, ORIGIN_HEADER, replaySourceOf, type ReplayStamp } from '../origin.js';
import type { Origin, Signal } from '../signals.js';
import type { Headers } from '../../transport/types.js';

/**
 * `to(topic)` and the writing half of repartition and `through` topics: serializes key and value
 * and queues the record for the task's producer, in the partition Kafka's default partitioner
 * would choose (murmur2 of the key bytes); records without a key rotate over partitions.
 */
export function sinkRecords(context: TaskContext, topic: string, keySerde: Serde<unknown>, valueSerde: Serde<unknown>, internal: boolean): OperatorFunction<Signal, Signal> {
  let roundRobin = 0;
  const routes = new Map<unknown, { bytes: Uint8Array; partition: number }>();
  // Repartition records stay in process on the embedded broker: the value travels as the object.
  const keepValues = internal && context.keepsValues;
  // Repartition records name the input record they come from (and which of its outputs they are),
  // so that the reading task can drop the copies a replay after a crash writes again.
  let lastOrigin: Origin | undefined;
  let outputIndex = 0;
  let source = '';
  /** Moves the replay stamp fields (`source`, `outputIndex`) to this output of `origin`. */
  const follow = (origin: Origin): void => {
    outputIndex = origin === lastOrigin ? outputIndex + 1 : 0;
    if (!lastOrigin || origin.partition !== lastOrigin.partition || origin.topic !== lastOrigin.topic) source = replaySourceOf(origin);
    lastOrigin = origin;
  };
  return recordOperator(
    context,
    `to ${topic}`,
    (key, value, timestamp, signal, emit) => {
      let keyBytes: Uint8Array | null = null;
      let partition: number;
      if (key === undefined || key === null) {
        partition = roundRobin++ % context.partitionsOf(topic);
      } else {
        // Keys repeat: serialize and hash each one once.
        let routed = typeof key === 'object' ? undefined : routes.get(key);
        if (!routed) {
          const bytes = keySerde.serialize(key);
          routed = { bytes, partition: partitionForKey(bytes, context.partitionsOf(topic)) };
          if (typeof key !== 'object') {
            if (routes.size >= 10_000) routes.clear();
            routes.set(key, routed);
          }
        }
        keyBytes = routed.bytes;
        partition = routed.partition;
      }
      let stamp: ReplayStamp | undefined;
      if (internal && signal.origin) {
        follow(signal.origin);
        // A local task of this partition may take the record directly (see Task.handOff).
        if (context.handOff?.({ topic, partition, key, value, timestamp, replaySource: source, replayOffset: signal.origin.offset, replayIndex: outputIndex, upstream: signal.origin })) return;
        stamp = [source, signal.origin.offset, outputIndex];
      }
      if (keepValues) {
        // In process the stamp rides along as numbers; no header to build or parse.
        context.produce({ topic, partition, key: keyBytes, value: null, timestamp, decoded: { key, value, origin: stamp } });
      } else {
        const valueBytes = value === undefined || value === null ? null : valueSerde.serialize(value);
        const headers: Headers | undefined = stamp ? { [ORIGIN_HEADER]: encodeReplayStamp(stamp) } : undefined;
        context.produce({ topic, partition, key: keyBytes, value: valueBytes, timestamp, headers });
      }
      if (!internal) context.metrics.recordsOut++;
      void emit;
    },
    'SERIALIZATION_FAILED',
  );
}
