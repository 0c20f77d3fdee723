/**
 * The worker-pool benchmark's models: where their modules are, how to load them on the main thread
 * (for the inline runs), and the one-time calibration of the CPU model to ~10 ms per window.
 *
 * The models are plain `.mjs` files under `bench/src/models/`, run as they are by the pool's
 * workers and imported dynamically here, so that inline and pooled runs execute the same file.
 * tsc does not copy them to `dist/`; {@link modelUrl} finds them from `src/` and from `dist/`.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { WindowResult } from '@eddy/core';

/** The value of one benchmark input record. */
export interface PoolReading {
  readonly sensor: string;
  readonly value: number;
  readonly ts: number;
}

/** What the CPU model returns per window. */
export interface Score {
  readonly sensor: string;
  readonly start: number;
  readonly n: number;
  readonly mean: number;
  readonly score: number;
}

/** What the trivial model returns per window. */
export interface Tiny {
  readonly k: string;
  readonly s: number;
}

export type CpuWindow = WindowResult<string, PoolReading[]>;

export interface CpuModelModule {
  readonly ITERATIONS_ENV: string;
  burn(count: number, seed: number): number;
  init(): void;
  default(window: CpuWindow): Score;
}

export interface TinyModelModule {
  default(window: { readonly key: string; readonly start: number }): Tiny;
}

export type ModelFile = 'cpu-model.mjs' | 'tiny-model.mjs';

/**
 * The model module's file URL: `./models/<file>` next to this module if it is there (running from
 * `src/`, or a `dist/` the models were copied into), else `../src/models/<file>` (running from
 * `dist/`, which tsc fills with the compiled TypeScript only).
 */
export function modelUrl(file: ModelFile): URL {
  const candidates = [new URL(`./models/${file}`, import.meta.url), new URL(`../src/models/${file}`, import.meta.url)];
  const found = candidates.find((url) => existsSync(fileURLToPath(url)));
  if (found === undefined) {
    throw new Error(`pool bench: model ${file} not found; looked at ${candidates.map((url) => fileURLToPath(url)).join(', ')}`);
  }
  return found;
}

export async function loadCpuModel(): Promise<CpuModelModule> {
  return (await import(modelUrl('cpu-model.mjs').href)) as CpuModelModule;
}

export async function loadTinyModel(): Promise<TinyModelModule> {
  return (await import(modelUrl('tiny-model.mjs').href)) as TinyModelModule;
}

export interface Calibration {
  /** Loop iterations per window. */
  readonly iterations: number;
  /** The target CPU time per window. */
  readonly targetMs: number;
  /** Median of `checkRuns` timed runs of one window's worth of work, after calibration. */
  readonly measuredMs: number;
  readonly minMs: number;
  readonly maxMs: number;
  readonly checkRuns: number;
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

/**
 * Finds the iteration count that takes `targetMs` of CPU on this machine, on the main thread while
 * nothing else runs, then times that count `checkRuns` times. Sets the model's environment
 * variable, so workers started afterwards (which copy `process.env`) use the same count.
 */
export function calibrateCpuModel(model: CpuModelModule, targetMs = 10, checkRuns = 21): Calibration {
  // Warm up: let the JIT optimize the loop before anything is timed.
  for (let round = 0; round < 20; round++) model.burn(100_000, round);
  // Grow the probe until it runs long enough (>= 100 ms) to time well, several times; keep the
  // fastest rate (the least disturbed probe).
  let probe = 100_000;
  let bestPerMs = 0;
  for (let attempt = 0; attempt < 5; attempt++) {
    for (;;) {
      const started = performance.now();
      model.burn(probe, attempt);
      const ms = performance.now() - started;
      if (ms >= 100) {
        bestPerMs = Math.max(bestPerMs, probe / ms);
        break;
      }
      probe *= 2;
    }
  }
  let iterations = Math.max(1, Math.round(bestPerMs * targetMs));
  // Window-sized runs can be faster or slower than the long probes (JIT, caches, frequency):
  // correct the count by the median of window-sized runs, twice, then measure it.
  const timeRuns = (count: number): number[] => {
    const times: number[] = [];
    for (let run = 0; run < checkRuns; run++) {
      const started = performance.now();
      model.burn(count, run);
      times.push(performance.now() - started);
    }
    return times;
  };
  for (let refine = 0; refine < 2; refine++) iterations = Math.max(1, Math.round((iterations * targetMs) / median(timeRuns(iterations))));
  process.env[model.ITERATIONS_ENV] = String(iterations);
  model.init();
  const times = timeRuns(iterations);
  return {
    iterations,
    targetMs,
    measuredMs: median(times),
    minMs: Math.min(...times),
    maxMs: Math.max(...times),
    checkRuns,
  };
}
