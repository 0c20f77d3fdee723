/**
 * @eddy/state: the LevelDB state backend for Eddy apps.
 *
 * @example
 * ```ts
 * import { createApp } from '@eddy/core';
 * import { levelState } from '@eddy/state';
 *
 * const app = createApp({ id: 'sensors', state: levelState({ dir: '.eddy' }) });
 * ```
 */
export { levelState } from './level-state.js';
export type { LevelStateOptions } from './level-state.js';
export type { LevelTuning, StateLogger } from './recovery.js';
export { StateError } from './errors.js';
export type { StateErrorCode } from './errors.js';
export { levelTransport, LevelTransport } from './level-transport.js';
export type { LevelTransportOptions } from './level-transport.js';
