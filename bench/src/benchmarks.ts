/**
 * The benchmarks, one timed run of each, and the statistics over runs (median). The runner
 * (`run.ts`) decides the schedule: warm-up, GC before each run, rounds interleaving contenders.
 */
import { writeFileSync } from 'node:fs';
import { runNaive, runSliced } from './baseline.js';
import { cpuSince, runEngine, type EngineFeed, type EngineOptions } from './engine.js';
import { Profiler, summarize, type CpuProfile, type ProfileSummary } from './profile.js';
import { HOPPING_10S_1S, TUMBLING_10S, type AggregationKind, type RunOutput, type WindowShape } from './windowing.js';
import { buildWorkload, defaultWorkload, type Workload } from './workload.js';

export type Contender = 'engine' | 'send' | 'level' | 'baseline' | 'naive';

export interface BenchmarkDef {
  readonly name: string;
  readonly contender: Contender;
  readonly shape: WindowShape;
  readonly aggregation: AggregationKind;
  readonly description: string;
}

const describeShape = (shape: WindowShape) => (shape.kind === 'hopping' ? `hopping(${shape.sizeMs / 1000}s, ${shape.slideMs / 1000}s)` : `tumbling(${shape.sizeMs / 1000}s)`);

function def(contender: Contender, shape: WindowShape, aggregation: AggregationKind): BenchmarkDef {
  const what = `${describeShape(shape)}.${aggregation}()`;
  const description = {
    engine: `Eddy on memoryTransport: keyBy(r => r.sensor) → ${what} → onClose(summary) → to(topic)`,
    send: `the same fed by the host: app.send per record (a JSON value), 1,000 sends in flight`,
    level: `the same fed by app.send on levelTransport + levelState (log and state on disk)`,
    baseline: `hand loop, sliced: JSON decode + re-encode per record, one slice update per record, ${what} combined from slices at close`,
    naive: `hand loop, naive: JSON decode + re-encode per record, the record added to every overlapping window of ${what}`,
  }[contender];
  return { name: `${contender}-${shape.kind}-${aggregation}`, contender, shape, aggregation, description };
}

/** Every benchmark, in the order a full run goes through them. */
export const benchmarks: readonly BenchmarkDef[] = [
  def('baseline', HOPPING_10S_1S, 'count'),
  def('engine', HOPPING_10S_1S, 'count'),
  def('baseline', HOPPING_10S_1S, 'collect'),
  def('engine', HOPPING_10S_1S, 'collect'),
  def('baseline', TUMBLING_10S, 'count'),
  def('engine', TUMBLING_10S, 'count'),
  def('naive', HOPPING_10S_1S, 'count'),
  def('naive', HOPPING_10S_1S, 'collect'),
  def('send', HOPPING_10S_1S, 'count'),
  def('level', HOPPING_10S_1S, 'count'),
];

export interface RunOptions extends EngineOptions {
  readonly records: number;
}

/** What one timed run of a benchmark reports. */
export interface Sample {
  /** Wall-clock time. */
  readonly ms: number;
  /** CPU time of the process (user + system, all threads) over the same span. */
  readonly cpuMs: number;
  readonly output: RunOutput;
  readonly engine?: EngineInfo;
}

export interface EngineInfo {
  readonly metrics: Record<string, number>;
  /** Records written to the repartition topic (keyBy before a window). */
  readonly repartitioned: number;
  readonly appendBatch: number;
  readonly maxBatchSize: number;
}

export interface BenchmarkResult {
  readonly name: string;
  readonly description: string;
  readonly contender: Contender;
  readonly window: string;
  readonly aggregation: AggregationKind;
  /** Input records per run (the far-future closing record included). */
  readonly records: number;
  /** records / median time. */
  readonly recordsPerSecond: number;
  readonly nsPerRecord: number;
  readonly medianMs: number;
  readonly minMs: number;
  readonly maxMs: number;
  /** (max - min) / median over the measured runs. */
  readonly spread: number;
  /** The measured runs in the order they ran (one per round). */
  readonly samplesMs: number[];
  /**
   * The same on CPU time (user + system of the benchmark's process, GC helper threads included):
   * hardly affected by other processes competing for the cores, unlike wall-clock time.
   */
  readonly cpu: { readonly recordsPerSecond: number; readonly nsPerRecord: number; readonly medianMs: number; readonly samplesMs: number[] };
  readonly warmup: number;
  readonly repetitions: number;
  /** Result windows of the last run: equal across contenders of one window shape and aggregation. */
  readonly output: RunOutput;
  readonly inputHash: string;
  readonly gcBetweenRuns: boolean;
  /** Heap in use right after the last run, before collecting (what the run left live + garbage). */
  readonly heapUsedMB: number;
  readonly engine?: EngineInfo;
  /** Self time of extra, profiled runs (`--profile`): where the time goes. */
  readonly profile?: ProfileSummary & { readonly file: string; readonly runs: number };
}

const gc = (globalThis as { gc?: () => void }).gc;

export const gcAvailable = gc !== undefined;

/** A full collection (twice, so that finalizers' garbage goes too), when `--expose-gc` is on. */
export function collectGarbage(): void {
  if (!gc) return;
  gc();
  gc();
}

export function workloadFor(records: number): Workload {
  return buildWorkload({ ...defaultWorkload, records });
}

/** How an engine contender is fed (see engine.ts); undefined for the hand loops. */
export function engineFeed(contender: Contender): EngineFeed | undefined {
  return contender === 'engine' ? 'append' : contender === 'send' || contender === 'level' ? contender : undefined;
}

/** One timed run on a fresh engine (set-up untimed) or hand loop. */
export async function runOnce(benchmark: BenchmarkDef, workload: Workload, options: RunOptions): Promise<Sample> {
  const { input } = workload;
  const feed = engineFeed(benchmark.contender);
  if (feed) {
    const run = await runEngine(input, benchmark.shape, benchmark.aggregation, options, {}, feed);
    return {
      ms: run.ms,
      cpuMs: run.cpuMs,
      output: run.output,
      engine: { metrics: { ...run.metrics }, repartitioned: run.repartitioned, appendBatch: options.appendBatch, maxBatchSize: options.maxBatchSize },
    };
  }
  const loop = benchmark.contender === 'baseline' ? runSliced : runNaive;
  const cpu = process.cpuUsage();
  const started = performance.now();
  const result = loop(input, benchmark.shape, benchmark.aggregation);
  const ms = performance.now() - started;
  const cpuMs = cpuSince(cpu);
  const { windows, total, startHash, lateRecords } = result;
  return { ms, cpuMs, output: { windows, total, startHash, lateRecords } };
}

/**
 * `runs` more runs, the timed part of each under the sampling profiler (engine only: set-up and
 * the output check stay out); writes the last profile to `file` and summarizes all of them.
 */
export async function profileRuns(benchmark: BenchmarkDef, workload: Workload, options: RunOptions, runs: number, file: string): Promise<NonNullable<BenchmarkResult['profile']>> {
  const profiler = new Profiler();
  await profiler.open();
  const profiles: CpuProfile[] = [];
  try {
    for (let round = 0; round < runs; round++) {
      collectGarbage();
      const feed = engineFeed(benchmark.contender);
      if (feed) {
        await runEngine(
          workload.input,
          benchmark.shape,
          benchmark.aggregation,
          options,
          {
            beforeTimed: () => profiler.start(),
            afterTimed: async () => {
              profiles.push(await profiler.stop());
            },
          },
          feed,
        );
      } else {
        await profiler.start();
        await runOnce(benchmark, workload, options);
        profiles.push(await profiler.stop());
      }
    }
  } finally {
    profiler.close();
  }
  writeFileSync(file, JSON.stringify(profiles[profiles.length - 1]));
  return { file, runs, ...summarize(profiles) };
}

/** The statistics of a benchmark's measured runs. */
export function result(
  benchmark: BenchmarkDef,
  workload: { records: number; inputHash: string },
  samples: readonly Sample[],
  extra: { warmup: number; heapUsedMB: number; gcBetweenRuns: boolean; profile?: BenchmarkResult['profile'] },
): BenchmarkResult {
  const times = samples.map((sample) => sample.ms);
  const cpuTimes = samples.map((sample) => sample.cpuMs);
  const sorted = [...times].sort((a, b) => a - b);
  const medianMs = median(times);
  const cpuMedianMs = median(cpuTimes);
  const minMs = sorted[0]!;
  const maxMs = sorted[sorted.length - 1]!;
  const { records } = workload;
  const last = samples[samples.length - 1]!;
  return {
    name: benchmark.name,
    description: benchmark.description,
    contender: benchmark.contender,
    window: describeShape(benchmark.shape),
    aggregation: benchmark.aggregation,
    records,
    recordsPerSecond: Math.round((records * 1000) / medianMs),
    nsPerRecord: Math.round((medianMs * 1e6) / records),
    medianMs: round(medianMs),
    minMs: round(minMs),
    maxMs: round(maxMs),
    spread: Math.round(((maxMs - minMs) / medianMs) * 1000) / 1000,
    samplesMs: times.map(round),
    cpu: {
      recordsPerSecond: Math.round((records * 1000) / cpuMedianMs),
      nsPerRecord: Math.round((cpuMedianMs * 1e6) / records),
      medianMs: round(cpuMedianMs),
      samplesMs: cpuTimes.map(round),
    },
    warmup: extra.warmup,
    repetitions: samples.length,
    output: last.output,
    inputHash: workload.inputHash,
    gcBetweenRuns: extra.gcBetweenRuns,
    heapUsedMB: extra.heapUsedMB,
    ...(last.engine ? { engine: last.engine } : {}),
    ...(extra.profile ? { profile: extra.profile } : {}),
  };
}

const round = (ms: number) => Math.round(ms * 10) / 10;

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}
