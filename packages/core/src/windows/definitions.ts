import { toMs, type Duration } from '../duration.js';
import { ConfigError } from '../errors.js';

/** Options every window kind takes. */
export interface WindowOptions {
  /** How long after a window's end stragglers are still accepted. Default 0. */
  grace?: Duration;
  /** The state store name; defaults to one derived from the window's parameters. */
  name?: string;
}

/** A validated window definition; all times in milliseconds. */
export type WindowDefinition =
  | { readonly kind: 'tumbling' | 'hopping'; readonly sizeMs: number; readonly slideMs: number; readonly graceMs: number }
  | { readonly kind: 'sliding'; readonly sizeMs: number; readonly graceMs: number }
  | { readonly kind: 'session'; readonly gapMs: number; readonly graceMs: number }
  | { readonly kind: 'count'; readonly size: number; readonly step: number };

function grace(options: WindowOptions | undefined, what: string): number {
  return options?.grace === undefined ? 0 : toMs(options.grace, `${what} grace`, { allowZero: true });
}

export function tumblingWindows(size: Duration, options?: WindowOptions): WindowDefinition {
  const sizeMs = toMs(size, 'tumbling window size');
  return { kind: 'tumbling', sizeMs, slideMs: sizeMs, graceMs: grace(options, 'tumbling window') };
}

export function hoppingWindows(size: Duration, slide: Duration, options?: WindowOptions): WindowDefinition {
  const sizeMs = toMs(size, 'hopping window size');
  const slideMs = toMs(slide, 'hopping window slide');
  if (slideMs > sizeMs) {
    throw new ConfigError(`hopping window: slide ${JSON.stringify(slide)} is larger than size ${JSON.stringify(size)} (records would fall between windows)`);
  }
  return { kind: 'hopping', sizeMs, slideMs, graceMs: grace(options, 'hopping window') };
}

export function slidingWindows(size: Duration, options?: WindowOptions): WindowDefinition {
  return { kind: 'sliding', sizeMs: toMs(size, 'sliding window size'), graceMs: grace(options, 'sliding window') };
}

export function sessionWindows(gap: Duration, options?: WindowOptions): WindowDefinition {
  return { kind: 'session', gapMs: toMs(gap, 'session gap'), graceMs: grace(options, 'session window') };
}

export function countWindows(size: number, step: number | undefined, _options?: WindowOptions): WindowDefinition {
  if (!Number.isInteger(size) || size < 1) throw new ConfigError(`countWindow: size must be a positive integer, got ${String(size)}`);
  const resolvedStep = step ?? size;
  if (!Number.isInteger(resolvedStep) || resolvedStep < 1) {
    throw new ConfigError(`countWindow: step must be a positive integer, got ${String(step)}`);
  }
  return { kind: 'count', size, step: resolvedStep };
}

/** The default store name: derived from parameters only, never from the position in the chain. */
export function defaultWindowStoreName(window: WindowDefinition, aggregation: string): string {
  switch (window.kind) {
    case 'tumbling':
      return `tumbling-${window.sizeMs}ms-grace-${window.graceMs}ms-${aggregation}`;
    case 'hopping':
      return `hopping-${window.sizeMs}ms-${window.slideMs}ms-grace-${window.graceMs}ms-${aggregation}`;
    case 'sliding':
      return `sliding-${window.sizeMs}ms-grace-${window.graceMs}ms-${aggregation}`;
    case 'session':
      return `session-${window.gapMs}ms-grace-${window.graceMs}ms-${aggregation}`;
    case 'count':
      return `count-${window.size}-${window.step}-${aggregation}`;
  }
}

export function describeWindow(window: WindowDefinition): string {
  switch (window.kind) {
    case 'tumbling':
      return `tumbling(${window.sizeMs}ms, grace ${window.graceMs}ms)`;
    case 'hopping':
      return `hopping(${window.sizeMs}ms, ${window.slideMs}ms, grace ${window.graceMs}ms)`;
    case 'sliding':
      return `sliding(${window.sizeMs}ms, grace ${window.graceMs}ms)`;
    case 'session':
      return `session(gap ${window.gapMs}ms, grace ${window.graceMs}ms)`;
    case 'count':
      return `countWindow(${window.size}, step ${window.step})`;
  }
}

const storeNamePattern = /^[A-Za-z0-9._-]+$/;

/** Store and topic names must be valid Kafka topic name parts. */
export function checkName(name: string | undefined, what: string): string | undefined {
  if (name === undefined) return undefined;
  if (typeof name !== 'string' || !storeNamePattern.test(name) || name.length > 200) {
    throw new ConfigError(`${what}: invalid name ${JSON.stringify(name)} (letters, digits, '.', '_' and '-' only)`);
  }
  return name;
}
