import { ConfigError } from '../errors.js';
import type { WindowDefinition } from './strategy.js';

/**
 * The window kinds the DSL offers. Each kind is one file: its validated definition, its strategy
 * and its stored bucket; a new kind is one more file and one more line here.
 */
export { tumblingWindows, hoppingWindows } from './tumbling-hopping.js';
export { slidingWindows } from './sliding.js';
export { sessionWindows } from './session.js';
export { countWindows } from './count.js';

export type { WindowOptions } from './options.js';
export type { WindowDefinition } from './strategy.js';

/** The default store name: derived from parameters only, never from the position in the chain. */
export function defaultWindowStoreName(window: WindowDefinition, aggregation: string): string {
  return window.defaultStoreName(aggregation);
}

export function describeWindow(window: WindowDefinition): string {
  return window.description;
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
