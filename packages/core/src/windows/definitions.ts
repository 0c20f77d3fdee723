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
