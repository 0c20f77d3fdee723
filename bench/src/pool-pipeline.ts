/**
 * The worker-pool benchmark's pipeline: `keyBy → hopping('10s', '1s') → collect() → onClose(model)
 * → to('out')` on an embedded broker, run with the model inline (`onClose(fn)`) or on a worker
 * pool (`onClose(workerPool(...))`), timed from the first input record to the last result, with
 * the main thread's event-loop delay and utilization measured over the same span.
 */
import { monitorEventLoopDelay, performance, type IntervalHistogram } from 'node:perf_hooks';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { Worker } from 'node:worker_threads';
import { createApp, deadLetterTopic, memoryTransport, silentLogger, type OutgoingRecord, type WindowHandler } from '@eddy/core';
import type { WorkerPool } from '@eddy/ml';
import type { CpuWindow, PoolReading } from './pool-models.js';

export const POOL_INPUT_TOPIC = 'pool-readings';
export const POOL_OUTPUT_TOPIC = 'out';
const APP_ID = 'pool-bench';
/** Event time of the first record; a multiple of every window size and slide used. */
const START_TS = 1_700_000_000_000;
const WINDOW_SIZE_S = 10;
const WINDOW_SLIDE_S = 1;
const CLOSER_KEY = '__closer__';

export interface PipelineWorkloadOptions {
  /** Distinct keys (sensors). */
  readonly keys: number;
  /** Seconds of event time covered by the regular records. */
  readonly seconds: number;
  /** Records per key per second of event time. */
  readonly perKeyPerSecond: number;
}

export interface PipelineWorkload {
  readonly options: PipelineWorkloadOptions;
  /** Pre-serialized records, in timestamp order, the last one a far-future record of its own key. */
  readonly input: readonly OutgoingRecord[];
  /**
   * Windows the input closes: every key has records in every second, so each key has one window
   * per slide that overlaps [start, start + seconds): `seconds + size/slide - 1` of them. The
   * closing record's own key has windows too, but they never close.
   */
  readonly expectedWindows: number;
}

/** mulberry32: a small seeded PRNG, so every run gets the same input. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function buildPipelineWorkload(options: PipelineWorkloadOptions): PipelineWorkload {
  const { keys, seconds, perKeyPerSecond } = options;
  for (const [name, value] of Object.entries(options)) {
    if (!Number.isInteger(value) || value < 1) throw new Error(`pool bench workload: ${name} must be a positive integer, got ${String(value)}`);
  }
  const random = prng(7);
  const encoder = new TextEncoder();
  const names = Array.from({ length: keys }, (_, index) => `sensor-${String(index).padStart(3, '0')}`);
  const keyBytes = names.map((name) => encoder.encode(name));
  const perSecond = keys * perKeyPerSecond;
  const input: OutgoingRecord[] = [];
  const make = (sensor: string, key: Uint8Array, ts: number): OutgoingRecord => {
    const reading: PoolReading = { sensor, value: Math.round((15 + random() * 15) * 100) / 100, ts };
    return { topic: POOL_INPUT_TOPIC, partition: 0, key, value: encoder.encode(JSON.stringify(reading)), timestamp: ts };
  };
  const records = perSecond * seconds;
  for (let index = 0; index < records; index++) {
    const sensor = index % keys;
    input.push(make(names[sensor]!, keyBytes[sensor]!, START_TS + Math.floor((index * 1000) / perSecond)));
  }
  // Far past every window's end: closes every window of the regular keys.
  input.push(make(CLOSER_KEY, encoder.encode(CLOSER_KEY), START_TS + seconds * 1000 + 3_600_000));
  const expectedWindows = keys * (seconds + WINDOW_SIZE_S / WINDOW_SLIDE_S - 1);
  return { options, input, expectedWindows };
}

export interface PipelineFeed {
  /** Records appended to the broker at a time; the next chunk comes once the source has taken this one. */
  readonly appendBatch: number;
  /** The run fails if the results are not all in after this long. */
  readonly timeoutMs: number;
}

export type PipelineMode =
  | { readonly kind: 'inline'; readonly label: string; readonly handler: (window: CpuWindow) => unknown }
  | { readonly kind: 'pool'; readonly label: string; readonly pool: WorkerPool<CpuWindow, unknown> };

export interface EventLoopDelay {
  /** Percentiles and max of the main thread's event-loop delay (ms), resolution 1 ms. */
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  readonly meanMs: number;
  /** Samples the histogram took (one per 1 ms timer turn that got to run). */
  readonly samples: number;
}

export interface PipelineRun {
  readonly label: string;
  readonly mode: 'inline' | 'pool';
  /** From the first input record appended to the last result produced. */
  readonly ms: number;
  /** From the first input record appended until the source was fully processed (the pool may still be working). */
  readonly sourceDoneMs: number;
  readonly windowsClosed: number;
  readonly windowsPerSecond: number;
  readonly eventLoopDelay: EventLoopDelay;
  /**
   * The same, from the moment the source was fully processed to the end: only the model's work
   * (on the workers, for a pool) is left then. Null when nothing was left (inline runs).
   */
  readonly eventLoopDelayAfterSource: EventLoopDelay | null;
  /** Share of the span the main thread was busy (performance.eventLoopUtilization). */
  readonly eventLoopUtilization: number;
  readonly counts: {
    readonly inputRecords: number;
    readonly expectedWindows: number;
    readonly windowsClosed: number;
    readonly outputRecords: number;
    readonly deadLetters: number;
    readonly lateRecords: number;
  };
  /** Pool runs only: how the engine fed the pool. */
  readonly poolCalls?: {
    readonly runCalls: number;
    readonly windowsSubmitted: number;
    readonly meanWindowsPerCall: number;
    readonly maxWindowsPerCall: number;
    /** The pool's queue depth right after a run() call was submitted, at its highest. */
    readonly maxQueueDepth: number;
    readonly maxQueue: number;
  };
  /** FNV-1a over the output values in topic order: equal digests mean equal results in equal order. */
  readonly outputDigest: string;
}

export interface PipelineRunDetail {
  readonly run: PipelineRun;
  /** The output values in topic order (not printed; compared between runs). */
  readonly outputs: readonly string[];
}

const nsToMs = (ns: number) => Math.round((ns / 1e6) * 1000) / 1000;

function summarize(histogram: IntervalHistogram): EventLoopDelay | null {
  if (histogram.count === 0) return null;
  return {
    p50Ms: nsToMs(histogram.percentile(50)),
    p99Ms: nsToMs(histogram.percentile(99)),
    maxMs: nsToMs(histogram.max),
    meanMs: nsToMs(histogram.mean),
    samples: histogram.count,
  };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * The event-loop delay of an idle main thread over `ms`: the floor this machine (its scheduler,
 * and whatever else runs on it) puts under every other measurement.
 */
export async function idleEventLoopDelay(ms: number): Promise<EventLoopDelay | null> {
  const histogram = monitorEventLoopDelay({ resolution: 1 });
  histogram.enable();
  await sleep(ms);
  histogram.disable();
  return summarize(histogram);
}

/**
 * The event-loop delay of an idle main thread over `ms` while `threads` worker threads spin on
 * the CPU (no pool, no pipeline, no messages): what the OS alone does to the main thread when it
 * shares the cores with busy workers. The control for the pool runs' delays.
 */
export async function busyThreadsEventLoopDelay(ms: number, threads: number): Promise<EventLoopDelay | null> {
  const spin = `const { workerData } = require('node:worker_threads');
    const end = performance.now() + workerData;
    let x = 1;
    while (performance.now() < end) for (let i = 0; i < 10000; i++) x = Math.sqrt(x + i);`;
  const workers = Array.from({ length: threads }, () => new Worker(spin, { eval: true, workerData: ms + 200 }));
  const online = workers.map((worker) => new Promise((resolve) => worker.once('online', resolve)));
  const exited = workers.map((worker) => new Promise((resolve) => worker.once('exit', resolve)));
  try {
    await Promise.all(online);
    await sleep(100);
    return await idleEventLoopDelay(ms);
  } finally {
    await Promise.all(workers.map((worker) => worker.terminate()));
    await Promise.all(exited);
  }
}

function digest(values: readonly string[]): string {
  let hash = 0x811c9dc5;
  for (const value of values) {
    for (let index = 0; index < value.length; index++) hash = Math.imul(hash ^ value.charCodeAt(index), 0x01000193);
    hash = Math.imul(hash ^ 0x0a, 0x01000193);
  }
  return (hash >>> 0).toString(16).padStart(8, '0');
}

/**
 * One run on a fresh broker and app. Setup (app start, which starts the pool's workers and runs
 * the model's `init()`) is not timed. The input is appended `appendBatch` records at a time; the
 * run ends when a second consumer group has seen one result or dead letter per closed window.
 */
export async function runPipeline(workload: PipelineWorkload, mode: PipelineMode, feed: PipelineFeed = { appendBatch: 100, timeoutMs: 300_000 }): Promise<PipelineRunDetail> {
  const { appendBatch, timeoutMs } = feed;
  const transport = memoryTransport({ defaultPartitions: 1 });
  transport.createTopic({ name: POOL_INPUT_TOPIC, partitions: 1 });
  const app = createApp({ id: APP_ID, transport, idleTimeout: false, logger: silentLogger });

  const calls = { runCalls: 0, windowsSubmitted: 0, maxWindowsPerCall: 0, maxQueueDepth: 0 };
  let handler: WindowHandler<CpuWindow, unknown>;
  if (mode.kind === 'inline') {
    handler = mode.handler;
  } else {
    // Counts the engine's run() calls; the pool itself is what onClose gets.
    const pool = mode.pool;
    const run = pool.run.bind(pool);
    pool.run = (items) => {
      calls.runCalls += 1;
      calls.windowsSubmitted += items.length;
      calls.maxWindowsPerCall = Math.max(calls.maxWindowsPerCall, items.length);
      const outcomes = run(items);
      calls.maxQueueDepth = Math.max(calls.maxQueueDepth, pool.queueDepth);
      return outcomes;
    };
    handler = pool;
  }
  app
    .from<PoolReading>(POOL_INPUT_TOPIC)
    .keyBy((reading) => reading.sensor)
    .hopping(`${WINDOW_SIZE_S}s`, `${WINDOW_SLIDE_S}s`)
    .collect()
    .onClose(handler)
    .to(POOL_OUTPUT_TOPIC);
  await app.start();

  const dlqTopic = deadLetterTopic(APP_ID);
  let outputRecords = 0;
  let deadLetters = 0;
  let target = Number.POSITIVE_INFINITY;
  let finish: () => void = () => undefined;
  const finished = new Promise<void>((resolve) => {
    finish = resolve;
  });
  const check = () => {
    if (outputRecords + deadLetters >= target) finish();
  };
  const reader = await transport.subscribe(`${APP_ID}-reader`, [POOL_OUTPUT_TOPIC, dlqTopic], {
    onAssign: async () => undefined,
    onRevoke: async () => undefined,
    onRecords: async (records) => {
      if (records[0]?.topic === dlqTopic) deadLetters += records.length;
      else outputRecords += records.length;
      check();
    },
  });

  let timer: NodeJS.Timeout | undefined;
  const histogram = monitorEventLoopDelay({ resolution: 1 });
  const afterSource = monitorEventLoopDelay({ resolution: 1 });
  try {
    histogram.enable();
    // The histogram's first timer turn only sets its baseline; let it happen before the run, or
    // a stall right at the start (an inline run's first batch of windows) would not be recorded.
    await sleep(5);
    const utilizationBefore = performance.eventLoopUtilization();
    const started = performance.now();
    // Input arrives in chunks, as from a live source, each in its own turn of the event loop.
    // (transport.idle() delivers in microtasks: without the turn, or appended all at once, the
    // whole input would be processed in one block of the loop, and inline, every window too.)
    for (let from = 0; from < workload.input.length; from += appendBatch) {
      if (from > 0) await nextTurn();
      transport.append(workload.input.slice(from, from + appendBatch));
      await transport.idle();
    }
    const sourceDoneMs = performance.now() - started;
    afterSource.enable();
    // Every record is processed, so every window that will close has closed (the results of the
    // pool's windows may still be on their way).
    target = app.metrics().windowsClosed;
    check();
    await Promise.race([
      finished,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`${mode.label}: ${outputRecords} results and ${deadLetters} dead letters of ${target} windows after ${timeoutMs} ms`)),
          timeoutMs,
        );
      }),
    ]);
    const ms = performance.now() - started;
    const utilization = performance.eventLoopUtilization(utilizationBefore);
    // The histogram records a stall when its timer next runs: give it that turn, or a stall at
    // the very end of the run (all of an inline run whose input is one batch) would go unseen.
    await sleep(2);
    histogram.disable();
    afterSource.disable();
    clearTimeout(timer);

    const snapshot = app.metrics();
    const decoder = new TextDecoder();
    const outputs = transport.records(POOL_OUTPUT_TOPIC).map((record) => (record.value === null ? 'null' : decoder.decode(record.value)));
    const windowsClosed = snapshot.windowsClosed;
    const run: PipelineRun = {
      label: mode.label,
      mode: mode.kind,
      ms: Math.round(ms * 10) / 10,
      sourceDoneMs: Math.round(sourceDoneMs * 10) / 10,
      windowsClosed,
      windowsPerSecond: Math.round((windowsClosed / (ms / 1000)) * 10) / 10,
      eventLoopDelay: summarize(histogram) ?? { p50Ms: 0, p99Ms: 0, maxMs: 0, meanMs: 0, samples: 0 },
      // Too short a span after the source to say anything (inline, and runs the source paced).
      eventLoopDelayAfterSource: ms - sourceDoneMs >= 50 ? summarize(afterSource) : null,
      eventLoopUtilization: Math.round(utilization.utilization * 1000) / 1000,
      counts: {
        inputRecords: workload.input.length,
        expectedWindows: workload.expectedWindows,
        windowsClosed,
        outputRecords: outputs.length,
        deadLetters: transport.records(dlqTopic).length,
        lateRecords: snapshot.lateRecords,
      },
      ...(mode.kind === 'pool'
        ? {
            poolCalls: {
              runCalls: calls.runCalls,
              windowsSubmitted: calls.windowsSubmitted,
              meanWindowsPerCall: calls.runCalls === 0 ? 0 : Math.round((calls.windowsSubmitted / calls.runCalls) * 10) / 10,
              maxWindowsPerCall: calls.maxWindowsPerCall,
              maxQueueDepth: calls.maxQueueDepth,
              maxQueue: mode.pool.maxQueue,
            },
          }
        : {}),
      outputDigest: digest(outputs),
    };
    return { run, outputs };
  } finally {
    clearTimeout(timer);
    histogram.disable();
    afterSource.disable();
    await reader.close();
    // Stops the app and closes the pool (the app owns the batch handlers it was given).
    await app.stop();
  }
}
