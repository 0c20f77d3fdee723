/**
 * The worker pool's own cost per window, on a model that does nothing (returns a tiny object):
 * `pool.run()` called directly, no pipeline, with the same many-window calls for every contender:
 * a pool with `batchSize: 1` (one message per window), pools with batching (`batchSize: 32`, the
 * default, and `64`), and an inline baseline (the same function called on the main thread).
 */
import { performance } from 'node:perf_hooks';
import { workerPool, type HandlerOutcome } from '@eddy/ml';
import { loadTinyModel, modelUrl, type Tiny } from './pool-models.js';

export interface OverheadOptions {
  /** Windows per run() call (one "burst" of windows closing together). */
  readonly windowsPerCall: number;
  /** run() calls per trial, each awaited before the next is made. */
  readonly calls: number;
  /** Timed trials per contender; the median is reported. */
  readonly trials: number;
  /** Untimed calls first, after the workers have started. */
  readonly warmupCalls: number;
  /** Worker threads. */
  readonly size: number;
  /** Pool contenders, by batchSize. */
  readonly batchSizes: readonly number[];
}

export interface OverheadWindow {
  readonly key: string;
  readonly start: number;
  readonly end: number;
  readonly value: readonly number[];
}

export interface OverheadResult {
  readonly label: string;
  readonly batchSize: number | null;
  /** Median over trials of (trial time / windows in the trial), in microseconds. */
  readonly usPerWindow: number;
  readonly windowsPerSecond: number;
  readonly trialsUsPerWindow: readonly number[];
  /** Windows whose outcome was ok and matched its input, in order, over all timed trials. */
  readonly windowsChecked: number;
  readonly windowsFailed: number;
}

export interface OverheadReport {
  readonly options: OverheadOptions & { readonly windowsPerTrial: number };
  readonly results: readonly OverheadResult[];
}

type RunFn = (items: readonly OverheadWindow[]) => Promise<HandlerOutcome<Tiny>[]>;

function makeCalls(options: OverheadOptions, offset: number, count: number): OverheadWindow[][] {
  return Array.from({ length: count }, (_, call) =>
    Array.from({ length: options.windowsPerCall }, (_, index) => {
      const start = 1_700_000_000_000 + (offset + call * options.windowsPerCall + index) * 1000;
      return { key: `sensor-${index % 20}`, start, end: start + 10_000, value: [20.5, 21, 21.25, 20.75, 22] };
    }),
  );
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

/** Counts outcomes that are ok and carry their own window's key and start (so: in order). */
function verify(calls: readonly OverheadWindow[][], outcomes: readonly HandlerOutcome<Tiny>[][]): { ok: number; failed: number } {
  let ok = 0;
  let failed = 0;
  calls.forEach((windows, call) => {
    const results = outcomes[call] ?? [];
    windows.forEach((window, index) => {
      const outcome = results[index];
      if (outcome?.ok && outcome.value.k === window.key && outcome.value.s === window.start) ok += 1;
      else failed += 1;
    });
  });
  return { ok, failed };
}

async function measure(label: string, batchSize: number | null, run: RunFn, options: OverheadOptions): Promise<OverheadResult> {
  for (const windows of makeCalls(options, 0, options.warmupCalls)) await run(windows);
  const windowsPerTrial = options.calls * options.windowsPerCall;
  const trials: number[] = [];
  let windowsChecked = 0;
  let windowsFailed = 0;
  for (let trial = 0; trial < options.trials; trial++) {
    const calls = makeCalls(options, (trial + 1) * windowsPerTrial, options.calls);
    const outcomes: HandlerOutcome<Tiny>[][] = [];
    const started = performance.now();
    for (const windows of calls) outcomes.push(await run(windows));
    const ms = performance.now() - started;
    trials.push((ms * 1000) / windowsPerTrial);
    const { ok, failed } = verify(calls, outcomes);
    windowsChecked += ok;
    windowsFailed += failed;
  }
  const usPerWindow = median(trials);
  return {
    label,
    batchSize,
    usPerWindow: Math.round(usPerWindow * 1000) / 1000,
    windowsPerSecond: Math.round(1e6 / usPerWindow),
    trialsUsPerWindow: trials.map((us) => Math.round(us * 1000) / 1000),
    windowsChecked,
    windowsFailed,
  };
}

export async function measurePoolOverhead(options: OverheadOptions): Promise<OverheadReport> {
  const results: OverheadResult[] = [];
  const tiny = await loadTinyModel();
  // The same shape as pool.run(): one outcome per window, settled asynchronously.
  const inline: RunFn = async (items) => items.map((window): HandlerOutcome<Tiny> => ({ ok: true, value: tiny.default(window) }));
  results.push(await measure('inline (main thread)', null, inline, options));
  for (const batchSize of options.batchSizes) {
    const pool = workerPool<OverheadWindow, Tiny>(modelUrl('tiny-model.mjs'), { size: options.size, batchSize });
    try {
      await pool.start();
      results.push(await measure(`workerPool size ${options.size}, batchSize ${batchSize}`, batchSize, (items) => pool.run(items), options));
    } finally {
      await pool.close();
    }
  }
  return { options: { ...options, windowsPerTrial: options.calls * options.windowsPerCall }, results };
}
