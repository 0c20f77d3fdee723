/** @eddy/bench: the benchmark building blocks (the runner is `run.ts`). */
export { runNaive, runSliced } from './baseline.js';
export { benchmarks, collectGarbage, gcAvailable, median, profileRuns, result, runOnce, workloadFor } from './benchmarks.js';
export type { BenchmarkDef, BenchmarkResult, Contender, EngineInfo, RunOptions, Sample } from './benchmarks.js';
export { cpuSince, OUTPUT_TOPIC, runEngine } from './engine.js';
export type { EngineOptions, EngineRun, TimedHooks } from './engine.js';
export { Profiler, summarize, shortFile } from './profile.js';
export type { CpuProfile, ProfileEntry, ProfileSummary } from './profile.js';
export { HOPPING_10S_1S, TUMBLING_10S } from './windowing.js';
export type { AggregationKind, RunOutput, WindowShape, WindowSummary } from './windowing.js';
export { buildWorkload, defaultWorkload, INPUT_TOPIC } from './workload.js';
export type { Reading, Workload, WorkloadOptions } from './workload.js';
