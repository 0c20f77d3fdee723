/**
 * The DSL's stage types, one kind per file: each call records a node in the app's graph and returns
 * the next stage, so a wrong chain does not compile.
 */
export { Stream, KeyedStream } from './stream.js';
export { WindowedStream } from './windowed-stream.js';
export { WindowedTable } from './windowed-table.js';
export { Table } from './table.js';
export type { SinkOptions, TableOptions } from './stage-options.js';
export type { StreamJoinOptions } from './stream.js';
export { GlobalTable } from './global-table.js';
