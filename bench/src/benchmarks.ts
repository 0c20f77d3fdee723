/**
 * The benchmarks, one timed run of each, and the statistics over runs (median). The runner
 * (`run.ts`) decides the schedule: warm-up, GC before each run, rounds interleaving contenders.
 */
import { writeFileSync } from 'node:fs';
import { runNaive, runSliced } from './baseline.js';
import { runEngine, timed, type EngineFeed, type EngineOptions, type TimedHooks } from './engine.js';
import {
  buildTableJoinInput,
  buildWithinJoinInput,
  expectedWithin,
  runTableJoinBaseline,
  runTableJoinEngine,
  runWithinJoinEngine,
  type JoinOutput,
  type TableJoinInput,
  type WithinExpectation,
  type WithinJoinInput,
} from './joins.js';
import { Profiler, summarize, type CpuProfile, type ProfileSummary } from './profile.js';
import { HOPPING_10S_1S, TUMBLING_10S, type AggregationKind, type RunOutput, type WindowShape } from './windowing.js';
import { buildWorkload, defaultWorkload, type Workload } from './workload.js';

export type Contender = 'engine' | 'send' | 'level' | 'baseline' | 'naive';

/** A windowed aggregation on the readings workload (workload.ts). */
export interface WindowBenchmarkDef {
  readonly family: 'window';
  readonly name: string;
  readonly contender: Contender;
  readonly shape: WindowShape;
  readonly aggregation: AggregationKind;
  readonly description: string;
}

/** A join (joins.ts): stream–table against its hand loop, or windowed stream–stream for one `within`. */
export interface JoinBenchmarkDef {
  readonly family: 'join-table' | 'join-within';
  readonly name: string;
  readonly contender: 'engine' | 'baseline';
  readonly description: string;
  /** join-within: the join's `within` and `grace`. */
  readonly withinMs?: number;
  readonly graceMs?: number;
}

export type BenchmarkDef = WindowBenchmarkDef | JoinBenchmarkDef;

const describeShape = (shape: WindowShape) => (shape.kind === 'hopping' ? `hopping(${shape.sizeMs / 1000}s, ${shape.slideMs / 1000}s)` : `tumbling(${shape.sizeMs / 1000}s)`);

function def(contender: Contender, shape: WindowShape, aggregation: AggregationKind): WindowBenchmarkDef {
  const what = `${describeShape(shape)}.${aggregation}()`;
  const description = {
    engine: `Eddy on memoryTransport: keyBy(r => r.sensor) → ${what} → onClose(summary) → to(topic)`,
    send: `the same fed by the host: app.send per record (a JSON value), 1,000 sends in flight`,
    level: `the same fed by app.send on levelTransport + levelState (log and state on disk)`,
    baseline: `hand loop, sliced: JSON decode + re-encode per record, one slice update per record, ${what} combined from slices at close`,
    naive: `hand loop, naive: JSON decode + re-encode per record, the record added to every overlapping window of ${what}`,
  }[contender];
  return { family: 'window', name: `${contender}-${shape.kind}-${aggregation}`, contender, shape, aggregation, description };
}

const TABLE_JOIN = 'readings.keyBy(r => r.sensor).join(sensors, (r, s) => ({ ...r, place: s.place, value: r.value * s.scale })).to(out)';

/**
 * The grace of the windowed joins. The task reads its two repartition topics a batch at a time
 * (`--max-batch` 500 records of one side ≈ 5 s of event time at this rate) and does not merge
 * them by timestamp, so one side runs up to about 5 s ahead; a record behind stream time by more
 * than grace may miss partners that have already left the buffer. 10 s covers that.
 */
const WITHIN_GRACE_S = 10;

function withinDef(withinS: number, graceS: number, graceInName = false): JoinBenchmarkDef {
  return {
    family: 'join-within',
    name: `engine-join-within-${withinS}s${graceInName ? `-grace-${graceS}s` : ''}`,
    contender: 'engine',
    withinMs: withinS * 1000,
    graceMs: graceS * 1000,
    description: `Eddy on memoryTransport: left.keyBy(sensor).join(right.keyBy(sensor), (l, r) => ({ l: l.id, r: r.id }), { within: '${withinS}s', grace: '${graceS}s' }).to(out), 1,000 keys, both sides interleaved`,
  };
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
  { family: 'join-table', name: 'baseline-join-table', contender: 'baseline', description: `hand loop: the table as a Map, then per reading decode key + JSON value, look up, join, JSON.stringify + Buffer.from of key and result` },
  { family: 'join-table', name: 'engine-join-table', contender: 'engine', description: `Eddy on memoryTransport, a 10,000-key table loaded first: ${TABLE_JOIN}` },
  withinDef(1, WITHIN_GRACE_S),
  withinDef(10, WITHIN_GRACE_S),
  withinDef(60, WITHIN_GRACE_S),
  withinDef(1, 70, true),
];

export interface RunOptions extends EngineOptions {
  readonly records: number;
  /** Input records (both sides) of the windowed stream–stream join benchmarks. */
  readonly withinRecords: number;
}

/** What one timed run of a benchmark reports. */
export interface Sample {
  /** Wall-clock time. */
  readonly ms: number;
  /** CPU time of the process (user + system, all threads) over the same span. */
  readonly cpuMs: number;
  readonly output: RunOutput | JoinOutput;
  readonly engine?: EngineInfo;
}

export interface EngineInfo {
  readonly metrics: Record<string, number>;
  /** Records written to the repartition topic (keyBy before a window). */
  readonly repartitioned?: number;
  readonly appendBatch: number;
  readonly maxBatchSize: number;
}

export interface BenchmarkResult {
  readonly name: string;
  readonly description: string;
  readonly contender: Contender;
  readonly family: BenchmarkDef['family'];
  /** The window shape, or the join. */
  readonly window: string;
  readonly aggregation?: AggregationKind;
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
  /** Result windows (or join results) of the last run: equal across contenders of one window shape and aggregation, or one join. */
  readonly output: RunOutput | JoinOutput;
  /** join-within: results and buffered records of the input (brute force), and the cost per result. */
  readonly join?: {
    readonly withinMs: number;
    readonly graceMs: number;
    readonly outputs: number;
    readonly matchesPerRecord: number;
    readonly bufferedPerKey: number;
    readonly bufferedTotal: number;
    readonly nsPerOutput: number;
    readonly cpuNsPerOutput: number;
  };
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

/** What a benchmark's process builds once: the input of its family, and its hash. */
export interface BenchInput {
  readonly inputHash: string;
  /** Input records per run (for the table join: the stream's, the table's 10,000 not counted). */
  readonly records: number;
  readonly window?: Workload;
  readonly table?: TableJoinInput;
  readonly within?: WithinJoinInput;
  /** join-within: what the join must produce on this input (brute force). */
  readonly expected?: WithinExpectation;
}

export function inputFor(benchmark: BenchmarkDef, options: { records: number; withinRecords: number }): BenchInput {
  switch (benchmark.family) {
    case 'window': {
      const window = workloadFor(options.records);
      return { inputHash: window.inputHash, records: window.input.length, window };
    }
    case 'join-table': {
      const table = buildTableJoinInput(options.records);
      return { inputHash: table.inputHash, records: table.stream.length, table };
    }
    case 'join-within': {
      const within = buildWithinJoinInput(options.withinRecords);
      return { inputHash: within.inputHash, records: within.records.length, within, expected: expectedWithin(within, benchmark.withinMs!, benchmark.graceMs!) };
    }
  }
}

/** One timed run on a fresh engine (set-up untimed) or hand loop; `hooks` run right around the timed part. */
export async function runOnce(benchmark: BenchmarkDef, input: BenchInput, options: RunOptions, hooks: TimedHooks = {}): Promise<Sample> {
  const engineInfo = (metrics: Record<string, number> | undefined, repartitioned?: number): EngineInfo => ({
    metrics: { ...metrics },
    ...(repartitioned === undefined ? {} : { repartitioned }),
    appendBatch: options.appendBatch,
    maxBatchSize: options.maxBatchSize,
  });
  if (benchmark.family === 'join-table') {
    if (benchmark.contender === 'baseline') {
      const run = await runTableJoinBaseline(input.table!, hooks);
      return { ms: run.ms, cpuMs: run.cpuMs, output: run.output };
    }
    const run = await runTableJoinEngine(input.table!, options, hooks);
    return { ms: run.ms, cpuMs: run.cpuMs, output: run.output, engine: engineInfo(run.metrics) };
  }
  if (benchmark.family !== 'window') {
    const run = await runWithinJoinEngine(input.within!, benchmark.withinMs!, benchmark.graceMs!, options, hooks);
    const output: JoinOutput = { ...run.output, expectedOutputs: input.expected!.outputs, expectedHash: input.expected!.hash };
    return { ms: run.ms, cpuMs: run.cpuMs, output, engine: engineInfo(run.metrics) };
  }
  const records = input.window!.input;
  const feed = engineFeed(benchmark.contender);
  if (feed) {
    const run = await runEngine(records, benchmark.shape, benchmark.aggregation, options, hooks, feed);
    return { ms: run.ms, cpuMs: run.cpuMs, output: run.output, engine: engineInfo(run.metrics, run.repartitioned) };
  }
  const loop = benchmark.contender === 'baseline' ? runSliced : runNaive;
  const { ms, cpuMs, result } = await timed(hooks, () => loop(records, benchmark.shape, benchmark.aggregation));
  const { windows, total, startHash, lateRecords } = result;
  return { ms, cpuMs, output: { windows, total, startHash, lateRecords } };
}

/** Whether a benchmark runs the engine (what `--profile` profiles). */
export function isEngine(benchmark: BenchmarkDef): boolean {
  return benchmark.family === 'window' ? engineFeed(benchmark.contender) !== undefined : benchmark.contender === 'engine';
}

/**
 * `runs` more runs, the timed part of each under the sampling profiler (set-up and the output
 * check stay out); writes the last profile to `file` and summarizes all of them.
 */
export async function profileRuns(benchmark: BenchmarkDef, input: BenchInput, options: RunOptions, runs: number, file: string): Promise<NonNullable<BenchmarkResult['profile']>> {
  const profiler = new Profiler();
  await profiler.open();
  const profiles: CpuProfile[] = [];
  try {
    for (let round = 0; round < runs; round++) {
      collectGarbage();
      await runOnce(benchmark, input, options, {
        beforeTimed: () => profiler.start(),
        afterTimed: async () => {
          profiles.push(await profiler.stop());
        },
      });
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
  extra: { warmup: number; heapUsedMB: number; gcBetweenRuns: boolean; profile?: BenchmarkResult['profile']; expected?: WithinExpectation },
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
    family: benchmark.family,
    ...(benchmark.family === 'window'
      ? { window: describeShape(benchmark.shape), aggregation: benchmark.aggregation }
      : { window: benchmark.family === 'join-table' ? 'stream–table join' : `stream–stream join within ${benchmark.withinMs! / 1000}s grace ${benchmark.graceMs! / 1000}s` }),
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
    ...(benchmark.family === 'join-within' && extra.expected
      ? {
          join: {
            withinMs: benchmark.withinMs!,
            graceMs: benchmark.graceMs!,
            outputs: extra.expected.outputs,
            matchesPerRecord: Math.round((extra.expected.outputs / records) * 1000) / 1000,
            bufferedPerKey: extra.expected.bufferedPerKey,
            bufferedTotal: extra.expected.bufferedTotal,
            nsPerOutput: Math.round((medianMs * 1e6) / Math.max(1, extra.expected.outputs)),
            cpuNsPerOutput: Math.round((cpuMedianMs * 1e6) / Math.max(1, extra.expected.outputs)),
          },
        }
      : {}),
    ...(extra.profile ? { profile: extra.profile } : {}),
  };
}

const round = (ms: number) => Math.round(ms * 10) / 10;

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}
