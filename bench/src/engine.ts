/**
 * The engine contenders: an Eddy app timed from its first input record until every record,
 * repartition record and window result has been processed and written, fed one of three ways:
 *
 * - `append`: the pre-serialized input appended in batches straight to the embedded broker
 *   (`memoryTransport()`, memory state): the engine alone, no `app.send`.
 * - `send`: the same broker, the input sent by the host, `app.send` per record (a JSON value),
 *   awaited every 1,000 sends: what an embedding service pays on its input path.
 * - `level`: as `send`, on the durable embedded broker and state (`levelTransport` +
 *   `levelState`, one dir): every record written to disk before it is processed.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createApp, memoryTransport, silentLogger, type App, type MemoryTransport, type MetricsSnapshot } from '@eddy/core';
import { settleApp } from '@eddy/core/testing';
import { levelState, levelTransport } from '@eddy/state';
import { addSummary, emptyOutput, type AggregationKind, type RunOutput, type WindowShape, type WindowSummary } from './windowing.js';
import { INPUT_TOPIC, type Reading } from './workload.js';
import type { OutgoingRecord } from '@eddy/core';

export const OUTPUT_TOPIC = 'window-summaries';

/** CPU time (ms) this process used since `start` (a `process.cpuUsage()` reading). */
export function cpuSince(start: NodeJS.CpuUsage): number {
  const { user, system } = process.cpuUsage(start);
  return (user + system) / 1000;
}

/**
 * Runs `work` between the hooks (a profiler starts and stops there), timing only `work`: on the
 * wall clock and in CPU time of this process.
 */
export async function timed<T>(hooks: TimedHooks, work: () => Promise<T> | T): Promise<{ ms: number; cpuMs: number; result: T }> {
  await hooks.beforeTimed?.();
  const cpu = process.cpuUsage();
  const started = performance.now();
  const result = await work();
  const ms = performance.now() - started;
  const cpuMs = cpuSince(cpu);
  await hooks.afterTimed?.();
  return { ms, cpuMs, result };
}

export interface EngineOptions {
  /** Records per `transport.append` call; the run awaits `transport.idle()` after each. */
  readonly appendBatch: number;
  /** Records the broker hands a task per batch (memoryTransport `maxBatchSize`). */
  readonly maxBatchSize: number;
}

/** How the input reaches the app (see the module comment). */
export type EngineFeed = 'append' | 'send' | 'level';

/** Sends awaited together when the host feeds the app. */
export const SENDS_IN_FLIGHT = 1_000;

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
  feed: EngineFeed = 'append',
): Promise<EngineRun> {
  const dir = feed === 'level' ? await mkdtemp(join(tmpdir(), 'eddy-bench-level-')) : undefined;
  const quiet = { warn: () => undefined, info: () => undefined };
  const transport: MemoryTransport = dir
    ? levelTransport({ dir, defaultPartitions: 1, maxBatchSize: options.maxBatchSize, logger: quiet })
    : memoryTransport({ defaultPartitions: 1, maxBatchSize: options.maxBatchSize });
  await transport.ensureTopics([{ name: INPUT_TOPIC, partitions: 1 }]);
  const app = createApp({ id: 'bench', transport, ...(dir ? { state: levelState({ dir, logger: quiet }) } : {}), idleTimeout: false, logger: silentLogger });
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
  // What a host has in hand: values as objects, keys as text (not timed).
  const decoder = new TextDecoder();
  const values = feed === 'append' ? [] : input.map((record) => ({ value: JSON.parse(decoder.decode(record.value!)) as unknown, key: decoder.decode(record.key!), timestamp: record.timestamp }));
  try {
    const { ms, cpuMs } = await timed(hooks, async () => {
      if (feed === 'append') {
        for (let from = 0; from < input.length; from += options.appendBatch) {
          transport.append(input.slice(from, from + options.appendBatch));
          await transport.idle();
        }
      } else {
        await sendAll(app, values);
      }
      await settleApp(app, () => transport.idle());
    });

    const output = emptyOutput();
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
    if (dir) await rm(dir, { recursive: true, force: true });
  }
}

/** `app.send` for each record, awaiting every {@link SENDS_IN_FLIGHT} sends. */
export async function sendAll(app: App, records: ReadonlyArray<{ value: unknown; key: string; timestamp: number }>): Promise<void> {
  let inFlight: Promise<void>[] = [];
  for (const { value, key, timestamp } of records) {
    inFlight.push(app.send(INPUT_TOPIC, value, { key, timestamp }));
    if (inFlight.length === SENDS_IN_FLIGHT) {
      await Promise.all(inFlight);
      inFlight = [];
    }
  }
  await Promise.all(inFlight);
}
