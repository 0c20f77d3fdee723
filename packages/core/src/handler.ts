/**
 * Handlers run on window results (`onClose`, `onUpdate`, `onLate`). A handler is a function, or a
 * batch handler such as `@eddy/ml`'s `workerPool(...)`, which takes many windows per call.
 */

/** What a window handler receives. */
export interface WindowResult<K, A> {
  readonly key: K;
  /** Window start, inclusive (epoch ms). */
  readonly start: number;
  /** Window end, exclusive (epoch ms). */
  readonly end: number;
  readonly value: A;
}

/** What an `onLate` handler receives: the late record and the window it missed. */
export interface LateRecord<K, V> extends WindowResult<K, V> {
  /** The late record's timestamp. */
  readonly timestamp: number;
}

/** A handler's result: one value, several, nothing, or a promise of any of these. */
export type HandlerResult<R> = R | readonly R[] | undefined | void | Promise<R | readonly R[] | undefined | void>;

/** Marks an object as a {@link WindowBatchHandler}. */
export const BATCH_HANDLER = Symbol.for('eddy.batchHandler');

/** The result of one item of a batch. */
export type HandlerOutcome<Out> = { ok: true; value: Out } | { ok: false; error: Error; attempts: number };

/**
 * A handler that takes windows in batches and settles each one: the engine calls `start` when the
 * app starts, `run` with the windows that close together, and `close` when the app stops.
 */
export interface WindowBatchHandler<In, Out> {
  readonly [BATCH_HANDLER]: true;
  /** Windows allowed to wait before the engine pauses its source. */
  readonly maxQueue: number;
  /** Windows submitted and not yet settled. */
  readonly queueDepth: number;
  start(): Promise<void>;
  /** One outcome per item, in the same order. */
  run(items: readonly In[]): Promise<HandlerOutcome<Out>[]>;
  close(): Promise<void>;
}

/** A function handler or a batch handler. */
export type WindowHandler<In, R> = ((input: In) => HandlerResult<R>) | WindowBatchHandler<In, R>;

export function isBatchHandler(handler: unknown): handler is WindowBatchHandler<unknown, unknown> {
  return typeof handler === 'object' && handler !== null && (handler as Record<symbol, unknown>)[BATCH_HANDLER] === true;
}
