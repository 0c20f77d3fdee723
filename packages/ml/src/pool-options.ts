import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { toMs, type Duration } from '@eddy/core';
import { WorkerPoolError } from './errors.js';

/**
 * Options of {@link workerPool}. Every field is optional; the defaults suit a CPU-bound model.
 *
 * @example
 * const options: WorkerPoolOptions = { size: 4, timeout: '5s', retries: 1, batchSize: 16 };
 */
export interface WorkerPoolOptions {
  /** Worker threads to run. Default: the machine's parallelism minus one (at least 1). */
  readonly size?: number;
  /** The module export to call for each window. Default: `'default'`. */
  readonly exportName?: string;
  /**
   * How long one window's handler may run before its worker is deemed hung, terminated and
   * replaced. Counted per window, not per batch: the clock starts once the batch has reached the
   * worker (its crossing is not counted) and restarts each time a window of the batch finishes.
   * Default: `'30s'`.
   */
  readonly timeout?: Duration;
  /** How long a worker may take to import the module and run its `init()`. Default: `'60s'`. */
  readonly initTimeout?: Duration;
  /** Windows allowed to wait before the engine pauses its source. Default: 1000. */
  readonly maxQueue?: number;
  /** Extra attempts for a window whose handler failed, hung or crashed its worker. Default: 2. */
  readonly retries?: number;
  /** The most windows sent to a worker in one message. Default: 32. */
  readonly batchSize?: number;
}

/** The options once validated, with durations in milliseconds. */
export interface ResolvedPoolOptions {
  readonly moduleUrl: URL;
  readonly size: number;
  readonly exportName: string;
  readonly timeoutMs: number;
  readonly initTimeoutMs: number;
  readonly maxQueue: number;
  readonly retries: number;
  readonly batchSize: number;
}

const knownOptions = new Set(['size', 'exportName', 'timeout', 'initTimeout', 'maxQueue', 'retries', 'batchSize']);

function show(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  return String(value);
}

function invalid(message: string): WorkerPoolError {
  return new WorkerPoolError('CONFIG_INVALID', `workerPool: ${message}`);
}

function wholeNumber(value: unknown, name: string, minimum: number, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < minimum) {
    throw invalid(`${name} must be a whole number >= ${minimum}, got ${show(value)}`);
  }
  return value;
}

function resolveModuleUrl(moduleUrl: unknown): URL {
  let url: URL;
  if (moduleUrl instanceof URL) {
    url = moduleUrl;
  } else if (typeof moduleUrl === 'string' && moduleUrl.length > 0) {
    // Like `new Worker(path)`: a URL string is taken as is, a path is resolved from the cwd.
    url = /^[a-z][a-z0-9+.-]*:\/\//i.test(moduleUrl) ? new URL(moduleUrl) : pathToFileURL(resolve(moduleUrl));
  } else {
    throw invalid(`moduleUrl must be a URL or a path, got ${show(moduleUrl)}`);
  }
  if (url.protocol !== 'file:') {
    throw invalid(`moduleUrl must be a file: URL, got ${show(url.href)}`);
  }
  if (!existsSync(fileURLToPath(url))) {
    throw invalid(`moduleUrl ${show(url.href)} does not exist`);
  }
  return url;
}

/** Checks every option at creation, so that a typo fails fast with the bad value in the message. */
export function resolvePoolOptions(moduleUrl: unknown, options: WorkerPoolOptions = {}): ResolvedPoolOptions {
  if (typeof options !== 'object' || options === null) {
    throw invalid(`options must be an object, got ${show(options)}`);
  }
  for (const name of Object.keys(options)) {
    if (!knownOptions.has(name)) {
      throw invalid(`unknown option ${show(name)} (known: ${[...knownOptions].join(', ')})`);
    }
  }
  const exportName = options.exportName ?? 'default';
  if (typeof exportName !== 'string' || exportName.length === 0) {
    throw invalid(`exportName must be a non-empty string, got ${show(exportName)}`);
  }
  return {
    moduleUrl: resolveModuleUrl(moduleUrl),
    size: wholeNumber(options.size, 'size', 1, Math.max(1, availableParallelism() - 1)),
    exportName,
    timeoutMs: toMs(options.timeout ?? '30s', 'workerPool: timeout'),
    initTimeoutMs: toMs(options.initTimeout ?? '60s', 'workerPool: initTimeout'),
    maxQueue: wholeNumber(options.maxQueue, 'maxQueue', 1, 1000),
    retries: wholeNumber(options.retries, 'retries', 0, 2),
    batchSize: wholeNumber(options.batchSize, 'batchSize', 1, 32),
  };
}
