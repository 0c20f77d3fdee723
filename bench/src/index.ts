/** @eddy/bench: the benchmark building blocks (the runner is `run.ts`). */
export { runNaive, runSliced } from './baseline.js';
export { benchmarks, collectGarbage, gcAvailable, inputFor, median, profileRuns, result, runOnce, workloadFor } from './benchmarks.js';
export type { BenchInput, BenchmarkDef, BenchmarkResult, Contender, EngineInfo, JoinBenchmarkDef, RunOptions, Sample, WindowBenchmarkDef } from './benchmarks.js';
export { buildTableJoinInput, buildWithinJoinInput, expectedWithin, runTableJoinBaseline, runTableJoinEngine, runWithinJoinEngine, TABLE_KEYS, WITHIN_KEYS } from './joins.js';
export type { JoinOutput, JoinRun, TableJoinInput, WithinExpectation, WithinJoinInput } from './joins.js';
export { cpuSince, OUTPUT_TOPIC, runEngine } from './engine.js';
export type { EngineOptions, EngineRun, TimedHooks } from './engine.js';
export { Profiler, summarize, shortFile } from './profile.js';
export type { CpuProfile, ProfileEntry, ProfileSummary } from './profile.js';
export { HOPPING_10S_1S, TUMBLING_10S } from './windowing.js';
export type { AggregationKind, RunOutput, WindowShape, WindowSummary } from './windowing.js';
export { buildWorkload, defaultWorkload, INPUT_TOPIC } from './workload.js';
export type { Reading, Workload, WorkloadOptions } from './workload.js';
