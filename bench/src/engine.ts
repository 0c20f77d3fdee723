/**
 * The engine contender: an Eddy app on a shared embedded broker (`memoryTransport()`), fed by
 * appending the pre-serialized input in batches straight to the broker (no `app.send` overhead),
 * timed from the first append until the broker is idle, i.e. every record, repartition record and
 * window result has been processed and produced.
 */
import { createApp, memoryTransport, silentLogger, type MetricsSnapshot } from '@eddy/core';
import { addSummary, emptyOutput, type AggregationKind, type RunOutput, type WindowShape, type WindowSummary } from './windowing.js';
import { INPUT_TOPIC, type Reading } from './workload.js';
import type { OutgoingRecord } from '@eddy/core';

export const OUTPUT_TOPIC = 'window-summaries';

/** CPU time (ms) this process used since `start` (a `process.cpuUsage()` reading). */
export function cpuSince(start: NodeJS.CpuUsage): number {
  const { user, system } = process.cpuUsage(start);
  return (user + system) / 1000;
}

export interface EngineOptions {
  /** Records per `transport.append` call; the run awaits `transport.idle()` after each. */
  readonly appendBatch: number;
  /** Records the broker hands a task per batch (memoryTransport `maxBatchSize`). */
  readonly maxBatchSize: number;
}

/** Called right before and after the timed part (the profiler starts and stops there). */
export interface TimedHooks {
  readonly beforeTimed?: () => Promise<void>;
  readonly afterTimed?: () => Promise<void>;
}

export interface EngineRun {
  /** Wall-clock time of the timed part. */
  readonly ms: number;
  /** CPU time (user + system, all threads of the process, e.g. GC helpers) of the timed part. */
  readonly cpuMs: number;
  readonly output: RunOutput;
  readonly metrics: Pick<MetricsSnapshot, 'recordsIn' | 'recordsOut' | 'windowsClosed' | 'lateRecords' | 'deadLetters'>;
  /** Records in the repartition topic (keyBy before a window routes through one). */
  readonly repartitioned: number;
}

/**
 * One run: builds a fresh broker and app (not timed), then times feeding the input through
 * `keyBy(r => r.sensor) → <window> → count()|collect() → onClose(summary) → to(OUTPUT_TOPIC)`.
 */
export async function runEngine(
  input: readonly OutgoingRecord[],
  shape: WindowShape,
  kind: AggregationKind,
  options: EngineOptions,
  hooks: TimedHooks = {},
): Promise<EngineRun> {
  const transport = memoryTransport({ defaultPartitions: 1, maxBatchSize: options.maxBatchSize });
  transport.createTopic({ name: INPUT_TOPIC, partitions: 1 });
  const app = createApp({ id: 'bench', transport, idleTimeout: false, logger: silentLogger });
  const keyed = app.from<Reading>(INPUT_TOPIC).keyBy((reading) => reading.sensor);
  const windowed = shape.kind === 'hopping' ? keyed.hopping(shape.sizeMs, shape.slideMs, { grace: shape.graceMs }) : keyed.tumbling(shape.sizeMs, { grace: shape.graceMs });
  if (kind === 'count') {
    windowed
      .count()
      .onClose((window): WindowSummary => ({ sensor: window.key, start: window.start, count: window.value }))
      .to(OUTPUT_TOPIC);
  } else {
    windowed
      .collect()
      .onClose((window): WindowSummary => ({ sensor: window.key, start: window.start, count: window.value.length }))
      .to(OUTPUT_TOPIC);
  }
  await app.start();
  try {
    await hooks.beforeTimed?.();
    const cpu = process.cpuUsage();
    const started = performance.now();
    for (let from = 0; from < input.length; from += options.appendBatch) {
      transport.append(input.slice(from, from + options.appendBatch));
      await transport.idle();
    }
    await transport.idle();
    const ms = performance.now() - started;
    const cpuMs = cpuSince(cpu);
    await hooks.afterTimed?.();

    const output = emptyOutput();
    const decoder = new TextDecoder();
    for (const record of transport.records(OUTPUT_TOPIC)) addSummary(output, JSON.parse(decoder.decode(record.value!)) as WindowSummary);
    const snapshot = app.metrics();
    output.lateRecords = snapshot.lateRecords;
    const repartitioned = transport
      .topicNames()
      .filter((name) => name.endsWith('-repartition'))
      .reduce((sum, name) => sum + transport.records(name).length, 0);
    const { recordsIn, recordsOut, windowsClosed, lateRecords, deadLetters } = snapshot;
    return { ms, cpuMs, output, metrics: { recordsIn, recordsOut, windowsClosed, lateRecords, deadLetters }, repartitioned };
  } finally {
    await app.stop();
  }
}
