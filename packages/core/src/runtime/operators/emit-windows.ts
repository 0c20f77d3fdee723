import { Observable, type OperatorFunction } from 'rxjs';
import { isBatchHandler, type WindowHandler } from '../../handler.js';
import type { TaskContext } from '../context.js';
import { record, type Signal, type WindowSignal } from '../signals.js';

/** One window waiting for its handler's results; results leave strictly in arrival order. */
interface Pending {
  readonly window: WindowSignal;
  results: readonly unknown[] | undefined;
}

const toResults = (output: unknown): readonly unknown[] => (output === undefined ? [] : Array.isArray(output) ? output : [output]);

/**
 * `onClose`, `onUpdate`, `onLate` and `toStream`: runs the handler on each window event of its
 * kind and emits the results as records keyed by the window key at the window's timestamp.
 * Handlers may be async, and a batch handler takes every window closed in one burst at once;
 * results are emitted in the order the windows came, whatever order handlers finish in.
 */
export function emitWindows(
  context: TaskContext,
  step: string,
  event: WindowSignal['event'],
  handler: WindowHandler<unknown, unknown> | undefined,
): OperatorFunction<Signal, Signal> {
  return (source) =>
    new Observable<Signal>((subscriber) => {
      const queue: Pending[] = [];
      let batch: Pending[] = [];

      const release = () => {
        while (queue.length > 0 && queue[0]!.results !== undefined) {
          const { window, results } = queue.shift()!;
          for (const result of results!) subscriber.next(record(window.key, result, window.timestamp, window.origin));
        }
      };

      const settle = (pending: Pending, output: unknown) => {
        pending.results = toResults(output);
        release();
      };

      const failed = (pending: Pending, error: unknown) => {
        context.fail(error, pending.window, step);
        settle(pending, undefined);
      };

      const runBatch = () => {
        const items = batch;
        batch = [];
        if (!isBatchHandler(handler)) return;
        const work = handler.run(items.map((pending) => view(pending.window))).then(
          (outcomes) =>
            items.forEach((pending, index) => {
              const outcome = outcomes[index];
              if (outcome?.ok) settle(pending, outcome.value);
              else failed(pending, outcome ? outcome.error : new Error('the batch handler returned no outcome for this window'));
            }),
          (error: unknown) => items.forEach((pending) => failed(pending, error)),
        );
        context.track(work);
      };

      return source.subscribe({
        next(signal) {
          if (signal.type !== 'window' || signal.event !== event) return;
          if (handler === undefined && queue.length === 0) {
            // The common synchronous case: nothing waits ahead, so emit at once.
            subscriber.next(record(signal.key, view(signal), signal.timestamp, signal.origin));
            return;
          }
          const pending: Pending = { window: signal, results: undefined };
          if (handler === undefined) {
            queue.push(pending);
            settle(pending, view(signal));
            return;
          }
          if (isBatchHandler(handler)) {
            queue.push(pending);
            // Windows closed by one tick arrive synchronously; send them in one batch.
            if (batch.push(pending) === 1) queueMicrotask(runBatch);
            return;
          }
          let output: unknown;
          try {
            output = handler(view(signal));
          } catch (error) {
            context.fail(error, signal, step);
            return;
          }
          if (output instanceof Promise) {
            queue.push(pending);
            context.track(output.then((value) => settle(pending, value), (error: unknown) => failed(pending, error)));
          } else if (queue.length === 0) {
            for (const result of toResults(output)) subscriber.next(record(signal.key, result, signal.timestamp, signal.origin));
          } else {
            queue.push(pending);
            settle(pending, output);
          }
        },
        error: (error: unknown) => subscriber.error(error),
        complete: () => subscriber.complete(),
      });
    });
}

function view(signal: WindowSignal): object {
  const base = { key: signal.key, start: signal.start, end: signal.end, value: signal.value };
  return signal.event === 'late' ? { ...base, timestamp: signal.timestamp } : base;
}
